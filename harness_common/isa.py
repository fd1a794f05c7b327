"""CPU feature detection, the HARNESS_ISA cap, and the AMX permission request.

Levels are cumulative: a kernel told `avx512` may use everything `avx2` may.
Each level names a fixed feature set so that a kernel compiled for it never
meets a missing instruction on a machine that reports the level.

A level above the machine's is emulated, not refused: the module is built
for the machine's own level with the higher level's intrinsics supplied in
C (SIMDe for AVX-512, harness_amx_emu.h for AMX tiles), so its results can
be checked anywhere but its speed means nothing (see cbuild.flags_for).
"""
import ctypes
import os

LEVELS = ("scalar", "avx2", "avx512", "amx")

# /proc/cpuinfo flag names each level needs, on top of the level below it.
_LEVEL_FLAGS = {
    "scalar": set(),
    "avx2": {"avx2", "fma", "bmi1", "bmi2", "popcnt", "f16c"},   # = HARNESS_TARGET_AVX2
    "avx512": {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd",
               "avx512_vnni", "avx512vbmi"},
    "amx": {"avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"},
}

# Linux: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), needed once per
# process before the first tile instruction or the kernel kills it (SIGILL).
_SYS_ARCH_PRCTL = 158
_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18


class IsaError(ValueError):
    """A bad HARNESS_ISA value."""


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The feature flags the kernel reports for the first CPU (empty if unknown)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model(cpuinfo="/proc/cpuinfo"):
    """The first CPU's model name, spaces collapsed (e.g. 'AMD EPYC 7B13'); '' if unknown.
    The ledger records it per row, so a report can show where the machine changed."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return ""


def machine_level(flags=None):
    """The highest level whose features this CPU has."""
    flags = cpu_flags() if flags is None else flags
    need, best = set(), "scalar"
    for level in LEVELS:
        need |= _LEVEL_FLAGS[level]
        if not need <= flags:
            break
        best = level
    return best


def parse_cap(value):
    """Validate a HARNESS_ISA value; None or '' means no cap."""
    if value in (None, ""):
        return None
    value = value.strip().lower()
    if value not in LEVELS:
        raise IsaError(f"HARNESS_ISA={value!r} is not one of {', '.join(LEVELS)}; "
                       f"unset it or pick one of those")
    return value


def resolve(cap=None, flags=None):
    """The level kernels run at: the cap if one is set (emulated above the
    machine's level, see `emulated`), else the machine's own."""
    cap = parse_cap(cap)
    return machine_level(flags) if cap is None else cap


def emulated(level, flags=None):
    """True when this machine lacks `level`: its code runs emulated, for correctness only."""
    return LEVELS.index(level) > LEVELS.index(machine_level(flags))


def native_level(level, flags=None):
    """The highest level a build at `level` may hold instructions of on this machine."""
    return LEVELS[min(LEVELS.index(level), LEVELS.index(machine_level(flags)))]


def describe(level, flags=None):
    """`level` as result blocks and ledgers show it: 'amx (emulated)' where emulated."""
    return f"{level} (emulated)" if emulated(level, flags) else level


def levels_up_to(level):
    """Every level from scalar to `level`, for tests that try each one."""
    return LEVELS[: LEVELS.index(level) + 1]


def request_amx_permission():
    """Ask Linux for AMX tile state; returns 'granted' or 'denied: <reason>'."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        rc = libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA)
    except (OSError, AttributeError) as exc:
        return f"denied: {exc}"
    if rc == 0:
        return "granted"
    return f"denied: {os.strerror(ctypes.get_errno())}"
