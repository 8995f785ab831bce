"""The consolidation and forgetting workers' last-pass times survive a restart (a file
beside their faust data); a missing or damaged file means every user is due once. Real files
in a temporary folder."""

from consolidation.faust_app import due_users
from consolidation.pass_times import PassTimes

DAY = 86_400.0


def test_times_written_are_read_back_by_the_next_worker(tmp_path):
    store = PassTimes(tmp_path / "faust" / "consolidate-last-pass.json")
    assert store.load() == {}
    store.save({"ana": 1_000.0, "bob": 2_000.5})
    assert PassTimes(store.path).load() == {"ana": 1_000.0, "bob": 2_000.5}
    assert not list(store.path.parent.glob("*.tmp"))  # replaced atomically, nothing left behind


def test_a_restarted_worker_passes_over_only_the_users_that_changed(tmp_path):
    activity = [("ana", {"seen": 10.0, "changed": 10.0}), ("bob", {"seen": 10.0, "changed": 1_500.0})]
    store = PassTimes(tmp_path / "forget-last-pass.json")
    store.save({"ana": 1_000.0, "bob": 1_000.0})
    assert due_users("consolidate", activity, store.load(), now=2_000.0, full_every_s=DAY) == ["bob"]
    assert due_users("consolidate", activity, {}, now=2_000.0, full_every_s=DAY) == ["bob", "ana"]


def test_a_damaged_file_is_an_empty_record(tmp_path):
    path = tmp_path / "consolidate-last-pass.json"
    for content in ("{not json", "[1, 2]", '{"ana": "yesterday", "bob": 5}'):
        path.write_text(content)
        assert PassTimes(path).load() == ({"bob": 5.0} if "bob" in content else {})


def test_a_save_within_the_given_interval_of_the_last_is_skipped(tmp_path):
    store = PassTimes(tmp_path / "consolidate-last-pass.json")
    store.save({"ana": 1.0})
    store.save({"ana": 2.0}, unless_saved_within_s=3600)  # a pass going on: the last write is recent
    assert store.load() == {"ana": 1.0}
    store.save({"ana": 3.0})  # the end of a pass always writes
    assert store.load() == {"ana": 3.0}
