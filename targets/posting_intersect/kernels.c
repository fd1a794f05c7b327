/* posting_intersect kernel (agent-editable): the sorted intersection of K lists.
 *
 * The lists are ordered by length (indices, no copies) and folded from the
 * two shortest, so every partial result is as small as it can be. The merge
 * is branchless: on random lists a comparison branch mispredicts about half
 * the time.
 *
 * When one side is GALLOP_RATIO times longer or more, each value of the
 * short side gallops (exponential, then branchless binary search) in the
 * long side from the last position: O(m log(n/m)) instead of O(n).
 *
 * Entry points take the ISA level the harness allows (enum harness_isa);
 * faster paths go in functions marked HARNESS_TARGET_AVX2 / _AVX512 / _AMX,
 * inside #if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_*, and are chosen at the
 * entry point. Every level must give the reference's values, bit for bit.
 */
#include <stdint.h>
#include <string.h>

#include "harness_isa.h"

#define MAX_SORTED_K 64

/* Branchless two-finger merge of sorted, duplicate-free a[na] and b[nb] into
 * out; returns the count. out may be a itself. Every iteration writes a[i]
 * to out[n] and keeps it only on a match: n <= i < na always holds at the
 * write, so the write stays inside out[0, na) (na <= the output's capacity)
 * and, in place, never overwrites a value not yet read. */
static long merge_scalar(const uint32_t *a, long na, const uint32_t *b, long nb, uint32_t *out)
{
    long i = 0, j = 0, n = 0;
    while (i < na && j < nb) {
        uint32_t x = a[i], y = b[j];
        out[n] = x;
        n += (x == y);
        i += (x <= y);
        j += (y <= x);
    }
    return n;
}

#ifndef GALLOP_RATIO
#define GALLOP_RATIO 8
#endif

/* Galloping intersection: for each a[i], the first b[j] >= a[i] from the
 * previous position (doubling steps, then a branchless binary search).
 * out may be a itself; the write index n <= i < na as in merge_scalar. */
static long gallop_scalar(const uint32_t *a, long na, const uint32_t *b, long nb, uint32_t *out)
{
    long n = 0, j = 0;
    for (long i = 0; i < na; i++) {
        uint32_t x = a[i];
        if (b[j] < x) {
            /* b[lo] < x; find hi with b[hi] >= x or hi = nb */
            long lo = j, step = 1, hi;
            for (;;) {
                hi = lo + step;
                if (hi >= nb) {
                    hi = nb;
                    break;
                }
                if (b[hi] >= x)
                    break;
                lo = hi;
                step <<= 1;
            }
            /* b[lo] < x <= b[hi] (b[nb] = +inf): binary search in (lo, hi] */
            long len = hi - lo;
            while (len > 1) {
                long half = len >> 1;
                lo = (b[lo + half] < x) ? lo + half : lo;
                len -= half;
            }
            j = lo + 1;
            if (j >= nb)
                break;
        }
        out[n] = x;
        n += (b[j] == x);
    }
    return n;
}

/* a is the shorter side (na <= nb, or the running result). */
static long intersect2_scalar(const uint32_t *a, long na, const uint32_t *b, long nb, uint32_t *out)
{
    if (nb == 0)
        return 0;
    if (nb / GALLOP_RATIO >= na)
        return gallop_scalar(a, na, b, nb, out);
    return merge_scalar(a, na, b, nb, out);
}

long pi_intersect(const uint32_t *const *lists, const long *lens, int k, uint32_t *out, int isa)
{
    (void)isa;
    if (k <= 0)
        return 0;
    /* order[] = list indices by ascending length (insertion sort: K is small) */
    int order_small[MAX_SORTED_K];
    int *order = order_small;
    int kk = k;
    if (kk > MAX_SORTED_K) {
        /* very many lists: only the shortest matters for the start; fold the rest unsorted */
        kk = MAX_SORTED_K;
    }
    int s = 0;
    for (int i = 1; i < k; i++)
        if (lens[i] < lens[s])
            s = i;
    if (k > MAX_SORTED_K) {
        order[0] = s;
        int m = 1;
        for (int i = 0; i < k && m < MAX_SORTED_K; i++)
            if (i != s)
                order[m++] = i;
        (void)m;
    } else {
        for (int i = 0; i < k; i++) {
            int v = i, p = i;
            while (p > 0 && lens[order[p - 1]] > lens[v]) {
                order[p] = order[p - 1];
                p--;
            }
            order[p] = v;
        }
    }
    long n = lens[order[0]];
    if (n == 0)
        return 0;
    if (k == 1) {
        memcpy(out, lists[order[0]], (size_t)n * sizeof(uint32_t));
        return n;
    }
    n = intersect2_scalar(lists[order[0]], n, lists[order[1]], lens[order[1]], out);
    for (int m = 2; m < kk && n > 0; m++)
        n = intersect2_scalar(out, n, lists[order[m]], lens[order[m]], out);
    /* lists beyond the first MAX_SORTED_K, in their given order */
    if (k > MAX_SORTED_K) {
        for (int i = 0; i < k && n > 0; i++) {
            int seen = 0;
            for (int m = 0; m < kk; m++)
                seen |= (order[m] == i);
            if (!seen)
                n = intersect2_scalar(out, n, lists[i], lens[i], out);
        }
    }
    return n;
}
