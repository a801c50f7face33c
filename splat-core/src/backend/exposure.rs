//! Per-image exposure compensation (the affine colour transform of Kerbl et al.'s hierarchical
//! 3DGS): a training render is mapped through `y = A x + b` before the loss, so photos whose
//! exposure or white balance differ do not pull the shared colours apart. Test renders and the
//! exported Gaussians never see it.

/// A 3x4 row-major affine colour transform: `y_c = sum_k m[4c + k] x_k + m[4c + 3]`.
pub type Exposure = [f32; 12];

/// The identity transform (where every image starts).
pub const IDENTITY: Exposure = [
    1.0, 0.0, 0.0, 0.0, //
    0.0, 1.0, 0.0, 0.0, //
    0.0, 0.0, 1.0, 0.0,
];

/// `image` (interleaved RGB) mapped through `m`.
pub fn apply(m: &Exposure, image: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(image.len());
    for px in image.chunks_exact(3) {
        for c in 0..3 {
            let r = &m[4 * c..4 * c + 4];
            out.push(r[0] * px[0] + r[1] * px[1] + r[2] * px[2] + r[3]);
        }
    }
    out
}

/// Back through [`apply`]: from dLoss/dy to dLoss/dx (returned in place of `grad`) and
/// dLoss/dm, accumulated in f64 because it sums over every pixel.
pub fn backward(m: &Exposure, image: &[f32], grad: &mut [f32]) -> Exposure {
    let mut gm = [0.0f64; 12];
    for (px, g) in image.chunks_exact(3).zip(grad.chunks_exact_mut(3)) {
        let gy = [g[0], g[1], g[2]];
        for c in 0..3 {
            for k in 0..3 {
                gm[4 * c + k] += (gy[c] * px[k]) as f64;
            }
            gm[4 * c + 3] += gy[c] as f64;
        }
        for k in 0..3 {
            g[k] = m[k] * gy[0] + m[4 + k] * gy[1] + m[8 + k] * gy[2];
        }
    }
    gm.map(|v| v as f32)
}
