// Device-wide exclusive scan of u32 and a stable LSD radix sort of u64 keys with u32 values,
// 8 bits per pass over only the low bits the caller says are in use.

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

#define RADIX 256
#define SORT_THREADS 256
#define SORT_ROUNDS 16
#define SORT_TILE (SORT_THREADS * SORT_ROUNDS)

// Per-block digit histogram, stored digit-major (hist[d * blocks + b]) so that one exclusive
// scan of it gives every block's first output position per digit. The key count is
// min(*count, cap), read on the device; blocks past it write empty histograms.
extern "C" __global__ void radix_histogram(const unsigned int* __restrict__ count,
                                           unsigned int cap, int shift,
                                           const unsigned long long* __restrict__ keys,
                                           unsigned int* __restrict__ hist) {
    int n = (int)min(*count, cap);
    __shared__ unsigned int h[RADIX];
    h[threadIdx.x] = 0;
    __syncthreads();
    int start = blockIdx.x * SORT_TILE;
    for (int r = 0; r < SORT_ROUNDS; r++) {
        int i = start + r * SORT_THREADS + threadIdx.x;
        if (i < n) atomicAdd(&h[(unsigned int)(keys[i] >> shift) & (RADIX - 1)], 1u);
    }
    __syncthreads();
    hist[threadIdx.x * gridDim.x + blockIdx.x] = h[threadIdx.x];
}

// Stable scatter of one pass: within a block, items keep their order per digit (warp ranks by
// match masks, warps ranked in order through shared counters), and blocks take the slots the
// scanned histogram gives them.
extern "C" __global__ void radix_scatter(const unsigned int* __restrict__ count,
                                         unsigned int cap, int shift,
                                         const unsigned long long* __restrict__ keys_in,
                                         const unsigned int* __restrict__ vals_in,
                                         unsigned long long* __restrict__ keys_out,
                                         unsigned int* __restrict__ vals_out,
                                         const unsigned int* __restrict__ hist) {
    int n = (int)min(*count, cap);
    __shared__ unsigned int base[RADIX];
    __shared__ unsigned int wcnt[SORT_THREADS / 32][RADIX];
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    base[tid] = hist[tid * gridDim.x + blockIdx.x];
    unsigned int lt_mask = (1u << lane) - 1u;
    int start = blockIdx.x * SORT_TILE;
    for (int r = 0; r < SORT_ROUNDS; r++) {
        int first = start + r * SORT_THREADS;
        if (first >= n) break;  // uniform across the block
        int i = first + tid;
        bool valid = i < n;
        unsigned long long key = valid ? keys_in[i] : 0ull;
        unsigned int digit = valid ? ((unsigned int)(key >> shift) & (RADIX - 1)) : RADIX;
#pragma unroll
        for (int w = 0; w < SORT_THREADS / 32; w++) wcnt[w][tid] = 0;
        __syncthreads();
        unsigned int peers = __match_any_sync(0xffffffffu, digit);
        unsigned int rank = __popc(peers & lt_mask);
        if (valid && lane == __ffs(peers) - 1) wcnt[warp][digit] = __popc(peers);
        __syncthreads();
        unsigned int run = base[tid];
#pragma unroll
        for (int w = 0; w < SORT_THREADS / 32; w++) {
            unsigned int c = wcnt[w][tid];
            wcnt[w][tid] = run;
            run += c;
        }
        base[tid] = run;
        __syncthreads();
        if (valid) {
            unsigned int pos = wcnt[warp][digit] + rank;
            keys_out[pos] = key;
            vals_out[pos] = vals_in[i];
        }
        __syncthreads();
    }
}
