// Per-Gaussian preprocessing: SH colour and EWA projection, forward and backward.
//
// The arithmetic mirrors splat-core's CPU reference (render/project.rs, sh.rs) operation for
// operation, and the PTX is built with --fmad=false, so that discrete decisions (culling, tile
// rectangles, colour clamps) agree bit for bit with the reference wherever the libm-style
// functions (expf, sqrtf) agree.

#define TILE 16
#define LOW_PASS ((float)0.3)
#define EXTENT_SIGMAS 3.0f

// Camera constants; mirrors `CamParams` in src/kernels.rs field for field.
struct Cam {
    float w[9];  // world-to-camera rotation, row-major
    float t[3];
    float center[3];
    float fx, fy, cx, cy;
    float lim_x0, lim_x1, lim_y0, lim_y1;
    unsigned int width, height, tiles_x, tiles_y;
    float near_z;
    int sh_degree;  // degree evaluated
    int sh_coeffs;  // coefficients per channel stored per Gaussian (stride)
    int pad;
};

// Flag bits of one projected Gaussian.
#define F_VISIBLE 1u
#define F_GUARD_X 2u
#define F_GUARD_Y 4u
#define F_CLAMP_R 8u
#define F_CLAMP_G 16u
#define F_CLAMP_B 32u

__device__ __constant__ float SH_C0 = (float)0.28209479177387814;
__device__ __constant__ float SH_C1 = (float)0.4886025119029199;
__device__ __constant__ float SH_C2[5] = {(float)1.0925484305920792, (float)-1.0925484305920792,
                                          (float)0.31539156525252005, (float)-1.0925484305920792,
                                          (float)0.5462742152960396};
__device__ __constant__ float SH_C3[7] = {(float)-0.5900435899266435, (float)2.890611442640554,
                                          (float)-0.4570457994644658, (float)0.3731763325901154,
                                          (float)-0.4570457994644658, (float)1.445305721320277,
                                          (float)-0.5900435899266435};

// SH basis at unit direction (x, y, z); with `g`, also each function's gradient.
__device__ __forceinline__ void sh_basis(int degree, float x, float y, float z, float* b,
                                         float (*g)[3]) {
    b[0] = SH_C0;
    if (g) {
        for (int j = 0; j < 16; j++) g[j][0] = g[j][1] = g[j][2] = 0.0f;
    }
    if (degree >= 1) {
        float c1 = SH_C1;
        b[1] = -c1 * y;
        b[2] = c1 * z;
        b[3] = -c1 * x;
        if (g) {
            g[1][1] = -c1;
            g[2][2] = c1;
            g[3][0] = -c1;
        }
    }
    if (degree >= 2) {
        float xx = x * x, yy = y * y, zz = z * z;
        const float* c = SH_C2;
        b[4] = c[0] * x * y;
        b[5] = c[1] * y * z;
        b[6] = c[2] * (2.0f * zz - xx - yy);
        b[7] = c[3] * x * z;
        b[8] = c[4] * (xx - yy);
        if (g) {
            g[4][0] = c[0] * y; g[4][1] = c[0] * x;
            g[5][1] = c[1] * z; g[5][2] = c[1] * y;
            g[6][0] = -2.0f * c[2] * x; g[6][1] = -2.0f * c[2] * y; g[6][2] = 4.0f * c[2] * z;
            g[7][0] = c[3] * z; g[7][2] = c[3] * x;
            g[8][0] = 2.0f * c[4] * x; g[8][1] = -2.0f * c[4] * y;
        }
    }
    if (degree >= 3) {
        float xx = x * x, yy = y * y, zz = z * z;
        const float* c = SH_C3;
        b[9] = c[0] * y * (3.0f * xx - yy);
        b[10] = c[1] * x * y * z;
        b[11] = c[2] * y * (4.0f * zz - xx - yy);
        b[12] = c[3] * z * (2.0f * zz - 3.0f * xx - 3.0f * yy);
        b[13] = c[4] * x * (4.0f * zz - xx - yy);
        b[14] = c[5] * z * (xx - yy);
        b[15] = c[6] * x * (xx - 3.0f * yy);
        if (g) {
            g[9][0] = 6.0f * c[0] * x * y; g[9][1] = c[0] * (3.0f * xx - 3.0f * yy);
            g[10][0] = c[1] * y * z; g[10][1] = c[1] * x * z; g[10][2] = c[1] * x * y;
            g[11][0] = -2.0f * c[2] * x * y;
            g[11][1] = c[2] * (4.0f * zz - xx - 3.0f * yy);
            g[11][2] = 8.0f * c[2] * y * z;
            g[12][0] = -6.0f * c[3] * x * z;
            g[12][1] = -6.0f * c[3] * y * z;
            g[12][2] = c[3] * (6.0f * zz - 3.0f * xx - 3.0f * yy);
            g[13][0] = c[4] * (4.0f * zz - 3.0f * xx - yy);
            g[13][1] = -2.0f * c[4] * x * y;
            g[13][2] = 8.0f * c[4] * x * z;
            g[14][0] = 2.0f * c[5] * x * z; g[14][1] = -2.0f * c[5] * y * z;
            g[14][2] = c[5] * (xx - yy);
            g[15][0] = c[6] * (3.0f * xx - 3.0f * yy); g[15][1] = -6.0f * c[6] * x * y;
        }
    }
}

// Correctly rounded expf (see raster.cu): keeps scales and opacities bit-equal to the CPU's.
__device__ __forceinline__ float cr_expf(float x) { return (float)exp((double)x); }

__device__ __forceinline__ void quat_to_mat(const float q[4], float r[3][3]) {
    float w = q[0], x = q[1], y = q[2], z = q[3];
    r[0][0] = 1.0f - 2.0f * (y * y + z * z);
    r[0][1] = 2.0f * (x * y - w * z);
    r[0][2] = 2.0f * (x * z + w * y);
    r[1][0] = 2.0f * (x * y + w * z);
    r[1][1] = 1.0f - 2.0f * (x * x + z * z);
    r[1][2] = 2.0f * (y * z - w * x);
    r[2][0] = 2.0f * (x * z - w * y);
    r[2][1] = 2.0f * (y * z + w * x);
    r[2][2] = 1.0f - 2.0f * (x * x + y * y);
}

__device__ __forceinline__ void matmul3(const float a[3][3], const float b[3][3], float o[3][3]) {
#pragma unroll
    for (int i = 0; i < 3; i++)
#pragma unroll
        for (int j = 0; j < 3; j++) o[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
}

__device__ __forceinline__ void transpose3(const float a[3][3], float o[3][3]) {
#pragma unroll
    for (int i = 0; i < 3; i++)
#pragma unroll
        for (int j = 0; j < 3; j++) o[i][j] = a[j][i];
}

// Intermediate values of one projection, shared by the forward and the backward.
struct Geometry {
    float qn[4];
    float qnorm;
    float rot[3][3];
    float scale[3];
    float cov_cam[3][3];
    float t[3];
    float t_clamped[2];
    bool guard[2];
    float jac[2][3];
    float cov2d[3];
};

__device__ __forceinline__ void load_w(const Cam& cam, float w[3][3]) {
#pragma unroll
    for (int i = 0; i < 3; i++)
#pragma unroll
        for (int j = 0; j < 3; j++) w[i][j] = cam.w[i * 3 + j];
}

__device__ __forceinline__ void geometry(const float* means, const float* log_scales,
                                         const float* quats, int i, const Cam& cam, Geometry& g) {
    float q[4] = {quats[i * 4], quats[i * 4 + 1], quats[i * 4 + 2], quats[i * 4 + 3]};
    g.qnorm = sqrtf(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
#pragma unroll
    for (int k = 0; k < 4; k++) g.qn[k] = q[k] / g.qnorm;
    quat_to_mat(g.qn, g.rot);
#pragma unroll
    for (int k = 0; k < 3; k++) g.scale[k] = cr_expf(log_scales[i * 3 + k]);
    float m[3][3], mt[3][3], sigma[3][3], w[3][3], wt[3][3], tmp[3][3];
#pragma unroll
    for (int r = 0; r < 3; r++)
#pragma unroll
        for (int k = 0; k < 3; k++) m[r][k] = g.rot[r][k] * g.scale[k];
    transpose3(m, mt);
    matmul3(m, mt, sigma);
    load_w(cam, w);
    transpose3(w, wt);
    matmul3(w, sigma, tmp);
    matmul3(tmp, wt, g.cov_cam);
    float mu[3] = {means[i * 3], means[i * 3 + 1], means[i * 3 + 2]};
#pragma unroll
    for (int k = 0; k < 3; k++)
        g.t[k] = (w[k][0] * mu[0] + w[k][1] * mu[1] + w[k][2] * mu[2]) + cam.t[k];
    float xr = g.t[0] / g.t[2], yr = g.t[1] / g.t[2];
    float xc = fminf(fmaxf(xr, cam.lim_x0), cam.lim_x1);
    float yc = fminf(fmaxf(yr, cam.lim_y0), cam.lim_y1);
    g.guard[0] = xc != xr;
    g.guard[1] = yc != yr;
    g.t_clamped[0] = xc * g.t[2];
    g.t_clamped[1] = yc * g.t[2];
    float z2 = g.t[2] * g.t[2];
    g.jac[0][0] = cam.fx / g.t[2];
    g.jac[0][1] = 0.0f;
    g.jac[0][2] = -cam.fx * g.t_clamped[0] / z2;
    g.jac[1][0] = 0.0f;
    g.jac[1][1] = cam.fy / g.t[2];
    g.jac[1][2] = -cam.fy * g.t_clamped[1] / z2;
    float js[2][2];
#pragma unroll
    for (int r = 0; r < 2; r++)
#pragma unroll
        for (int k = 0; k < 2; k++) {
            float acc = 0.0f;
#pragma unroll
            for (int a = 0; a < 3; a++)
#pragma unroll
                for (int b = 0; b < 3; b++) acc = acc + g.jac[r][a] * g.cov_cam[a][b] * g.jac[k][b];
            js[r][k] = acc;
        }
    g.cov2d[0] = js[0][0] + LOW_PASS;
    g.cov2d[1] = js[0][1];
    g.cov2d[2] = js[1][1] + LOW_PASS;
}

__device__ __forceinline__ void view_dir(const float* means, int i, const Cam& cam, float d[3],
                                         float* dist) {
    float v[3] = {means[i * 3] - cam.center[0], means[i * 3 + 1] - cam.center[1],
                  means[i * 3 + 2] - cam.center[2]};
    float n = sqrtf(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    d[0] = v[0] / n;
    d[1] = v[1] / n;
    d[2] = v[2] / n;
    *dist = n;
}

__device__ __forceinline__ unsigned int clampi(float v, unsigned int hi) {
    // Rust: v.max(0.0).min(hi) as u32 (NaN saturates to 0 there; fmaxf drops the NaN).
    float c = fminf(fmaxf(v, 0.0f), (float)hi);
    return (unsigned int)c;
}

// Forward projection of every Gaussian. Culled Gaussians get flags 0, zero outputs and no tiles.
extern "C" __global__ void project_fwd(int n, Cam cam, const float* __restrict__ means,
                                       const float* __restrict__ log_scales,
                                       const float* __restrict__ quats,
                                       const float* __restrict__ opacity_logits,
                                       const float* __restrict__ sh,
                                       float2* __restrict__ xy, float4* __restrict__ conic_opacity,
                                       float* __restrict__ color, float* __restrict__ depth,
                                       unsigned int* __restrict__ radius,
                                       uint4* __restrict__ rect,
                                       unsigned int* __restrict__ flags) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    xy[i] = make_float2(0.0f, 0.0f);
    conic_opacity[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    color[i * 3] = color[i * 3 + 1] = color[i * 3 + 2] = 0.0f;
    depth[i] = 0.0f;
    radius[i] = 0;
    rect[i] = make_uint4(0, 0, 0, 0);
    flags[i] = 0;

    float tz = (cam.w[6] * means[i * 3] + cam.w[7] * means[i * 3 + 1] + cam.w[8] * means[i * 3 + 2]) +
               cam.t[2];
    if (!(tz > cam.near_z)) return;
    Geometry g;
    geometry(means, log_scales, quats, i, cam, g);
    float a = g.cov2d[0], b = g.cov2d[1], cc = g.cov2d[2];
    float det = a * cc - b * b;
    if (!(det > 0.0f) || !isfinite(det)) return;
    float con[3] = {cc / det, -b / det, a / det};
    float mx = cam.fx * g.t[0] / g.t[2] + cam.cx;
    float my = cam.fy * g.t[1] / g.t[2] + cam.cy;
    float mid = 0.5f * (a + cc);
    float lambda = mid + sqrtf(fmaxf(mid * mid - det, 0.1f));
    float r = ceilf(EXTENT_SIGMAS * sqrtf(lambda));
    if (!isfinite(r) || !isfinite(mx) || !isfinite(my)) return;
    const float ts = (float)TILE;
    uint4 rc = make_uint4(clampi(floorf((mx - r) / ts), cam.tiles_x),
                          clampi(floorf((my - r) / ts), cam.tiles_y),
                          clampi(ceilf((mx + r) / ts), cam.tiles_x),
                          clampi(ceilf((my + r) / ts), cam.tiles_y));
    if (rc.x >= rc.z || rc.y >= rc.w) return;
    float d[3], dist;
    view_dir(means, i, cam, d, &dist);
    float basis[16];
    sh_basis(cam.sh_degree, d[0], d[1], d[2], basis, nullptr);
    int nb = (cam.sh_degree + 1) * (cam.sh_degree + 1);
    const float* coeffs = sh + (size_t)i * cam.sh_coeffs * 3;
    float rgb[3] = {0.5f, 0.5f, 0.5f};
    // Unrolled to the largest basis so that `basis` stays in registers.
#pragma unroll
    for (int j = 0; j < 16; j++) {
        if (j < nb) {
#pragma unroll
            for (int c = 0; c < 3; c++) rgb[c] = rgb[c] + basis[j] * coeffs[j * 3 + c];
        }
    }
    unsigned int f = F_VISIBLE | (g.guard[0] ? F_GUARD_X : 0u) | (g.guard[1] ? F_GUARD_Y : 0u);
#pragma unroll
    for (int c = 0; c < 3; c++) {
        if (rgb[c] < 0.0f) {
            rgb[c] = 0.0f;
            f |= F_CLAMP_R << c;
        }
    }
    float o = 1.0f / (1.0f + cr_expf(-opacity_logits[i]));
    xy[i] = make_float2(mx, my);
    conic_opacity[i] = make_float4(con[0], con[1], con[2], o);
    color[i * 3] = rgb[0];
    color[i * 3 + 1] = rgb[1];
    color[i * 3 + 2] = rgb[2];
    depth[i] = g.t[2];
    // As the reference's to_u32: out-of-range radii become 0 before the max(1).
    unsigned int ri = r < 4294967296.0f ? (unsigned int)r : 0u;
    radius[i] = ri > 1u ? ri : 1u;
    rect[i] = rc;
    flags[i] = f;
}

// Backward of quat_to_mat for a unit quaternion: dL/dq given dL/dR.
__device__ __forceinline__ void quat_to_mat_bwd(const float q[4], const float g[3][3], float d[4]) {
    float w = q[0], x = q[1], y = q[2], z = q[3];
    d[0] = 2.0f * (x * (g[2][1] - g[1][2]) + y * (g[0][2] - g[2][0]) + z * (g[1][0] - g[0][1]));
    d[1] = 2.0f * (-2.0f * x * (g[1][1] + g[2][2]) + y * (g[1][0] + g[0][1]) +
                   z * (g[2][0] + g[0][2]) + w * (g[2][1] - g[1][2]));
    d[2] = 2.0f * (x * (g[1][0] + g[0][1]) - 2.0f * y * (g[0][0] + g[2][2]) +
                   z * (g[2][1] + g[1][2]) + w * (g[0][2] - g[2][0]));
    d[3] = 2.0f * (x * (g[2][0] + g[0][2]) + y * (g[2][1] + g[1][2]) -
                   2.0f * z * (g[0][0] + g[1][1]) + w * (g[1][0] - g[0][1]));
}

// Screen-space gradient layout per Gaussian (9 floats): mean2d x, y; conic a, b, c; opacity;
// colour r, g, b.
#define SG_STRIDE 9

// Backward of project_fwd for Gaussian i. `row` is its SH row (in shared memory): the
// coefficients on entry, their gradient on exit. Every output entry is written (zeros for
// culled Gaussians).
__device__ __forceinline__ void project_bwd_one(int i, const Cam& cam,
                                                const float* __restrict__ means,
                                                const float* __restrict__ log_scales,
                                                const float* __restrict__ quats,
                                                const float4* __restrict__ conic_opacity,
                                                const unsigned int* __restrict__ flags,
                                                const float* __restrict__ screen,
                                                float* __restrict__ d_means,
                                                float* __restrict__ d_log_scales,
                                                float* __restrict__ d_quats,
                                                float* __restrict__ d_logits, float* row) {
    int nsh = cam.sh_coeffs * 3;
    for (int k = 0; k < 3; k++) d_means[i * 3 + k] = d_log_scales[i * 3 + k] = 0.0f;
    for (int k = 0; k < 4; k++) d_quats[i * 4 + k] = 0.0f;
    d_logits[i] = 0.0f;
    unsigned int f = flags[i];
    if (!(f & F_VISIBLE)) {
        for (int k = 0; k < nsh; k++) row[k] = 0.0f;
        return;
    }
    const float* sg = screen + (size_t)i * SG_STRIDE;
    float sg_m[2] = {sg[0], sg[1]};
    float sg_c[3] = {sg[2], sg[3], sg[4]};
    float sg_o = sg[5];
    float sg_col[3] = {sg[6], sg[7], sg[8]};

    Geometry g;
    geometry(means, log_scales, quats, i, cam, g);
    float4 co = conic_opacity[i];
    float o = co.w;
    d_logits[i] = sg_o * o * (1.0f - o);

    // Colour through SH, and the view direction back to the mean.
    float dir[3], dist;
    view_dir(means, i, cam, dir, &dist);
    float b[16], gb[16][3];
    sh_basis(cam.sh_degree, dir[0], dir[1], dir[2], b, gb);
    int nb = (cam.sh_degree + 1) * (cam.sh_degree + 1);
    float dc[3];
#pragma unroll
    for (int c = 0; c < 3; c++) dc[c] = (f & (F_CLAMP_R << c)) ? 0.0f : sg_col[c];
    float d_dir[3] = {0.0f, 0.0f, 0.0f};
    // Unrolled to the largest basis so that `b` and `gb` stay in registers.
#pragma unroll
    for (int j = 0; j < 16; j++) {
        if (j < nb) {
            float s = 0.0f;
#pragma unroll
            for (int c = 0; c < 3; c++) {
                // The coefficient is read before its slot takes the gradient.
                s = s + row[j * 3 + c] * dc[c];
                row[j * 3 + c] = b[j] * dc[c];
            }
#pragma unroll
            for (int a = 0; a < 3; a++) d_dir[a] = d_dir[a] + s * gb[j][a];
        }
    }
    for (int k = nb * 3; k < nsh; k++) row[k] = 0.0f;
    float dd = dir[0] * d_dir[0] + dir[1] * d_dir[1] + dir[2] * d_dir[2];
    float d_mu[3];
#pragma unroll
    for (int k = 0; k < 3; k++) d_mu[k] = (d_dir[k] - dir[k] * dd) / dist;

    // Conic -> 2D covariance: dS2 = -S2^-1 dConic S2^-1; the conic's b stands for both
    // off-diagonal entries.
    float inv[2][2] = {{co.x, co.y}, {co.y, co.z}};
    float ginv[2][2] = {{sg_c[0], sg_c[1] * 0.5f}, {sg_c[1] * 0.5f, sg_c[2]}};
    float g2[2][2];
#pragma unroll
    for (int r = 0; r < 2; r++)
#pragma unroll
        for (int k = 0; k < 2; k++) {
            float acc = 0.0f;
#pragma unroll
            for (int a = 0; a < 2; a++)
#pragma unroll
                for (int bb = 0; bb < 2; bb++) acc = acc + inv[r][a] * ginv[a][bb] * inv[bb][k];
            g2[r][k] = -acc;
        }

    // S2 = J Sc J^T: dSc = J^T G J, dJ = 2 G J Sc.
    float g_cov_cam[3][3];
#pragma unroll
    for (int a = 0; a < 3; a++)
#pragma unroll
        for (int bb = 0; bb < 3; bb++) {
            float acc = 0.0f;
#pragma unroll
            for (int r = 0; r < 2; r++)
#pragma unroll
                for (int k = 0; k < 2; k++) acc = acc + g.jac[r][a] * g2[r][k] * g.jac[k][bb];
            g_cov_cam[a][bb] = acc;
        }
    float g_j[2][3];
#pragma unroll
    for (int r = 0; r < 2; r++)
#pragma unroll
        for (int a = 0; a < 3; a++) {
            float acc = 0.0f;
#pragma unroll
            for (int k = 0; k < 2; k++)
#pragma unroll
                for (int bb = 0; bb < 3; bb++) acc = acc + g2[r][k] * g.jac[k][bb] * g.cov_cam[bb][a];
            g_j[r][a] = 2.0f * acc;
        }

    // J depends on the camera-space centre t (clamped x, y only through t_z).
    float tz = g.t[2], tz2 = g.t[2] * g.t[2];
    float tz3 = tz2 * tz;
    float d_t[3] = {0.0f, 0.0f, 0.0f};
    d_t[2] = d_t[2] - g_j[0][0] * cam.fx / tz2 - g_j[1][1] * cam.fy / tz2;
    float fr[2] = {cam.fx, cam.fy};
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float tc = g.t_clamped[r];
        if (g.guard[r]) {
            float xc = tc / tz;
            d_t[2] = d_t[2] + g_j[r][2] * fr[r] * xc / tz2;
        } else {
            d_t[r] = d_t[r] - g_j[r][2] * fr[r] / tz2;
            d_t[2] = d_t[2] + g_j[r][2] * 2.0f * fr[r] * tc / tz3;
        }
    }
    d_t[0] = d_t[0] + sg_m[0] * cam.fx / tz;
    d_t[1] = d_t[1] + sg_m[1] * cam.fy / tz;
    d_t[2] = d_t[2] - sg_m[0] * cam.fx * g.t[0] / tz2 - sg_m[1] * cam.fy * g.t[1] / tz2;

    float w[3][3], wt[3][3];
    load_w(cam, w);
    transpose3(w, wt);
#pragma unroll
    for (int k = 0; k < 3; k++)
        d_mu[k] = d_mu[k] + (w[0][k] * d_t[0] + w[1][k] * d_t[1] + w[2][k] * d_t[2]);

    // Sc = W S W^T -> dS = W^T dSc W; S = M M^T -> dM = 2 dS M.
    float tmp[3][3], g_sigma[3][3];
    matmul3(wt, g_cov_cam, tmp);
    matmul3(tmp, w, g_sigma);
    float m[3][3], g_m[3][3];
#pragma unroll
    for (int r = 0; r < 3; r++)
#pragma unroll
        for (int k = 0; k < 3; k++) m[r][k] = g.rot[r][k] * g.scale[k];
#pragma unroll
    for (int r = 0; r < 3; r++)
#pragma unroll
        for (int k = 0; k < 3; k++)
            g_m[r][k] = 2.0f * (g_sigma[r][0] * m[0][k] + g_sigma[r][1] * m[1][k] +
                                g_sigma[r][2] * m[2][k]);
    // M = R S: dS_k = (R^T dM)_kk, dR = dM S.
    float g_rot[3][3];
#pragma unroll
    for (int k = 0; k < 3; k++) {
        float d_scale = g.rot[0][k] * g_m[0][k] + g.rot[1][k] * g_m[1][k] + g.rot[2][k] * g_m[2][k];
        d_log_scales[i * 3 + k] = d_scale * g.scale[k];
    }
#pragma unroll
    for (int r = 0; r < 3; r++)
#pragma unroll
        for (int k = 0; k < 3; k++) g_rot[r][k] = g_m[r][k] * g.scale[k];
    float d_qn[4];
    quat_to_mat_bwd(g.qn, g_rot, d_qn);
    float dot = g.qn[0] * d_qn[0] + g.qn[1] * d_qn[1] + g.qn[2] * d_qn[2] + g.qn[3] * d_qn[3];
#pragma unroll
    for (int k = 0; k < 4; k++) d_quats[i * 4 + k] = (d_qn[k] - g.qn[k] * dot) / g.qnorm;
#pragma unroll
    for (int k = 0; k < 3; k++) d_means[i * 3 + k] = d_mu[k];
}

// Threads per block of project_bwd (its launch uses this) and the widest SH row (degree 3).
#define PB_THREADS 128
#define PB_MAX_NSH 48

// Backward of project_fwd: chains the screen-space gradients of visible Gaussians to the
// parameters. The block's SH rows go through shared memory so that the wide per-Gaussian rows
// are read and written by coalesced block-wide loops, not one 192-byte row per thread.
extern "C" __global__ void __launch_bounds__(PB_THREADS)
project_bwd(int n, Cam cam, const float* __restrict__ means, const float* __restrict__ log_scales,
            const float* __restrict__ quats, const float* __restrict__ sh,
            const float4* __restrict__ conic_opacity, const unsigned int* __restrict__ flags,
            const float* __restrict__ screen, float* __restrict__ d_means,
            float* __restrict__ d_log_scales, float* __restrict__ d_quats,
            float* __restrict__ d_logits, float* __restrict__ d_sh) {
    __shared__ float s_sh[PB_THREADS * PB_MAX_NSH];
    int nsh = cam.sh_coeffs * 3;
    int base = blockIdx.x * PB_THREADS;
    int cnt = min(PB_THREADS, n - base);
    size_t off = (size_t)base * nsh;
    for (int k = threadIdx.x; k < cnt * nsh; k += PB_THREADS) s_sh[k] = sh[off + k];
    __syncthreads();
    if ((int)threadIdx.x < cnt)
        project_bwd_one(base + threadIdx.x, cam, means, log_scales, quats, conic_opacity, flags,
                        screen, d_means, d_log_scales, d_quats, d_logits,
                        s_sh + threadIdx.x * nsh);
    __syncthreads();
    for (int k = threadIdx.x; k < cnt * nsh; k += PB_THREADS) d_sh[off + k] = s_sh[k];
}
