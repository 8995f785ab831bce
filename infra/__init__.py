"""Running the real infrastructure (Kafka, Postgres+pgvector, Neo4j, Redis) and the
services as child processes, without Docker. Config files for each live beside it."""
