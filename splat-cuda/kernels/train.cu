// Training-step kernels: the L1 + SSIM loss with its gradient, Adam, densification statistics,
// clone/split/prune with compaction, and the opacity reset.
//
// Each mirrors splat-core's CPU reference (loss.rs, optim.rs, train/densify.rs) operation for
// operation; with --fmad=false the Adam update is bit-equal to the CPU's and the loss agrees up
// to summation order.

#define WIN_R 5
#define WIN 11
#define THREADS 256

// Correctly rounded expf, as in project.cu, so prune and clone/split decisions agree with the
// CPU reference's f32::exp.
__device__ __forceinline__ float cr_expf(float x) { return (float)exp((double)x); }

// Adds `v` of every thread of the block into `*out` with one atomic per block.
__device__ __forceinline__ void block_sum(double v, double* out) {
    __shared__ double part[THREADS / 32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (int)(blockDim.x >> 5) ? part[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) atomicAdd(out, v);
    }
}

// ---------------------------------------------------------------------------------------------
// Loss. Images are interleaved RGB (h x w x 3); element e = (y * w + x) * 3 + c. `win` holds the
// 11 normalised window weights computed on the host exactly as loss.rs does.

// Horizontal pass of the five window moments' sources: x, y, x², y², xy.
extern "C" __global__ void loss_blur_h(int w, int h, const float* __restrict__ win,
                                       const float* __restrict__ x,
                                       const float* __restrict__ y, float* __restrict__ out) {
    int n = w * h * 3;
    int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int px = (e / 3) % w;
    float a[5] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (int j = 0; j < WIN; j++) {
        int xx = px + j - WIN_R;
        if (xx >= 0 && xx < w) {
            int s = e + (j - WIN_R) * 3;
            float k = win[j], xv = x[s], yv = y[s];
            a[0] += k * xv;
            a[1] += k * yv;
            a[2] += k * (xv * xv);
            a[3] += k * (yv * yv);
            a[4] += k * (xv * yv);
        }
    }
    for (int q = 0; q < 5; q++) out[(size_t)q * n + e] = a[q];
}

// Vertical pass, per-element SSIM and its partials with respect to the window moments of x
// (scaled by -ssim_weight / n), and the sums of |x - y|, SSIM and the clamped squared error
// (sums[0..3]).
extern "C" __global__ void loss_blur_v(int w, int h, float ssim_weight,
                                       const float* __restrict__ win,
                                       const float* __restrict__ hsum,
                                       const float* __restrict__ x,
                                       const float* __restrict__ y,
                                       float* __restrict__ partials, double* __restrict__ sums) {
    const float C1 = 0.01f * 0.01f, C2 = 0.03f * 0.03f;
    int n = w * h * 3;
    int e = blockIdx.x * blockDim.x + threadIdx.x;
    double l1 = 0.0, ss = 0.0, se = 0.0;
    if (e < n) {
        int py = (e / 3) / w;
        float m[5] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        for (int j = 0; j < WIN; j++) {
            int yy = py + j - WIN_R;
            if (yy >= 0 && yy < h) {
                int s = e + (j - WIN_R) * w * 3;
                for (int q = 0; q < 5; q++) m[q] += win[j] * hsum[(size_t)q * n + s];
            }
        }
        float mx = m[0], my = m[1];
        float sxx = m[2] - mx * mx, syy = m[3] - my * my, sxy = m[4] - mx * my;
        float a1 = 2.0f * mx * my + C1;
        float a2 = 2.0f * sxy + C2;
        float b1 = mx * mx + my * my + C1;
        float b2 = sxx + syy + C2;
        float sv = a1 * a2 / (b1 * b2);
        float bb = b1 * b2;
        float ds_dmx = 2.0f * my * (a2 - a1) / bb - 2.0f * mx * sv / b1 + 2.0f * mx * sv / b2;
        float ds_dexx = -sv / b2;
        float ds_dexy = 2.0f * a1 / bb;
        float inv_n = 1.0f / (float)n;
        float g = -ssim_weight * inv_n;
        partials[e] = g * ds_dmx;
        partials[(size_t)n + e] = g * ds_dexx;
        partials[(size_t)2 * n + e] = g * ds_dexy;
        float xv = x[e], yv = y[e];
        l1 = (double)fabsf(xv - yv);
        ss = (double)sv;
        double d = (double)(fminf(fmaxf(xv, 0.0f), 1.0f) - yv);
        se = d * d;
    }
    block_sum(l1, sums);
    block_sum(ss, sums + 1);
    block_sum(se, sums + 2);
}

// Horizontal pass of the three partial maps (the blur is its own adjoint).
extern "C" __global__ void loss_bwd_h(int w, int h, const float* __restrict__ win,
                                      const float* __restrict__ partials,
                                      float* __restrict__ out) {
    int n = w * h * 3;
    int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int px = (e / 3) % w;
    float a[3] = {0.0f, 0.0f, 0.0f};
    for (int j = 0; j < WIN; j++) {
        int xx = px + j - WIN_R;
        if (xx >= 0 && xx < w) {
            int s = e + (j - WIN_R) * 3;
            for (int q = 0; q < 3; q++) a[q] += win[j] * partials[(size_t)q * n + s];
        }
    }
    for (int q = 0; q < 3; q++) out[(size_t)q * n + e] = a[q];
}

// Vertical pass and the gradient: L1 sign term plus the chain through the window moments.
extern "C" __global__ void loss_bwd_v(int w, int h, float ssim_weight,
                                      const float* __restrict__ win,
                                      const float* __restrict__ hpart,
                                      const float* __restrict__ x, const float* __restrict__ y,
                                      float* __restrict__ grad) {
    int n = w * h * 3;
    int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n) return;
    int py = (e / 3) / w;
    float b[3] = {0.0f, 0.0f, 0.0f};
    for (int j = 0; j < WIN; j++) {
        int yy = py + j - WIN_R;
        if (yy >= 0 && yy < h) {
            int s = e + (j - WIN_R) * w * 3;
            for (int q = 0; q < 3; q++) b[q] += win[j] * hpart[(size_t)q * n + s];
        }
    }
    float inv_n = 1.0f / (float)n;
    float l1w = (1.0f - ssim_weight) * inv_n;
    float xv = x[e], yv = y[e];
    float diff = xv - yv;
    float sign = diff > 0.0f ? 1.0f : (diff < 0.0f ? -1.0f : 0.0f);
    grad[e] = l1w * sign + b[0] + 2.0f * xv * b[1] + yv * b[2];
}

// ---------------------------------------------------------------------------------------------
// Adam over one parameter group. Elements whose index modulo `stride` is below `split` use
// `lr_a`, the others `lr_b` (SH: 3 DC values then the rest of each Gaussian's row).
extern "C" __global__ void adam_step(const unsigned int* __restrict__ isect, unsigned int cap,
                                     int len, int stride, int split, float* __restrict__ p,
                                     const float* __restrict__ g, float* __restrict__ m,
                                     float* __restrict__ v, float lr_a, float lr_b, float b1,
                                     float b2, float eps, float bc1, float sbc2) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    // A step whose tile lists overflowed their buffers is re-run by the host: leave no trace.
    if (i >= len || *isect > cap) return;
    float lr = (i % stride) < split ? lr_a : lr_b;
    float step = lr / bc1;
    float gi = g[i];
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= step * mi / (sqrtf(vi) / sbc2 + eps);
}

// ---------------------------------------------------------------------------------------------
// MCMC's L1 regularisers (splat-core's densify::add_regularisers): w_opacity times each opacity
// and w_scale times each scale (the weights already divided by their counts) are added to the
// loss, which is summed into *loss, and their gradients to the logits' and log-scales'.
extern "C" __global__ void regularise(const unsigned int* __restrict__ isect, unsigned int cap,
                                      int n, float w_opacity, float w_scale,
                                      const float* __restrict__ opacity,
                                      const float* __restrict__ log_scales,
                                      float* __restrict__ g_opacity,
                                      float* __restrict__ g_log_scales,
                                      double* __restrict__ loss) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    double l = 0.0;
    // No early return: every thread of the block takes part in block_sum.
    if (i < n && *isect <= cap) {
        if (w_opacity != 0.0f) {
            float o = 1.0f / (1.0f + expf(-opacity[i]));
            g_opacity[i] += w_opacity * o * (1.0f - o);
            l += (double)(w_opacity * o);
        }
        if (w_scale != 0.0f) {
            for (int k = 0; k < 3; ++k) {
                float sc = expf(log_scales[3 * i + k]);
                g_log_scales[3 * i + k] += w_scale * sc;
                l += (double)(w_scale * sc);
            }
        }
    }
    block_sum(l, loss);
}

// ---------------------------------------------------------------------------------------------
// Densification statistics: NDC-scaled screen-position gradient norms where the radius is set.
#define SG_STRIDE 9
extern "C" __global__ void stats_accumulate(const unsigned int* __restrict__ isect,
                                            unsigned int cap, int n, float sx, float sy,
                                            const float* __restrict__ screen,
                                            const unsigned int* __restrict__ radius,
                                            float* __restrict__ grad_accum,
                                            unsigned int* __restrict__ count,
                                            unsigned int* __restrict__ max_radius) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || *isect > cap) return;
    unsigned int r = radius[i];
    if (r == 0) return;
    float gx = screen[(size_t)i * SG_STRIDE] * sx, gy = screen[(size_t)i * SG_STRIDE + 1] * sy;
    grad_accum[i] += sqrtf(gx * gx + gy * gy);
    count[i] += 1;
    max_radius[i] = max(max_radius[i], r);
}

__device__ __forceinline__ float max_scale(const float* ls, int i) {
    float m = fmaxf(fmaxf(ls[3 * i], ls[3 * i + 1]), ls[3 * i + 2]);
    return cr_expf(m);
}

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + cr_expf(-x)); }

// Flag bits of densify_classify / densify_mark.
#define D_CLONE 1u
#define D_SPLIT 2u
#define D_KEEP 4u
#define D_KEEP_CLONE 8u
#define D_KEEP_CHILD0 16u
#define D_KEEP_CHILD1 32u

// Marks clone and split candidates; counts[0] += candidates.
extern "C" __global__ void densify_classify(int n, float grad_threshold, float split_limit,
                                            const float* __restrict__ grad_accum,
                                            const unsigned int* __restrict__ count,
                                            const float* __restrict__ log_scales,
                                            unsigned int* __restrict__ flags,
                                            unsigned int* __restrict__ counts) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float avg = count[i] > 0 ? grad_accum[i] / (float)count[i] : 0.0f;
    unsigned int f = 0;
    if (avg > grad_threshold) {
        f = max_scale(log_scales, i) <= split_limit ? D_CLONE : D_SPLIT;
        atomicAdd(counts, 1u);
    }
    flags[i] = f;
}

// Decides which of each Gaussian's outputs survive pruning (the original unless split, its
// clone, its two children) and writes the survivors per segment into `keep_counts`
// ([originals | clones | children], n each) for one scan. counts[1] += pruned, counts[2] +=
// clones, counts[3] += splits.
// `no_prune` keeps everything, split parents included (the CPU's "never prune everything").
extern "C" __global__ void densify_mark(int n, int prune_large, int no_prune,
                                        float prune_opacity, float world_limit,
                                        unsigned int screen_limit, float ln16,
                                        const float* __restrict__ opacity,
                                        const float* __restrict__ log_scales,
                                        const unsigned int* __restrict__ max_radius,
                                        unsigned int* __restrict__ flags,
                                        unsigned int* __restrict__ keep_counts,
                                        unsigned int* __restrict__ counts) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned int f = flags[i] & (D_CLONE | D_SPLIT);
    bool transparent = sigmoidf_(opacity[i]) < prune_opacity;
    float ms = max_scale(log_scales, i);
    unsigned int pruned = 0;
    // The original (and, being an exact copy, its clone) by the CPU's tests.
    bool prune_orig = transparent;
    bool prune_copy = transparent;
    if (prune_large) {
        prune_orig |= ms > world_limit;
        prune_copy |= ms > world_limit;
        if (screen_limit > 0) prune_orig |= max_radius[i] > screen_limit;
    }
    if (no_prune) prune_orig = prune_copy = false;
    unsigned int keep = 0, keep_clone = 0, keep_child = 0;
    if (no_prune) {
        // The CPU keeps every entry, split parents included, rather than an empty scene.
        f |= D_KEEP;
        keep = 1;
    } else if (!(f & D_SPLIT)) {
        if (prune_orig) pruned++;
        else { f |= D_KEEP; keep = 1; }
    }
    if (f & D_CLONE) {
        if (prune_copy) pruned++;
        else { f |= D_KEEP_CLONE; keep_clone = 1; }
    }
    if (f & D_SPLIT) {
        // Children: the parent's opacity, log-scales reduced by ln 1.6 (the same f32 ops).
        bool pc = transparent;
        if (prune_large) {
            float m = fmaxf(fmaxf(log_scales[3 * i] - ln16, log_scales[3 * i + 1] - ln16),
                            log_scales[3 * i + 2] - ln16);
            pc |= cr_expf(m) > world_limit;
        }
        if (no_prune) pc = false;
        if (pc) pruned += 2;
        else { f |= D_KEEP_CHILD0 | D_KEEP_CHILD1; keep_child = 2; }
    }
    if (f & D_CLONE) atomicAdd(counts + 2, 1u);
    if (f & D_SPLIT) atomicAdd(counts + 3, 1u);
    flags[i] = f;
    keep_counts[i] = keep;
    keep_counts[(size_t)n + i] = keep_clone;
    keep_counts[(size_t)2 * n + i] = keep_child;
    if (pruned) atomicAdd(counts + 1, pruned);
}

// Copies rows of `width` floats to their compacted places: the original and its clone copy
// the row; children copy it too when `children` (parameters), while moments (`zero_new`) give
// clones and children zeros.
extern "C" __global__ void densify_scatter(int n, int width, int zero_new,
                                           const unsigned int* __restrict__ flags,
                                           const unsigned int* __restrict__ offsets,
                                           const float* __restrict__ src,
                                           float* __restrict__ dst) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned int f = flags[i];
    const float* s = src + (size_t)i * width;
    if (f & D_KEEP) {
        float* d = dst + (size_t)offsets[i] * width;
        for (int k = 0; k < width; k++) d[k] = s[k];
    }
    if (f & D_KEEP_CLONE) {
        float* d = dst + (size_t)offsets[n + i] * width;
        for (int k = 0; k < width; k++) d[k] = zero_new ? 0.0f : s[k];
    }
    if (f & D_KEEP_CHILD0) {
        float* d = dst + (size_t)offsets[2 * n + i] * width;
        for (int k = 0; k < 2 * width; k++) d[k] = zero_new ? 0.0f : s[k % width];
    }
}

// A 32-bit hash (PCG output permutation over a 64-bit mix) for the split samples.
__device__ __forceinline__ unsigned int hash_u32(unsigned long long x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (unsigned int)x;
}

// Uniform in [0, 1) with 24 random bits.
__device__ __forceinline__ float unit_float(unsigned long long key) {
    return (float)(hash_u32(key) >> 8) * (1.0f / 16777216.0f);
}

// A standard normal sample for `key` (Box-Muller; u1 kept away from 0 so the log is finite).
__device__ __forceinline__ float hash_normal(unsigned long long key) {
    float u1 = fmaxf(unit_float(key * 2 + 1), 1.1920929e-7f);
    float u2 = unit_float(key * 2 + 2);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

// The rotation matrix of the quaternion (w, x, y, z) at `q`, normalised first.
__device__ __forceinline__ void quat_rotation(const float* q, float r[3][3]) {
    float qw = q[0], qx = q[1], qy = q[2], qz = q[3];
    float qn = fmaxf(sqrtf(qw * qw + qx * qx + qy * qy + qz * qz), 1e-12f);
    qw /= qn; qx /= qn; qy /= qn; qz /= qn;
    r[0][0] = 1.0f - 2.0f * (qy * qy + qz * qz);
    r[0][1] = 2.0f * (qx * qy - qw * qz);
    r[0][2] = 2.0f * (qx * qz + qw * qy);
    r[1][0] = 2.0f * (qx * qy + qw * qz);
    r[1][1] = 1.0f - 2.0f * (qx * qx + qz * qz);
    r[1][2] = 2.0f * (qy * qz - qw * qx);
    r[2][0] = 2.0f * (qx * qz - qw * qy);
    r[2][1] = 2.0f * (qy * qz + qw * qx);
    r[2][2] = 1.0f - 2.0f * (qx * qx + qy * qy);
}

// MCMC's position noise (splat-core's densify::add_position_noise, drawn from this file's
// counter hash instead of the CPU's ChaCha stream, so the same distribution, not the same
// sample): mean += R S^2 R^T z with z ~ N(0, I) * scale * sigmoid(-k (opacity - t)).
extern "C" __global__ void position_noise(int n, unsigned long long seed, float scale, float k,
                                          float t, const float* __restrict__ opacity,
                                          const float* __restrict__ log_scales,
                                          const float* __restrict__ quats,
                                          float* __restrict__ means) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float o = 1.0f / (1.0f + expf(-opacity[i]));
    float gate = scale / (1.0f + expf(k * (o - t)));
    // Opaque Gaussians (nearly all of them) stay where they are.
    if (gate == 0.0f) return;
    float r[3][3];
    quat_rotation(quats + 4 * i, r);
    float z[3], local[3];
    for (int c = 0; c < 3; c++) {
        unsigned long long key = seed * 0x9e3779b97f4a7c15ull + ((unsigned long long)i << 2) +
                                 (unsigned long long)c;
        z[c] = hash_normal(key) * gate;
    }
    // R^T z, scaled by S^2, rotated back.
    for (int c = 0; c < 3; c++) {
        local[c] = (r[0][c] * z[0] + r[1][c] * z[1] + r[2][c] * z[2]) *
                   expf(2.0f * log_scales[3 * i + c]);
    }
    for (int c = 0; c < 3; c++) {
        means[3 * i + c] += r[c][0] * local[0] + r[c][1] * local[1] + r[c][2] * local[2];
    }
}

// The two children of each split Gaussian: positions sampled from the parent's Gaussian
// (Box-Muller from a counter-based hash of seed, parent, child and axis), log-scales minus
// ln 1.6. Runs after densify_scatter copied the parent's row to both child slots.
extern "C" __global__ void densify_children(int n, unsigned long long seed, float ln16,
                                            const unsigned int* __restrict__ flags,
                                            const unsigned int* __restrict__ offsets,
                                            const float* __restrict__ means,
                                            const float* __restrict__ log_scales,
                                            const float* __restrict__ quats,
                                            float* __restrict__ out_means,
                                            float* __restrict__ out_log_scales) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || !(flags[i] & D_KEEP_CHILD0)) return;
    float r[3][3];
    quat_rotation(quats + 4 * i, r);
    unsigned int o = offsets[2 * n + i];
    for (int c = 0; c < 2; c++) {
        float local[3];
        for (int k = 0; k < 3; k++) {
            unsigned long long key = seed * 0x9e3779b97f4a7c15ull + ((unsigned long long)i << 3) +
                                     (unsigned long long)(c * 3 + k);
            local[k] = hash_normal(key) * cr_expf(log_scales[3 * i + k]);
        }
        float* m = out_means + (size_t)(o + c) * 3;
        float* ls = out_log_scales + (size_t)(o + c) * 3;
        for (int k = 0; k < 3; k++) {
            float off = r[k][0] * local[0] + r[k][1] * local[1] + r[k][2] * local[2];
            m[k] = means[3 * i + k] + off;
            ls[k] = log_scales[3 * i + k] - ln16;
        }
    }
}

// Sum of the squared errors of the clamped render `x` against `y` (n values) into `*out`, as
// splat-core's loss::psnr sums them: the plateau monitor's PSNR without reading the image back.
extern "C" __global__ void sq_err_sum(int n, const float* __restrict__ x,
                                      const float* __restrict__ y, double* __restrict__ out) {
    int e = blockIdx.x * blockDim.x + threadIdx.x;
    double se = 0.0;
    if (e < n) {
        double d = (double)(fminf(fmaxf(x[e], 0.0f), 1.0f) - y[e]);
        se = d * d;
    }
    block_sum(se, out);
}

// Caps opacity logits (the reset); the caller zeroes their moments.
extern "C" __global__ void opacity_cap(int n, float cap, float* __restrict__ opacity) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    opacity[i] = fminf(opacity[i], cap);
}

// ---------------------------------------------------------------------------------------------
// Area downscale of a resident full-size target to the working size, with splat-core's
// Image::resize_area arithmetic: the same f64 tap weights rounded to f32, horizontal pass
// first, taps summed in ascending order from zero (so the results are bit-equal).

// The [first, last) source range of output `o` and the source-to-output scale.
__device__ __forceinline__ void area_range(int src, int dst, int o, double* start, double* end,
                                           double* scale, int* first, int* last) {
    *scale = (double)src / (double)dst;
    *start = (double)o * *scale;
    *end = (double)(o + 1) * *scale;
    *first = (int)floor(*start);
    *last = min((int)ceil(*end), src);
}

// Horizontal pass: rows (sh x ow x 3) from src (sh x sw x 3), one thread per output pixel.
extern "C" __global__ void resize_area_h(int sw, int sh, int ow, const float* __restrict__ src,
                                         float* __restrict__ rows) {
    int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= sh * ow) return;
    int y = e / ow, x = e % ow;
    double start, end, scale;
    int first, last;
    area_range(sw, ow, x, &start, &end, &scale, &first, &last);
    const float* row = src + (size_t)y * sw * 3;
    float acc[3] = {0.0f, 0.0f, 0.0f};
    bool any = false;
    for (int i = first; i < last; i++) {
        double cover = fmax(fmin(end, (double)i + 1.0) - fmax(start, (double)i), 0.0);
        float w = (float)(cover / scale);
        if (w > 0.0f) {
            any = true;
#pragma unroll
            for (int c = 0; c < 3; c++) acc[c] = acc[c] + row[i * 3 + c] * w;
        }
    }
    if (!any) {
        int i = min(first, sw - 1);
#pragma unroll
        for (int c = 0; c < 3; c++) acc[c] = 0.0f + row[i * 3 + c] * 1.0f;
    }
    float* out = rows + (size_t)e * 3;
#pragma unroll
    for (int c = 0; c < 3; c++) out[c] = acc[c];
}

// Vertical pass: out (oh x ow x 3) from rows (sh x ow x 3).
extern "C" __global__ void resize_area_v(int sh, int ow, int oh, const float* __restrict__ rows,
                                         float* __restrict__ out) {
    int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= oh * ow) return;
    int y = e / ow, x = e % ow;
    double start, end, scale;
    int first, last;
    area_range(sh, oh, y, &start, &end, &scale, &first, &last);
    float acc[3] = {0.0f, 0.0f, 0.0f};
    bool any = false;
    for (int i = first; i < last; i++) {
        double cover = fmax(fmin(end, (double)i + 1.0) - fmax(start, (double)i), 0.0);
        float w = (float)(cover / scale);
        if (w > 0.0f) {
            any = true;
            const float* r = rows + ((size_t)i * ow + x) * 3;
#pragma unroll
            for (int c = 0; c < 3; c++) acc[c] = acc[c] + r[c] * w;
        }
    }
    if (!any) {
        const float* r = rows + ((size_t)min(first, sh - 1) * ow + x) * 3;
#pragma unroll
        for (int c = 0; c < 3; c++) acc[c] = 0.0f + r[c] * 1.0f;
    }
    float* o = out + (size_t)e * 3;
#pragma unroll
    for (int c = 0; c < 3; c++) o[c] = acc[c];
}
