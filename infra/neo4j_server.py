"""Neo4j 5.26 community from Maven Central jars, run by the small Java launcher under
infra/neo4j/ (Bolt only, on 127.0.0.1:7687, authentication on, password from secrets)."""

from __future__ import annotations

from pathlib import Path

from infra import jvm
from infra.process import ProcessSpec

NEO4J_DIR = jvm.INFRA_DIR / "neo4j"
JAR = NEO4J_DIR / "target" / "neo4j-launcher.jar"


def build() -> Path:
    jvm.build("neo4j", ["package"])
    return JAR


def _probe(uri: str, user: str, password: str) -> str:
    import logging

    from neo4j import GraphDatabase

    logging.getLogger("neo4j").setLevel(logging.CRITICAL)  # "connection refused" is expected while starting
    # A plain session, not execute_query: that one retries for up to 30 s and hides the state.
    with GraphDatabase.driver(uri, auth=(user, password), connection_timeout=2) as driver:
        with driver.session() as session:
            assert session.run("RETURN 1 AS one").single()["one"] == 1
        return "bolt RETURN 1 ok"


def spec(home: Path, uri: str, user: str, password: str, heap: str) -> ProcessSpec:
    build()
    root = home / "neo4j"
    first_start = not (root / "data" / "databases" / "system").exists()
    root.mkdir(parents=True, exist_ok=True)
    port = int(uri.rsplit(":", 1)[1])
    argv = [*jvm.options("neo4j", heap, root / "tmp"), "-jar", str(JAR), str(root)]
    return ProcessSpec(
        name="neo4j", argv=argv, log_file=home / "logs" / "neo4j.log", port=port, ready_timeout=120,
        stop_timeout=40, env={"NEO4J_PASSWORD": password, "TMPDIR": str(root / "tmp"), "NEO4J_BOLT_LISTEN": f"127.0.0.1:{port}",
                              "NEO4J_PAGECACHE": "256m"},
        probe=lambda: _probe(uri, user, password), first_start=first_start,
    )
