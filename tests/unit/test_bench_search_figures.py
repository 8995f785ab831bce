"""The search benchmark's pure parts: CPU accounting from /proc samples (bench/cpu_accounting.py),
the stack's processes by port (bench/stack_processes.py), Server-Timing and degraded answers of a
level (bench/search_level.py), issue 20's targets (bench/search_targets.py), the report's search
section (bench/search_report.py), the fresh query texts of the mem0 comparison; and the bench's
HTTP client (bench/raw_http.py) against a real local server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # benches import each other from bench/

import cpu_accounting as cpu  # noqa: E402
import raw_http  # noqa: E402
import search_report  # noqa: E402
import search_targets as targets  # noqa: E402
import stack_processes  # noqa: E402
from search_level import (degraded_counts, miss_kind, parse_server_timing, per_request_split,  # noqa: E402
                          timing_percentiles)


# --- CPU accounting ---------------------------------------------------------------------------

def stat_line(pid, name, ppid, utime, stime, cutime=0, cstime=0, start=1000):
    """A /proc/<pid>/stat line: utime, stime, cutime, cstime at fields 14-17, starttime at 22."""
    after = [ppid, 1, 1, 0, -1, 0, 0, 0, 0, 0, utime, stime, cutime, cstime, 20, 0, 1, 0, start, 100, 10]
    return f"{pid} ({name}) S " + " ".join(map(str, after))


def stats(*lines):
    return {int(line.split()[0]): cpu.parse_stat(int(line.split()[0]), line) for line in lines}


def test_parse_stat_takes_the_fields_after_a_name_with_spaces_and_parentheses():
    s = cpu.parse_stat(42, stat_line(42, "postgres: user db (idle)", 7, utime=30, stime=12, cutime=5, cstime=1, start=99))
    assert (s.pid, s.ppid, s.ticks, s.reaped, s.start) == (42, 7, 42, 6, 99)


def test_a_real_stat_line_parses():
    s = cpu.parse_stat(1, Path("/proc/self/stat").read_text())
    assert s.ppid > 0 and s.ticks >= 0 and s.start > 0


def test_tree_ticks_sums_descendants_and_reaped_children_but_not_strangers():
    tree = stats(stat_line(10, "postgres", 1, 100, 50, cutime=20, cstime=5),  # postmaster, reaped backends: 25
                 stat_line(11, "postgres: backend", 10, 40, 10),
                 stat_line(12, "postgres: walwriter", 10, 3, 2),
                 stat_line(13, "postgres: parallel worker", 11, 7, 0),  # a grandchild
                 stat_line(20, "java", 1, 500, 100))
    assert cpu.tree_ticks(tree, 10) == 150 + 25 + 50 + 5 + 7
    assert cpu.tree_ticks(tree, 20) == 600
    assert cpu.tree_ticks(tree, 99) is None


def test_machine_busy_leaves_out_idle_and_iowait():
    line = "cpu  100 5 50 1000 30 2 3 4 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
    assert cpu.machine_busy_ticks(line) == 100 + 5 + 50 + 2 + 3 + 4


def sample(trees, busy, client=0, missing=()):
    return cpu.CpuSample(trees=trees, machine_busy=busy, client=client, roots_missing=list(missing))


def test_usage_per_search_per_process_total_client_and_other_apart():
    before = sample({"postgres": (10, 1, 1000), "query-api": (30, 5, 200), "proxy": (40, 6, 50)}, busy=5000, client=70)
    after = sample({"postgres": (10, 1, 1300), "query-api": (30, 5, 400), "proxy": (40, 6, 60)}, busy=5700, client=120)
    u = cpu.usage(before, after, wall_s=5.0, searches=100, clk_tck=100)
    # 300 ticks = 3,000 ms over 100 searches; the total is the stack's processes only.
    assert u["ms_per_search"] == {"postgres": 30.0, "query-api": 20.0, "proxy": 1.0}
    assert list(u["ms_per_search"]) == ["postgres", "query-api", "proxy"]  # the largest first
    assert u["total_ms_per_search"] == 51.0
    assert u["client_ms_per_search"] == 5.0  # the bench process: not in the total
    assert u["other_ms_per_search"] == 14.0  # 700 busy ticks - 510 stack - 50 client = 140 ticks
    assert u["pct_of_a_core"]["postgres"] == 60.0 and u["machine_pct"] == 140.0
    assert u["restarted"] == [] and u["not_found"] == []


def test_usage_counts_a_restarted_process_from_its_start_and_names_the_missing():
    before = sample({"neo4j": (20, 100, 9000)}, busy=0, missing=["redis"])
    after = sample({"neo4j": (21, 500, 40)}, busy=100)  # another pid: restarted during the level
    u = cpu.usage(before, after, wall_s=1.0, searches=4, clk_tck=100)
    assert u["ms_per_search"]["neo4j"] == 100.0 and u["restarted"] == ["neo4j"] and u["not_found"] == ["redis"]


def test_a_process_that_exited_and_was_reaped_still_counts():
    """A backend seen at the start that ends during the level: its time moves to the
    postmaster's cutime, so the tree's total does not drop."""
    t0 = stats(stat_line(10, "postgres", 1, 100, 0), stat_line(11, "backend", 10, 50, 0))
    t1 = stats(stat_line(10, "postgres", 1, 100, 0, cutime=80))  # backend used 30 more ticks, then exited
    before = cpu.sample_of(t0, {"postgres": 10}, 0, client_pid=-1)
    after = cpu.sample_of(t1, {"postgres": 10}, 0, client_pid=-1)
    assert cpu.usage(before, after, 1.0, 1, clk_tck=100)["ms_per_search"]["postgres"] == 300.0


def test_a_live_sample_of_this_process_grows():
    import os

    before = cpu.read_sample({"me": os.getpid()})
    sum(i * i for i in range(300_000))
    after = cpu.read_sample({"me": os.getpid()})
    assert after.trees["me"][2] >= before.trees["me"][2] and after.machine_busy >= before.machine_busy


# --- the stack's processes --------------------------------------------------------------------

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1539 00000000:0000 0A 00000000:00000000 00:00000000 00000000   0  0 5001 1 0 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000   0  0 5002 1 0 100 0 0 10 0
   2: 0100007F:1539 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000   0  0 5003 1 0 100 0 0 10 0
"""


def test_listening_inodes_by_port_skip_established_connections():
    assert stack_processes.listening_inodes(TCP) == {0x1539: {5001}, 0x1F90: {5002}}  # 5433 and 8080


def test_topmost_holder_of_a_socket_is_the_master_not_its_workers():
    assert stack_processes.topmost({100: 1, 101: 100, 102: 100}) == 100
    assert stack_processes.topmost({}) is None


def test_ports_of_the_settings_addresses():
    class Cfg:
        kafka_bootstrap = "127.0.0.1:9092"
        pg_dsn = "postgresql://u:p@127.0.0.1:5433/db"
        neo4j_uri = "bolt://db.example.com:7687"  # another host: not this machine's process
        redis_url = "redis://:pw@localhost:6380/0"
        host, gateway_port, query_api_port = "127.0.0.1", 8080, 8082

    assert stack_processes.infrastructure_ports(Cfg) == {"kafka": 9092, "postgres": 5433, "redis": 6380,
                                                         "proxy": 8080, "query-api": 8082}


def test_recorded_processes_come_from_the_process_table(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "proxy.json").write_text('{"pid": 12, "start": 1, "argv": []}')
    (tmp_path / "run" / "broken.json").write_text("{")
    (tmp_path / "run" / "replay-postgres.lock").write_text("")
    assert stack_processes.recorded(tmp_path) == {"proxy": 12}


# --- a level's answers ------------------------------------------------------------------------

def test_server_timing_durations_and_markers():
    assert parse_server_timing('embed;dur=3.1, dense;dur=5.2;desc="x", cache;desc=hit, total;dur=9') == {
        "embed": 3.1, "dense": 5.2, "cache=hit": 0.0, "total": 9.0}


def test_server_timing_percentiles_per_entry():
    timings = [{"embed": float(i), "dense": 2.0 * i} for i in range(1, 101)] + [{"cache": 1.0}]
    agg = timing_percentiles(timings)
    assert list(agg) == ["embed", "dense", "cache"]
    assert agg["embed"] == {"n": 100, "p50_ms": 50.5, "p99_ms": 99.0, "mean_ms": 50.5}
    assert agg["dense"]["p99_ms"] == 198.0 and agg["cache"]["n"] == 1


def test_split_adds_up_to_what_the_client_saw():
    split = per_request_split({"embed": 4.0, "dense": 3.0, "sparse": 6.0, "fusion": 1.0, "total": 12.0}, 15.0)
    assert split["sources (slowest)"] == 6.0 and split["HTTP + queueing"] == 3.0
    assert sum(split.values()) == pytest.approx(15.0)


def test_degraded_answers_per_source_and_kind():
    answers = [[], [{"source": "graph", "reason": "no answer within its budget of 250 ms"}],
               [{"source": "sparse", "reason": "cancelled by Postgres after 1000 ms"},
                {"source": "graph", "reason": "failed (ServiceUnavailable)"}], []]
    d = degraded_counts(answers)
    assert (d["answers"], d["degraded_answers"], d["degraded_ratio"]) == (4, 2, 0.5)
    assert d["by_source"] == {"graph": {"budget": 1, "failed": 1}, "sparse": {"budget": 1, "failed": 0}}
    assert miss_kind("the sparse index is unavailable: x") == "failed"


# --- targets ----------------------------------------------------------------------------------

def lvl(clients, p50, p99, qps=100.0, mode="uncached", cpu_total=None, degraded=None, requests=500):
    row = {"clients": clients, "mode": mode, "endpoint": "gateway", "p50_ms": p50, "p99_ms": p99, "qps": qps,
           "requests": requests, "degraded": degraded or {"answers": requests, "degraded_answers": 0, "by_source": {}}}
    if cpu_total is not None:
        row["cpu"] = {"total_ms_per_search": cpu_total, "ms_per_search": {"postgres": cpu_total / 2,
                                                                          "query-api": cpu_total / 2}}
    return row


def search_result(one_10k=(8.0, 20.0), ten=(160.0, 140.0, 9.5), repeated_p99=4.0, with_100k=True):
    blocks = [{"size": 10_000, "users": 1, "levels": [
        lvl(1, *one_10k), lvl(10, 60.0, ten[1], qps=ten[0], cpu_total=ten[2]),
        lvl(1, 2.0, repeated_p99, mode="repeated")]}]
    if with_100k:
        blocks.append({"size": 100_000, "users": 1, "levels": [lvl(1, 14.0, 55.0, degraded={
            "answers": 500, "degraded_answers": 3, "by_source": {"graph": {"budget": 3, "failed": 0}}})]})
    return {"sizes": blocks}


def by_target(rows):
    return {r["target"].split(":")[0]: r for r in rows}


def test_search_targets_met_missed_and_not_measured():
    rows = targets.search_targets(search_result())
    v = {r["target"]: r["verdict"] for r in rows}
    assert v["10k memories in one user, one client: p50 <= 10 ms, p99 <= 25 ms"] == targets.MET
    assert v["100k memories in one user, one client: p50 <= 15 ms, p99 <= 40 ms"] == targets.NOT_MET  # p99 55
    assert v["1M memories over 100 users, one client: measured and reported"] == targets.NOT_MEASURED
    assert v["CPU per uncached search, all stack processes together, <= 10 ms (10k, 10 clients)"] == targets.MET
    assert v[">= 150 uncached QPS at 10 clients with p99 <= 150 ms (10k)"] == targets.MET
    assert v["repeated query, one client: p99 <= 5 ms (10k)"] == targets.MET
    assert v["no source misses its budget in an idle one-client run (10k)"] == targets.MET
    idle_100k = next(r for r in rows if r["target"].endswith("(100k)"))
    assert idle_100k["verdict"] == targets.NOT_MET and "graph 3" in idle_100k["measured"]


def test_search_targets_fail_on_each_limit():
    v = {r["target"]: r["verdict"] for r in targets.search_targets(
        search_result(one_10k=(11.0, 20.0), ten=(149.0, 100.0, 10.5), repeated_p99=5.1, with_100k=False))}
    assert v["10k memories in one user, one client: p50 <= 10 ms, p99 <= 25 ms"] == targets.NOT_MET
    assert v["CPU per uncached search, all stack processes together, <= 10 ms (10k, 10 clients)"] == targets.NOT_MET
    assert v[">= 150 uncached QPS at 10 clients with p99 <= 150 ms (10k)"] == targets.NOT_MET
    assert v["repeated query, one client: p99 <= 5 ms (10k)"] == targets.NOT_MET
    assert v["100k memories in one user, one client: p50 <= 15 ms, p99 <= 40 ms"] == targets.NOT_MEASURED


def test_the_million_tier_is_reported_not_judged():
    result = {"sizes": [{"size": 1_000_000, "users": 100, "levels": [lvl(1, 30.0, 90.0)]}]}
    row = targets.search_targets(result)[2]
    assert row["verdict"] == targets.REPORTED and "p50 30.0 / p99 90.0" in row["measured"]


def peer(ratios, rs_hit=0.8, m0_hit=0.6):
    lat = {"latency": {"p50_ms": 10.0, "p99_ms": 20.0}}
    return {"ratios_recallstack_over_mem0": ratios,
            "recallstack": {"search": lat, "search_concurrent": lat, "quality": {"overall": {"hit@10": rs_hit}}},
            "mem0": {"search": lat, "search_concurrent": lat, "quality": {"overall": {"hit@10": m0_hit}}}}


def test_peer_targets_one_client_ten_clients_and_quality():
    rows = targets.peer_targets(peer({"search_p50_ms": 0.6, "search_p99_ms": 0.81, "search_concurrent_p50_ms": 0.5,
                                      "search_concurrent_p99_ms": 0.7, "hit@10": 1.33}))
    assert [r["verdict"] for r in rows] == [targets.MET, targets.NOT_MET, targets.MET, targets.MET, targets.MET]
    assert "one client" in rows[0]["target"] and "ten clients" in rows[2]["target"]
    assert "0.800 vs 0.600" in rows[4]["measured"]
    assert {r["verdict"] for r in targets.peer_targets({})} == {targets.NOT_MEASURED}


def test_locomo_targets_quality_and_every_source():
    run = {"metrics": {"fused": {"overall": {"hit@10": 0.71}}},
           "corpus": {"conversations": 2, "questions": 60, "limit_questions_per_conversation": 30},
           "ask": {"observations": {"sources": {"dense": 500, "sparse": 400, "temporal": 30, "graph": 0}}}}
    hit, sources = targets.locomo_targets(run)
    assert hit["verdict"] == targets.MET and "subset" in hit["measured"]
    assert sources["verdict"] == targets.NOT_MET and "graph 0" in sources["measured"]
    assert {r["verdict"] for r in targets.locomo_targets({})} == {targets.NOT_MEASURED}


def test_all_targets_of_an_empty_run_are_not_measured_except_nothing():
    rows = targets.all_targets({})
    assert len(rows) == 8 + 5 + 2 and {r["verdict"] for r in rows} == {targets.NOT_MEASURED}


# --- the report's search section ----------------------------------------------------------------

def test_search_section_has_levels_cpu_per_process_and_server_timing():
    block = search_result()["sizes"][0]
    block["levels"][0]["server_timing"] = {"embed": {"n": 500, "p50_ms": 4.0, "p99_ms": 9.0, "mean_ms": 4.5}}
    block["levels"][0]["cpu"] = {"total_ms_per_search": 12.0, "ms_per_search": {"neo4j": 7.0, "postgres": 5.0},
                                 "client_ms_per_search": 0.3, "other_ms_per_search": 0.1, "machine_pct": 80.0}
    md = "\n".join(search_report.search_section({"duration_s": 6, "sizes": [block]}))
    assert "### 10,000 memories in 1 user(s)" in md
    assert "| uncached 1c | 500 | 100.0 | 8.0 |" in md
    assert "| neo4j | 7.0 | - |" in md and "| postgres | 5.0 | 4.75 |" in md and "| **all stack processes** | **12.0** | **9.5** |" in md
    assert "| embed | 4 / 9 |" in md and "| client (through the proxy) | 8.0 / 20.0 |" in md
    assert "QPS at saturation (uncached): 160.0 at 10 clients" in md
    assert search_report.search_section({}) == ["not run"]


# --- the mem0 comparison's query texts ----------------------------------------------------------

def test_fresh_queries_are_new_per_round_and_keep_user_and_reference_time():
    import peer_compare

    convs = [{"user_id": "u1", "reference_time": "2023-05-01T00:00:00Z",
              "questions": [{"question": "When did Caroline go?"}, {"question": "What did Mel paint?"}]}]
    one = peer_compare.fresh_queries(convs, 2, "abc")
    ten = peer_compare.fresh_queries(convs, 2, "abc", first_round=2)
    texts = [j[1] for j in one + ten]
    assert len(set(texts)) == len(texts) == 8
    assert one[0] == ["u1", "When did Caroline go? (abc.0)", "2023-05-01T00:00:00Z"]
    assert one[2][1] == "Remind me: when did Caroline go? (abc.1)"


# --- the bench's HTTP client, against a real local server ---------------------------------------

async def serve(answers: list[bytes], close_after: int | None = None):
    """A local server answering each request with the next raw answer; it closes a connection
    after `close_after` answers (a keep-alive the server ended)."""
    seen: list[bytes] = []

    async def handle(reader, writer):
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                seen.append(head + await reader.readexactly(length))
                writer.write(answers.pop(0))
                await writer.drain()
                served += 1
                if close_after and served >= close_after:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


def test_raw_http_content_length_chunked_and_a_closed_keep_alive():
    async def scenario():
        answers = [b'HTTP/1.1 200 OK\r\nContent-Length: 11\r\nServer-Timing: embed;dur=3\r\n\r\n{"a": true}',
                   b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"b\"\r\n3\r\n: 1\r\n"
                   b"1\r\n}\r\n0\r\n\r\n",
                   b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"]
        server, port, seen = await serve(answers, close_after=2)
        conn = raw_http.Connection(f"http://127.0.0.1:{port}", {"Authorization": "Bearer k"})
        try:
            first = await conn.post_json("/v1/memories/search", {"query": "q"})
            second = await conn.post_json("/v1/memories/search", {"query": "r"})
            third = await conn.post_json("/v1/memories/search", {"query": "s"})  # the server closed: reconnects
        finally:
            await conn.close()
            server.close()
        return first, second, third, seen

    first, second, third, seen = asyncio.run(scenario())
    assert (first.status, first.json(), first.headers["server-timing"]) == (200, {"a": True}, "embed;dur=3")
    assert (second.status, second.json()) == (503, {"b": 1})
    assert (third.status, third.json()) == (200, {})
    assert seen[0].startswith(b"POST /v1/memories/search HTTP/1.1\r\n") and b"Authorization: Bearer k\r\n" in seen[0]
    assert seen[0].endswith(b'{"query":"q"}') and len(seen) == 3


def test_raw_http_refuses_what_is_not_http():
    with pytest.raises(raw_http.HttpError):
        raw_http.parse_head(b"SSH-2.0-OpenSSH")
    with pytest.raises(ValueError):
        raw_http.Connection("https://example.com")
    with pytest.raises(OSError):  # nothing listens: refused at once, not retried
        async def nowhere():
            conn = raw_http.Connection("http://127.0.0.1:9", timeout_s=2)
            await conn.post_json("/", {})
        asyncio.run(nowhere())
