"""The supervisor's handle on one worker process, and the only clock a verdict uses.

A worker is started as `python -I` with a scrubbed environment, resource
limits, its own session and its own shared-memory arena. It runs only while
the supervisor waits on it: after every answer the supervisor stops it
(SIGSTOP) and continues it (SIGCONT) just before the next command. So a
worker can do nothing while another worker is measured, and every
nanosecond of CPU it uses falls inside a span the supervisor accounts for.

A kernel call's figure is the worker's CPU time across the window, read here
from the kernel's scheduler accounting while the worker is stopped, never
from anything the worker says. Every way a worker can die becomes a
WorkerCrash that names the reason.
"""
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import sandbox, wire
from .worker import FAILED, FRAME, GO, OK

# Loads harness_common from the supervisor's own checkout by path: the worker
# runs with -I, so nothing on PYTHONPATH, the cwd or a stray .pth can shadow it.
_BOOT = (
    "import importlib.util, sys\n"
    "root = sys.argv[1]\n"
    "spec = importlib.util.spec_from_file_location('harness_common', root + "
    "'/harness_common/__init__.py', submodule_search_locations=[root + '/harness_common'])\n"
    "m = importlib.util.module_from_spec(spec); sys.modules['harness_common'] = m\n"
    "spec.loader.exec_module(m)\n"
    "from harness_common import worker\n"
    "sys.exit(worker.main(sys.argv[2:]))\n"
)

ROOT = Path(__file__).resolve().parent.parent
# Unprivileged users for workers: a fresh one each, from a range no account uses,
# so no two workers (of this trial or of another) can signal or read each other.
_UID_BASE, _UID_SPAN = 1_800_000_000, 100_000_000


class WorkerCrash(RuntimeError):
    """The worker died, hung or broke a limit; `reason` says how."""

    def __init__(self, reason, policy=False):
        super().__init__(reason)
        self.reason = reason
        self.policy = policy      # True when the death was a forbidden action


class KernelError(RuntimeError):
    """Kernel code raised, failed to import, or lacks the API; `kind` says which."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind, self.message = kind, message


class SandboxError(RuntimeError):
    """The worker could not confine itself, so it ran no kernel code."""


@dataclass(frozen=True)
class Window:
    """One measured span of a worker: its CPU time (the OS's) and the supervisor's wall time."""
    cpu_ns: int
    wall_ns: int


class WorkerProcess:
    def __init__(self, role, log_path, arena, memory_mb, cpu_seconds):
        self.role, self.log_path, self.arena = role, Path(log_path), arena
        cmd_r, self.cmd_w = os.pipe()
        self.reply_r, reply_w = os.pipe()
        self.refused_r, refused_w = os.pipe()       # the SIGSYS handler's report (sandbox.py)
        self.log = open(self.log_path, "wb")
        self.uid = _UID_BASE + secrets.randbelow(_UID_SPAN)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT, str(ROOT), str(cmd_r), str(reply_w), str(arena.fd),
             str(refused_w)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            env=dict(sandbox.WORKER_ENV), pass_fds=(cmd_r, reply_w, arena.fd, refused_w), close_fds=True,
            start_new_session=True, preexec_fn=sandbox.limit_resources(memory_mb, cpu_seconds))
        for fd in (cmd_r, reply_w, refused_w):
            os.close(fd)
        self.memory_mb = memory_mb
        self.peak_kb = 0
        self.exit_info = None
        self.running = True
        self.phase = "startup"
        # Linux per-process CPU clock id (see clock_getcpuclockid(3)).
        self._cpu_clock = ((~self.proc.pid) << 3) | 2

    # ------------------------------------------------------------ running and stopped

    def _cont(self):
        if not self.running:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.running = True

    def _stop(self):
        """Stop the worker and wait until it is stopped (or has died)."""
        if not self.running:
            return
        try:
            os.kill(self.proc.pid, signal.SIGSTOP)
            pid, status, usage = os.wait4(self.proc.pid, os.WUNTRACED)
        except (ProcessLookupError, ChildProcessError):
            raise self._death()
        if not os.WIFSTOPPED(status):
            self._record_exit(status, usage)
            raise self._death()
        self.running = False

    def cpu_ns(self):
        """The worker's CPU time so far, from the kernel's scheduler accounting."""
        return time.clock_gettime_ns(self._cpu_clock)

    # ------------------------------------------------------------ talking

    def request(self, header, arrays=None, timeout=60.0, phase=None):
        """One command; returns (reply, arrays, Window); raises WorkerCrash or KernelError."""
        if phase:
            self.phase = phase
        c0, w0 = self.cpu_ns(), time.monotonic_ns()
        self._cont()
        try:
            os.write(self.cmd_w, FRAME)
            wire.send(self.cmd_w, header, arrays)
            reply, out = wire.recv(self.reply_r, timeout=timeout)
        except wire.WireTimeout:
            self.kill()
            raise WorkerCrash(f"timeout: no answer within {timeout:.0f} s during {self.phase}")
        except (wire.WireError, OSError):
            raise self._death()
        w1 = time.monotonic_ns()
        self._stop()
        span = Window(self.cpu_ns() - c0, w1 - w0)
        self._sample_memory()
        if "error" in reply:
            if reply["error"] == "internal":
                raise RuntimeError(f"worker harness error:\n{reply['message']}")
            if reply["error"] == "sandbox":
                raise SandboxError(reply["message"])
            raise KernelError(reply["error"], reply["message"])
        return reply, out, span

    def window(self, timeout):
        """Run the prepared calls; returns their Window. The worker is stopped before and after."""
        self._stop()
        c0, w0 = self.cpu_ns(), time.monotonic_ns()
        self._cont()
        try:
            os.write(self.cmd_w, GO)
            status = wire.read_exact(self.reply_r, 1, time.monotonic() + timeout)
        except wire.WireTimeout:
            self.kill()
            raise WorkerCrash(f"timeout: kernel call did not return within {timeout:.0f} s "
                              f"during {self.phase}")
        except (wire.WireError, OSError):
            raise self._death()
        if bytes(status) == FAILED:                 # the kernel raised: its story follows
            try:
                reply, _ = wire.recv(self.reply_r, timeout=timeout)
            except (wire.WireError, OSError):
                raise self._death()
            raise KernelError(reply.get("error", "kernel"), reply.get("message", "unknown error"))
        self._stop()
        # Wall time ends once the stop is confirmed, like the CPU reading: the
        # worker runs on past its status byte until the SIGSTOP lands, and a
        # supervisor delayed there (a busy machine) must not make one thread's
        # CPU time look longer than the wall time around it.
        span = Window(self.cpu_ns() - c0, time.monotonic_ns() - w0)
        if bytes(status) != OK:
            raise RuntimeError(f"worker answered the go byte with {bytes(status)!r}")
        return span

    def threads(self):
        """Threads in the worker now (from /proc, not from the worker)."""
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/task"))
        except OSError:
            return 1

    def _sample_memory(self):
        hwm = sandbox.proc_status(self.proc.pid).get("VmHWM", "0 kB").split()[0]
        self.peak_kb = max(self.peak_kb, int(hwm))

    # ------------------------------------------------------------ ending

    def _record_exit(self, status, usage):
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.peak_kb = max(self.peak_kb, usage.ru_maxrss)
        self.exit_info = (self.proc.returncode, usage)
        self.running = False

    def _reap(self, block=True):
        while self.exit_info is None:
            try:
                pid, status, usage = os.wait4(self.proc.pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return self.exit_info
            if pid == 0:
                return None
            if not os.WIFSTOPPED(status) and not os.WIFCONTINUED(status):
                self._record_exit(status, usage)
        return self.exit_info

    def _death(self):
        """Reap a worker whose pipe broke and explain how it died."""
        deadline = time.monotonic() + 5
        while self._reap(block=False) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.exit_info is None:
            self.kill()
        code = self.proc.returncode
        tail = self.log_tail()
        where = f" during {self.phase}"
        if code is not None and code < 0:
            sig = -code
            if sig == signal.SIGSYS:          # the death is the verdict, the report its name
                return WorkerCrash(f"forbidden system call {sandbox.refused_call(self._refused())}"
                                   + where, policy=True)
            if sig == signal.SIGXCPU:
                return WorkerCrash("CPU time limit exceeded" + where)
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
            return WorkerCrash(f"killed by {name}" + where + (f"; worker output: {tail}" if tail else ""))
        if "MemoryError" in tail or "Cannot allocate memory" in tail:
            return WorkerCrash(f"out of memory (limit {self.memory_mb} MB)" + where)
        return WorkerCrash(f"worker exited with code {code}" + where + (f": {tail}" if tail else ""))

    def _refused(self):
        """The last number the worker's SIGSYS handler reported, or None."""
        os.set_blocking(self.refused_r, False)
        try:
            data = os.read(self.refused_r, 1 << 16)
        except OSError:
            return None
        return int.from_bytes(data[-4:], "little") if len(data) >= 4 else None

    def log_tail(self, lines=6):
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._reap()

    def close(self):
        """Ask the worker to exit, reap it, and return its peak RSS in MB."""
        if self.exit_info is None:
            try:
                self._cont()
                os.write(self.cmd_w, FRAME)
                wire.send(self.cmd_w, {"cmd": "bye"})
            except OSError:
                pass
            deadline = time.monotonic() + 5
            while self._reap(block=False) is None and time.monotonic() < deadline:
                time.sleep(0.005)
            if self.exit_info is None:
                self.kill()
        for fd in (self.cmd_w, self.reply_r, self.refused_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()
        return self.peak_kb / 1024.0
