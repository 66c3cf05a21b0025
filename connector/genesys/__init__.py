"""The Genesys side: OAuth, the one HTTP choke point (pacing, retries, status -> error), paging and fetching.

Nothing here knows about Kafka or the checkpoint (checked by the import contract in pyproject.toml).
"""
