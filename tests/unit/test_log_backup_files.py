"""Backup folders without a cluster: the manifest and checksum checks (restore's first step),
the files' format, and the exit codes of backup / restore / digest when nothing answers.
The round trip through real brokers is tests/integration/test_log_backup.py."""

from __future__ import annotations

import json

import pytest

import cli.main as cli
from adapters import log_backup
from cli.output import FAILED, OK, UNREACHABLE

CLOSED = "127.0.0.1:1"


def make_backup(folder, records_per_partition=(3, 0, 2)) -> dict:
    """A backup folder as `recallstack backup` writes it, for one topic."""
    folder.mkdir()
    topic = "recallstack.memory.events"
    files, detail = [], []
    for partition, count in enumerate(records_per_partition):
        writer = log_backup._PartitionFiles(folder, topic, partition, log_backup.codec(), chunk_records=2)
        for n in range(count):
            writer.write({"partition": partition, "offset": 2 * n, "timestamp": 1_700_000_000_000 + n,
                          "timestamp_type": 0, "key": b"user-1", "value": bytes([n, 0, 255]),
                          "headers": [{"key": "rs-schema", "value": b"abc"}, {"key": "empty", "value": None}]})
        written = writer.close()
        files += written
        detail.append({"partition": partition, "records": count, "files": [f["path"] for f in written],
                       "first_offset": written[0]["first_offset"] if written else None,
                       "last_offset": written[-1]["last_offset"] if written else None})
    manifest = {"format": log_backup.FORMAT, "format_version": log_backup.FORMAT_VERSION, "created_at": "now",
                "source": {"bootstrap": "x"}, "records": sum(records_per_partition),
                "topics": {topic: {"partitions": len(records_per_partition), "records": sum(records_per_partition),
                                   "configs": {}, "partition_detail": detail}},
                "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def test_files_hold_each_record_exactly_and_chunk_in_offset_order(tmp_path):
    manifest = make_backup(tmp_path / "b")
    assert [f["path"] for f in manifest["files"]] == [
        "recallstack.memory.events/p000-0000.avro", "recallstack.memory.events/p000-0001.avro",
        "recallstack.memory.events/p002-0000.avro"]
    first = manifest["files"][0]
    assert (first["records"], first["first_offset"], first["last_offset"]) == (2, 0, 2)
    records = [r for f in manifest["files"] for r in log_backup._records(tmp_path / "b", f)]
    assert [(r["partition"], r["offset"], r["value"]) for r in records] == [
        (0, 0, b"\x00\x00\xff"), (0, 2, b"\x01\x00\xff"), (0, 4, b"\x02\x00\xff"), (2, 0, b"\x00\x00\xff"),
        (2, 2, b"\x01\x00\xff")]
    assert records[0]["headers"] == [{"key": "rs-schema", "value": b"abc"}, {"key": "empty", "value": None}]
    assert log_backup.verify(tmp_path / "b")["records"] == 5


def test_verify_names_every_missing_truncated_or_changed_file(tmp_path):
    manifest = make_backup(tmp_path / "b")
    changed, truncated, missing = (tmp_path / "b" / f["path"] for f in manifest["files"])
    data = bytearray(changed.read_bytes())
    data[-3] ^= 0x40
    changed.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[:-1])
    missing.unlink()
    with pytest.raises(log_backup.BackupInvalid) as invalid:
        log_backup.verify(tmp_path / "b")
    problems = invalid.value.problems
    assert len(problems) == 3
    assert "p000-0000.avro: SHA-256 differs" in problems[0]
    assert "p000-0001.avro" in problems[1] and "bytes, the manifest says" in problems[1]
    assert problems[2].endswith("p002-0000.avro: missing")


@pytest.mark.parametrize("damage, message", [
    (lambda m: m.update(format="something.else"), "is not a recallstack.log-backup manifest"),
    (lambda m: m.update(format_version=99), "format_version 99 is not supported"),
    (lambda m: m["topics"]["recallstack.memory.events"]["partition_detail"][0].update(records=4),
     "partition 0 says 4 records, its files 3"),
    (lambda m: m["files"][0].update(path="../../etc/passwd"), "is not a file of this backup"),
])
def test_a_manifest_that_does_not_add_up_is_refused(tmp_path, damage, message):
    manifest = make_backup(tmp_path / "b")
    damage(manifest)
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(log_backup.BackupInvalid, match=message.replace("(", r"\(")):
        log_backup.read_manifest(tmp_path / "b")


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    import bootstrap

    monkeypatch.setenv("RECALLSTACK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RECALLSTACK_KAFKA_BOOTSTRAP", CLOSED)
    monkeypatch.setenv("RECALLSTACK_PG_DSN", f"postgresql://nobody:nothing@{CLOSED}/none")
    monkeypatch.setenv("RECALLSTACK_NEO4J_URI", f"bolt://{CLOSED}")
    monkeypatch.setenv("RECALLSTACK_REDIS_URL", f"redis://{CLOSED}/0")
    bootstrap.settings.cache_clear()  # an earlier test of the session may have cached the real servers'
    yield
    bootstrap.settings.cache_clear()


def test_backup_exit_codes(capsys, nowhere, tmp_path):
    assert cli.main(["backup", str(tmp_path / "new")]) == UNREACHABLE
    assert not [p for p in tmp_path.iterdir() if p.name != "home"]  # no folder, no .partial one
    make_backup(tmp_path / "taken")
    capsys.readouterr()
    assert cli.main(["backup", str(tmp_path / "taken"), "--json"]) == FAILED
    out, err = capsys.readouterr()
    assert "exists and is not an empty folder" in json.loads(out)["error"]["message"]


def test_restore_checks_before_it_connects(capsys, nowhere, tmp_path):
    make_backup(tmp_path / "b")
    assert cli.main(["restore", str(tmp_path / "b"), "--verify-only", "--json"]) == OK
    out, err = capsys.readouterr()
    assert json.loads(out)["verified"] is True and "3 files intact, 5 records" in err
    (tmp_path / "b" / "recallstack.memory.events" / "p002-0000.avro").unlink()
    assert cli.main(["restore", str(tmp_path / "b"), "--json"]) == FAILED  # Kafka never asked
    out, err = capsys.readouterr()
    doc = json.loads(out)["error"]
    assert "nothing was restored" in doc["message"] and doc["details"] == [
        "recallstack.memory.events/p002-0000.avro: missing"]
    assert cli.main(["restore", str(tmp_path / "nothing-here")]) == FAILED
    assert "is not a folder" in capsys.readouterr().err
    make_backup(tmp_path / "c")
    assert cli.main(["restore", str(tmp_path / "c")]) == UNREACHABLE  # intact, then Kafka does not answer


def test_digest_exit_codes(capsys, nowhere):
    with pytest.raises(SystemExit) as usage:
        cli.main(["digest", "--projection", "elastic"])
    assert usage.value.code == 2 and "unknown projection 'elastic'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["digest", "--version", "0"])
    assert cli.main(["digest", "--projection", "cache"]) == UNREACHABLE
