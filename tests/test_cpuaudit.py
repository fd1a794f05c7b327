"""harness_common.cpuaudit on synthetic spans: the candidate's CPU outside its
measured windows is held against the yardstick its own worker measured before
any kernel existed; honest prep (and one hiccup) passes, hidden work on most
samples is named by combo, and so is a window that used more CPU than wall
time. The best and scalar kernels never count."""
import numpy as np
import pytest

from harness_common.cpuaudit import PREP_FACTOR, PREP_SLACK_NS, CpuAudit
from harness_common.hosts import Host
from harness_common.process import Window

PREP_COST = (40_000.0, 2_000.0)         # 40 us per sample + 2 us per view, from null samples
VIEWS = 4
YARDSTICK = PREP_COST[0] + PREP_COST[1] * VIEWS      # 48 us


SMALL_WINDOW = Window(1_000_000, 1_000_000)   # a 1 ms sample: its share of slack is small
NO_PREP = Window(0, 0)


def _host(label="candidate", cost=PREP_COST):
    return Host(label, None, prep_cost=cost)


def _honest(rng, n):
    """Prep CPU of an honest worker: around the yardstick, up to 1.5x (as measured)."""
    return YARDSTICK * rng.uniform(0.8, 1.5, n)


def _feed(audit, where, host, spans):
    for cpu in spans:
        audit.sample(where, host, VIEWS, Window(int(cpu), int(cpu) + 5_000), SMALL_WINDOW)


def test_expected_prep_is_the_hosts_linear_cost():
    assert _host().expected_prep_ns(VIEWS) == pytest.approx(YARDSTICK)
    assert _host().expected_prep_ns(16) == pytest.approx(40_000 + 32_000)
    assert Host("candidate", None).expected_prep_ns(9) == 0.0


def test_honest_prep_near_the_yardstick_passes():
    rng = np.random.default_rng(1)
    audit = CpuAudit()
    host = _host()
    for combo in ("clustered/128", "uniform/4096", "skewed/32"):
        _feed(audit, combo, host, _honest(rng, 40))
    assert audit.problems() == []


def test_honest_prep_with_cache_refill_slack_passes():
    # After a kernel ran, the harness's own prep refills caches: tens of us more.
    audit = CpuAudit()
    _feed(audit, "c", _host(), np.full(30, PREP_FACTOR * YARDSTICK + 0.9 * PREP_SLACK_NS))
    assert audit.problems() == []


@pytest.mark.parametrize("share", [1.0, 0.9])
def test_hidden_work_on_most_samples_is_flagged_naming_the_combo(share):
    rng = np.random.default_rng(2)
    audit = CpuAudit()
    host = _host()
    _feed(audit, "clustered/128", host, _honest(rng, 40))
    spans = _honest(rng, 40)
    spans[:int(share * 40)] += 3_000_000                     # 3 ms of work moved into prep
    _feed(audit, "uniform/4096", host, rng.permutation(spans))
    problems = audit.problems()
    assert len(problems) == 1
    msg = problems[0]
    assert "outside its measured windows in 1 combo(s)" in msg
    assert "in uniform/4096" in msg and "clustered/128" not in msg
    assert "us per sample beyond" in msg and "escaped the measured window" in msg
    extra_us = float(msg.split("in uniform/4096 ")[1].split(" us")[0])
    assert 2_900 <= extra_us <= 3_200
    assert f"the harness's own {YARDSTICK / 1e3:.0f} us" in msg


def test_the_worst_of_several_flagged_combos_is_named():
    rng = np.random.default_rng(3)
    audit = CpuAudit()
    host = _host()
    _feed(audit, "a", host, _honest(rng, 20) + 3_000_000)
    _feed(audit, "b", host, _honest(rng, 20) + 9_000_000)
    _feed(audit, "c", host, _honest(rng, 20))
    (msg,) = audit.problems()
    assert "in 2 combo(s)" in msg and "in b " in msg


def test_one_outlier_among_honest_samples_is_not_flagged():
    rng = np.random.default_rng(4)
    audit = CpuAudit()
    spans = _honest(rng, 20)
    spans[7] = 50_000_000                                     # one 50 ms host hiccup
    _feed(audit, "clustered/128", _host(), spans)
    assert np.mean(spans) > PREP_FACTOR * YARDSTICK + PREP_SLACK_NS, "a plain mean would flag it"
    assert audit.problems() == []


@pytest.mark.parametrize("label", ["best", "scalar"])
def test_best_and_scalar_prep_is_never_counted(label):
    audit = CpuAudit()
    _feed(audit, "clustered/128", _host(label), np.full(30, 50_000_000))
    assert audit.preps == {}
    assert audit.problems() == []
    # ... and does not dilute the candidate's record either
    _feed(audit, "clustered/128", _host(), np.full(30, YARDSTICK + 4_000_000))
    assert len(audit.preps["clustered/128"]) == 30
    assert len(audit.problems()) == 1


def test_the_yardstick_is_the_candidates_own_workers():
    # Each sample is held against the host that ran it: a worker whose null
    # samples were slow gets a larger allowance, and only that one.
    audit = CpuAudit()
    slow = _host(cost=(2_000_000.0, 0.0))
    _feed(audit, "c", slow, np.full(20, 5_000_000))
    assert audit.problems() == []
    audit = CpuAudit()
    _feed(audit, "c", _host(), np.full(20, 5_000_000))
    assert len(audit.problems()) == 1


# ------------------------------------------------------------ windows

def test_cpu_within_wall_passes():
    audit = CpuAudit()
    for label in ("candidate", "best"):
        audit.sample("c", _host(label), VIEWS, NO_PREP, Window(cpu_ns=1_020_000, wall_ns=1_000_000))
        audit.sample("c", _host(label), VIEWS, NO_PREP, Window(cpu_ns=900_000, wall_ns=5_000_000))
    assert audit.problems() == []


@pytest.mark.parametrize("label", ["candidate", "best"])
def test_cpu_above_wall_is_flagged(label):
    audit = CpuAudit()
    audit.sample("clustered/128", _host(label), VIEWS, NO_PREP, Window(cpu_ns=1_000_000, wall_ns=1_000_000))
    audit.sample("uniform/4096", _host(label), VIEWS, NO_PREP, Window(cpu_ns=3_800_000, wall_ns=2_000_000))
    audit.sample("skewed/32", _host(label), VIEWS, NO_PREP, Window(cpu_ns=2_500_000, wall_ns=1_000_000))
    (msg,) = audit.problems()
    assert "more CPU time than wall time in 2 combo(s), first uniform/4096" in msg
    assert f"({label})" in msg and "more than one CPU" in msg


def test_a_stop_charged_past_the_wall_clock_is_not_flagged():
    """Under load the stop after a window is charged to the worker after the
    supervisor's clock stopped (up to 0.1 ms measured, sometimes more once): honest."""
    audit = CpuAudit()
    for i in range(20):
        tail = 400_000 if i % 7 == 0 else 100_000
        audit.sample("q32/uniform/256", _host(), VIEWS, NO_PREP, Window(1_500_000 + tail, 1_500_000))
    assert audit.problems() == []


def test_all_problems_are_reported_together():
    audit = CpuAudit()
    host = _host()
    audit.sample("b", host, VIEWS, NO_PREP, Window(5_000_000, 1_000_000))
    _feed(audit, "a", host, np.full(10, 5_000_000))
    problems = audit.problems()
    assert len(problems) == 2
    assert "wall time" in problems[0] and "outside" in problems[1]


def test_prep_after_a_long_call_gets_a_share_of_it():
    """After a 37 ms call that streamed its inputs, the harness's own prep runs cold;
    a fifth of the sample is allowed, half of it is not."""
    for extra, flagged in ((0.2, False), (0.5, True)):
        audit = CpuAudit()
        host = _host()
        call = 37_000_000
        for _ in range(20):
            prep = host.expected_prep_ns(VIEWS) + extra * call
            audit.sample("gaussian/4096", host, VIEWS, Window(int(prep), int(prep)),
                         Window(call, call))
        assert bool(audit.problems()) == flagged, extra
