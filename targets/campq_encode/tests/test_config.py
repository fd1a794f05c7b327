"""campq_encode refuses a configuration that would score the codebook on the
rows it was trained on: checked on the config alone and in a real trial."""
import pytest

from harness_common import config
from targets.campq_encode import run_experiment as campq
from tests.conftest import workspace  # noqa: F401  (the fixture: a committed copy of the project)


def test_shipped_campq_config_is_disjoint():
    campq.check_disjoint()
    campq.check_disjoint(dict(campq.CB))


@pytest.mark.parametrize("offset", [0, 1, 4095])
def test_measurement_inside_calibration_is_refused(offset):
    cb = dict(campq.CB, calibration_start=1000, calibration_rows=4096, measurement_start=1000 + offset)
    with pytest.raises(config.ConfigError) as info:
        campq.check_disjoint(cb)
    msg = str(info.value)
    assert "the codebook would be scored on rows it was trained on" in msg
    assert "measurement_start >= 5096" in msg


def test_measurement_right_after_calibration_is_allowed():
    campq.check_disjoint(dict(campq.CB, calibration_start=1000, calibration_rows=4096,
                              measurement_start=5096))


@pytest.mark.slow
def test_campq_refuses_calibration_rows_that_overlap_the_measured_ones(workspace):
    # A committed config (no baseline yet, so it is the anchor) whose measured rows
    # start inside the calibration sample: refused before any work, with the why.
    workspace.edit("targets/campq_encode/target.toml", "measurement_start = 1048576",
                   "measurement_start = 1000")
    workspace.commit("overlapping calibration and measurement")
    run = workspace.run("campq_encode", "--quick")
    assert run.code == 1, run
    assert "trained on" in run.stderr and "measurement_start" in run.stderr, run
    assert run.rows() == []
