"""Lifecycle thresholds from YAML: defaults, per-app overrides, errors that name the key."""

import pytest

from consolidation.policies import LifecycleConfig, LifecyclePolicy


def test_defaults_and_app_overrides_inherit_from_the_default_section():
    config = LifecycleConfig.from_mapping({"default": {"half_life_days": 10}, "apps": {"ide": {"forget_below": 0.1}}})
    assert config.for_app(None).half_life_days == 10
    ide = config.for_app("ide")
    assert (ide.half_life_days, ide.forget_below) == (10, 0.1)
    assert config.for_app("other") == config.default
    assert LifecycleConfig.from_mapping(None).default == LifecyclePolicy()


def test_numbers_written_as_yaml_strings_are_read_as_numbers():
    # PyYAML (YAML 1.1) reads 1e-05 as a string.
    assert LifecycleConfig.from_mapping({"default": {"half_life_days": "1e-05"}}).default.half_life_days == 1e-05


@pytest.mark.parametrize("raw, named", [
    ({"default": {"forget_belw": 0.1}}, "forget_belw"),
    ({"defaults": {}}, "defaults"),
    ({"default": {"half_life_days": "soon"}}, "half_life_days"),
    ({"default": {"forget_below": 0.01, "delete_below": 0.5}}, "delete_below"),
    ({"apps": {"ide": {"similarity": 2}}}, "apps.ide"),
    ({"default": {"half_life_days": 0}}, "half_life_days"),
])
def test_a_bad_config_is_refused_naming_the_problem(raw, named):
    with pytest.raises(ValueError, match=named):
        LifecycleConfig.from_mapping(raw, "lifecycle.yaml")
