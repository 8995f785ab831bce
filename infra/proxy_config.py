"""The reverse proxy's configuration: nginx.conf as text, from a few parameters (pure, no I/O).

nginx applies gateway/routes.py's rule on the raw request path ($request_uri up to the `?`):
maps turn "METHOD raw-path" into a target (an upstream group, the proxy itself, or none), and
`proxy_pass http://$route` passes the raw path on unchanged (no URI part: nothing is decoded,
normalized or re-resolved). Paths that could decode or normalize into another path (encoded
slashes, backslashes, dots or percent signs, dot segments) are refused with 400 before routing.

Every answer the proxy makes itself (404 for no route, 400 for refused or malformed requests,
413, 414, 431, 503 for an API that does not answer, ...) is the APIs' JSON error shape
`{"error": {"code", "message", "details"}}`. The limits are documented in docs/security.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.routes import COMMAND, NO_METHOD, PAGES, PROXY, QUERY, WEB_EDGE
from settings import COMMAND_API_PORT, GATEWAY_PORT, QUERY_API_PORT, WEB_EDGE_PORT

# Body limits per path, as command_api/app.py's BODY_LIMITS / DEFAULT_BODY_LIMIT (a unit test keeps
# them equal): the proxy refuses an oversize body before it is read, the API checks again.
DEFAULT_BODY_LIMIT = 1024 * 1024
BODY_LIMITS = {"/v1/memories/batch": 16 * 1024 * 1024}
# The request head: the request line and each header line must fit one large buffer (256 KiB:
# a documented 16,384-character `filters` of 4-byte characters is 196,608 bytes percent-encoded),
# the whole head four of them (1 MiB, infra/stack.py's MAX_REQUEST_HEAD for uvicorn behind it).
HEADER_BUFFER = 256 * 1024
HEADER_BUFFERS = 4
# Idle upstream connections are closed by the proxy before uvicorn closes them (its
# --timeout-keep-alive, infra/stack.py UVICORN_KEEP_ALIVE_S is longer): a request is never
# written to a connection the API is closing.
UPSTREAM_KEEPALIVE_S = 60
UPSTREAM_CONNECT_TIMEOUT_S = 2
UPSTREAM_READ_TIMEOUT_S = 60
CLIENT_SEND_TIMEOUT_S = 30
CLIENT_KEEPALIVE_S = 30
RETRY_AFTER_S = 2
ERRORS_PREFIX = "/.recallstack-proxy-errors/"  # internal locations of the proxy's own answers

OWN_ANSWER = "add_header X-Request-ID $correlation_id always;"  # on each answer the proxy makes itself
ALLOWED = "GET, HEAD, POST, PATCH, PUT, DELETE"  # the methods /v1 routes take (gateway/routes.py)
SERVICE_NAMES = {COMMAND: "the command API", QUERY: "the query API", WEB_EDGE: "the web edge"}

# What the proxy answers itself, by status: (status sent, code, message, details).
_ERRORS = {
    400: (400, "bad_request", "the request line or a header could not be parsed", {}),
    404: (404, "not_found", "no route for this method and path", {}),
    405: (405, "method_not_allowed", "the method is not allowed on this path", {}),
    408: (408, "request_timeout", "the request was not received in time", {}),
    411: (411, "length_required", "a body needs Content-Length or chunked encoding", {}),
    414: (414, "uri_too_long", f"the request line is over {HEADER_BUFFER} bytes", {"field": "url", "limit_bytes": HEADER_BUFFER}),
    # nginx's own 494 "request header too large": answered as 431 (RFC 6585)
    494: (431, "header_too_large", f"a header line is over {HEADER_BUFFER} bytes or the head over "
          f"{HEADER_BUFFER * HEADER_BUFFERS}", {"field": "headers", "limit_bytes": HEADER_BUFFER}),
    500: (500, "internal_error", "the proxy failed to handle the request", {}),
    501: (501, "not_implemented", "this transfer encoding is not supported", {}),
    505: (505, "http_version_not_supported", "use HTTP/1.0 or HTTP/1.1", {}),
}


def _body(code: str, message: str, details: dict | str) -> str:
    """A JSON error body for a single-quoted nginx string ($-variables in `details` stay raw)."""
    text = details if isinstance(details, str) else json.dumps(details)
    return '{"error": {"code": %s, "message": %s, "details": %s}}' % (json.dumps(code), json.dumps(message), text)


def _too_large(limit: int) -> str:
    return _body("too_large", f"the body is over {limit} bytes for this path", {"field": "body", "limit_bytes": limit})


def _error_pages(body_limit: int) -> list[str]:
    pages = [f"error_page {status} {'=' + str(sent) + ' ' if sent != status else ''}{ERRORS_PREFIX}{status};"
             for status, (sent, *_rest) in _ERRORS.items()]
    return pages + [f"error_page 413 {ERRORS_PREFIX}413-{body_limit};", f"error_page 502 503 =503 {ERRORS_PREFIX}503;",
                    f"error_page 504 {ERRORS_PREFIX}504;"]


@dataclass(frozen=True)
class ProxyConfig:
    listen: str  # host:port of the base URL
    upstreams: dict[str, list[str]]  # COMMAND / QUERY / WEB_EDGE -> ["host:port", ...] (one per process)
    prefix: str  # pid file and temp folders live here
    access_log: str | None = None  # a file, or None for no access log
    user: str | None = None  # "user group" of the workers when the master runs as root
    client_timeout_s: int = 10  # the whole request head; between two reads of a body
    worker_processes: str = "auto"
    upstream_keepalive_s: int = UPSTREAM_KEEPALIVE_S
    error_log: str = "stderr"
    comment: str = "generated by infra/proxy_config.py; recallstack writes it again at each start"

    def __post_init__(self):
        missing = {COMMAND, QUERY, WEB_EDGE} - set(self.upstreams)
        if missing or any(not servers for servers in self.upstreams.values()):
            raise ValueError(f"each of command, query and web_edge needs at least one server: {self.upstreams}")


def render(cfg: ProxyConfig) -> str:
    lines = _main_context(cfg)
    h = [*_http_settings(cfg), *_upstreams(cfg), *_maps()]
    s = ["listen " + cfg.listen + " default_server;", "server_name _;", ""]
    s += ["# Answers of the proxy itself, all in the JSON error shape (URIs, not named locations:",
          "# a request line that did not parse has no URI to carry into a named location).",
          *_error_pages(DEFAULT_BODY_LIMIT), "absolute_redirect off;  # a Location the proxy sets stays relative", ""]
    s += [*_proxying(), *_locations(_gate()), *_own_answers()]
    h += ["server {", *("    " + line if line else "" for line in s), "}"]
    lines += ["    " + line if line else "" for line in h]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _main_context(cfg: ProxyConfig) -> list[str]:
    """The master, its workers and files, up to the opening of the http block."""
    p = cfg.prefix.rstrip("/")
    lines = [f"# {cfg.comment}", "daemon off;  # the master stays in the foreground (recallstack records and stops it; compose runs it)",
             "master_process on;", f"worker_processes {cfg.worker_processes};"]
    if cfg.user:
        lines.append(f"user {cfg.user};")
    lines += [f"pid {p}/nginx.pid;", f"lock_file {p}/nginx.lock;", f"error_log {cfg.error_log} warn;", "",
              "events {", "    worker_connections 1024;", "}", "", "http {"]
    return lines


def _http_settings(cfg: ProxyConfig) -> list[str]:
    """The access log, the limits on clients (timeouts, header and body sizes) and the temp folders."""
    p = cfg.prefix.rstrip("/")
    h = ["server_tokens off;", "default_type application/json;", "charset_types application/json;",
         "merge_slashes off;  # slashes reach routing and the API as sent", ""]
    if cfg.access_log:
        h += ["log_format recallstack escape=json '{\"time\": \"$time_iso8601\", \"client\": \"$remote_addr\", "
              "\"request_id\": \"$correlation_id\", \"method\": \"$request_method\", \"path\": \"$raw_path\", "
              "\"route\": \"$route\", \"status\": $status, \"bytes\": $body_bytes_sent, \"seconds\": $request_time, "
              "\"upstream\": \"$upstream_addr\", \"upstream_status\": \"$upstream_status\"}';",
              f"access_log {cfg.access_log} recallstack buffer=32k flush=1s;"]
    else:
        h += ["access_log off;"]
    h += ["",
          "# Slow clients are cut off: the whole request head within client_header_timeout (one timer,",
          "# not renewed per line), each read of a body within client_body_timeout.",
          f"client_header_timeout {cfg.client_timeout_s}s;", f"client_body_timeout {cfg.client_timeout_s}s;",
          f"send_timeout {CLIENT_SEND_TIMEOUT_S}s;", f"keepalive_timeout {CLIENT_KEEPALIVE_S}s;",
          "keepalive_requests 1000;", "reset_timedout_connection on;",
          "client_header_buffer_size 4k;", f"large_client_header_buffers {HEADER_BUFFERS} {HEADER_BUFFER // 1024}k;",
          f"client_max_body_size {DEFAULT_BODY_LIMIT};", f"client_body_buffer_size {DEFAULT_BODY_LIMIT};", "",
          *(f"{kind}_temp_path {p}/{kind}_temp;" for kind in
            ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")), ""]
    return h


def _upstreams(cfg: ProxyConfig) -> list[str]:
    """One upstream per service, a server per process, with kept-alive connections."""
    h = []
    for name in (COMMAND, QUERY, WEB_EDGE):
        h += [f"upstream {name} {{"] + [f"    server {server};" for server in cfg.upstreams[name]] + [
            "    keepalive 32;", f"    keepalive_timeout {cfg.upstream_keepalive_s}s;", "    keepalive_requests 10000;",
            "}"]
    return h


def _maps() -> list[str]:
    """What routing looks at: the raw path, whether it is refused, the route, the correlation id."""
    return ["",
            "# The path as the client sent it (percent-encoded, no query): what routing looks at.",
            "map $request_uri $raw_path {", "    default \"\";", "    \"~^(?<path>[^?]*)\" $path;", "}",
            "# gateway/routes.py refused(): encoded / \\ . %, a raw backslash, dot segments, bytes that are not printable ASCII.",
            "map $raw_path $path_refused {", "    default 0;", "    \"~*%(2f|5c|2e|25)\" 1;", "    \"~\\x5c\" 1;", "    \"~[^\\x21-\\x7e]\" 1;",
            "    \"~(^|/)\\.\\.?(/|$)\" 1;", "}",
            *_route_table(),
            "# The correlation id: the client's X-Request-ID when usable (as adapters/observability.py",
            "# checks it: 1 to 128 visible ASCII characters), else one the proxy makes; sent upstream,",
            "# so the proxy's and the API's log lines carry the same id. One with a byte that is not",
            "# ASCII goes upstream as sent: the APIs refuse it (400 naming the header), as any header.",
            "map $http_x_request_id $correlation_id {", "    \"~[\\x80-\\xff]\" $http_x_request_id;",
            "    \"~^[\\x21-\\x7e]{1,128}$\" $http_x_request_id;",
            "    default $request_id;", "}",
            "map $route $route_name {", "    default \"the proxy\";",
            *(f"    {name} \"{text}\";" for name, text in SERVICE_NAMES.items()), "}",
            "# The client's Host (the MCP endpoint checks it); an HTTP/1.0 request without one gets the server's.",
            "map $http_host $upstream_host {", "    \"\" $host;", "    default $http_host;", "}", ""]


def _route_table() -> list[str]:
    """gateway/routes.py route() as an nginx map from "METHOD raw-path" to the upstream."""
    pages = "|".join(PAGES)
    return [
        "# gateway/routes.py route(): the first matching line wins.",
        "map \"$request_method $raw_path\" $route {", "    default \"\";",
        f"    \"~^(GET|HEAD) /v[13]/\" {QUERY};",
        f"    \"~^POST /(v1/(memories/search|context)|v3/memories(/search)?)/*$\" {QUERY};  # v3: mem0's client",
        f"    \"~^(POST|PATCH|PUT|DELETE) /v[13]/\" {COMMAND};",
        f"    \"~^[^ ]+ /v[13]/\" {NO_METHOD};",
        f"    \"~^(POST|GET|DELETE) /mcp/?$\" {WEB_EDGE};",
        f"    \"~^(GET|HEAD) /healthz$\" {PROXY};",
        f"    \"~^(GET|HEAD) /(readyz|metrics|ui/api/system)$\" {WEB_EDGE};",
        f"    \"~^(GET|HEAD) /(assets/.*)?$\" {WEB_EDGE};",
        f"    \"~^(GET|HEAD) /({pages})(/.*)?$\" {WEB_EDGE};",
        "}",
    ]


def _proxying() -> list[str]:
    """How requests go upstream: headers set (never appended), timeouts, retries, redirects."""
    return ["proxy_http_version 1.1;", "proxy_set_header Connection \"\";  # keep upstream connections alive",
            "proxy_set_header Host $upstream_host;",
            "proxy_set_header X-Forwarded-For $remote_addr;  # replaced, never appended: clients cannot forge it",
            "proxy_set_header X-Real-IP $remote_addr;", "proxy_set_header X-Forwarded-Proto $scheme;",
            "proxy_set_header X-Request-ID $correlation_id;",
            "# Connection errors (a process that is gone) move the request to the next process;",
            "# a POST or PATCH is moved only when it was not sent yet (nginx never resends those).",
            "proxy_next_upstream error;",
            f"proxy_connect_timeout {UPSTREAM_CONNECT_TIMEOUT_S}s;", f"proxy_send_timeout {UPSTREAM_READ_TIMEOUT_S}s;",
            f"proxy_read_timeout {UPSTREAM_READ_TIMEOUT_S}s;", "proxy_buffer_size 16k;", "proxy_buffers 16 16k;",
            "# Never send a client to an internal address: an absolute Location becomes its path.",
            "proxy_redirect ~^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]+(/.*)$ $1;",
            "proxy_redirect ~^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]+$ /;", ""]


def _gate() -> list[str]:
    """The same gate at the start of every location that proxies (locations match the normalized
    path; the gate looks at the raw one). `if` holds only `return`, its one safe use."""
    own = OWN_ANSWER
    return ["    # Refused before routing: the raw path could become another path once decoded.",
            "    if ($path_refused) {", f"        {own}",
            "        return 400 '" + _body("bad_path", "the path has an encoded slash, backslash, dot or percent "
                                        "sign, a dot segment or a byte that is not printable ASCII; ids never "
                                        "contain those", {"field": "path"}) + "';",
            "    }",
            "    if ($route = \"\") {", f"        {own}",
            "        return 404 '" + _body("not_found", "no route for this method and path",
                                        '{"method": "$request_method"}') + "';",
            "    }",
            f"    if ($route = {NO_METHOD}) {{", f"        {own}", f"        add_header Allow \"{ALLOWED}\" always;",
            "        return 405 '" + _body("method_not_allowed", "the method is not allowed on this path",
                                        '{"method": "$request_method", "allowed": ' + json.dumps(ALLOWED.split(", ")) + '}') + "';",
            "    }",
            f"    if ($route = {PROXY}) {{", f"        {own}", "        return 200 '{\"status\": \"ok\"}';", "    }"]


def _locations(gate: list[str]) -> list[str]:
    """The locations that proxy: everything, the bigger bodies' paths, and /mcp's streams."""
    s = ["location / {", *gate, "    proxy_pass http://$route;", "}"]
    for path, limit in BODY_LIMITS.items():
        s += [f"location = {path} {{", *gate, f"    client_max_body_size {limit};",
              "    # error_page here replaces every inherited one: all of them again, with this 413",
              *("    " + line for line in _error_pages(limit)), "    proxy_pass http://$route;", "}"]
    s += ["location ~ ^/mcp/?$ {", *gate, "    proxy_buffering off;  # streamed answers (server-sent events)",
          "    proxy_read_timeout 300s;", "    proxy_pass http://$route;", "}", ""]
    return s


def _own_answers() -> list[str]:
    """The proxy's own JSON answers, reached only through error_page."""
    own = OWN_ANSWER
    s = ["# The proxy's own answers: reached only by error_page (internal)."]
    for status, (sent, code, message, details) in _ERRORS.items():
        s += [f"location = {ERRORS_PREFIX}{status} {{", "    internal;", f"    {own}",
              f"    return {sent} '{_body(code, message, details)}';", "}"]
    for limit in sorted({DEFAULT_BODY_LIMIT, *BODY_LIMITS.values()}):
        s += [f"location = {ERRORS_PREFIX}413-{limit} {{", "    internal;", f"    {own}", f"    return 413 '{_too_large(limit)}';", "}"]
    s += [f"location = {ERRORS_PREFIX}503 {{", "    internal;", f"    {own}", f"    add_header Retry-After {RETRY_AFTER_S} always;",
          "    return 503 '" + _body("service_unavailable", "$route_name did not answer; retry shortly",
                                        '{"service": "$route"}') + "';", "}",
          f"location = {ERRORS_PREFIX}504 {{", "    internal;", f"    {own}", f"    add_header Retry-After {RETRY_AFTER_S} always;",
          "    return 504 '" + _body("upstream_timeout",
                                        f"$route_name did not answer within {UPSTREAM_READ_TIMEOUT_S} s",
                                        '{"service": "$route"}') + "';", "}"]
    return s


COMPOSE_FILE = "infra/proxy/nginx.compose.conf"


def compose_config() -> str:
    """infra/proxy/nginx.compose.conf, which compose.yaml mounts into the official nginx image:
    the same configuration with the services' container names (`docker compose up --scale
    query-api=2` adds processes: nginx balances over every address the name resolves to)."""
    return render(ProxyConfig(
        listen=f"0.0.0.0:{GATEWAY_PORT}",
        upstreams={COMMAND: [f"command-api:{COMMAND_API_PORT}"], QUERY: [f"query-api:{QUERY_API_PORT}"],
                   WEB_EDGE: [f"web-edge:{WEB_EDGE_PORT}"]},
        prefix="/var/cache/nginx", access_log="/dev/stdout",
        comment=f"for compose.yaml: generated by infra/proxy_config.py (python -m infra.proxy_config > {COMPOSE_FILE}); "
                "a test checks it"))


if __name__ == "__main__":
    print(compose_config(), end="")
