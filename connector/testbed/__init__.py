"""The test bed: the Genesys simulator, the embedded Kafka broker, the demo and reconciliation.

Not part of the worker. Installed with the `testbed` extra (`pip install 'genesys-kafka-connector[testbed]'`),
left out of the container image, and never imported by worker modules (the import contract in
pyproject.toml fails the build if one does). `genesys-connector simulate` and `demo` load it on demand.
"""
