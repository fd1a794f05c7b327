/* ISA levels and target attributes shared by every kernel.
 *
 * The harness compiles kernels for baseline x86-64 and passes the level to
 * run at (HARNESS_ISA_*) from Python; a function compiled for a higher level
 * carries one of the HARNESS_TARGET_* attributes and is only called when the
 * level allows it. Each level's feature set matches harness_common/isa.py.
 *
 * Build-time cap: the harness compiles each kernel with -DHARNESS_ISA_MAX=<n>
 * (scalar 0, avx2 1, avx512 2, amx 3; 3 when not given) and then checks the
 * module's machine code against it (harness_common/machinecode.py). Code for
 * a level above the cap, and every call to it, goes inside
 *
 *     #if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2    (or _AVX512, _AMX)
 *     ...
 *     #endif
 *
 * so that the dispatch falls back to a lower path when it is compiled out.
 * The enum values below cannot be used in #if; the HARNESS_ISA_LEVEL_*
 * macros can. Above the cap, HARNESS_TARGET_* stops the build with an error
 * naming the missing guard.
 */
#ifndef HARNESS_ISA_H
#define HARNESS_ISA_H

enum harness_isa {
    HARNESS_ISA_SCALAR = 0,
    HARNESS_ISA_AVX2 = 1,
    HARNESS_ISA_AVX512 = 2,
    HARNESS_ISA_AMX = 3,
};

#define HARNESS_ISA_LEVEL_SCALAR 0
#define HARNESS_ISA_LEVEL_AVX2 1
#define HARNESS_ISA_LEVEL_AVX512 2
#define HARNESS_ISA_LEVEL_AMX 3

#ifndef HARNESS_ISA_MAX
#define HARNESS_ISA_MAX HARNESS_ISA_LEVEL_AMX
#endif
#if HARNESS_ISA_MAX < HARNESS_ISA_LEVEL_SCALAR || HARNESS_ISA_MAX > HARNESS_ISA_LEVEL_AMX
#error "HARNESS_ISA_MAX must be 0 (scalar), 1 (avx2), 2 (avx512) or 3 (amx)"
#endif

/* Emulation: the harness passes -DHARNESS_ISA_NATIVE_MAX=<the CPU's level>
 * when the cap is above it. Levels up to the CPU's compile to their own
 * instructions; levels above it are emulated (AVX-512 through SIMDe and
 * harness_simde_shims.h, AMX tiles through harness_amx_emu.h) and the
 * module holds no instruction the CPU lacks. Kernels need no change: the
 * same intrinsics, attributes and `isa >= HARNESS_ISA_AVX512` dispatch run
 * the emulated path. HARNESS_ISA_EMULATED is 1 in such a build, for the
 * rare path that must know (a kernel may skip a timing-only trick there). */
#ifndef HARNESS_ISA_NATIVE_MAX
#define HARNESS_ISA_NATIVE_MAX HARNESS_ISA_MAX
#endif
#if HARNESS_ISA_NATIVE_MAX > HARNESS_ISA_MAX || HARNESS_ISA_NATIVE_MAX < HARNESS_ISA_LEVEL_SCALAR
#error "HARNESS_ISA_NATIVE_MAX must be between 0 (scalar) and HARNESS_ISA_MAX"
#endif
#define HARNESS_ISA_EMULATED (HARNESS_ISA_MAX > HARNESS_ISA_NATIVE_MAX)

/* True when dispatch may take the `level` path: the caller's isa allows it
 * and the build has it (natively or emulated). For `if`, not `#if`. */
#define HARNESS_ISA_ALLOWS(isa, level) \
    ((isa) >= (level) && HARNESS_ISA_MAX >= (level))

#if defined(__x86_64__) || defined(__i386__)
#define HARNESS_X86 1

/* A GCC error at the use, whose text names the guard to add. */
#define HARNESS_ISA_PRAGMA_(x) _Pragma(#x)

/* Each level's features, = harness_common/isa.py. */
#define HARNESS_FEATURES_AVX2 "avx2,fma,bmi,bmi2,popcnt,f16c"
#define HARNESS_FEATURES_AVX512 HARNESS_FEATURES_AVX2 \
    ",avx512f,avx512bw,avx512vl,avx512dq,avx512cd,avx512vnni,avx512vbmi"
#define HARNESS_FEATURES_AMX HARNESS_FEATURES_AVX512 ",avx512bf16,amx-tile,amx-bf16,amx-int8"

/* Emulated levels compile for the CPU's own level: their intrinsics come
 * from SIMDe and harness_amx_emu.h, built from that level's instructions. */
#if HARNESS_ISA_NATIVE_MAX >= HARNESS_ISA_LEVEL_AMX
#define HARNESS_TARGET_NATIVE_ __attribute__((target(HARNESS_FEATURES_AMX)))
#elif HARNESS_ISA_NATIVE_MAX >= HARNESS_ISA_LEVEL_AVX512
#define HARNESS_TARGET_NATIVE_ __attribute__((target(HARNESS_FEATURES_AVX512)))
#elif HARNESS_ISA_NATIVE_MAX >= HARNESS_ISA_LEVEL_AVX2
#define HARNESS_TARGET_NATIVE_ __attribute__((target(HARNESS_FEATURES_AVX2)))
#else
#define HARNESS_TARGET_NATIVE_
#endif

#if HARNESS_ISA_MAX < HARNESS_ISA_LEVEL_AVX2
#define HARNESS_TARGET_AVX2 HARNESS_ISA_PRAGMA_(GCC error \
    "HARNESS_TARGET_AVX2 in a build capped below avx2: put this function and its calls inside #if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2")
#elif HARNESS_ISA_NATIVE_MAX < HARNESS_ISA_LEVEL_AVX2
#define HARNESS_TARGET_AVX2 HARNESS_TARGET_NATIVE_
#else
#define HARNESS_TARGET_AVX2 __attribute__((target(HARNESS_FEATURES_AVX2)))
#endif

#if HARNESS_ISA_MAX < HARNESS_ISA_LEVEL_AVX512
#define HARNESS_TARGET_AVX512 HARNESS_ISA_PRAGMA_(GCC error \
    "HARNESS_TARGET_AVX512 in a build capped below avx512: put this function and its calls inside #if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512")
#elif HARNESS_ISA_NATIVE_MAX < HARNESS_ISA_LEVEL_AVX512
#define HARNESS_TARGET_AVX512 HARNESS_TARGET_NATIVE_
#else
#define HARNESS_TARGET_AVX512 __attribute__((target(HARNESS_FEATURES_AVX512)))
#endif

#if HARNESS_ISA_MAX < HARNESS_ISA_LEVEL_AMX
#define HARNESS_TARGET_AMX HARNESS_ISA_PRAGMA_(GCC error \
    "HARNESS_TARGET_AMX in a build capped below amx: put this function and its calls inside #if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AMX")
#elif HARNESS_ISA_NATIVE_MAX < HARNESS_ISA_LEVEL_AMX
#define HARNESS_TARGET_AMX HARNESS_TARGET_NATIVE_
#else
#define HARNESS_TARGET_AMX __attribute__((target(HARNESS_FEATURES_AMX)))
#endif

#if !HARNESS_ISA_EMULATED && HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2
/* An emulated build gets the intrinsics through this header, so a native
 * one does too: a kernel that builds emulated builds on the real CPU. */
#include <immintrin.h>
#endif

#if !HARNESS_ISA_EMULATED && HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AMX
/* Native AMX. GCC before 13 declares _tile_loadconfig's operand as the first
 * 8 bytes of the configuration, so stores to the rest of it (the rows and
 * column widths) look dead and may be dropped: `struct tilecfg c = {0};
 * c.rows[0] = 16; _tile_loadconfig(&c);` then loads stack garbage and the
 * CPU faults (SIGSEGV) on real AMX hardware, while the emulator, which reads
 * the struct as C, passes. This replacement tells the compiler all 64 bytes
 * are read. Harness-owned asm: kernels.c itself may hold none. */
struct harness_tilecfg_bytes_ { unsigned char b[64]; };
__attribute__((target(HARNESS_FEATURES_AMX), always_inline)) static inline void
harness_tile_loadconfig_native_(const void *config)
{
    __asm__ volatile("ldtilecfg %0" : : "m"(*(const struct harness_tilecfg_bytes_ *)config));
}
#undef _tile_loadconfig
#define _tile_loadconfig(config) harness_tile_loadconfig_native_(config)
#endif

#if HARNESS_ISA_EMULATED
/* <immintrin.h> first: its declarations must not meet SIMDe's alias macros.
 * The emulation headers compile with the CPU's own features, so SIMDe uses
 * them natively and aliases only what the CPU lacks. */
#include <immintrin.h>
#if HARNESS_ISA_NATIVE_MAX >= HARNESS_ISA_LEVEL_AVX512
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2,popcnt,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512cd,avx512vnni,avx512vbmi")
#elif HARNESS_ISA_NATIVE_MAX >= HARNESS_ISA_LEVEL_AVX2
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2,popcnt,f16c")
#endif
#define SIMDE_ENABLE_NATIVE_ALIASES
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512
#include <simde/x86/avx512.h>
#include "harness_simde_shims.h"
#else
#include <simde/x86/avx2.h>
#include <simde/x86/fma.h>
#include <simde/x86/f16c.h>
#endif
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AMX
#include "harness_amx_emu.h"
#endif
#if HARNESS_ISA_NATIVE_MAX >= HARNESS_ISA_LEVEL_AVX2
#pragma GCC pop_options
#endif
#endif /* HARNESS_ISA_EMULATED */

#else
#define HARNESS_X86 0
#endif

#endif
