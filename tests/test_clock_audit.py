"""The clock audit on synthetic calls: noise in a few calls passes, hidden work is caught."""
import numpy as np

from harness_common.manager import CallResult
from harness_common.timing import ClockAudit


def calls(rng, n, t_us, overhead_us, hidden=0.0, spikes=0, share=1.0):
    out = []
    for i in range(n):
        t = int(t_us * 1e3 * rng.uniform(0.98, 1.02))
        extra = overhead_us * 1e3 * rng.uniform(0.8, 1.2) + hidden * t / (1 - hidden)
        if i < spikes:
            extra += 2_000_000                      # a 2 ms host hiccup inside the window
        cpu = int((t + extra) * share)
        out.append(CallResult(t, cpu, int(t + extra) + 5_000, {}, [], 1, None))
    return out


def audit_of(cand, best, overhead_us=20):
    audit = ClockAudit(overhead_ns=overhead_us * 1e3)
    audit.add_combo("combo/a", cand, best)
    return audit.problems()


def test_honest_candidate_passes_with_and_without_a_best():
    rng = np.random.default_rng(1)
    assert audit_of(calls(rng, 10, 800, 80), calls(rng, 10, 800, 80)) == []
    assert audit_of(calls(rng, 82, 4400, 160), []) == []


def test_one_hiccup_is_noise_not_tampering():
    rng = np.random.default_rng(2)
    assert audit_of(calls(rng, 10, 800, 80, spikes=1), calls(rng, 10, 800, 80)) == []


def test_work_hidden_from_the_timer_is_caught():
    rng = np.random.default_rng(3)
    for hidden in (0.25, 0.75):                     # share of the work the reported time omits
        problems = audit_of(calls(rng, 10, 800, 80, hidden=hidden), calls(rng, 10, 800, 80))
        assert any("timer was patched" in p for p in problems), (hidden, problems)
        problems = audit_of(calls(rng, 10, 800, 80, hidden=0.75), [])
        assert any("timer was patched" in p for p in problems), problems


def test_idling_through_the_window_is_caught():
    rng = np.random.default_rng(4)
    problems = audit_of(calls(rng, 10, 800, 80, share=0.2), calls(rng, 10, 800, 80))
    assert any("idled through the timer" in p for p in problems), problems


def test_clock_running_ahead_of_the_wall_clock_is_caught():
    rng = np.random.default_rng(5)
    cand = calls(rng, 10, 800, 80)
    cand[3] = CallResult(cand[3].t_ns, cand[3].cpu_ns, cand[3].t_ns - 200_000, {}, [], 1, None)
    assert any("longer than the supervisor's wall clock" in p for p in audit_of(cand, []))
