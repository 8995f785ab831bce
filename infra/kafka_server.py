"""Apache Kafka 4 in KRaft mode (one process, broker and controller), run from the jars
Maven resolves from Maven Central (infra/kafka/pom.xml). Storage is formatted on first
start with a cluster id kept in the data folder."""

from __future__ import annotations

import asyncio
import base64
import json
import string
import subprocess
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra import jvm
from infra.process import ProcessSpec, StartError
from settings import KAFKA_PORT, KAFKA_SHAPE_FILE, kafka_node_ports

KAFKA_DIR = jvm.INFRA_DIR / "kafka"
LIB = KAFKA_DIR / "target" / "lib"
CONTROLLER_PORT = KAFKA_PORT + 1  # the single node's (settings.kafka_node_ports)


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
    """The single-node broker (broker and controller in one process)."""
    port = int(bootstrap.rsplit(":", 1)[1])
    return _node_spec(home, Node(1, port, controller_port), [Node(1, port, controller_port)], heap, name)


@dataclass(frozen=True)
class Node:
    node_id: int
    port: int  # the client listener
    controller_port: int


def cluster_nodes(brokers: int) -> list[Node]:
    """The local nodes: node k (from 1) on settings.kafka_node_ports (9092/9093, 9094/9095, ...)."""
    return [Node(k, port, controller) for k, (port, controller) in enumerate(kafka_node_ports(brokers), start=1)]


def node_names(brokers: int, name: str = "kafka") -> list[str]:
    """kafka, kafka-2, kafka-3: the first keeps the plain name (its log, its data folder)."""
    return [name] + [f"{name}-{k}" for k in range(2, brokers + 1)]


def cluster_specs(home: Path, nodes: list[Node], heap: str, name: str = "kafka") -> list[ProcessSpec]:
    """One spec per node of a KRaft cluster of `nodes` (every one broker and controller).
    Three or more: each partition on three of them, writes acknowledged by two (acks=all)."""
    return [_node_spec(home, node, nodes, heap, process) for node, process in zip(nodes, node_names(len(nodes), name))]


def bootstrap_of(nodes: list[Node]) -> str:
    return ",".join(f"127.0.0.1:{node.port}" for node in nodes)


def _node_spec(home: Path, node: Node, nodes: list[Node], heap: str, name: str) -> ProcessSpec:
    build()
    root = home / "kafka"
    folder = root if node.node_id == 1 else root / f"node-{node.node_id}"  # node 1: where a single broker keeps it
    data, logs = folder / "data", home / "logs" / "kafka"
    logs.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    replication = min(3, len(nodes))
    config = folder / "server.properties"
    template = string.Template((KAFKA_DIR / "server.properties.template").read_text())
    config.write_text(template.substitute(
        LOG_DIRS=data, BROKER_PORT=node.port, CONTROLLER_PORT=node.controller_port, NODE_ID=node.node_id,
        VOTERS=",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes),
        REPLICATION=replication, MIN_ISR=max(1, replication - 1)))
    meta, shape_file = data / "meta.properties", folder / KAFKA_SHAPE_FILE
    first_start = not meta.exists()
    if not first_start:
        _check_same_cluster(shape_file, data, node, len(nodes))
    if first_start:
        cluster_id_file = root / "cluster.id"  # one id for every node
        if not cluster_id_file.exists():
            cluster_id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
        result = subprocess.run(
            [*_jvm("256m", home, logs), "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id_file.read_text().strip()}",
             f"--config={config}", "--ignore-formatted"],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise StartError(f"{name}: formatting storage failed:\n{(result.stdout + result.stderr)[-2000:]}")
        shape_file.write_text(json.dumps({"brokers": len(nodes)}))
    bootstrap = f"127.0.0.1:{node.port}"
    return ProcessSpec(
        name=name, argv=[*_jvm(heap, home, logs), "kafka.Kafka", str(config)], log_file=home / "logs" / f"{name}.log",
        port=node.port, ready_timeout=90, stop_timeout=30, probe=lambda: _probe(bootstrap), first_start=first_start,
    )


def _check_same_cluster(shape_file: Path, data: Path, node: Node, brokers: int) -> None:
    """A data folder made for another shape (one broker, now three, or the reverse) would
    start a broker that never joins its quorum: say so instead."""
    try:
        shape = json.loads(shape_file.read_text())
    except (OSError, ValueError):
        shape = {"brokers": 1}  # folders made before the shape was written: single node
    if shape.get("brokers") != brokers:
        raise StartError(f"kafka node {node.node_id}: its data ({data}) belongs to a {shape.get('brokers')}-broker "
                         f"cluster, not {brokers}; move $RECALLSTACK_HOME/kafka aside (or restore a backup into a new "
                         "home: recallstack backup / restore) to change the number of brokers")


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


@contextmanager
def scratch_cluster(folder: Path, brokers: int = 3, heap: str = "384m"):
    """A throwaway KRaft cluster of `brokers` nodes on free ports (replication 3, min.insync 2);
    yields (bootstrap, the process table, {node name: its spec}) and stops every node on exit.
    Call it outside a running event loop, like scratch_broker."""
    from infra.process import ProcessTable, stop
    from infra.stack import up

    folder.mkdir(parents=True, exist_ok=True)
    nodes = [Node(k, free_port(), free_port()) for k in range(1, brokers + 1)]
    table = ProcessTable(folder / "run")
    specs = cluster_specs(folder, nodes, heap, name="kafka-scratch")
    try:
        up(specs, table)  # in parallel: a node waits for its quorum to answer
        yield bootstrap_of(nodes), table, {s.name: s for s in specs}
    finally:
        for server in specs:
            stop(server.name, table, timeout=server.stop_timeout)
