"""The Kafka side: the message format, the producer with delivery tracking, and oversized-record policy.

Nothing here knows about Genesys' HTTP API (checked by the import contract in pyproject.toml).
"""
