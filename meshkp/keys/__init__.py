"""Keys: the key record CRDT, the KeyService (ingest, queries, caches) and the one commit path."""
