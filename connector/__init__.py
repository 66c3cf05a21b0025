"""Genesys Cloud conversation details -> Kafka connector.

The public surface of this package is its command line (`genesys-connector`), its configuration schema
(`connector.config`), its Prometheus metrics (`connector.metrics`) and the Kafka message format
(`connector.publisher`). Everything else is internal and may change.
"""

__version__ = "0.1.0"
