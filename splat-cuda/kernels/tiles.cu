// Tile binning: which tiles each Gaussian can reach above the alpha floor, one (tile | depth)
// key per (Gaussian, tile) pair, and per-tile ranges of the sorted keys.

#define TILE 16
// Pixels added on every side of a tile before the ellipse test.
#define COVER_MARGIN 1.0f

// A Gaussian's alpha ellipse against the tiles of its 3-sigma rectangle: splat-core's
// `for_each_covered_tile` (render/project.rs) with the same float operations in the same
// order, ln in double, so that both keep exactly the same tiles. alpha >= 1/255 needs
// q = d' Q d <= 2 ln(255 o); `thr` widens that bound and each tile is widened by COVER_MARGIN,
// so a tile is dropped only when no pixel of it can blend the Gaussian.
struct Cover {
    float a, b, c, mx, my, thr;
    uint4 box;  // tiles to test: the rectangle clipped to the ellipse's bounding box
    bool all;   // degenerate conic: keep the whole rectangle
};

// False when no tile can be reached (alpha always under the floor, or an empty rectangle).
__device__ __forceinline__ bool cover_init(float2 m, float4 co, uint4 r, Cover* cv) {
    float k = (float)(log((double)co.w * 255.0) * 2.0);
    float thr = k * 1.002f + 0.02f;
    float det = co.x * co.z - co.y * co.y;
    if (!(thr > 0.0f) || r.x >= r.z || r.y >= r.w) return false;
    cv->a = co.x;
    cv->b = co.y;
    cv->c = co.z;
    cv->mx = m.x;
    cv->my = m.y;
    cv->thr = thr;
    cv->all = !(det > 0.0f);
    if (cv->all) {
        cv->box = r;
        return true;
    }
    const float ts = (float)TILE;
    float hx = sqrtf(thr * co.z / det) + COVER_MARGIN;
    float hy = sqrtf(thr * co.x / det) + COVER_MARGIN;
    cv->box = make_uint4(
        (unsigned int)fminf(fmaxf(floorf((m.x - hx) / ts), (float)r.x), (float)r.z),
        (unsigned int)fminf(fmaxf(floorf((m.y - hy) / ts), (float)r.y), (float)r.w),
        (unsigned int)fminf(fmaxf(ceilf((m.x + hx) / ts), (float)r.x), (float)r.z),
        (unsigned int)fminf(fmaxf(ceilf((m.y + hy) / ts), (float)r.y), (float)r.w));
    return true;
}

__device__ __forceinline__ float cover_q(const Cover* cv, float dx, float dy) {
    return cv->a * dx * dx + 2.0f * cv->b * dx * dy + cv->c * dy * dy;
}

// Whether tile (tx, ty) of the box can hold a pixel that blends the Gaussian. The least q
// over the widened tile lies on the sides facing the ellipse's centre.
__device__ __forceinline__ bool cover_hit(const Cover* cv, unsigned int tx, unsigned int ty) {
    if (cv->all) return true;
    const float span = (float)(TILE - 1) + 2.0f * COVER_MARGIN;
    float lx = (float)(tx * TILE) + 0.5f - COVER_MARGIN, hx = lx + span;
    float ly = (float)(ty * TILE) + 0.5f - COVER_MARGIN, hy = ly + span;
    float mx = cv->mx, my = cv->my;
    bool out_x = mx < lx || mx > hx;
    bool out_y = my < ly || my > hy;
    float best = (out_x || out_y) ? __int_as_float(0x7f800000) : 0.0f;
    if (out_x) {
        float dx = mx < lx ? lx - mx : hx - mx;
        float dy = fminf(fmaxf(-(cv->b * dx) / cv->c, ly - my), hy - my);
        best = fminf(best, cover_q(cv, dx, dy));
    }
    if (out_y) {
        float dy = my < ly ? ly - my : hy - my;
        float dx = fminf(fmaxf(-(cv->b * dy) / cv->a, lx - mx), hx - mx);
        best = fminf(best, cover_q(cv, dx, dy));
    }
    return !(best > cv->thr);
}

// Number of tiles each Gaussian covers (0 for culled ones, whose rectangle is empty).
extern "C" __global__ void count_tiles(int n, const uint4* __restrict__ rect,
                                       const float2* __restrict__ xy,
                                       const float4* __restrict__ conic_opacity,
                                       unsigned int* __restrict__ tiles_touched) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    Cover cv;
    unsigned int count = 0;
    if (cover_init(xy[i], conic_opacity[i], rect[i], &cv)) {
        for (unsigned int ty = cv.box.y; ty < cv.box.w; ty++)
            for (unsigned int tx = cv.box.x; tx < cv.box.z; tx++) count += cover_hit(&cv, tx, ty);
    }
    tiles_touched[i] = count;
}

// Writes the keys and Gaussian ids of every visible Gaussian's tiles at its scanned offset;
// entries at or past `cap` (the buffers' size, when the caller sized them from an estimate)
// are dropped, and the caller sees the overflow in the scanned total.
// Keys are (tile id << 32) | depth bits: positive floats order like their bit patterns, and
// emission in Gaussian order plus a stable sort breaks depth ties by index, as the CPU does.
extern "C" __global__ void emit_keys(int n, unsigned int cap, unsigned int tiles_x,
                                     const uint4* __restrict__ rect,
                                     const float2* __restrict__ xy,
                                     const float4* __restrict__ conic_opacity,
                                     const unsigned int* __restrict__ offsets,
                                     const unsigned int* __restrict__ tiles_touched,
                                     const float* __restrict__ depth,
                                     unsigned long long* __restrict__ keys,
                                     unsigned int* __restrict__ vals) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || tiles_touched[i] == 0) return;
    Cover cv;
    if (!cover_init(xy[i], conic_opacity[i], rect[i], &cv)) return;
    uint4 r = cv.box;
    unsigned int o = offsets[i];
    unsigned long long d = (unsigned long long)__float_as_uint(depth[i]);
    for (unsigned int ty = r.y; ty < r.w; ty++) {
        for (unsigned int tx = r.x; tx < r.z; tx++) {
            if (!cover_hit(&cv, tx, ty)) continue;
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
