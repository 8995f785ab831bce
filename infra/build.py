"""`python -m infra.build`: everything the local stack builds once (make install runs it):
Kafka jars, the Neo4j launcher, a portable pgvector."""

from __future__ import annotations

import time

from infra import kafka_server, neo4j_server, pgvector_build


def main() -> None:
    for name, step in (("kafka jars", kafka_server.build), ("neo4j launcher", neo4j_server.build),
                       ("pgvector", pgvector_build.ensure_portable)):
        began = time.monotonic()
        result = step()
        print(f"{name}: {result} ({time.monotonic() - began:.1f}s)")


if __name__ == "__main__":
    main()
