//! Real spherical harmonics up to degree 3: view-dependent colour and its derivatives.

use num_traits::Float;

/// Coefficient of the degree-0 band; colour = C0 * dc + 0.5 for a Gaussian without higher bands.
pub const SH_C0: f64 = 0.282_094_791_773_878_14;
/// Coefficient of the degree-1 band.
pub const SH_C1: f64 = 0.488_602_511_902_919_9;
/// Coefficients of the degree-2 band.
pub const SH_C2: [f64; 5] = [
    1.092_548_430_592_079_2,
    -1.092_548_430_592_079_2,
    0.315_391_565_252_520_05,
    -1.092_548_430_592_079_2,
    0.546_274_215_296_039_6,
];
/// Coefficients of the degree-3 band.
pub const SH_C3: [f64; 7] = [
    -0.590_043_589_926_643_5,
    2.890_611_442_640_554,
    -0.457_045_799_464_465_8,
    0.373_176_332_590_115_4,
    -0.457_045_799_464_465_8,
    1.445_305_721_320_277,
    -0.590_043_589_926_643_5,
];

#[inline]
fn k<T: Float>(x: f64) -> T {
    // Conversions from f64 constants to f32/f64 cannot fail.
    T::from(x).unwrap_or_else(T::nan)
}

/// Converts an RGB colour in [0, 1] to the DC coefficient that reproduces it.
pub fn rgb_to_sh_dc(rgb: f32) -> f32 {
    (rgb - 0.5) / SH_C0 as f32
}

/// Converts a DC coefficient back to the colour it renders as (before clamping).
pub fn sh_dc_to_rgb(dc: f32) -> f32 {
    dc * SH_C0 as f32 + 0.5
}

/// The SH basis evaluated at unit direction `d` for the first `(degree+1)^2` functions;
/// when `grad` is given, also each function's gradient with respect to `d`.
pub fn sh_basis<T: Float>(
    degree: usize,
    d: [T; 3],
    out: &mut [T; 16],
    grad: Option<&mut [[T; 3]; 16]>,
) {
    let [x, y, z] = d;
    let zero = T::zero();
    out[0] = k(SH_C0);
    let mut g = [[zero; 3]; 16];
    if degree >= 1 {
        let c1: T = k(SH_C1);
        out[1] = -c1 * y;
        out[2] = c1 * z;
        out[3] = -c1 * x;
        g[1] = [zero, -c1, zero];
        g[2] = [zero, zero, c1];
        g[3] = [-c1, zero, zero];
    }
    if degree >= 2 {
        let (xx, yy, zz) = (x * x, y * y, z * z);
        let c: [T; 5] = SH_C2.map(k);
        let two: T = k(2.0);
        let four: T = k(4.0);
        out[4] = c[0] * x * y;
        out[5] = c[1] * y * z;
        out[6] = c[2] * (two * zz - xx - yy);
        out[7] = c[3] * x * z;
        out[8] = c[4] * (xx - yy);
        g[4] = [c[0] * y, c[0] * x, zero];
        g[5] = [zero, c[1] * z, c[1] * y];
        g[6] = [-two * c[2] * x, -two * c[2] * y, four * c[2] * z];
        g[7] = [c[3] * z, zero, c[3] * x];
        g[8] = [two * c[4] * x, -two * c[4] * y, zero];
    }
    if degree >= 3 {
        let (xx, yy, zz) = (x * x, y * y, z * z);
        let c: [T; 7] = SH_C3.map(k);
        let (two, three, four, six, eight): (T, T, T, T, T) =
            (k(2.0), k(3.0), k(4.0), k(6.0), k(8.0));
        out[9] = c[0] * y * (three * xx - yy);
        out[10] = c[1] * x * y * z;
        out[11] = c[2] * y * (four * zz - xx - yy);
        out[12] = c[3] * z * (two * zz - three * xx - three * yy);
        out[13] = c[4] * x * (four * zz - xx - yy);
        out[14] = c[5] * z * (xx - yy);
        out[15] = c[6] * x * (xx - three * yy);
        g[9] = [six * c[0] * x * y, c[0] * (three * xx - three * yy), zero];
        g[10] = [c[1] * y * z, c[1] * x * z, c[1] * x * y];
        g[11] = [
            -two * c[2] * x * y,
            c[2] * (four * zz - xx - three * yy),
            eight * c[2] * y * z,
        ];
        g[12] = [
            -six * c[3] * x * z,
            -six * c[3] * y * z,
            c[3] * (six * zz - three * xx - three * yy),
        ];
        g[13] = [
            c[4] * (four * zz - three * xx - yy),
            -two * c[4] * x * y,
            eight * c[4] * x * z,
        ];
        g[14] = [two * c[5] * x * z, -two * c[5] * y * z, c[5] * (xx - yy)];
        g[15] = [c[6] * (three * xx - three * yy), -six * c[6] * x * y, zero];
    }
    if let Some(gr) = grad {
        *gr = g;
    }
}

/// Colour of one Gaussian seen along unit direction `d`: SH(d) + 0.5, clamped below at 0.
/// Returns the colour and, per channel, whether the clamp was active (zero gradient there).
pub fn eval_color<T: Float>(degree: usize, coeffs: &[T], d: [T; 3]) -> ([T; 3], [bool; 3]) {
    let mut b = [T::zero(); 16];
    sh_basis(degree, d, &mut b, None);
    let n = (degree + 1) * (degree + 1);
    let half: T = k(0.5);
    let mut rgb = [half; 3];
    for (j, bj) in b.iter().enumerate().take(n) {
        for c in 0..3 {
            rgb[c] = rgb[c] + *bj * coeffs[j * 3 + c];
        }
    }
    let mut clamped = [false; 3];
    for c in 0..3 {
        if rgb[c] < T::zero() {
            rgb[c] = T::zero();
            clamped[c] = true;
        }
    }
    (rgb, clamped)
}

/// Backward of [`eval_color`]: adds dL/dcoeffs into `d_coeffs` and returns dL/dd.
pub fn eval_color_backward<T: Float>(
    degree: usize,
    coeffs: &[T],
    d: [T; 3],
    clamped: [bool; 3],
    d_rgb: [T; 3],
    d_coeffs: &mut [T],
) -> [T; 3] {
    let mut b = [T::zero(); 16];
    let mut g = [[T::zero(); 3]; 16];
    sh_basis(degree, d, &mut b, Some(&mut g));
    let n = (degree + 1) * (degree + 1);
    let dc = [0, 1, 2].map(|c| if clamped[c] { T::zero() } else { d_rgb[c] });
    let mut d_dir = [T::zero(); 3];
    for j in 0..n {
        let mut s = T::zero();
        for c in 0..3 {
            d_coeffs[j * 3 + c] = d_coeffs[j * 3 + c] + b[j] * dc[c];
            s = s + coeffs[j * 3 + c] * dc[c];
        }
        for a in 0..3 {
            d_dir[a] = d_dir[a] + s * g[j][a];
        }
    }
    d_dir
}
