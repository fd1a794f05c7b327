"""Confinement of the worker process that runs kernel code.

Spawn side (supervisor): a scrubbed environment and resource limits.
Worker side, in `confine()`, before any kernel code exists in the process:
an unprivileged user of the worker's own with no capabilities, not dumpable
(so no other process can read its memory, and it can read no one's), an
import blocker that keeps the target's oracle modules (reference, inputs)
out of kernel code's reach, and a seccomp filter that refuses any attempt to
start a thread or process, reach another process (memory, scheduling,
signals), change clocks, limits or priorities, arm timers or signal handlers,
sleep, or create, open for writing, rename or remove a file. A refused call
kills the worker by SIGSYS, after naming the call to the supervisor.
"""
import ctypes
import importlib.abc
import os
import resource
import struct
import sys

# The worker sees only this environment: no LD_PRELOAD, no PYTHON*, and BLAS
# libraries told not to start helper threads (the filter would kill them).
WORKER_ENV = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


def limit_resources(memory_mb, cpu_seconds, log_mb=64):
    """preexec_fn for the worker: address-space, CPU-time, core and file-size limits,
    and death with the supervisor (a killed trial leaves no kernel spinning)."""
    def apply():
        if sys.platform == "linux":
            ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)        # PR_SET_PDEATHSIG, SIGKILL
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (log_mb << 20, log_mb << 20))
        # No effect for root, but stops a non-root worker from forking.
        resource.setrlimit(resource.RLIMIT_NPROC, (0, resource.getrlimit(resource.RLIMIT_NPROC)[1]))
    return apply


# ---------------------------------------------------------------- seccomp

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_RET_KILL = 0x80000000          # SECCOMP_RET_KILL_PROCESS: another ABI, nothing to name
_RET_TRAP = 0x00030000          # SECCOMP_RET_TRAP: SIGSYS, which the reporter turns into death
_RET_ALLOW = 0x7FFF0000

# x86-64 system call numbers the worker may never make after setup, by what
# kernel code would be trying to do (the supervisor's message says which).
_FORBIDDEN = {
    "start a thread or process": {
        "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "clone3": 435},
    "reach another process": {
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
        "pidfd_open": 434, "pidfd_getfd": 438, "pidfd_send_signal": 424, "process_madvise": 440,
        "migrate_pages": 256, "move_pages": 279,
        "shmget": 29, "shmat": 30, "msgget": 68, "semget": 64},      # no channel between workers
    "change a clock, timer, signal handler, limit or priority": {
        "settimeofday": 164, "clock_settime": 227, "adjtimex": 159, "clock_adjtime": 305,
        "alarm": 37, "setitimer": 38, "timer_create": 222, "rt_sigaction": 13,
        "setrlimit": 160, "sched_setaffinity": 203, "setpriority": 141,
        "sched_setscheduler": 144, "sched_setparam": 142, "personality": 135,
        "sched_setattr": 314, "ioprio_set": 251},
    "reach the system (sockets, io_uring, counters, mounts, modules)": {
        "socket": 41, "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "perf_event_open": 298,
        "bpf": 321, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
        "unshare": 272, "setns": 308, "reboot": 169, "kexec_load": 246,
        "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "swapon": 167, "swapoff": 168},
    # the ledger, best/, /proc knobs
    "create, change, rename or remove a file": {
        "creat": 85, "openat2": 437, "unlink": 87, "unlinkat": 263, "rename": 82,
        "renameat": 264, "renameat2": 316, "rmdir": 84, "link": 86, "linkat": 265,
        "symlink": 88, "symlinkat": 266, "mkdir": 83, "mkdirat": 258, "truncate": 76,
        "chmod": 90, "fchmodat": 268, "chown": 92, "fchownat": 260, "lchown": 94,
        "mknod": 133, "mknodat": 259, "utimensat": 280, "utimes": 235},
    # a timed call that waits instead of working is hiding something
    "sleep or wait": {
        "nanosleep": 35, "clock_nanosleep": 230, "select": 23, "pselect6": 270, "poll": 7,
        "ppoll": 271, "epoll_wait": 232, "epoll_pwait": 281, "epoll_pwait2": 441, "pause": 34},
}
FORBIDDEN_SYSCALLS = {name: nr for calls in _FORBIDDEN.values() for name, nr in calls.items()}
# Signals may only target the worker itself (first argument == its pid).
_SELF_SIGNAL_SYSCALLS = {"kill": 62, "tkill": 200, "tgkill": 234,
                         "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297}
_PRLIMIT64 = 302                # allowed only as a query (new_limit == NULL)
# Files may be opened for reading only: flag bits O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND.
_OPEN_WRITE_BITS = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000
_OPEN_FLAGS_ARG = {"open": (2, 1), "openat": (257, 2)}    # syscall number, flags argument
_WHY = {**{nr: (n, why) for why, calls in _FORBIDDEN.items() for n, nr in calls.items()},
        **{nr: (n, "signal another process") for n, nr in _SELF_SIGNAL_SYSCALLS.items()},
        **{nr: (n, "open a file for writing") for n, (nr, _) in _OPEN_FLAGS_ARG.items()},
        _PRLIMIT64: ("prlimit64", "change a resource limit")}


def refused_call(nr):
    """'clone (kernel code may not start a thread or process)' for a refused call's number."""
    if nr is None or nr not in _WHY:
        return "a system call it could not name" if nr is None else f"system call {nr}"
    name, why = _WHY[nr]
    return f"{name} (kernel code may not {why})"


def _stmt(code, k):
    return struct.pack("HBBI", code, 0, 0, k)


def _jeq(k, jt, jf):
    return struct.pack("HBBI", 0x15, jt, jf, k)


def _filter_program(pid):
    ld_w = 0x20        # BPF_LD | BPF_W | BPF_ABS
    ret = 0x06         # BPF_RET | BPF_K
    prog = [_stmt(ld_w, 4), _jeq(_AUDIT_ARCH_X86_64, 1, 0), _stmt(ret, _RET_KILL),
            _stmt(ld_w, 0),
            struct.pack("HBBI", 0x35, 0, 1, _X32_BIT),   # BPF_JGE: x32 numbers
            _stmt(ret, _RET_KILL)]
    for nr in FORBIDDEN_SYSCALLS.values():
        prog += [_jeq(nr, 0, 1), _stmt(ret, _RET_TRAP)]
    for nr in _SELF_SIGNAL_SYSCALLS.values():
        prog += [_jeq(nr, 0, 4), _stmt(ld_w, 16), _jeq(pid, 0, 1),
                 _stmt(ret, _RET_ALLOW), _stmt(ret, _RET_TRAP)]
    for nr, arg in _OPEN_FLAGS_ARG.values():
        # jset: any write bit set -> trap; else allow
        prog += [_jeq(nr, 0, 4), _stmt(ld_w, 16 + 8 * arg),
                 struct.pack("HBBI", 0x45, 0, 1, _OPEN_WRITE_BITS),
                 _stmt(ret, _RET_TRAP), _stmt(ret, _RET_ALLOW)]
    prog += [_jeq(_PRLIMIT64, 0, 5), _stmt(ld_w, 32), _jeq(0, 0, 2), _stmt(ld_w, 36),
             _jeq(0, 1, 0), _stmt(ret, _RET_TRAP)]
    prog.append(_stmt(ret, _RET_ALLOW))
    return prog


def _drop_privileges(uid, supervisor=None):
    """Become `uid` (when started as root) with no capabilities; returns problems."""
    problems = []
    if os.geteuid() == 0 and uid is not None:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        except OSError as exc:
            problems.append(f"cannot drop root for uid {uid}: {exc.strerror}")
    # A change of credentials clears the parent-death signal: arm it again, so a
    # worker never outlives its supervisor (stopped workers would wait forever).
    ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)                       # PR_SET_PDEATHSIG, SIGKILL
    if supervisor is not None and os.getppid() != supervisor:
        os._exit(1)                                              # the supervisor is gone already
    if os.geteuid() == 0:
        problems.append("the worker still runs as root")
    caps = proc_status().get("CapEff")
    if caps is None or int(caps, 16) != 0:
        problems.append(f"the worker keeps capabilities (CapEff {caps})")
    if ctypes.CDLL(None).prctl(4, 0, 0, 0, 0) != 0 or ctypes.CDLL(None).prctl(3, 0, 0, 0, 0) != 0:
        problems.append("cannot make the worker non-dumpable")     # PR_SET/GET_DUMPABLE
    return problems


def proc_status(pid="self"):
    """/proc/<pid>/status as {field: value} ({} when unreadable)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return {k: v.strip() for k, v in (line.split(":", 1) for line in f if ":" in line)}
    except OSError:
        return {}


_BLOCKER = None


def confine(uid, blocked, project_root, supervisor=None, report_fd=None):
    """The whole confinement, in order; returns what could not be put in place.
    `supervisor`: the pid that started this worker (it must still be the parent);
    `report_fd`: where a refused system call's number goes (see `_report_refusals`)."""
    global _BLOCKER
    if sys.platform != "linux":
        return [f"no process confinement on {sys.platform}"]
    problems = _drop_privileges(uid, supervisor)
    _BLOCKER = block_imports(blocked, project_root)
    if report_fd is not None:
        _report_refusals(report_fd)
    reason = install_seccomp()
    if reason:
        problems.append(reason)
    return problems


def blocker():
    """The import blocker `confine` installed (None before)."""
    return _BLOCKER


def make_supervisor_private():
    """Not dumpable: no process without CAP_SYS_PTRACE can read the supervisor's
    memory (the seed, the expected outputs, which outputs get re-checked)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)                  # PR_SET_DUMPABLE, 0


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def install_seccomp():
    """Install the filter for this process; returns None or a reason it is unavailable."""
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        return f"seccomp filter not available on {sys.platform}/{os.uname().machine}"
    libc = ctypes.CDLL(None, use_errno=True)
    prog = _filter_program(os.getpid())
    fprog = _SockFprog(len(prog), b"".join(prog))
    if libc.prctl(38, 1, 0, 0, 0) != 0:                       # PR_SET_NO_NEW_PRIVS
        return f"prctl(NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}"
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:     # PR_SET_SECCOMP, FILTER
        return f"seccomp filter refused: {os.strerror(ctypes.get_errno())}"
    return None


# A refused call raises SIGSYS (SECCOMP_RET_TRAP) in a handler of a few bytes of
# machine code, not Python: it writes the call's number (siginfo si_syscall) to
# the supervisor's report pipe, then makes one more refused call. SIGSYS is
# blocked inside its own handler, so the kernel resets it to the default action
# and the process dies by SIGSYS, as under SECCOMP_RET_KILL_PROCESS. The death is
# the verdict; the report only names it. Kernel code cannot install a handler of
# its own (rt_sigaction is refused), a blocked or ignored SIGSYS is reset by the
# kernel, and whatever kernel code writes to the pipe can at most misname a
# death it caused itself. Without the handler (no report_fd) SIGSYS kills too.
def _handler_code(fd):
    return (b"\x8b\x46\x18"                        # mov eax, [rsi+24]   si_syscall
            b"\x89\x44\x24\xf8"                    # mov [rsp-8], eax
            b"\xbf" + struct.pack("<I", fd) +       # mov edi, fd
            b"\x48\x8d\x74\x24\xf8"                # lea rsi, [rsp-8]
            b"\xba\x04\x00\x00\x00"                # mov edx, 4
            b"\xb8\x01\x00\x00\x00\x0f\x05"        # write(fd, &nr, 4)
            b"\xb8\x0d\x00\x00\x00\x0f\x05"        # rt_sigaction: refused, SIGSYS is blocked
            b"\x0f\x0b")                            # ud2: never reached under the filter


def _report_refusals(fd):
    """Install the SIGSYS handler above (before the filter: afterwards sigaction is refused)."""
    libc = ctypes.CDLL(None)
    libc.mmap.restype = ctypes.c_void_p     # PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS:
    page = libc.mmap(None, ctypes.c_size_t(4096), 3, 0x22, -1, ctypes.c_long(0))
    if page in (None, ctypes.c_void_p(-1).value):
        return
    code = _handler_code(fd)
    ctypes.memmove(page, code, len(code))
    if libc.mprotect(ctypes.c_void_p(page), ctypes.c_size_t(4096), 5) != 0:   # PROT_READ|EXEC
        return
    act = (ctypes.c_char * 152)()           # glibc struct sigaction (x86-64)
    struct.pack_into("<Q", act, 0, page)   # sa_sigaction
    struct.pack_into("<i", act, 136, 4)    # sa_flags = SA_SIGINFO, sa_mask empty
    libc.sigaction(31, act, None)          # SIGSYS


# ---------------------------------------------------------------- imports

class OracleImportError(ImportError):
    """Kernel code reached for the oracle: a policy violation, not a build error."""


class OracleBlocker(importlib.abc.MetaPathFinder):
    """Refuses imports of the target's oracle modules from kernel code, and counts them."""

    def __init__(self, blocked):
        self.blocked = set(blocked)
        self.attempts = []

    def find_spec(self, name, path=None, target=None):
        leaf = name.rsplit(".", 1)[-1]
        if name in self.blocked or leaf in self.blocked:
            self.attempts.append(name)
            raise OracleImportError(f"kernel code may not import {name!r}: the reference and the "
                                    f"input generators stay in the supervisor")
        return None

    def breach(self):
        """Why the oracle may have been reached despite the blocker, or None."""
        if self.attempts:
            return f"kernel code tried to import {self.attempts[0]!r} (the oracle stays in the supervisor)"
        if sys.meta_path[:1] != [self]:
            return "kernel code removed or displaced the harness's import blocker"
        loaded = sorted(n for n in sys.modules if n in self.blocked or n.rsplit(".", 1)[-1] in self.blocked)
        if loaded:
            return f"kernel code loaded the oracle module {loaded[0]!r}"
        return None


def block_imports(blocked, project_root):
    """Close every route from kernel code to the target's oracle: no path to the
    project's packages (the editable-install finder, the root on sys.path), and
    the blocker first on sys.meta_path. Returns the blocker."""
    root = os.path.realpath(project_root)
    sys.meta_path[:] = [f for f in sys.meta_path
                        if not type(f).__module__.startswith("__editable__")]
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != root]
    for name in [n for n in sys.modules if n == "targets" or n.startswith("targets.")]:
        del sys.modules[name]
    blocker = OracleBlocker(blocked)
    sys.meta_path.insert(0, blocker)
    return blocker
