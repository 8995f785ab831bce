"""`recallstack mcp doctor`: check the whole path from an MCP client's configuration to a
memory stored and found again, step by step, each with a verdict and what to do about it.

Steps, each needing the ones before it (a failed step skips the rest):
1. config: the client's file is JSON of its shape and has the entry (cli/mcp_config.py);
2. server: the base URL answers /readyz ready;
3. key: the entry's API key is valid (GET /v1/me), may write, and acts for the entry's user;
4. mcp: the MCP server, reached exactly as the client will (the entry's URL and headers,
   or its command and environment), answers initialize (with instructions) and tools/list;
5. round trip: through the MCP tools, add a memory, search it back (the server passes the
   write's consistency token on, so the very next search must find it) and delete it.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from cli.mcp_config import ConfigRefused, Target, find
from cli.mcp_install import read

EXPECTED_TOOLS = {"add_memories", "search_memory", "list_memories", "get_memory", "update_memory", "delete_memory",
                  "delete_all_memories", "get_context", "search_graph"}
DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass
class Check:
    name: str
    ok: bool | None  # None: skipped (an earlier step failed)
    detail: str
    hint: str = ""
    ms: float = 0.0


@dataclass
class Endpoint:
    """The entry of the client's file, read: how the client will reach recallstack."""

    transport: str  # http or stdio
    base_url: str
    api_key: str | None
    user_id: str | None
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    command: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


class StepFailed(Exception):
    def __init__(self, detail: str, hint: str):
        super().__init__(detail)
        self.detail, self.hint = detail, hint


def _strings(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def endpoint_of(server: dict[str, Any]) -> Endpoint:
    """The entry as an Endpoint; StepFailed when it is not one `mcp install` would write."""
    again = "run `recallstack mcp install` for this client again (it replaces the entry)"
    if isinstance(server.get("url"), str):
        headers = server.get("headers") or {}
        if not _strings(headers):
            raise StepFailed("the entry's headers are not an object of strings", again)
        named = {k.lower(): v for k, v in headers.items()}
        scheme, _, key = named.get("authorization", "").partition(" ")
        base = server["url"].rstrip("/").removesuffix("/mcp")
        return Endpoint("http", base, key.strip() if scheme.lower() == "bearer" else None,
                        named.get("x-recallstack-user-id"), url=server["url"], headers=headers)
    if isinstance(server.get("command"), str):
        env, args = server.get("env") or {}, server.get("args") or []
        if not _strings(env) or not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise StepFailed("the entry's args or env are not strings", again)
        return Endpoint("stdio", env.get("RECALLSTACK_URL", DEFAULT_URL).rstrip("/"), env.get("RECALLSTACK_API_KEY"),
                        env.get("RECALLSTACK_MCP_USER_ID"), command=server["command"], args=args, env=env)
    raise StepFailed("the entry has neither a url nor a command", again)


class Doctor:
    def __init__(self, target: Target, name: str, timeout: float = 30.0):
        self.target, self.name, self.timeout = target, name, timeout
        self.checks: list[Check] = []
        self.endpoint: Endpoint | None = None
        self.key_user: str | None = None

    def _failed(self) -> bool:
        return any(c.ok is not True for c in self.checks)

    def _has(self, name: str) -> bool:
        return any(c.name == name for c in self.checks)

    async def step(self, name: str, work: Callable[[], Awaitable[str]]) -> bool:
        if self._failed():
            self.checks.append(Check(name, None, "skipped: an earlier step failed"))
            return False
        started = time.perf_counter()
        try:
            detail, ok, hint = await work(), True, ""
        except StepFailed as exc:
            detail, ok, hint = exc.detail, False, exc.hint
        except Exception as exc:
            detail, ok, hint = f"{type(exc).__name__}: {exc}", False, "see the message; `--json` gives every step"
        self.checks.append(Check(name, ok, detail, hint, round((time.perf_counter() - started) * 1000, 1)))
        return ok

    async def run(self) -> list[Check]:
        await self.step("config", self.config)
        await self.step("server", self.server)
        await self.step("key", self.key)
        await self.mcp_steps()
        return self.checks

    async def config(self) -> str:
        install = f"run `recallstack mcp install --client {self.target.client} --scope {self.target.scope}`"
        try:
            text = read(self.target.path)
            if text is None:
                raise StepFailed(f"{self.target.path} does not exist", install)
            server = find(text, self.target.servers_at, self.name)
        except ConfigRefused as exc:
            raise StepFailed(f"{self.target.path}: {exc}", "fix the file by hand (the client cannot read it "
                             "either), then run `recallstack mcp install` again") from None
        if server is None:
            raise StepFailed(f"no {self.name!r} entry in {self.target.describe()}", install)
        self.endpoint = endpoint_of(server)
        if self.endpoint.transport == "stdio" and not shutil.which(self.endpoint.command):
            raise StepFailed(f"the entry's command {self.endpoint.command!r} is not an executable here",
                             "run `recallstack mcp install` again from the installation the client should start")
        where = self.endpoint.url if self.endpoint.transport == "http" else " ".join(
            [self.endpoint.command, *self.endpoint.args])
        return f"{self.target.describe()}: {self.name!r} over {self.endpoint.transport} ({where})"

    def _http(self) -> httpx.AsyncClient:
        assert self.endpoint is not None
        key = self.endpoint.api_key
        return httpx.AsyncClient(base_url=self.endpoint.base_url, timeout=self.timeout,
                                 headers={"Authorization": f"Bearer {key}"} if key else {})

    async def server(self) -> str:
        assert self.endpoint is not None
        try:
            async with self._http() as http:
                answer = await http.get("/readyz")
        except httpx.HTTPError as exc:
            raise StepFailed(f"{self.endpoint.base_url} does not answer ({type(exc).__name__}: {exc})",
                             "start the stack (`recallstack up --detach`), or fix the URL in the entry") from None
        if answer.status_code != 200:
            raise StepFailed(f"{self.endpoint.base_url}/readyz answered {answer.status_code}: {answer.text[:300]}",
                             "`recallstack status` shows which part is not ready")
        return f"{self.endpoint.base_url} is ready"

    async def key(self) -> str:
        assert self.endpoint is not None
        async with self._http() as http:
            answer = await http.get("/v1/me")
        reissue = f"`recallstack mcp install --client {self.target.client}` issues a new key and replaces the entry"
        if answer.status_code in (401, 403):
            raise StepFailed(f"the key is refused ({answer.status_code}): "
                             f"{answer.json().get('error', {}).get('message', answer.text[:200])}",
                             f"it was revoked, expired or mistyped: {reissue}")
        answer.raise_for_status()
        me = answer.json()
        if me.get("auth") == "off":
            return "authentication is off on this server: no key needed"
        scopes, self.key_user = set(me.get("scopes") or ()), me["user_id"]
        if not scopes & {"write", "admin"}:
            raise StepFailed(f"the key ({me.get('key_prefix')}, user {self.key_user}) may only read: agents "
                             "cannot store memories with it", reissue)
        named = self.endpoint.user_id
        if named and named != self.key_user and "admin" not in scopes:
            raise StepFailed(f"the entry names user {named!r} but the key is {self.key_user!r}'s", reissue)
        return f"key {me.get('key_prefix')}… of user {self.key_user} ({', '.join(sorted(scopes))})"

    @asynccontextmanager
    async def session(self):
        from mcp import Client, StdioServerParameters

        point = self.endpoint
        assert point is not None
        if point.transport == "stdio":
            server: Any = StdioServerParameters(command=point.command, args=point.args, env=point.env)
            async with Client(server, read_timeout_seconds=self.timeout) as client:
                yield client
            return
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        async with httpx2.AsyncClient(headers=point.headers, timeout=self.timeout) as http:
            async with Client(streamable_http_client(point.url, http_client=http),
                              read_timeout_seconds=self.timeout) as client:
                yield client

    async def mcp_steps(self) -> None:
        """Steps 4 and 5 share one MCP session, opened as the client opens it."""
        if not self._failed():
            started = time.perf_counter()
            try:
                async with self.session() as client:
                    self.checks.append(Check("mcp", *await self._greeted(client, started)))
                    await self.step("round trip", lambda: round_trip(client))
            except Exception as exc:  # the session could not open, or broke
                failure = f"{type(exc).__name__}: {exc}"
                if not self._has("mcp"):
                    self.checks.append(Check("mcp", False, f"could not open an MCP session: {failure}",
                                             self._mcp_hint(), round((time.perf_counter() - started) * 1000, 1)))
                elif not self._has("round trip"):
                    self.checks.append(Check("round trip", False, f"the MCP session broke: {failure}", self._mcp_hint()))
        for name in ("mcp", "round trip"):
            if not self._has(name):
                self.checks.append(Check(name, None, "skipped: an earlier step failed"))

    def _mcp_hint(self) -> str:
        assert self.endpoint is not None
        if self.endpoint.transport == "stdio":
            return (f"the command {self.endpoint.command!r} must exist and run `recallstack mcp`; run "
                    "`recallstack mcp install` again from the installation the client should use")
        return "the web edge serves /mcp: `recallstack status` shows whether it runs"

    async def _greeted(self, client, started: float) -> tuple[bool, str, str, float]:
        tools = {t.name for t in (await client.list_tools()).tools}
        ms = round((time.perf_counter() - started) * 1000, 1)
        info = client.server_info
        missing = sorted(EXPECTED_TOOLS - tools)
        if missing or not client.instructions:
            what = f"missing tools {', '.join(missing)}" if missing else "no instructions in initialize"
            return False, f"{info.name} {info.version} answers, but {what}", (
                "the server runs older code: restart it (`recallstack down`, then `recallstack up --detach`)"), ms
        return True, (f"initialize: {info.name} {info.version} with instructions ({len(client.instructions)} "
                      f"characters); tools/list: {len(tools)} tools"), "", ms


def _text(result) -> str:
    return " ".join(block.text for block in result.content if getattr(block, "text", None))


async def round_trip(client) -> str:
    """Add, search back at once, delete: a memory the user never sees (it is deleted again)."""
    marker = f"recallstack-doctor-{uuid.uuid4().hex[:12]}"
    timings = {}
    started = time.perf_counter()
    added = await client.call_tool("add_memories", {
        "text": f"{marker}: the MCP path from this client works", "metadata": {"source": "recallstack mcp doctor"}})
    timings["add"] = time.perf_counter() - started
    if added.is_error:
        raise StepFailed(f"add_memories failed: {_text(added)}", "the message says why")
    memory_id = added.structured_content["stored"][0]["id"]
    try:
        started = time.perf_counter()
        found = await client.call_tool("search_memory", {"query": marker, "limit": 5})
        timings["search"] = time.perf_counter() - started
        if found.is_error:
            raise StepFailed(f"search_memory failed: {_text(found)}", "the message says why")
        if memory_id not in [m["id"] for m in found.structured_content["results"]]:
            raise StepFailed(f"the memory just stored ({memory_id}) was not found by the next search",
                             "read-your-writes failed: `recallstack status` shows whether the projectors run")
    finally:
        started = time.perf_counter()
        deleted = await client.call_tool("delete_memory", {"memory_id": memory_id})
        timings["delete"] = time.perf_counter() - started
    if deleted.is_error:
        raise StepFailed(f"delete_memory failed: {_text(deleted)} (memory {memory_id} is left)",
                         "delete it with the delete_memory tool or DELETE /v1/memories/{id}")
    return ("added, found by the next search, deleted: " +
            ", ".join(f"{step} {seconds * 1000:.0f} ms" for step, seconds in timings.items()))


def report(target: Target, checks: list[Check]) -> dict[str, Any]:
    return {"ok": all(c.ok for c in checks), "client": target.client, "scope": target.scope,
            "path": str(target.path), "checks": [asdict(c) for c in checks]}
