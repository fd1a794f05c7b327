"""Supervisor-side handle on one worker process.

Spawns `python -I` with a scrubbed environment, resource limits and its own
session; talks to it over two pipes it created; reads its CPU clock and
memory from the OS (never from the worker's word); turns every way a worker
can die into a WorkerCrash that names the reason.
"""
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import sandbox, wire

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


class WorkerCrash(RuntimeError):
    """The worker died, hung or broke a limit; `reason` says how."""

    def __init__(self, reason, policy=False):
        super().__init__(reason)
        self.reason = reason
        self.policy = policy      # True when the death was a forbidden action


@dataclass(frozen=True)
class CallResult:
    t_ns: int               # the worker's own measure of the call
    cpu_ns: int | None      # the OS's CPU time for the worker across the call and its outputs
    wall_ns: int            # the supervisor's wall clock across the same span
    outputs: dict
    inputs_modified: list
    threads: int
    oracle: str | None      # how kernel code reached for the oracle, if it did


class KernelError(RuntimeError):
    """Kernel code raised, failed to import, or lacks the API; `kind` says which."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind, self.message = kind, message


def _proc_status(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return {k: v.strip() for k, v in (line.split(":", 1) for line in f if ":" in line)}
    except OSError:
        return {}


class Worker:
    def __init__(self, role, log_path, memory_mb, cpu_seconds):
        self.role, self.log_path = role, Path(log_path)
        cmd_r, self.cmd_w = os.pipe()
        self.reply_r, reply_w = os.pipe()
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT, str(ROOT), str(cmd_r), str(reply_w)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            env=dict(sandbox.WORKER_ENV), pass_fds=(cmd_r, reply_w), close_fds=True,
            start_new_session=True, preexec_fn=sandbox.limit_resources(memory_mb, cpu_seconds))
        os.close(cmd_r)
        os.close(reply_w)
        self.memory_mb = memory_mb
        self.peak_kb = 0
        self.exit_info = None
        self.phase = "startup"
        # Linux per-process CPU clock id (see clock_getcpuclockid(3)).
        self._cpu_clock = ((~self.proc.pid) << 3) | 2

    # ------------------------------------------------------------ talking

    def request(self, header, arrays=None, timeout=60.0, phase=None):
        """Send one command and wait for its reply; raises WorkerCrash or KernelError."""
        if phase:
            self.phase = phase
        try:
            wire.send(self.cmd_w, header, arrays)
            reply, out = wire.recv(self.reply_r, timeout=timeout)
        except wire.WireTimeout:
            self.kill()
            raise WorkerCrash(f"timeout: no answer within {timeout:.0f} s during {self.phase}")
        except (wire.WireError, BrokenPipeError, OSError):
            raise self._death()
        self._sample_memory()
        if "error" in reply:
            if reply["error"] == "internal":
                raise RuntimeError(f"worker harness error:\n{reply['message']}")
            raise KernelError(reply["error"], reply["message"])
        return reply, out

    def call(self, prep, arrays=None, verify=False, timeout=60.0):
        """One kernel call: prepare, time it (CPU clock and wall clock read here), collect."""
        self.request(prep, arrays, timeout=timeout)
        c0, w0 = self.cpu_ns(), time.monotonic_ns()
        try:
            os.write(self.cmd_w, b"g")
            raw = wire.read_exact(self.reply_r, 8, time.monotonic() + timeout)
        except wire.WireTimeout:
            self.kill()
            raise WorkerCrash(f"timeout: kernel call did not return within {timeout:.0f} s "
                              f"during {self.phase}")
        except (wire.WireError, OSError):
            raise self._death()
        t_ns = int.from_bytes(raw, "little", signed=True)
        try:
            reply, outputs = wire.recv(self.reply_r, timeout=timeout)
        except wire.WireTimeout:
            self.kill()
            raise WorkerCrash(f"timeout: no outputs within {timeout:.0f} s during {self.phase}")
        except (wire.WireError, OSError):
            raise self._death()
        w1, c1 = time.monotonic_ns(), self.cpu_ns()
        if t_ns < 0 or "error" in reply:      # the kernel raised
            raise KernelError(reply.get("error", "kernel"), reply.get("message", "unknown error"))
        reply, _ = self.request({"cmd": "finish", "verify": verify}, timeout=timeout)
        cpu = None if c0 is None or c1 is None else c1 - c0
        return CallResult(t_ns, cpu, w1 - w0, outputs, reply["inputs_modified"], reply["threads"],
                          reply.get("oracle"))

    def cpu_ns(self):
        """The worker's CPU time so far, from the kernel's scheduler accounting."""
        try:
            return time.clock_gettime_ns(self._cpu_clock)
        except OSError:
            return None

    def _sample_memory(self):
        hwm = _proc_status(self.proc.pid).get("VmHWM", "0 kB").split()[0]
        self.peak_kb = max(self.peak_kb, int(hwm))

    # ------------------------------------------------------------ ending

    def _reap(self, block=True):
        if self.exit_info is None:
            try:
                pid, status, usage = os.wait4(self.proc.pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return self.exit_info
            if pid == 0:
                return None
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            self.peak_kb = max(self.peak_kb, usage.ru_maxrss)
            self.exit_info = (self.proc.returncode, usage)
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
            if sig == signal.SIGSYS:
                return WorkerCrash(
                    "forbidden system call" + where + ": kernel code tried to start a thread or "
                    "process, write, create or remove a file, sleep, change a clock, limit or "
                    "priority, arm a timer or signal handler, open a socket, or signal another "
                    "process", policy=True)
            if sig == signal.SIGXCPU:
                return WorkerCrash("CPU time limit exceeded" + where)
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
            return WorkerCrash(f"killed by {name}" + where + (f"; worker output: {tail}" if tail else ""))
        if "MemoryError" in tail or "Cannot allocate memory" in tail:
            return WorkerCrash(f"out of memory (limit {self.memory_mb} MB)" + where)
        return WorkerCrash(f"worker exited with code {code}" + where + (f": {tail}" if tail else ""))

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
                wire.send(self.cmd_w, {"cmd": "bye"})
            except OSError:
                pass
            deadline = time.monotonic() + 5
            while self._reap(block=False) is None and time.monotonic() < deadline:
                time.sleep(0.005)
            if self.exit_info is None:
                self.kill()
        for fd in (self.cmd_w, self.reply_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()
        return self.peak_kb / 1024.0
