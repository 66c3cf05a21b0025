"""Genesys Cloud conversation details -> Kafka connector: the worker.

The public surface of this package is its command line (`genesys-connector`), its configuration schema
(`connector.config`), its Prometheus metrics (`connector.metrics`) and the Kafka message format
(`connector.kafka.records`). Everything else is internal and may change.

Where things live (see docs/ARCHITECTURE.md): `genesys/` talks to Genesys, `kafka/` talks to Kafka,
`state/` is what survives a restart, the modules at this level plan, run and wire the loop. `testbed/`
(simulator, embedded broker, demo) is not part of the worker: an extra, left out of the image.
"""

__version__ = "0.1.0"
