"""harness_common.config loads every shipped target.toml (every target found
under targets/) and names the missing key or broken file. A target's own
configuration rules are tested in its folder (targets/<t>/tests/)."""
import re
from pathlib import Path

import pytest

from targetfacts import TARGETS, facts

from harness_common import config

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", TARGETS)
def test_shipped_target_toml_loads(name):
    cfg = config.load(ROOT / "targets" / name / "target.toml")
    assert cfg.name == name and cfg.unit and cfg.kernel_class.isidentifier()
    assert isinstance(cfg.kernel_methods, tuple) and cfg.kernel_methods
    b = cfg.budget
    assert 0 < b.quick_timing_seconds < b.timing_seconds < b.trial_seconds
    assert 0 < b.quick_rounds <= b.min_rounds <= b.max_rounds
    assert b.max_combo_ratio > 1.0
    assert "speed" in cfg.raw and "battery" in cfg.raw


def _shipped_text():
    return (ROOT / "targets" / TARGETS[0] / "target.toml").read_text()


@pytest.mark.parametrize("key", ["name", "unit", "kernel_class", "kernel_methods"])
def test_missing_top_level_key_is_named(tmp_path, key):
    text = re.sub(rf"(?m)^{key} = .*\n", "", _shipped_text())
    path = tmp_path / "target.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=rf"{re.escape(str(path))} lacks the key '{key}'"):
        config.load(path)


@pytest.mark.parametrize("key", ["memory_guard_mb", "max_combo_ratio", "min_rounds"])
def test_missing_budget_key_is_named(tmp_path, key):
    text = re.sub(rf"(?m)^{key} = .*\n", "", _shipped_text())
    path = tmp_path / "target.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=f"lacks the key '{key}'"):
        config.load(path)


def test_missing_budget_section_is_named(tmp_path):
    text = _shipped_text().split("[budget]")[0]
    path = tmp_path / "target.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match="lacks the key 'budget'"):
        config.load(path)


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\nunit = \n')
    with pytest.raises(config.ConfigError) as info:
        config.load(path)
    assert str(path) in str(info.value) and "not valid TOML" in str(info.value)


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(config.ConfigError, match=re.escape(str(path))):
        config.load(path)


def test_config_error_is_a_value_error():
    assert issubclass(config.ConfigError, ValueError)


def test_every_target_is_found_and_has_its_test_facts():
    assert TARGETS, "no target.toml under targets/"
    for name in TARGETS:
        facts(name)                       # asserts the required names
