"""Apache Kafka 4 in KRaft mode (one process, broker and controller), run from the jars
Maven resolves from Maven Central (infra/kafka/pom.xml). Storage is formatted on first
start with a cluster id kept in the data folder."""

from __future__ import annotations

import asyncio
import base64
import string
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path

from infra import jvm
from infra.process import ProcessSpec, StartError

KAFKA_DIR = jvm.INFRA_DIR / "kafka"
LIB = KAFKA_DIR / "target" / "lib"
CONTROLLER_PORT = 9093


def build() -> Path:
    jvm.build("kafka", ["dependency:copy-dependencies"])
    return LIB


def _jvm(heap: str, home: Path, logs: Path) -> list[str]:
    return [
        *jvm.options("kafka", heap, home / "kafka" / "tmp"),
        f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.yaml'}", f"-Dkafka.logs.dir={logs}", "-cp", f"{LIB}/*",
    ]


def _probe(bootstrap: str) -> str:
    import logging

    from aiokafka.admin import AIOKafkaAdminClient

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # "connection refused" is expected while starting

    async def call() -> str:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
            return f"cluster {cluster['cluster_id']}, {len(cluster['brokers'])} broker(s)"
        finally:
            await admin.close()

    return asyncio.run(call())


def spec(home: Path, bootstrap: str, heap: str, controller_port: int = CONTROLLER_PORT,
         name: str = "kafka") -> ProcessSpec:
    build()
    root = home / "kafka"
    data, logs = root / "data", home / "logs" / "kafka"
    logs.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    port = int(bootstrap.rsplit(":", 1)[1])
    config = root / "server.properties"
    template = string.Template((KAFKA_DIR / "server.properties.template").read_text())
    config.write_text(template.substitute(LOG_DIRS=data, BROKER_PORT=port, CONTROLLER_PORT=controller_port))
    first_start = not (data / "meta.properties").exists()
    if first_start:
        cluster_id_file = root / "cluster.id"
        if not cluster_id_file.exists():
            cluster_id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        result = subprocess.run(
            [*_jvm("256m", home, logs), "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id_file.read_text().strip()}",
             f"--config={config}", "--ignore-formatted"],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise StartError(f"kafka: formatting storage failed:\n{(result.stdout + result.stderr)[-2000:]}")
    return ProcessSpec(
        name=name, argv=[*_jvm(heap, home, logs), "kafka.Kafka", str(config)], log_file=home / "logs" / f"{name}.log",
        port=port, ready_timeout=90, stop_timeout=30, probe=lambda: _probe(bootstrap), first_start=first_start,
    )


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def scratch_broker(folder: Path, heap: str = "384m"):
    """A throwaway single-node Kafka (KRaft) on free ports with its data under `folder`
    (tests and benchmarks that must not touch the stack's topics); yields its bootstrap
    address and stops it (by its recorded PID) on exit. The topics are not created. Call it
    outside a running event loop: the readiness probe runs one of its own."""
    from infra.process import ProcessTable, start, stop

    folder.mkdir(parents=True, exist_ok=True)
    bootstrap = f"127.0.0.1:{free_port()}"
    table = ProcessTable(folder / "run")
    server = spec(folder, bootstrap, heap, controller_port=free_port(), name="kafka-scratch")
    try:
        start(server, table)
        yield bootstrap
    finally:
        stop(server.name, table, timeout=server.stop_timeout)
