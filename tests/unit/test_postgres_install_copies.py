"""Postgres install copies under the system folder (root runs): a copy whose install is
gone is removed at the next start, so clones that come and go (CI) do not fill the disk."""

from pathlib import Path

from infra import postgres_server


def _copy(root: Path, name: str, source: Path | None) -> Path:
    copy = root / name
    (copy / "pgserver" / "pginstall" / "bin").mkdir(parents=True)
    if source is not None:
        (copy / "source").write_text(f"{source}\n")
    return copy


def test_a_copy_whose_install_is_gone_is_removed_and_the_others_stay(tmp_path):
    live_install = tmp_path / "venv" / "pginstall"
    live_install.mkdir(parents=True)
    live = _copy(tmp_path, "pg-live", live_install)
    gone = _copy(tmp_path, "pg-gone", tmp_path / "deleted-clone" / "pginstall")
    unnamed = _copy(tmp_path, "pg-old", None)
    current = _copy(tmp_path, "pg-current", tmp_path / "also-gone")

    postgres_server._drop_stale_copies(tmp_path, keep=current)

    assert live.exists() and unnamed.exists() and current.exists()
    assert not gone.exists()


def test_a_copy_a_running_process_executes_from_is_kept(tmp_path, monkeypatch):
    gone = _copy(tmp_path, "pg-gone", tmp_path / "deleted")
    monkeypatch.setattr(postgres_server, "_running_executables",
                        lambda: {f"{gone}/pgserver/pginstall/bin/postgres"})
    postgres_server._drop_stale_copies(tmp_path, keep=tmp_path / "pg-other")
    assert gone.exists()
