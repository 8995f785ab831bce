"""The search defaults the service runs with are the tuned ones (domain/ranking.py), unless set."""

from domain.ranking import DEFAULT_RRF_K, SPEAKER_WEIGHT
from settings import Settings


def test_the_service_fuses_with_the_tuned_rrf_k(monkeypatch, tmp_path):
    # The RRF constant was tuned on LoCoMo while Settings kept 60: the service never ran it.
    monkeypatch.delenv("RECALLSTACK_SEARCH_RRF_K", raising=False)
    monkeypatch.setenv("RECALLSTACK_HOME", str(tmp_path))
    assert DEFAULT_RRF_K == 5 and Settings.from_env().search_rrf_k == DEFAULT_RRF_K
    monkeypatch.setenv("RECALLSTACK_SEARCH_RRF_K", "45")
    assert Settings.from_env().search_rrf_k == 45


def test_the_search_runs_with_the_tuned_speaker_weight_unless_set(monkeypatch, tmp_path):
    import bootstrap

    monkeypatch.delenv("RECALLSTACK_SEARCH_SPEAKER_WEIGHT", raising=False)
    monkeypatch.setenv("RECALLSTACK_HOME", str(tmp_path))
    config = bootstrap.search_config(Settings.from_env())
    assert SPEAKER_WEIGHT == 0.4 and config.speaker_weight == SPEAKER_WEIGHT and config.rrf_k == DEFAULT_RRF_K
    monkeypatch.setenv("RECALLSTACK_SEARCH_SPEAKER_WEIGHT", "0")
    assert bootstrap.search_config(Settings.from_env()).speaker_weight == 0
