"""Shared I/O adapters: Kafka codec and producer, embedders, Postgres/Neo4j/Redis clients."""
