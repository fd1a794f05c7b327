"""calibrate's bookkeeping: the rates it prints come from the trials it ran,
and an interrupted trial stops the whole calibration."""
from types import SimpleNamespace

from harness_common import calibrate
from targetfacts import TARGETS

TARGET = TARGETS[0]     # any target: the trials are replayed, not run


def _trial(status, ratio, lo, hi, combo_ratios=(1.0,), reasons=()):
    fig = SimpleNamespace(ratio=ratio, ci_low=lo, ci_high=hi,
                          results=[SimpleNamespace(ratio=r) for r in combo_ratios])
    return SimpleNamespace(status=status, figures=fig, reasons=list(reasons), total_seconds=1.0)


def _fake(monkeypatch, outcomes):
    """Replay (code, trial) pairs in order instead of running trials."""
    calls = []

    def one(target, module, results, description, best_scale):
        calls.append((description, best_scale))
        code, t, *log = outcomes[len(calls) - 1]
        return code, t, log[0] if log else ""
    monkeypatch.setattr(calibrate, "_one", one)
    return calls


def test_counts_and_verdict_come_from_the_trials(monkeypatch):
    base = _trial("baseline", None, None, None)
    aa_keep = _trial("keep", 0.97, 0.95, 0.99)
    win = _trial("keep", 0.97, 0.96, 0.98)
    lost = _trial("discard", 0.98, 0.96, 1.01)
    calls = _fake(monkeypatch, [(0, base), (0, aa_keep), (0, win), (0, aa_keep), (0, lost)])
    lines = []
    code = calibrate.calibrate(TARGET, trials=2, out=lines.append)
    text = "\n".join(lines)
    assert [scale for _, scale in calls] == [1.0, 1.0, 1.03, 1.0, 1.03]
    assert "A/A: kept 2/2; tamper 0" in text
    assert "3% win: kept 1/2; tamper 0" in text
    # two false keeps in two trials: more than the one the rule tolerates
    assert code == 3 and "can NOT be trusted" in text


def test_a_clean_run_is_trusted(monkeypatch):
    base = _trial("baseline", None, None, None)
    aa = _trial("discard", 1.0, 0.99, 1.01, combo_ratios=(0.99, 1.01))
    win = _trial("keep", 0.97, 0.96, 0.98)
    _fake(monkeypatch, [(0, base)] + [(0, aa), (0, win)] * 3)
    lines = []
    assert calibrate.calibrate(TARGET, trials=3, out=lines.append) == 0
    assert lines[-1] == "verdict: verdicts can be trusted here for wins of 3% and more"


def test_an_interrupted_trial_stops_the_calibration(monkeypatch):
    base = _trial("baseline", None, None, None)
    calls = _fake(monkeypatch, [(0, base), (130, _trial(None, None, None, None))])
    lines = []
    assert calibrate.calibrate(TARGET, trials=5, out=lines.append) == 130
    assert len(calls) == 2 and lines[-1] == "interrupted"


def test_a_trial_that_errors_is_shown_and_not_trusted(monkeypatch):
    base = _trial("baseline", None, None, None)
    aa = _trial("discard", 1.0, 0.99, 1.01, combo_ratios=(0.99, 1.01))
    win = _trial("keep", 0.97, 0.96, 0.98)
    broken = _trial(None, None, None, None)
    log = "pq_l2: seed 1 (fresh)\nerror: the CPU pair is busy: the cause, named"
    _fake(monkeypatch, [(0, base), (0, aa), (0, win), (1, broken, log), (0, win)])
    lines = []
    assert calibrate.calibrate(TARGET, trials=2, out=lines.append) == 3
    text = "\n".join(lines)
    assert "exit 1" in text and "error: the CPU pair is busy: the cause, named" in text
    assert "can NOT be trusted" in text
