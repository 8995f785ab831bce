"""The reverse proxy at the base URL: Debian's nginx as a child process of `recallstack up`.

`python -m infra.proxy_server` renders $RECALLSTACK_HOME/proxy/nginx.conf from the settings
(infra/proxy_config.py: the upstreams list every API process of infra/stack.py), checks it
(`nginx -t`) and execs nginx in its place: the recorded PID is nginx's master, which stays in
the foreground (`daemon off`), so `recallstack down` stops it like any other server. Its PID
file and temp folders are in the same folder; its error log goes to logs/proxy.log, an access
log of JSON lines to logs/proxy-access.log.

Workers: nginx started by root would run its workers as `nobody`, which cannot enter a 0700
home (its temp files live there). They run as the user who starts the stack, like every other
recallstack process (as root: root). Started by another user, nginx runs everything as that user.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx

from gateway.routes import COMMAND, QUERY, WEB_EDGE
from infra import liveness
from infra.process import ProcessSpec, StartError
from infra.proxy_config import ProxyConfig, render

NAME = "proxy"


def nginx_binary() -> str:
    """Debian's nginx (in /usr/sbin, which is not on every user's PATH)."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                           if os.access(p, os.X_OK)), None)
    if found is None:
        raise StartError("proxy: nginx not found; install Debian's nginx package (`make install` does)")
    return found


def worker_user() -> str | None:
    """`user group` for nginx's workers when the master runs as root (else nginx ignores it)."""
    if os.geteuid() != 0:
        return None
    return f"{pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name}"


def folder(home: Path) -> Path:
    return home / "proxy"


def config_path(home: Path) -> Path:
    return folder(home) / "nginx.conf"


def proxy_config(cfg) -> ProxyConfig:
    """The stack's proxy: the base URL on HOST:GATEWAY_PORT in front of every API process."""
    from infra.stack import api_ports

    upstream_host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
    return ProxyConfig(
        listen=f"{cfg.host}:{cfg.gateway_port}",
        upstreams={COMMAND: [f"{upstream_host}:{port}" for port in api_ports(cfg.command_api_port, cfg.api_processes)],
                   QUERY: [f"{upstream_host}:{port}" for port in api_ports(cfg.query_api_port, cfg.api_processes)],
                   WEB_EDGE: [f"{upstream_host}:{cfg.web_edge_port}"]},
        prefix=str(folder(cfg.home)), access_log=str(cfg.home / "logs" / "proxy-access.log"),
        user=worker_user(), client_timeout_s=cfg.proxy_client_timeout_s)


def write_config(cfg) -> Path:
    """Render the configuration into the home and check it with `nginx -t`; its path."""
    base = folder(cfg.home)
    base.mkdir(parents=True, exist_ok=True)
    (cfg.home / "logs").mkdir(parents=True, exist_ok=True)
    path = config_path(cfg.home)
    path.write_text(render(proxy_config(cfg)))
    check = subprocess.run([nginx_binary(), "-t", "-q", "-c", str(path), "-p", str(base), "-e", "stderr"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        raise StartError(f"proxy: nginx refused {path}:\n{check.stderr.strip()}")
    return path


def _probe(url: str) -> str:
    """The proxy answers /healthz itself: it runs and listens."""
    answer = httpx.get(f"{url}/healthz", timeout=5)
    if answer.status_code != 200 or answer.json() != {"status": "ok"}:
        raise StartError(f"proxy: {url}/healthz answered {answer.status_code}: {answer.text[:200]}")
    return "ok"


def spec(cfg) -> ProcessSpec:
    """`python -m infra.proxy_server`, which becomes nginx (same PID); SIGQUIT stops it gracefully
    (requests in flight are answered first)."""
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
    return ProcessSpec(name=NAME, argv=[sys.executable, "-m", "infra.proxy_server"], port=cfg.gateway_port, host=host,
                       log_file=cfg.home / "logs" / f"{NAME}.log", ready_timeout=30, stop_signal=signal.SIGQUIT,
                       stop_timeout=15, probe=lambda: _probe(f"http://{host}:{cfg.gateway_port}"),
                       liveness=partial(liveness.http_get, host, cfg.gateway_port, "/healthz"),
                       cwd=Path(__file__).resolve().parent.parent)


def reload(cfg, pid: int) -> None:
    """A running proxy takes a new configuration (e.g. another number of API processes) without
    dropping a request: nginx re-reads it on SIGHUP and retires its old workers gracefully."""
    write_config(cfg)
    os.kill(pid, signal.SIGHUP)


def main() -> None:
    from settings import Settings

    cfg = Settings.from_env()
    try:
        path = write_config(cfg)
    except StartError as exc:
        print(exc, file=sys.stderr, flush=True)
        sys.exit(1)
    binary = nginx_binary()
    os.execv(binary, [binary, "-c", str(path), "-p", str(folder(cfg.home)), "-e", "stderr"])


if __name__ == "__main__":
    main()
