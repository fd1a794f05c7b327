"""A real sandboxed worker (hosts.HostFactory, process.WorkerProcess, worker.py,
sandbox.py) hosting a tiny kernel: it runs as an unprivileged user with no
capabilities under the seccomp filter, it is stopped whenever the supervisor
is not waiting on it, and its windows measure its CPU time through the OS.
A worker that cannot confine itself fails closed: SandboxError, and the
kernel's code never ran. The filter kills the newer forbidden system calls, and
the supervisor names the call that was refused.

Linux x86-64 only; every worker here starts and stops within a few seconds.
"""
import ctypes
import os
import shutil
import signal
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness_common import cbuild, hosts, process, sandbox, wire, worker
from harness_common.calls import Arena, Call, Placed

pytestmark = pytest.mark.skipif(sys.platform != "linux" or os.uname().machine != "x86_64",
                                reason="the worker sandbox is Linux x86-64 only")

ROOT = Path(__file__).resolve().parent.parent
MARKER = "tiny kernel module imported"

KERNELS_C = """\
void fill(float *out, int n, float v) {
    for (int i = 0; i < n; i++) out[i] = v + (float)i;
}
double spin(long n) {
    double x = 1.0;
    for (long i = 0; i < n; i++) x = x * 1.0000001 + 1e-9;   /* a dependent chain */
    return x;
}
"""

KERNELS_PY = f"""\
print({MARKER!r}, flush=True)
from harness_common.cbuild import load_kernel_lib, pointer

CDEF = \"\"\"
void fill(float *out, int n, float v);
double spin(long n);
\"\"\"
ffi, lib = load_kernel_lib(__file__, CDEF)


class Tiny:
    def __init__(self, value, isa):
        self.value = value

    def fill(self, out):
        lib.fill(pointer(ffi, out, "float32", (None,), "out"), out.shape[0], self.value)

    def spin(self, n, out):
        out[0] = lib.spin(n)

    def refuse(self, nr, forge, block, out):
        import ctypes, os, signal, sys
        if forge:                           # write to the SIGSYS report pipe (the last argv)
            os.write(int(sys.argv[-1]), forge.to_bytes(4, "little"))
        if block:
            signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGSYS}})
        if nr:
            ctypes.CDLL(None).syscall(nr, 0, 0, 0)
        out[0] = 1.0
"""


def _build_kernel(d):
    """kernels.py + kernels.c in `d`, built as trial._build does; returns the kernels entry."""
    d.mkdir(parents=True, exist_ok=True)
    py, c = d / "kernels.py", d / "kernels.c"
    py.write_text(KERNELS_PY)
    c.write_text(KERNELS_C)
    (d / "so").mkdir()
    so = cbuild.build(c, cbuild.read_cdef(py), True, "scalar", d / "so")
    return {"py": str(py), "so": str(so), "module": so.name.split(".")[0],
            "class": "Tiny", "methods": ["fill", "spin"]}


def _factory(tmp, kernel, require_sandbox=True):
    return hosts.HostFactory(tmp, "scalar", None, ["reference", "inputs", "run_experiment"],
                             str(ROOT), {"candidate": kernel}, 1 << 20, 8192, 60,
                             require_sandbox=require_sandbox)


def _status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    return _build_kernel(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def host(kernel, tmp_path_factory):
    factory = _factory(tmp_path_factory.mktemp("trial"), kernel)
    h = factory.start("candidate", timeout=30)
    h.worker.request({"cmd": "construct", "kernel": "candidate", "combo": 0, "init": {"value": 2.5}},
                     timeout=30)
    yield h
    hosts.stop_all([h])


def _sample(host, calls, rng):
    """prep + window, as timing.py does one sample; returns (prep span, window span, outputs)."""
    placed = Placed(host.worker.arena, calls, 0, rng)
    _, _, prep = host.worker.request({"cmd": "prep", "kernel": "candidate", "combo": 0,
                                      "calls": placed.specs}, timeout=30)
    span = host.worker.window(30)
    return prep, span, placed.results()


# ------------------------------------------------------------ a confined worker

def test_worker_runs_unprivileged_without_capabilities(host):
    assert host.sandbox == "on"
    st = _status(host.worker.proc.pid)
    uids, gids = st["Uid"].split(), st["Gid"].split()
    assert "0" not in uids and "0" not in gids, "not root in any of real/effective/saved/fs"
    if os.geteuid() == 0:
        assert uids == [str(host.worker.uid)] * 4, "its own fresh user"
        assert host.worker.uid >= process._UID_BASE
    assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0
    assert st["NoNewPrivs"].strip() == "1"
    assert st["Seccomp"].strip() == "2", "seccomp filter mode"


def test_worker_is_stopped_between_requests(host):
    pid = host.worker.proc.pid
    assert _status(pid)["State"].startswith("T"), _status(pid)["State"]
    host.worker.request({"cmd": "status"}, timeout=30)
    assert _status(pid)["State"].startswith("T")
    _sample(host, [Call("fill", {}, {"out": ("float32", (8,))})], np.random.default_rng(0))
    assert _status(pid)["State"].startswith("T")


def test_kernel_runs_in_the_worker_and_writes_the_arena(host):
    _, _, outs = _sample(host, [Call("fill", {}, {"out": ("float32", (37,))})],
                         np.random.default_rng(1))
    np.testing.assert_array_equal(outs[0]["out"], 2.5 + np.arange(37, dtype=np.float32))
    assert MARKER in host.worker.log_path.read_text()


def test_window_cpu_is_positive_and_grows_with_work(host):
    rng = np.random.default_rng(2)

    def cpu(n):
        spans = [_sample(host, [Call("spin", {"n": n}, {"out": ("float64", (1,))})], rng)[1]
                 for _ in range(3)]
        return min(s.cpu_ns for s in spans), spans

    small, spans = cpu(1_000)
    big, big_spans = cpu(20_000_000)
    assert small > 0
    assert big > 10_000_000, "20 M dependent multiply-adds take well over 10 ms"
    assert big > 20 * small
    for s in spans + big_spans:
        assert s.cpu_ns <= s.wall_ns * 1.05 + 200_000, "a single-threaded worker"
    assert host.worker.threads() == 1


def test_prep_cost_yardstick_was_measured(host):
    per_sample, per_view = host.prep_cost
    assert per_sample > 0 and per_view >= 0
    assert host.expected_prep_ns(4) < 50_000_000


# ------------------------------------------------------------ fail closed

def _fake_root(tmp):
    """A copy of harness_common whose seccomp install always fails."""
    root = tmp / "fakeroot"
    shutil.copytree(ROOT / "harness_common", root / "harness_common",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(root / "harness_common" / "sandbox.py", "a") as f:
        f.write(textwrap.dedent("""

            def install_seccomp():          # the test's stand-in: the OS refuses the filter
                return "seccomp filter refused: simulated by the test"
            """))
    root.chmod(0o755)
    return root


def test_a_worker_that_cannot_confine_itself_fails_closed(kernel, tmp_path, monkeypatch):
    monkeypatch.setattr(process, "ROOT", _fake_root(tmp_path))      # the worker's own harness copy
    started = []

    class Recording(process.WorkerProcess):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            started.append(self)
    monkeypatch.setattr(hosts, "WorkerProcess", Recording)
    with pytest.raises(process.SandboxError) as info:
        _factory(tmp_path, kernel).start("candidate", timeout=30)
    msg = str(info.value)
    assert msg.startswith("the candidate worker could not be confined, so no kernel code ran: ")
    assert "seccomp filter refused: simulated by the test" in msg
    (w,) = started
    assert w.exit_info is not None and w.proc.returncode == -signal.SIGKILL, "killed and reaped"
    assert MARKER not in w.log_path.read_text(), "the kernel module was never imported"
    assert w.log.closed and w.arena.fd is None, "the failed worker's files were released"


def test_the_same_failure_without_require_sandbox_runs_and_says_so(kernel, tmp_path, monkeypatch):
    monkeypatch.setattr(process, "ROOT", _fake_root(tmp_path))
    h = _factory(tmp_path, kernel, require_sandbox=False).start("candidate", timeout=30)
    try:
        assert h.sandbox == "off: seccomp filter refused: simulated by the test"
        assert _status(h.worker.proc.pid)["Seccomp"].strip() == "0"
    finally:
        hosts.stop_all([h])


def _in_child(fn):
    """Run fn() in a forked child; returns (its result sent as a wire header, wait status)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                              # the child never returns
        code = 1
        try:
            os.close(r)
            wire.send(w, {"result": fn()})
            code = 0
        except BaseException as exc:  # noqa: BLE001
            try:
                wire.send(w, {"result": None, "exc": repr(exc)})
            except BaseException:  # noqa: BLE001
                pass
        finally:
            os._exit(code)
    os.close(w)
    try:
        header, _ = wire.recv(r, timeout=30)
    except wire.WireError:
        header = {}
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    return header, status


def test_confine_reports_a_refused_seccomp_filter():
    def child():
        sandbox.install_seccomp = lambda: "refused"
        problems = sandbox.confine(process._UID_BASE + 4242, ["reference"], str(ROOT))
        return {"problems": problems, "euid": os.geteuid(), "blocker": sandbox.blocker() is not None}
    header, status = _in_child(child)
    assert os.waitstatus_to_exitcode(status) == 0, header
    got = header["result"]
    assert got["problems"] == ["refused"]
    assert got["euid"] != 0 and got["blocker"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root worker can fail to drop root")
def test_confine_reports_a_worker_left_as_root():
    def child():
        sandbox.install_seccomp = lambda: None
        return sandbox.confine(None, [], str(ROOT))
    header, status = _in_child(child)
    assert os.waitstatus_to_exitcode(status) == 0, header
    problems = header["result"]
    assert "the worker still runs as root" in problems
    assert any(p.startswith("the worker keeps capabilities") for p in problems)


def test_worker_setup_replies_sandbox_error_and_loads_no_kernel(kernel):
    """worker.Worker driven in a forked child over pipes: setup with a refused
    filter answers {"error": "sandbox"} and no kernel code is ever imported."""
    arena = Arena(1 << 20)
    cmd_r, cmd_w = os.pipe()
    rep_r, rep_w = os.pipe()
    msg = {"cmd": "setup", "isa": "scalar", "cpu": None, "blocked": ["reference"],
           "root": str(ROOT), "arena_size": arena.size, "uid": process._UID_BASE + 4343,
           "require_sandbox": True, "kernels": {"candidate": kernel}}

    def child():
        os.close(cmd_w)
        os.close(rep_r)
        sandbox.install_seccomp = lambda: "seccomp filter refused: simulated"
        w = worker.Worker(cmd_r, rep_w, arena.fd)
        rc = w.serve()                                   # until the parent says bye
        loaded = sorted(n for n in sys.modules
                        if n.startswith("kernel_") or n == kernel["module"])
        return {"rc": rc, "loaded": loaded, "classes": sorted(w.classes),
                "prebuilt": sorted(cbuild._PREBUILT or {})}

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            wire.send(w, {"result": child()})
            code = 0
        finally:
            os._exit(code)
    try:
        os.close(w)
        os.close(cmd_r)
        os.close(rep_w)
        os.write(cmd_w, worker.FRAME)
        wire.send(cmd_w, msg)
        reply, _ = wire.recv(rep_r, timeout=30)
        assert reply == {"error": "sandbox", "message": "seccomp filter refused: simulated"}
        os.write(cmd_w, worker.FRAME)
        wire.send(cmd_w, {"cmd": "bye"})
        header, _ = wire.recv(r, timeout=30)
        got = header["result"]
        assert got["rc"] == 0
        assert got["loaded"] == [] and got["classes"] == [], "no kernel module was imported"
        assert got["prebuilt"] == [], "the refused worker keeps nothing it could load"
    finally:
        for fd in (r, cmd_w, rep_r):
            os.close(fd)
        _, status = os.waitpid(pid, 0)
        arena.close()
    assert os.waitstatus_to_exitcode(status) == 0


# ------------------------------------------------------------ naming a refused call

MKDIR = "mkdir (kernel code may not create, change, rename or remove a file)"


@pytest.mark.parametrize("forge, block, named", [
    (0, False, "forbidden system call " + MKDIR),
    (56, False, "forbidden system call " + MKDIR),          # the handler's report comes last
    (0, True, "forbidden system call a system call it could not name"),   # still a death
])
def test_a_refused_call_is_named_and_is_always_a_violation(kernel, tmp_path, forge, block, named):
    h = _factory(tmp_path, kernel).start("candidate", timeout=30)
    try:
        h.worker.request({"cmd": "construct", "kernel": "candidate", "combo": 0,
                          "init": {"value": 1.0}}, timeout=30)
        call = Call("refuse", {"nr": sandbox.FORBIDDEN_SYSCALLS["mkdir"], "forge": forge,
                               "block": block}, {"out": ("float32", (1,))})
        with pytest.raises(process.WorkerCrash) as info:
            _sample(h, [call], np.random.default_rng(0))
        assert info.value.policy and info.value.reason.startswith(named), info.value.reason
        assert h.worker.proc.returncode == -signal.SIGSYS
    finally:
        hosts.stop_all([h])


def test_a_forged_report_without_a_refused_call_changes_nothing(kernel, tmp_path):
    h = _factory(tmp_path, kernel).start("candidate", timeout=30)
    try:
        h.worker.request({"cmd": "construct", "kernel": "candidate", "combo": 0,
                          "init": {"value": 1.0}}, timeout=30)
        call = Call("refuse", {"nr": 0, "forge": 56, "block": False}, {"out": ("float32", (1,))})
        _, _, outs = _sample(h, [call], np.random.default_rng(0))
        assert outs[0]["out"][0] == 1.0, "the worker runs on: a report alone is no death"
    finally:
        hosts.stop_all([h])


# ------------------------------------------------------------ the seccomp filter

def _syscall_after_filter(nr, *args):
    def child():
        assert sandbox.install_seccomp() is None
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return _in_child(child)


@pytest.mark.parametrize("name", ["sched_setattr", "pidfd_open", "pidfd_getfd", "pidfd_send_signal",
                                  "process_madvise", "io_uring_setup", "io_uring_enter",
                                  "io_uring_register", "clone", "mkdir"])
def test_forbidden_syscalls_kill_the_process(name):
    nr = sandbox.FORBIDDEN_SYSCALLS[name]
    _, status = _syscall_after_filter(nr, 0, 0, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS, name


def test_x32_syscall_numbers_kill_the_process():
    _, status = _syscall_after_filter(0x40000000 | 39, 0, 0, 0)     # x32 getpid
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_signals_may_only_target_the_worker_itself():
    _, status = _syscall_after_filter(62, os.getpid(), 0)           # kill(parent, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS
    header, status = _in_child(lambda: (sandbox.install_seccomp(), os.kill(os.getpid(), 0))[1])
    assert os.waitstatus_to_exitcode(status) == 0


def test_allowed_syscalls_still_work_under_the_filter():
    header, status = _syscall_after_filter(39)                      # getpid
    assert os.waitstatus_to_exitcode(status) == 0
    assert header["result"] > 0
