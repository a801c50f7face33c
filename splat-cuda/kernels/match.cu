// SfM descriptor matching: for image pairs (A, B) of unit 128-d descriptors, each row of A's
// best and second-best score (dot product) in B with the column of the best, and each column
// of B's best row, batched over pairs in one launch. The host applies the ratio, distance and
// mutual checks with sfm-core's own code (sfm_core::backend::select_matches), so the matches
// equal the CPU's when these neighbours do.
//
// Why they do: every score is the CPU's sequence of fused multiply-adds (acc = 0, then
// acc = fma(a[k], b[k], acc) for k = 0..127 in order, as sfm-core's AVX2 path computes it;
// __fmaf_rn is fused whatever --fmad says), and the neighbours are an order-free function of
// the scores: a (score, index) pair packs into one 64-bit key whose unsigned order is "higher
// score, then lower index", so the best is the largest key (the CPU's strict `>` scan keeps
// the lowest index of equal scores) and the second best is the score of the second-largest
// key (the second largest of all scores: equal to the best when it occurs twice, as on the
// CPU). Keys of one row or column are distinct, so any reduction order gives one answer.
// Two departures, neither of which changes a match: -0 is stored as +0, and a NaN score
// counts as -FLT_MAX (the CPU never takes a NaN as a best; SIFT descriptors never give one).

#define DESC_DIM 128
#define MATCH_THREADS 256
// Rows of A per block (all kept in shared memory for the whole sweep over B).
#define MATCH_ROWS 64
// Columns of B per tile, and descriptor elements of a tile staged in shared memory at once.
#define MATCH_COLS 64
#define MATCH_K 32
// Ints per pair in the pair table: first row of A and its count, first row of B and its
// count (rows of `desc`), then where the pair's row and column results start.
#define PAIR_FIELDS 6

// Larger float -> larger unsigned int (the IEEE order made unsigned).
__device__ __forceinline__ unsigned int order_bits(float s) {
    if (!(s == s)) s = -3.402823466e+38f;
    if (s == 0.0f) s = 0.0f;
    unsigned int u = __float_as_uint(s);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// A score and its index as one key: higher score first, then lower index. 0 is below every
// key (the empty value).
__device__ __forceinline__ unsigned long long score_key(float s, unsigned int index) {
    return ((unsigned long long)order_bits(s) << 32) | (unsigned long long)(0xffffffffu - index);
}

__device__ __forceinline__ unsigned long long max_u64(unsigned long long a, unsigned long long b) {
    return a > b ? a : b;
}

__device__ __forceinline__ unsigned long long min_u64(unsigned long long a, unsigned long long b) {
    return a < b ? a : b;
}

// The two largest of (k1, k2) and (o1, o2), each pair ordered k1 >= k2.
__device__ __forceinline__ void top2_merge(unsigned long long& k1, unsigned long long& k2,
                                           unsigned long long o1, unsigned long long o2) {
    unsigned long long second = max_u64(min_u64(k1, o1), max_u64(k2, o2));
    k1 = max_u64(k1, o1);
    k2 = second;
}

// Grid: x over blocks of MATCH_ROWS rows of A (the largest A of the batch), y over pairs.
// row_best gets two keys per row of A (best, second best); col_best, zeroed by the host, gets
// each column's best key by atomicMax over the row blocks.
extern "C" __global__ void __launch_bounds__(MATCH_THREADS)
    match_nearest(int num_pairs, const int* pairs, const float* desc,
                  unsigned long long* row_best, unsigned long long* col_best) {
    __shared__ float as[MATCH_ROWS][DESC_DIM + 1];
    __shared__ float bs[MATCH_COLS][MATCH_K + 1];
    __shared__ unsigned long long colk[MATCH_THREADS / 32][MATCH_COLS];
    int p = blockIdx.y;
    if (p >= num_pairs) return;
    const int* pr = pairs + p * PAIR_FIELDS;
    int a_first = pr[0], na = pr[1], b_first = pr[2], nb = pr[3];
    int row_out = pr[4], col_out = pr[5];
    int i0 = blockIdx.x * MATCH_ROWS;
    if (i0 >= na) return;
    const float* a = desc + (size_t)a_first * DESC_DIM;
    const float* b = desc + (size_t)b_first * DESC_DIM;
    for (int e = threadIdx.x; e < MATCH_ROWS * DESC_DIM; e += MATCH_THREADS) {
        int r = e / DESC_DIM, k = e % DESC_DIM;
        as[r][k] = i0 + r < na ? a[(size_t)(i0 + r) * DESC_DIM + k] : 0.0f;
    }
    // Thread (ty, tx) scores rows ty + 16 r against columns tx + 16 c of each tile; the 16
    // threads of one ty are one half of a warp.
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    unsigned long long r1[4], r2[4];
#pragma unroll
    for (int r = 0; r < 4; ++r) r1[r] = r2[r] = 0ull;
    for (int j0 = 0; j0 < nb; j0 += MATCH_COLS) {
        float acc[4][4];
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[r][c] = 0.0f;
        for (int kc = 0; kc < DESC_DIM; kc += MATCH_K) {
            // The previous chunk's reads (and, the first time, the loads of A) are done.
            __syncthreads();
            for (int e = threadIdx.x; e < MATCH_COLS * MATCH_K; e += MATCH_THREADS) {
                int c = e / MATCH_K, k = e % MATCH_K;
                bs[c][k] = j0 + c < nb ? b[(size_t)(j0 + c) * DESC_DIM + kc + k] : 0.0f;
            }
            __syncthreads();
#pragma unroll 8
            for (int k = 0; k < MATCH_K; ++k) {
                float av[4], bv[4];
#pragma unroll
                for (int r = 0; r < 4; ++r) av[r] = as[ty + 16 * r][kc + k];
#pragma unroll
                for (int c = 0; c < 4; ++c) bv[c] = bs[tx + 16 * c][k];
#pragma unroll
                for (int r = 0; r < 4; ++r)
#pragma unroll
                    for (int c = 0; c < 4; ++c) acc[r][c] = __fmaf_rn(av[r], bv[c], acc[r][c]);
            }
        }
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                int j = j0 + tx + 16 * c;
                if (j < nb) {
                    unsigned long long key = score_key(acc[r][c], (unsigned int)j);
                    if (key > r1[r]) {
                        r2[r] = r1[r];
                        r1[r] = key;
                    } else if (key > r2[r]) {
                        r2[r] = key;
                    }
                }
            }
        // Each column's best row of this block: the thread's 4 rows, then the other half-warp
        // (same columns, the next ty), then the 8 warps through shared memory.
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            unsigned long long best = 0ull;
#pragma unroll
            for (int r = 0; r < 4; ++r) {
                int i = i0 + ty + 16 * r;
                if (i < na) best = max_u64(best, score_key(acc[r][c], (unsigned int)i));
            }
            best = max_u64(best, __shfl_xor_sync(0xffffffffu, best, 16));
            if (lane < 16) colk[warp][tx + 16 * c] = best;
        }
        __syncthreads();
        if (threadIdx.x < MATCH_COLS) {
            int j = j0 + threadIdx.x;
            unsigned long long best = 0ull;
#pragma unroll
            for (int w = 0; w < MATCH_THREADS / 32; ++w) best = max_u64(best, colk[w][threadIdx.x]);
            if (j < nb) atomicMax(&col_best[(size_t)col_out + j], best);
        }
    }
    // Each row's best two over its 16 threads (one half-warp: offsets below 16 stay in it).
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        unsigned long long k1 = r1[r], k2 = r2[r];
#pragma unroll
        for (int o = 8; o >= 1; o >>= 1) {
            unsigned long long o1 = __shfl_xor_sync(0xffffffffu, k1, o);
            unsigned long long o2 = __shfl_xor_sync(0xffffffffu, k2, o);
            top2_merge(k1, k2, o1, o2);
        }
        int i = i0 + ty + 16 * r;
        if (tx == 0 && i < na) {
            row_best[2 * ((size_t)row_out + i)] = k1;
            row_best[2 * ((size_t)row_out + i) + 1] = k2;
        }
    }
}
