// Front-to-back compositing per 16x16 tile, forward and backward, with the CPU reference's
// conventions: pixel centres at +0.5, alpha = min(0.99, o * exp(power)) skipped below 1/255, a
// pixel stops before the Gaussian that would take its transmittance under 1e-4.

#define TILE 16
#define BLOCK (TILE * TILE)
// Constants converted from double like the reference's T::from(f64).
#define MAX_ALPHA ((float)0.99)
#define MIN_ALPHA ((float)(1.0 / 255.0))
#define MIN_T ((float)1e-4)
#define SG_STRIDE 9

__device__ __forceinline__ float cr_expf(float x) { return (float)exp((double)x); }

// A power below which a Gaussian of opacity `o` is certainly under the 1/255 alpha floor:
// ln(MIN_ALPHA / o) less a margin of 1e-3, far above the few-ulp errors of logf (|ln| < 100
// for any positive float o), the division, exp and the product, so skipping below it decides
// exactly as the correctly rounded path would, without paying for its exp. o = 0 gives +inf
// (always skipped, as alpha = 0 is); a NaN compares false and takes the exact path.
__device__ __forceinline__ float alpha_floor_power(float o) {
    return logf(MIN_ALPHA / o) - 1e-3f;
}

// Relative distance from the alpha thresholds inside which the backward recomputes exp
// exactly. __expf(x) is within 2^-22 + |x log2 e| 2^-24 relative of exp(x) (ex2.approx plus
// the rounded product); for |x| < 40 that is below 4e-6 (and below 1e-6 for the |x| < 5.6
// that opacities up to 1 reach), so outside the band the approximate alpha falls on the same
// side of 0.99 and 1/255 as the exact one.
#define DECISION_BAND 1e-5f

// Shared by both passes: the alpha of a Gaussian at a pixel offset (dx, dy) = mean - pixel.
// Returns false when skipped; `g` is exp(power), `clamped` whether the 0.99 clamp is active.
// `floor_power` is alpha_floor_power(co.w).
// The forward (APPROX_EXP false) takes exp in double rounded once to float: the correctly
// rounded expf, which the CPU reference's libm returns in all but rare cases; CUDA's expf (up
// to 2 ulp off) made the 0.99 clamp and the 1e-4 stop flip against the reference on a few
// pixels per scene. The backward only recomputes alphas whose decisions the forward made, so
// it takes the hardware approximation unless the product lands near a threshold: the same
// decisions, and a value within 4e-6 relative, far inside the gradients' tolerance.
template <bool APPROX_EXP>
__device__ __forceinline__ bool eval_alpha(float4 co, float floor_power, float dx, float dy,
                                           float* alpha, float* g, bool* clamped) {
    float power = -0.5f * (co.x * dx * dx + co.z * dy * dy) - co.y * dx * dy;
    if (power > 0.0f || power < floor_power) return false;
    float e = APPROX_EXP ? __expf(power) : cr_expf(power);
    float raw = co.w * e;
    if (APPROX_EXP && (fabsf(raw - MAX_ALPHA) <= DECISION_BAND * MAX_ALPHA ||
                       fabsf(raw - MIN_ALPHA) <= DECISION_BAND * MIN_ALPHA ||
                       !(power > -40.0f))) {
        e = cr_expf(power);
        raw = co.w * e;
    }
    *clamped = raw > MAX_ALPHA;
    float a = *clamped ? MAX_ALPHA : raw;
    if (a < MIN_ALPHA) return false;
    *alpha = a;
    *g = e;
    return true;
}

// The pixel a thread of a tile's block shades: each warp takes an 8 x 4 patch rather than two
// full rows, so a Gaussian's footprint touches fewer warps (fewer per-warp reductions in the
// backward, and lanes of a warp finish closer together in the forward).
__device__ __forceinline__ uint2 tile_pixel(unsigned int tid) {
    unsigned int lane = tid & 31, warp = tid >> 5;
    return make_uint2(blockIdx.x * TILE + (warp & 1) * 8 + (lane & 7),
                      blockIdx.y * TILE + (warp >> 1) * 4 + (lane >> 3));
}

// One block per tile, one thread per pixel; Gaussians stream through shared memory in
// batches of 256. Writes the image (background composited), final transmittance and the
// count of tile-list entries walked up to the last blended one.
extern "C" __global__ void __launch_bounds__(BLOCK)
raster_fwd(unsigned int width, unsigned int height, float bg_r, float bg_g, float bg_b,
           const uint2* __restrict__ ranges, const unsigned int* __restrict__ ids,
           const float2* __restrict__ xy, const float4* __restrict__ conic_opacity,
           const float* __restrict__ color, float* __restrict__ image,
           float* __restrict__ final_t, unsigned int* __restrict__ n_contrib) {
    __shared__ float2 s_xy[BLOCK];
    __shared__ float4 s_co[BLOCK];
    __shared__ float4 s_cf[BLOCK];  // colour, alpha_floor_power
    unsigned int tiles_x = gridDim.x;
    unsigned int tile = blockIdx.y * tiles_x + blockIdx.x;
    uint2 pix = tile_pixel(threadIdx.x);
    unsigned int px = pix.x, py = pix.y;
    bool inside = px < width && py < height;
    bool done = !inside;
    float fx = (float)px + 0.5f, fy = (float)py + 0.5f;
    uint2 range = ranges[tile];
    float t = 1.0f;
    float c0 = 0.0f, c1 = 0.0f, c2 = 0.0f;
    unsigned int last = 0;
    for (unsigned int start = range.x; start < range.y; start += BLOCK) {
        if (__syncthreads_count(done) == BLOCK) break;
        unsigned int idx = start + threadIdx.x;
        if (idx < range.y) {
            unsigned int gid = ids[idx];
            s_xy[threadIdx.x] = xy[gid];
            float4 co = conic_opacity[gid];
            s_co[threadIdx.x] = co;
            s_cf[threadIdx.x] = make_float4(color[gid * 3], color[gid * 3 + 1], color[gid * 3 + 2],
                                            alpha_floor_power(co.w));
        }
        __syncthreads();
        unsigned int count = min(BLOCK, range.y - start);
        for (unsigned int j = 0; !done && j < count; j++) {
            float2 m = s_xy[j];
            float4 cf = s_cf[j];
            float alpha, g;
            bool clamped;
            if (!eval_alpha<false>(s_co[j], cf.w, m.x - fx, m.y - fy, &alpha, &g, &clamped))
                continue;
            float next = t * (1.0f - alpha);
            if (next < MIN_T) {
                done = true;
                break;
            }
            // The colour sums decide nothing, so they may fuse (within an ulp of the CPU's).
            float w = alpha * t;
            c0 = __fmaf_rn(cf.x, w, c0);
            c1 = __fmaf_rn(cf.y, w, c1);
            c2 = __fmaf_rn(cf.z, w, c2);
            t = next;
            last = start + j - range.x + 1;
        }
    }
    if (inside) {
        unsigned int p = py * width + px;
        image[p * 3] = c0 + t * bg_r;
        image[p * 3 + 1] = c1 + t * bg_g;
        image[p * 3 + 2] = c2 + t * bg_b;
        final_t[p] = t;
        n_contrib[p] = last;
    }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// One butterfly level over 2n values: lanes with `up` keep the upper n and send the lower n to
// the partner across `offset`, which keeps the lower n; out[i] sums the kept value with the
// partner's copy of it.
template <int N>
__device__ __forceinline__ void halve(const float* v, float* out, bool up, int offset) {
#pragma unroll
    for (int i = 0; i < N; i++) {
        float send = up ? v[i] : v[i + N];
        float keep = up ? v[i + N] : v[i];
        out[i] = keep + __shfl_xor_sync(0xffffffffu, send, offset);
    }
}

// Sums v[0..9) over the warp and adds the nine sums to dst[0..9). The first eight are reduced
// by halving (4 + 2 + 1 + 2 shuffles rather than 8 x 5), which leaves sum k = 4 b4 + 2 b3 + b2
// (b = the lane's bits) in every lane with b1 = b0 = 0, so eight lanes issue their atomics in
// one instruction; the ninth takes a plain warp sum.
__device__ __forceinline__ void warp_sum9_add(const float* v, float* dst, unsigned int lane) {
    float a[4], b[2], c;
    halve<4>(v, a, lane & 16, 16);
    halve<2>(a, b, lane & 8, 8);
    halve<1>(b, &c, lane & 4, 4);
    c += __shfl_xor_sync(0xffffffffu, c, 2);
    c += __shfl_xor_sync(0xffffffffu, c, 1);
    float last = warp_sum(v[8]);
    if ((lane & 3) == 0) atomicAdd(dst + (((lane >> 4) & 1) * 4 + ((lane >> 3) & 1) * 2 + ((lane >> 2) & 1)), c);
    if (lane == 0) atomicAdd(dst + 8, last);
}

// Backward of raster_fwd, back to front over each tile's list. Each pixel's gradient with
// respect to a Gaussian's screen parameters is summed over the warp first, and the warp adds
// its sums to the Gaussian's accumulator: one set of atomics per (Gaussian, warp), not per
// (Gaussian, pixel).
extern "C" __global__ void __launch_bounds__(BLOCK)
raster_bwd(unsigned int width, unsigned int height, float bg_r, float bg_g, float bg_b,
           const uint2* __restrict__ ranges, const unsigned int* __restrict__ ids,
           const float2* __restrict__ xy, const float4* __restrict__ conic_opacity,
           const float* __restrict__ color, const float* __restrict__ final_t,
           const unsigned int* __restrict__ n_contrib, const float* __restrict__ d_image,
           float* __restrict__ screen) {
    __shared__ unsigned int s_id[BLOCK];
    __shared__ float2 s_xy[BLOCK];
    __shared__ float4 s_co[BLOCK];
    __shared__ float4 s_cf[BLOCK];  // colour, alpha_floor_power
    unsigned int tiles_x = gridDim.x;
    unsigned int tile = blockIdx.y * tiles_x + blockIdx.x;
    uint2 pix = tile_pixel(threadIdx.x);
    unsigned int px = pix.x, py = pix.y;
    bool inside = px < width && py < height;
    float fx = (float)px + 0.5f, fy = (float)py + 0.5f;
    uint2 range = ranges[tile];
    unsigned int p = inside ? py * width + px : 0;
    unsigned int last = inside ? n_contrib[p] : 0;
    float t_final = inside ? final_t[p] : 1.0f;
    float dl0 = inside ? d_image[p * 3] : 0.0f;
    float dl1 = inside ? d_image[p * 3 + 1] : 0.0f;
    float dl2 = inside ? d_image[p * 3 + 2] : 0.0f;
    float bg_dot = bg_r * dl0 + bg_g * dl1 + bg_b * dl2;
    float t = t_final;
    float b0 = 0.0f, b1 = 0.0f, b2 = 0.0f;     // colour behind, accumulated back to front
    float la = 0.0f, lc0 = 0.0f, lc1 = 0.0f, lc2 = 0.0f;  // the last (nearer-behind) Gaussian
    // Highest tile-list position any pixel of the block needs.
    __shared__ unsigned int s_max_last;
    if (threadIdx.x == 0) s_max_last = 0;
    __syncthreads();
    atomicMax(&s_max_last, last);
    __syncthreads();
    unsigned int end = range.x + s_max_last;
    unsigned int lane = threadIdx.x & 31;
    // Positions at or past every lane's last blend need no work from this warp.
    unsigned int warp_last = __reduce_max_sync(0xffffffffu, last);
    // No decision depends on the backward's arithmetic past eval_alpha, so it fuses
    // multiply-adds explicitly (the build turns implicit contraction off).
    float t_bg = t_final * bg_dot;
    for (int bstart = (int)end - BLOCK; bstart + BLOCK > (int)range.x; bstart -= BLOCK) {
        // This batch holds positions [lo, hi) of the list, walked from hi - 1 down.
        unsigned int lo = max(bstart, (int)range.x), hi = bstart + BLOCK;
        __syncthreads();
        unsigned int idx = lo + threadIdx.x;
        if (idx < hi) {
            unsigned int gid = ids[idx];
            unsigned int k = idx - lo;
            s_id[k] = gid;
            s_xy[k] = xy[gid];
            float4 co = conic_opacity[gid];
            s_co[k] = co;
            s_cf[k] = make_float4(color[gid * 3], color[gid * 3 + 1], color[gid * 3 + 2],
                                  alpha_floor_power(co.w));
        }
        __syncthreads();
        for (int k = (int)(hi - lo) - 1; k >= 0; k--) {
            unsigned int pos = lo + k - range.x;
            if (pos >= warp_last) continue;
            float4 co = s_co[k];
            float2 m = s_xy[k];
            float4 cf = s_cf[k];
            float dx = m.x - fx, dy = m.y - fy;
            float alpha = 0.0f, g = 0.0f;
            bool clamped = false;
            bool contrib =
                pos < last && eval_alpha<true>(co, cf.w, dx, dy, &alpha, &g, &clamped);
            float gm0 = 0.0f, gm1 = 0.0f, gc0 = 0.0f, gc1 = 0.0f, gc2 = 0.0f, go = 0.0f;
            float gr = 0.0f, gg = 0.0f, gb = 0.0f;
            if (contrib) {
                float3 c = make_float3(cf.x, cf.y, cf.z);
                float one_m = 1.0f - alpha;
                // One reciprocal for both divisions: the backward's t only scales gradients
                // (no decision depends on it), so 1 ulp more error is well inside tolerance.
                float inv = __frcp_rn(one_m);
                t = t * inv;
                float wgt = alpha * t;
                // la lc + (1 - la) b as b + la (lc - b).
                b0 = __fmaf_rn(la, lc0 - b0, b0);
                b1 = __fmaf_rn(la, lc1 - b1, b1);
                b2 = __fmaf_rn(la, lc2 - b2, b2);
                lc0 = c.x;
                lc1 = c.y;
                lc2 = c.z;
                float d_alpha = (c.x - b0) * dl0;
                d_alpha = __fmaf_rn(c.y - b1, dl1, d_alpha);
                d_alpha = __fmaf_rn(c.z - b2, dl2, d_alpha);
                gr = wgt * dl0;
                gg = wgt * dl1;
                gb = wgt * dl2;
                d_alpha = __fmaf_rn(d_alpha, t, -t_bg * inv);
                la = alpha;
                if (!clamped) {
                    // alpha = MAX_ALPHA does not depend on the Gaussian, hence no gradient there.
                    go = g * d_alpha;
                    float d_g = co.w * go;
                    gm0 = -d_g * __fmaf_rn(co.x, dx, co.y * dy);
                    gm1 = -d_g * __fmaf_rn(co.z, dy, co.y * dx);
                    float h = -0.5f * d_g;
                    gc0 = h * dx * dx;
                    gc1 = -d_g * dx * dy;
                    gc2 = h * dy * dy;
                }
            }
            if (__any_sync(0xffffffffu, contrib)) {
                // In the accumulator's order (SG_STRIDE floats per Gaussian).
                float v[9] = {gm0, gm1, gc0, gc1, gc2, go, gr, gg, gb};
                warp_sum9_add(v, screen + (size_t)s_id[k] * SG_STRIDE, lane);
            }
        }
    }
}
