/* Test fixture, spliced into the frozen plain pq_l2 kernel (plain/) before its
 * dispatch (tests/test_emulation_paths.py): an AMX path for distance_tables that
 * moves each row of the table through tiles. Entries are computed in fp32,
 * loaded as a 16 x 16 fp32 tile, put through tdpbf16ps with zero operands
 * (adds exact zeros) and stored. With FIXTURE_BUG 1 the tile config holds
 * one row too few, so the last 16 entries of each block stay zero: a bug
 * only this path has, which only an amx run can see. */
#if HARNESS_ISA_MAX >= HARNESS_ISA_LEVEL_AMX
#include <string.h>

struct fixture_tilecfg {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

HARNESS_TARGET_AMX static void tables_amx(const float *codebook, int dim, int msub, int kc,
                                          const float *queries, int nq, float *out)
{
    int dsub = dim / msub;
    float block[256], staged[256];
    for (int q = 0; q < nq; q++)
        for (int m = 0; m < msub; m++) {
            const float *x = queries + (long)q * dim + (long)m * dsub;
            float *row = out + ((long)q * msub + m) * kc;
            for (int c0 = 0; c0 < kc; c0 += 256) {
                int n = kc - c0 < 256 ? kc - c0 : 256, rows = (n + 15) / 16;
                memset(block, 0, sizeof block);
                memset(staged, 0, sizeof staged);
                for (int c = 0; c < n; c++) {
                    const float *y = codebook + ((long)m * kc + c0 + c) * dsub;
                    float s = 0.0f;
                    for (int d = 0; d < dsub; d++)
                        s += (x[d] - y[d]) * (x[d] - y[d]);
                    block[c] = s;
                }
                struct fixture_tilecfg cfg = {0};
                cfg.palette_id = 1;
                cfg.rows[0] = cfg.rows[1] = (uint8_t)(FIXTURE_BUG ? rows - 1 : rows);
                cfg.rows[2] = 16;
                cfg.colsb[0] = cfg.colsb[1] = cfg.colsb[2] = 64;
                if (cfg.rows[0] == 0) {         /* the bug on a one-row block: nothing moves */
                    memcpy(row + c0, staged, n * sizeof(float));
                    continue;
                }
                _tile_loadconfig(&cfg);
                _tile_loadd(0, block, 64);
                _tile_zero(1);
                _tile_zero(2);
                _tile_dpbf16ps(0, 1, 2);
                _tile_stored(0, staged, 64);
                _tile_release();
                memcpy(row + c0, staged, n * sizeof(float));
            }
        }
}

#define FIXTURE_TABLES_LEVEL HARNESS_ISA_LEVEL_AMX
#define FIXTURE_TABLES_ISA HARNESS_ISA_AMX
#define FIXTURE_TABLES tables_amx
#endif
