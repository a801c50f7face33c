// Device-wide exclusive scan of u32 and a stable LSD radix sort of u64 keys with u32 values,
// RADIX_BITS per pass over only the low bits the caller says are in use.

#define SCAN_THREADS 256
#define SCAN_ITEMS 4
#define SCAN_TILE (SCAN_THREADS * SCAN_ITEMS)

// Inclusive scan of one value per thread across a 256-thread block; returns the block total.
__device__ __forceinline__ unsigned int block_inclusive_scan(unsigned int v, unsigned int* total) {
    __shared__ unsigned int warp_sums[SCAN_THREADS / 32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        unsigned int u = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += u;
    }
    if (lane == 31) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        unsigned int w = lane < SCAN_THREADS / 32 ? warp_sums[lane] : 0u;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            unsigned int u = __shfl_up_sync(0xffffffffu, w, o);
            if (lane >= o) w += u;
        }
        if (lane < SCAN_THREADS / 32) warp_sums[lane] = w;
    }
    __syncthreads();
    if (warp > 0) v += warp_sums[warp - 1];
    *total = warp_sums[SCAN_THREADS / 32 - 1];
    __syncthreads();
    return v;
}

// Exclusive scan of each SCAN_TILE-element block of `in` into `out` (in place allowed);
// each block's total goes to block_sums[blockIdx.x].
extern "C" __global__ void scan_blocks(int n, const unsigned int* in, unsigned int* out,
                                       unsigned int* __restrict__ block_sums) {
    int base = blockIdx.x * SCAN_TILE + threadIdx.x * SCAN_ITEMS;
    unsigned int v[SCAN_ITEMS];
    unsigned int s = 0;
#pragma unroll
    for (int k = 0; k < SCAN_ITEMS; k++) {
        v[k] = base + k < n ? in[base + k] : 0u;
        s += v[k];
    }
    unsigned int total;
    unsigned int incl = block_inclusive_scan(s, &total);
    unsigned int run = incl - s;
#pragma unroll
    for (int k = 0; k < SCAN_ITEMS; k++) {
        if (base + k < n) out[base + k] = run;
        run += v[k];
    }
    if (threadIdx.x == 0) block_sums[blockIdx.x] = total;
}

// Adds the scanned block sums back to each block of the scan.
extern "C" __global__ void scan_add(int n, unsigned int* data,
                                    const unsigned int* __restrict__ block_offsets) {
    int i = blockIdx.x * SCAN_TILE + threadIdx.x;
    unsigned int add = block_offsets[blockIdx.x];
#pragma unroll
    for (int k = 0; k < SCAN_ITEMS; k++) {
        int j = i + k * SCAN_THREADS;
        if (j < n) data[j] += add;
    }
}

// 9-bit digits: five passes over the 44 key bits of an 800 x 800 image (six at 8 bits), which
// measured faster despite the 512-entry histograms. 2048 keys per block keeps enough blocks in
// flight for each pass (4096 at 8 bits measured slower). The host's sort_pairs mirrors both.
#define RADIX_BITS 9
#define SORT_ROUNDS 8
#define RADIX (1 << RADIX_BITS)
#define SORT_THREADS 256
#define SORT_WARPS (SORT_THREADS / 32)
#define DIGITS_PER_THREAD (RADIX / SORT_THREADS)
#define SORT_TILE (SORT_THREADS * SORT_ROUNDS)

// Per-block digit histogram, stored digit-major (hist[d * blocks + b]) so that one exclusive
// scan of it gives every block's first output position per digit. The key count is
// min(*count, cap), read on the device; blocks past it write empty histograms.
extern "C" __global__ void __launch_bounds__(SORT_THREADS)
radix_histogram(const unsigned int* __restrict__ count, unsigned int cap, int shift,
                const unsigned long long* __restrict__ keys, unsigned int* __restrict__ hist) {
    int n = (int)min(*count, cap);
    __shared__ unsigned int h[RADIX];
#pragma unroll
    for (int d = 0; d < DIGITS_PER_THREAD; d++) h[threadIdx.x + d * SORT_THREADS] = 0;
    int start = blockIdx.x * SORT_TILE;
    // All loads first: a block's rounds are independent, so their latencies overlap.
    unsigned int digit[SORT_ROUNDS];
#pragma unroll
    for (int r = 0; r < SORT_ROUNDS; r++) {
        int i = start + r * SORT_THREADS + threadIdx.x;
        digit[r] = i < n ? (unsigned int)(keys[i] >> shift) & (RADIX - 1) : RADIX;
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < SORT_ROUNDS; r++)
        if (digit[r] < RADIX) atomicAdd(&h[digit[r]], 1u);
    __syncthreads();
#pragma unroll
    for (int d = 0; d < DIGITS_PER_THREAD; d++) {
        int k = threadIdx.x + d * SORT_THREADS;
        hist[k * gridDim.x + blockIdx.x] = h[k];
    }
}

// Stable scatter of one pass: within a block, items keep their order per digit (warp ranks by
// match masks, warps ranked in order through shared counters), and blocks take the slots the
// scanned histogram gives them.
extern "C" __global__ void __launch_bounds__(SORT_THREADS)
radix_scatter(const unsigned int* __restrict__ count, unsigned int cap, int shift,
              const unsigned long long* __restrict__ keys_in,
              const unsigned int* __restrict__ vals_in,
              unsigned long long* __restrict__ keys_out, unsigned int* __restrict__ vals_out,
              const unsigned int* __restrict__ hist) {
    int n = (int)min(*count, cap);
    __shared__ unsigned int base[RADIX];
    __shared__ unsigned int wcnt[SORT_WARPS][RADIX];
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
#pragma unroll
    for (int d = 0; d < DIGITS_PER_THREAD; d++) {
        int k = tid + d * SORT_THREADS;
        base[k] = hist[k * gridDim.x + blockIdx.x];
    }
    unsigned int lt_mask = (1u << lane) - 1u;
    int start = blockIdx.x * SORT_TILE;
    unsigned long long key[SORT_ROUNDS];
    unsigned int val[SORT_ROUNDS];
#pragma unroll
    for (int r = 0; r < SORT_ROUNDS; r++) {
        int i = start + r * SORT_THREADS + tid;
        key[r] = i < n ? keys_in[i] : 0ull;
        val[r] = i < n ? vals_in[i] : 0u;
    }
#pragma unroll
    for (int r = 0; r < SORT_ROUNDS; r++) {
        int first = start + r * SORT_THREADS;
        if (first >= n) break;  // uniform across the block
        bool valid = first + tid < n;
        unsigned int digit = valid ? ((unsigned int)(key[r] >> shift) & (RADIX - 1)) : RADIX;
#pragma unroll
        for (int w = 0; w < SORT_WARPS; w++)
#pragma unroll
            for (int d = 0; d < DIGITS_PER_THREAD; d++) wcnt[w][tid + d * SORT_THREADS] = 0;
        __syncthreads();
        unsigned int peers = __match_any_sync(0xffffffffu, digit);
        unsigned int rank = __popc(peers & lt_mask);
        if (valid && lane == __ffs(peers) - 1) wcnt[warp][digit] = __popc(peers);
        __syncthreads();
#pragma unroll
        for (int d = 0; d < DIGITS_PER_THREAD; d++) {
            int k = tid + d * SORT_THREADS;
            unsigned int run = base[k];
#pragma unroll
            for (int w = 0; w < SORT_WARPS; w++) {
                unsigned int c = wcnt[w][k];
                wcnt[w][k] = run;
                run += c;
            }
            base[k] = run;
        }
        __syncthreads();
        if (valid) {
            unsigned int pos = wcnt[warp][digit] + rank;
            keys_out[pos] = key[r];
            vals_out[pos] = val[r];
        }
        __syncthreads();
    }
}
