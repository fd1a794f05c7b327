/* ISA levels and target attributes shared by every kernel.
 *
 * The harness compiles kernels for baseline x86-64 and passes the level to
 * run at (HARNESS_ISA_*) from Python; a function compiled for a higher level
 * carries one of the HARNESS_TARGET_* attributes and is only called when the
 * level allows it. Each level's feature set matches harness_common/isa.py.
 */
#ifndef HARNESS_ISA_H
#define HARNESS_ISA_H

enum harness_isa {
    HARNESS_ISA_SCALAR = 0,
    HARNESS_ISA_AVX2 = 1,
    HARNESS_ISA_AVX512 = 2,
    HARNESS_ISA_AMX = 3,
};

#if defined(__x86_64__) || defined(__i386__)
#define HARNESS_X86 1
#define HARNESS_TARGET_AVX2 __attribute__((target("avx2,fma,bmi,bmi2,popcnt,f16c")))
#define HARNESS_TARGET_AVX512 __attribute__((target( \
    "avx2,fma,bmi,bmi2,popcnt,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512cd," \
    "avx512vnni,avx512vbmi")))
#define HARNESS_TARGET_AMX __attribute__((target( \
    "avx2,fma,bmi,bmi2,popcnt,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512cd," \
    "avx512vnni,avx512vbmi,avx512bf16,amx-tile,amx-bf16,amx-int8")))
#else
#define HARNESS_X86 0
#endif

#endif
