"""The stack's processes by name: the pids `recallstack up` recorded in $RECALLSTACK_HOME/run/,
and for a server it did not start (external infrastructure on this machine, e.g. the test
stack's), the process listening on the port the settings name.

listening_inodes() and topmost() are pure (tests/unit); the rest reads /proc.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

LISTEN = "0A"  # the TCP state of a listening socket in /proc/net/tcp
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", ""}


def recorded(home: Path) -> dict[str, int]:
    """{name: pid} of $home/run/<name>.json (the process table `recallstack status` reads)."""
    out = {}
    for f in sorted((home / "run").glob("*.json")):
        try:
            out[f.stem] = int(json.loads(f.read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def listening_inodes(proc_net_tcp: str) -> dict[int, set[int]]:
    """{port: socket inodes} of the listening sockets in a /proc/net/tcp(6) table."""
    out: dict[int, set[int]] = {}
    for line in proc_net_tcp.splitlines()[1:]:
        parts = line.split()
        if len(parts) > 9 and parts[3] == LISTEN:
            port = int(parts[1].rsplit(":", 1)[1], 16)
            out.setdefault(port, set()).add(int(parts[9]))
    return out


def topmost(holders: dict[int, int]) -> int | None:
    """Of the processes holding a socket {pid: ppid} (nginx's master and its workers), the one
    whose parent does not hold it too; the lowest pid when that does not decide."""
    tops = sorted(pid for pid, ppid in holders.items() if ppid not in holders)
    return tops[0] if tops else (min(holders) if holders else None)


def port_of(address: str, default: int) -> tuple[str, int]:
    """(host, port) of 'host:port' or a URL."""
    parts = urlsplit(address if "//" in address else f"//{address.split(',')[0]}")
    return parts.hostname or "", parts.port or default


def infrastructure_ports(cfg) -> dict[str, int]:
    """The local ports of the servers the settings name (an address on another host is skipped)."""
    wanted = {"kafka": port_of(cfg.kafka_bootstrap, 9092), "postgres": port_of(cfg.pg_dsn, 5432),
              "neo4j": port_of(cfg.neo4j_uri, 7687), "redis": port_of(cfg.redis_url, 6379),
              "proxy": (cfg.host, cfg.gateway_port), "query-api": (cfg.host, cfg.query_api_port)}
    return {name: port for name, (host, port) in wanted.items() if host in LOCAL_HOSTS}


def by_port(ports: dict[str, int]) -> dict[str, int]:
    """{name: pid} of the processes listening on those ports (root can see every process's fds)."""
    inodes: dict[int, set[int]] = {}
    for table in ("tcp", "tcp6"):
        try:
            for port, found in listening_inodes(Path(f"/proc/net/{table}").read_text()).items():
                inodes.setdefault(port, set()).update(found)
        except OSError:
            continue
    wanted = {inode: name for name, port in ports.items() for inode in inodes.get(port, ())}
    holders: dict[str, dict[int, int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            for fd in (d / "fd").iterdir():
                link = str(fd.readlink())
                if link.startswith("socket:[") and int(link[8:-1]) in wanted:
                    stat = (d / "stat").read_text()
                    ppid = int(stat[stat.rindex(")") + 2:].split()[1])
                    holders.setdefault(wanted[int(link[8:-1])], {})[int(d.name)] = ppid
                    break
        except (OSError, ValueError):
            continue
    return {name: pid for name, h in holders.items() if (pid := topmost(h)) is not None}


def stack_processes(home: Path, cfg) -> dict[str, int]:
    """Every process of the stack by name: recorded ones, then by port what is not recorded."""
    found = recorded(home)
    missing = {name: port for name, port in infrastructure_ports(cfg).items()
               if name not in found and not (name == "query-api" and any(n.startswith("query-api") for n in found))}
    if missing:
        found.update(by_port(missing))
    return found
