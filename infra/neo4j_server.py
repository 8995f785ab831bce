"""Neo4j 5.26 community from Maven Central jars, run by the small Java launcher under
infra/neo4j/ (Bolt only, on 127.0.0.1:7687, authentication on, password from secrets)."""

from __future__ import annotations

import shutil
from pathlib import Path

from infra import maven
from infra.process import ProcessSpec, StartError

NEO4J_DIR = maven.INFRA_DIR / "neo4j"
JAR = NEO4J_DIR / "target" / "neo4j-launcher.jar"

# Neo4j 5 on Java 17 needs these opens (the same flags its own start script passes).
ADD_OPENS = [
    "--add-opens=java.base/java.nio=ALL-UNNAMED", "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED", "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED", "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED", "--add-opens=java.base/java.lang.invoke=ALL-UNNAMED",
    "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED", "--enable-native-access=ALL-UNNAMED",
]


def build() -> Path:
    maven.build("neo4j", ["package"])
    return JAR


def _probe(uri: str, user: str, password: str) -> str:
    from neo4j import GraphDatabase

    with GraphDatabase.driver(uri, auth=(user, password), connection_timeout=2) as driver:
        records, _, _ = driver.execute_query("RETURN 1 AS one")
        assert records[0]["one"] == 1
        return "bolt RETURN 1 ok"


def spec(home: Path, uri: str, user: str, password: str, heap: str) -> ProcessSpec:
    build()
    java = shutil.which("java")
    if java is None:
        raise StartError("neo4j: java not found; install a JDK 17+ (`make install` does)")
    root = home / "neo4j"
    root.mkdir(parents=True, exist_ok=True)
    port = int(uri.rsplit(":", 1)[1])
    argv = [java, "-Xms256m", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true", f"-Djava.io.tmpdir={root}", *ADD_OPENS, "-jar", str(JAR), str(root)]
    return ProcessSpec(
        name="neo4j", argv=argv, log_file=home / "logs" / "neo4j.log", port=port, ready_timeout=120,
        stop_timeout=40, env={"NEO4J_PASSWORD": password, "NEO4J_BOLT_LISTEN": f"127.0.0.1:{port}",
                              "NEO4J_PAGECACHE": "256m"},
        probe=lambda: _probe(uri, user, password),
    )
