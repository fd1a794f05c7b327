"""harness_common.isa: HARNESS_ISA is validated, the machine level follows the
CPU flags exactly (one missing flag drops a level), the cap only lowers it,
and the AMX permission request reports its outcome."""
import re

import pytest

from harness_common import isa
from harness_common.cbuild import INCLUDE_DIR

AVX2 = {"avx2", "fma", "bmi1", "bmi2", "popcnt", "f16c"}
AVX512 = AVX2 | {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd", "avx512_vnni",
                 "avx512vbmi"}
AMX = AVX512 | {"avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}


# ------------------------------------------------------------ parse_cap

@pytest.mark.parametrize("value, want", [(None, None), ("", None), ("scalar", "scalar"),
                                         ("AVX2", "avx2"), (" avx512 ", "avx512"), ("amx", "amx")])
def test_parse_cap_accepts_levels(value, want):
    assert isa.parse_cap(value) == want


@pytest.mark.parametrize("value", ["sse4", "avx-512", "avx512f", "2", "none"])
def test_parse_cap_rejects_bad_value_helpfully(value):
    with pytest.raises(isa.IsaError) as info:
        isa.parse_cap(value)
    msg = str(info.value)
    assert "HARNESS_ISA" in msg and value.strip().lower() in msg
    for level in isa.LEVELS:
        assert level in msg


def test_isa_error_is_a_value_error():
    assert issubclass(isa.IsaError, ValueError)


# ------------------------------------------------------------ machine_level

@pytest.mark.parametrize("flags, want", [
    (set(), "scalar"),
    ({"sse2", "sse4_2", "avx"}, "scalar"),
    (AVX2, "avx2"),
    (AVX2 | {"avx512f", "avx512bw"}, "avx2"),
    (AVX512, "avx512"),
    (AMX, "amx"),
    (AMX | {"extra_flag"}, "amx"),
])
def test_machine_level_from_flags(flags, want):
    assert isa.machine_level(flags) == want


@pytest.mark.parametrize("full, missing_from, below", [(AVX2, AVX2, "scalar"),
                                                       (AVX512, AVX512 - AVX2, "avx2"),
                                                       (AMX, AMX - AVX512, "avx512")])
def test_machine_level_one_missing_flag_drops_a_level(full, missing_from, below):
    for flag in sorted(missing_from):
        assert isa.machine_level(full - {flag}) == below, flag


def test_machine_level_needs_lower_levels_too():
    # AMX and AVX-512 flags without the avx2 set are not any level above scalar.
    assert isa.machine_level(AMX - {"fma"}) == "scalar"


def test_machine_level_without_argument_reads_this_cpu():
    assert isa.machine_level() in isa.LEVELS
    assert isa.machine_level() == isa.machine_level(isa.cpu_flags())


# ------------------------------------------------------------ resolve / levels_up_to

@pytest.mark.parametrize("flags, cap, want, emulated", [
    (AMX, None, "amx", False), (AMX, "", "amx", False), (AMX, "avx2", "avx2", False),
    (AMX, "scalar", "scalar", False), (AVX512, "avx512", "avx512", False),
    (AVX512, None, "avx512", False), (AVX2, None, "avx2", False),
    # Above the machine's level: that level, emulated (correctness only).
    (AVX512, "amx", "amx", True), (AVX2, "avx512", "avx512", True), (set(), "amx", "amx", True),
    (set(), "avx2", "avx2", True),
])
def test_resolve_is_the_cap_else_the_machine(flags, cap, want, emulated):
    assert isa.resolve(cap, flags) == want
    assert isa.emulated(want, flags) is emulated
    assert isa.describe(want, flags) == (f"{want} (emulated)" if emulated else want)


@pytest.mark.parametrize("flags, level, want", [(AVX2, "amx", "avx2"), (AVX512, "amx", "avx512"),
                                                (AMX, "amx", "amx"), (AVX2, "scalar", "scalar")])
def test_native_level_is_what_a_build_may_hold(flags, level, want):
    assert isa.native_level(level, flags) == want


def test_resolve_rejects_bad_cap():
    with pytest.raises(isa.IsaError):
        isa.resolve("avx1024", AMX)


@pytest.mark.parametrize("level, want", [("scalar", ("scalar",)), ("avx2", ("scalar", "avx2")),
                                         ("avx512", ("scalar", "avx2", "avx512")),
                                         ("amx", ("scalar", "avx2", "avx512", "amx"))])
def test_levels_up_to(level, want):
    assert tuple(isa.levels_up_to(level)) == want


# ------------------------------------------------------------ cpu_flags

def test_cpu_flags_reads_first_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Fake CPU\n"
                    "flags\t\t: fpu sse2 avx2 fma bmi1 bmi2 popcnt f16c\n\n"
                    "processor\t: 1\nflags\t\t: fpu avx512f\n")
    assert isa.cpu_flags(str(info)) == {"fpu", "sse2", "avx2", "fma", "bmi1", "bmi2", "popcnt", "f16c"}
    assert isa.machine_level(isa.cpu_flags(str(info))) == "avx2"


def test_cpu_flags_without_flags_line_is_empty(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Fake CPU\n")
    assert isa.cpu_flags(str(info)) == set()


def test_cpu_flags_missing_file_is_empty(tmp_path):
    assert isa.cpu_flags(str(tmp_path / "absent")) == set()


# ------------------------------------------------------------ AMX permission

def test_request_amx_permission_reports_outcome():
    result = isa.request_amx_permission()
    assert isinstance(result, str)
    assert result == "granted" or result.startswith("denied: ")


# ------------------------------------------------------------ harness_isa.h agrees with LEVELS

# gcc target() feature names -> /proc/cpuinfo flag names
_GCC_TO_CPUINFO = {"bmi": "bmi1", "avx512vnni": "avx512_vnni", "avx512bf16": "avx512_bf16",
                   "amx-tile": "amx_tile", "amx-bf16": "amx_bf16", "amx-int8": "amx_int8"}


def _header_features():
    """{level: cpuinfo flags} that each HARNESS_TARGET_<LEVEL> attribute enables natively
    (its features come from the HARNESS_FEATURES_<LEVEL> string macros)."""
    text = (INCLUDE_DIR / "harness_isa.h").read_text().replace("\\\n", " ")
    strings = {}
    for name, body in re.findall(r"#define (HARNESS_FEATURES_\w+) (.*)", text):
        strings[name] = "".join(strings.get(tok, "") if tok.startswith("HARNESS_") else tok.strip('"')
                                for tok in re.findall(r'HARNESS_FEATURES_\w+|"[^"]*"', body))
    out = {}
    for level, macro in re.findall(r"#define HARNESS_TARGET_(\w+) __attribute__\(\(target\("
                                   r"(HARNESS_FEATURES_\w+)\)\)\)", text):
        if level.endswith("_"):             # HARNESS_TARGET_NATIVE_: an alias, not a level
            continue
        out[level.lower()] = {_GCC_TO_CPUINFO.get(f, f) for f in strings[macro].split(",") if f}
    return out


def test_header_defines_a_target_for_every_level_above_scalar():
    assert set(_header_features()) == set(isa.LEVELS) - {"scalar"}


def test_header_features_are_all_checked_by_machine_level():
    checked = set()
    for level in isa.LEVELS:
        checked |= isa._LEVEL_FLAGS[level]
        if level == "scalar":
            continue
        missing = _header_features()[level] - checked
        assert not missing, f"HARNESS_TARGET_{level.upper()} enables unchecked {sorted(missing)}"
