"""What instructions a built module contains: the ISA cap checked on machine code.

A kernel compiled at a cap must not contain instructions of a higher level
(a "scalar" result computed with AVX2, or a module that faults on a smaller
machine). The attributes and #if guards in harness_isa.h say what the source
means to do; this reads what the compiler actually emitted, with objdump.

Rules, by the encoding of each instruction in the executable sections:
scalar allows no VEX (AVX, AVX2, FMA, BMI...), EVEX (AVX-512) or AMX tile
instruction; avx2 allows VEX but not EVEX or AMX; avx512 allows all but AMX;
amx allows everything.
"""
import re
import subprocess
from pathlib import Path

from .isa import LEVELS

OBJDUMP = "objdump"

# Prefixes that may come before a VEX/EVEX escape byte; anything but the
# segment and address-size ones makes the instruction #UD, so skipping them
# all errs on the side of flagging.
_LEGACY_PREFIXES = {0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3}
_AMX_MNEMONICS = {"ldtilecfg", "sttilecfg", "tileloadd", "tileloaddt1", "tilestored",
                  "tilezero", "tilerelease"}
# VEX map 0F38 opcodes used only by AMX (tile config/zero/release, tile
# load/store, the dot products): caught even if objdump cannot name them.
_AMX_OPCODES = {0x49, 0x4B, 0x5C, 0x5E, 0x6C}

# Encoding classes, each with the lowest level that may contain it.
_CLASSES = (
    ("amx", "AMX tile", "amx"),
    ("evex", "AVX-512 (EVEX)", "avx512"),
    ("vex", "VEX-encoded (AVX, AVX2, FMA, BMI)", "avx2"),
)

_LABEL = re.compile(r"^[0-9a-f]+ <(.+)>:$")
# "  1105:\tc4 e2 7d 18 0d f2 0e \tvbroadcastss ..."; a continuation line of a
# long instruction has the bytes and no third field.
_INSN = re.compile(r"^\s*[0-9a-f]+:\t((?:[0-9a-f]{2} )+)\s*(?:\t(.*))?$")
_FORMAT = re.compile(r"file format (\S+)")


class MachineCodeError(RuntimeError):
    """objdump could not be run or read the module: the cap was not checked."""


def _disassemble(so_path):
    cmd = [OBJDUMP, "-d", "--insn-width=15", str(so_path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        raise MachineCodeError(f"cannot run {OBJDUMP} to check the ISA cap of "
                               f"{Path(so_path).name}: {exc}")
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise MachineCodeError(f"{OBJDUMP} failed on {Path(so_path).name}: {err}")
    fmt = _FORMAT.search(proc.stdout)
    if fmt is None or fmt.group(1) != "elf64-x86-64":
        raise MachineCodeError(f"{Path(so_path).name} is not an x86-64 ELF object "
                               f"({fmt.group(1) if fmt else 'unknown format'}); "
                               f"its ISA cap cannot be checked")
    return proc.stdout


def instructions(so_path):
    """(function, bytes, text) for every instruction in the module's code sections."""
    out, func = [], "?"
    for line in _disassemble(so_path).splitlines():
        label = _LABEL.match(line)
        if label:
            func = label.group(1)
            continue
        m = _INSN.match(line)
        if not m:
            continue
        raw = bytes.fromhex(m.group(1))
        if m.group(2) is None and out:
            f, b, text = out[-1]
            out[-1] = (f, b + raw, text)
        else:
            out.append((func, raw, (m.group(2) or "").strip()))
    return out


def _encoding(raw, text):
    """'amx', 'evex', 'vex' or None for one instruction's bytes and text."""
    i = 0
    while i < len(raw) and raw[i] in _LEGACY_PREFIXES:
        i += 1
    if i >= len(raw):
        return None
    mnemonic = text.split()[0] if text else ""
    if mnemonic in _AMX_MNEMONICS or mnemonic.startswith("tdp") or mnemonic.startswith("tcmm"):
        return "amx"
    escape = raw[i]
    if escape == 0x62:          # BOUND is invalid in 64-bit mode: always EVEX
        return "evex"
    if escape == 0xC4 and i + 3 < len(raw) and raw[i + 1] & 0x1F == 2 \
            and raw[i + 3] in _AMX_OPCODES:
        return "amx"
    if escape in (0xC4, 0xC5):  # LES/LDS are invalid in 64-bit mode: always VEX
        return "vex"
    return None


def above_cap(so_path, level, source_name="kernels.c"):
    """Findings, one per instruction class, for instructions above `level` in the module."""
    if level not in LEVELS:
        raise ValueError(f"ISA level {level!r} is not one of {', '.join(LEVELS)}")
    cap = LEVELS.index(level)
    found = {}
    for func, raw, text in instructions(so_path):
        kind = _encoding(raw, text)
        if kind is not None:
            found.setdefault(kind, []).append((func, text or raw.hex(" ")))
    out = []
    for kind, what, lowest in _CLASSES:
        hits = found.get(kind)
        if not hits or LEVELS.index(lowest) <= cap:
            continue
        funcs = list(dict.fromkeys(f for f, _ in hits))
        others = ", ".join(f"<{f}>" for f in funcs[1:4]) + \
            (f" and {len(funcs) - 4} more" if len(funcs) > 4 else "")
        first = re.sub(r"\s+", " ", hits[0][1].split("#")[0]).strip()
        out.append(f"{source_name}: {len(hits)} {what} instruction(s) in a module capped at "
                   f"{level}, first: `{first}` in <{funcs[0]}>"
                   + (f" (also in {others})" if others else "")
                   + f"; such code must be inside #if HARNESS_ISA_MAX >= "
                     f"HARNESS_ISA_LEVEL_{lowest.upper()}")
    return out
