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

#if defined(__x86_64__) || defined(__i386__)
#define HARNESS_X86 1

/* A GCC error at the use, whose text names the guard to add. */
#define HARNESS_ISA_PRAGMA_(x) _Pragma(#x)

#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2
#define HARNESS_TARGET_AVX2 __attribute__((target("avx2,fma,bmi,bmi2,popcnt,f16c")))
#else
#define HARNESS_TARGET_AVX2 HARNESS_ISA_PRAGMA_(GCC error \
    "HARNESS_TARGET_AVX2 in a build capped below avx2: put this function and its calls inside #if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX2")
#endif

#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512
#define HARNESS_TARGET_AVX512 __attribute__((target( \
    "avx2,fma,bmi,bmi2,popcnt,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512cd," \
    "avx512vnni,avx512vbmi")))
#else
#define HARNESS_TARGET_AVX512 HARNESS_ISA_PRAGMA_(GCC error \
    "HARNESS_TARGET_AVX512 in a build capped below avx512: put this function and its calls inside #if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AVX512")
#endif

#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AMX
#define HARNESS_TARGET_AMX __attribute__((target( \
    "avx2,fma,bmi,bmi2,popcnt,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512cd," \
    "avx512vnni,avx512vbmi,avx512bf16,amx-tile,amx-bf16,amx-int8")))
#else
#define HARNESS_TARGET_AMX HARNESS_ISA_PRAGMA_(GCC error \
    "HARNESS_TARGET_AMX in a build capped below amx: put this function and its calls inside #if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AMX")
#endif

#else
#define HARNESS_X86 0
#endif

#endif
