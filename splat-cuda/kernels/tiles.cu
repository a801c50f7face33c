// Tile binning: one (tile | depth) key per (Gaussian, tile) pair, and per-tile ranges of the
// sorted keys.

// Writes the keys and Gaussian ids of every visible Gaussian's tiles at its scanned offset;
// entries at or past `cap` (the buffers' size, when the caller sized them from an estimate)
// are dropped, and the caller sees the overflow in the scanned total.
// Keys are (tile id << 32) | depth bits: positive floats order like their bit patterns, and
// emission in Gaussian order plus a stable sort breaks depth ties by index, as the CPU does.
extern "C" __global__ void emit_keys(int n, unsigned int cap, unsigned int tiles_x,
                                     const uint4* __restrict__ rect,
                                     const unsigned int* __restrict__ offsets,
                                     const unsigned int* __restrict__ tiles_touched,
                                     const float* __restrict__ depth,
                                     unsigned long long* __restrict__ keys,
                                     unsigned int* __restrict__ vals) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || tiles_touched[i] == 0) return;
    uint4 r = rect[i];
    unsigned int o = offsets[i];
    unsigned long long d = (unsigned long long)__float_as_uint(depth[i]);
    for (unsigned int ty = r.y; ty < r.w; ty++) {
        for (unsigned int tx = r.x; tx < r.z; tx++) {
            if (o >= cap) return;
            unsigned long long tile = (unsigned long long)(ty * tiles_x + tx);
            keys[o] = (tile << 32) | d;
            vals[o] = (unsigned int)i;
            o++;
        }
    }
}

// [start, end) of each tile's entries in the sorted keys; tiles with none keep the zeros
// the caller filled in. The entry count is read on the device (min(*count, cap)), so no host
// round trip sits between emission and compositing.
extern "C" __global__ void tile_ranges(const unsigned int* __restrict__ count, unsigned int cap,
                                       const unsigned long long* __restrict__ keys,
                                       uint2* __restrict__ ranges) {
    int m = (int)min(*count, cap);
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m) return;
    unsigned int tile = (unsigned int)(keys[i] >> 32);
    if (i == 0 || (unsigned int)(keys[i - 1] >> 32) != tile) ranges[tile].x = i;
    if (i == m - 1 || (unsigned int)(keys[i + 1] >> 32) != tile) ranges[tile].y = i + 1;
}
