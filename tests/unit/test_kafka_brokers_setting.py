"""How many local Kafka nodes the settings name (settings.py): RECALLSTACK_KAFKA_BROKERS
(`--kafka-brokers`), else what the local cluster's data was made as, else one; and the
bootstrap list and ports that follow."""

import json

import pytest

from settings import Settings, kafka_node_ports


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RECALLSTACK_HOME", str(tmp_path))
    for name in ("RECALLSTACK_KAFKA_BROKERS", "RECALLSTACK_KAFKA_BOOTSTRAP"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_one_broker_by_default(home):
    cfg = Settings.from_env()
    assert cfg.kafka_brokers == 1 and cfg.kafka_bootstrap == "127.0.0.1:9092"


def test_three_brokers_by_setting_each_on_its_own_ports(home, monkeypatch):
    monkeypatch.setenv("RECALLSTACK_KAFKA_BROKERS", "3")
    cfg = Settings.from_env()
    assert cfg.kafka_brokers == 3
    assert cfg.kafka_bootstrap == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert kafka_node_ports(3) == [(9092, 9093), (9094, 9095), (9096, 9097)]


def test_what_the_data_was_made_as_when_not_set(home, monkeypatch):
    (home / "kafka").mkdir()
    (home / "kafka" / "recallstack-shape.json").write_text(json.dumps({"brokers": 3}))
    assert Settings.from_env().kafka_brokers == 3  # so `down` and `status` find every node
    monkeypatch.setenv("RECALLSTACK_KAFKA_BOOTSTRAP", "kafka.internal:9092")
    assert Settings.from_env().kafka_bootstrap == "kafka.internal:9092"  # an external cluster is named as it is


@pytest.mark.parametrize("value", ["0", "6", "three"])
def test_out_of_range_is_refused_with_its_name(home, monkeypatch, value):
    monkeypatch.setenv("RECALLSTACK_KAFKA_BROKERS", value)
    with pytest.raises(ValueError, match="RECALLSTACK_KAFKA_BROKERS"):
        Settings.from_env()


def test_a_data_folder_made_for_another_number_of_brokers_is_refused_with_the_way_out(tmp_path):
    from infra.kafka_server import Node, _check_same_cluster
    from infra.process import StartError

    shape = tmp_path / "recallstack-shape.json"
    shape.write_text(json.dumps({"brokers": 1}))
    _check_same_cluster(shape, tmp_path / "data", Node(1, 9092, 9093), 1)
    with pytest.raises(StartError, match="belongs to a 1-broker cluster, not 3; move"):
        _check_same_cluster(shape, tmp_path / "data", Node(1, 9092, 9093), 3)
    shape.unlink()  # made before the shape was written down: a single node
    with pytest.raises(StartError, match="1-broker"):
        _check_same_cluster(shape, tmp_path / "data", Node(2, 9094, 9095), 3)
