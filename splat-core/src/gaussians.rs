//! Gaussian parameters as structure-of-arrays, in the raw (pre-activation) form the optimizer sees.

use num_traits::Float;

/// Number of SH coefficients per colour channel for a degree (1, 4, 9, 16).
pub const fn sh_coeffs_for_degree(degree: usize) -> usize {
    (degree + 1) * (degree + 1)
}

/// Gaussian parameters, generic over the float type so the reference renderer can run in f64
/// for gradient checks; training uses [`Gaussians`] (f32).
///
/// SH coefficients are stored per Gaussian as `coeffs x 3` (coefficient-major, RGB inner):
/// `sh[(i * coeffs + k) * 3 + c]`, with `coeffs = sh_coeffs_for_degree(sh_degree)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Splats<T> {
    /// World-space centres.
    pub means: Vec<[T; 3]>,
    /// Natural logarithm of the per-axis standard deviations.
    pub log_scales: Vec<[T; 3]>,
    /// Rotations as unnormalised quaternions (w, x, y, z).
    pub quats: Vec<[T; 4]>,
    /// Opacity logits: opacity = sigmoid(logit).
    pub opacity_logits: Vec<T>,
    /// SH coefficients, `coeffs x 3` per Gaussian.
    pub sh: Vec<T>,
    /// The SH degree the buffers are sized for (0..=3).
    pub sh_degree: usize,
}

/// Gaussians in single precision, as trained and stored.
pub type Gaussians = Splats<f32>;

impl<T: Float> Splats<T> {
    /// An empty set with buffers sized for `sh_degree`.
    pub fn empty(sh_degree: usize) -> Self {
        Self {
            means: vec![],
            log_scales: vec![],
            quats: vec![],
            opacity_logits: vec![],
            sh: vec![],
            sh_degree,
        }
    }

    /// Number of Gaussians.
    pub fn len(&self) -> usize {
        self.means.len()
    }

    /// Whether there are no Gaussians.
    pub fn is_empty(&self) -> bool {
        self.means.is_empty()
    }

    /// SH coefficients per channel (1, 4, 9 or 16).
    pub fn sh_coeffs(&self) -> usize {
        sh_coeffs_for_degree(self.sh_degree)
    }

    /// The `coeffs x 3` SH block of Gaussian `i`.
    pub fn sh_of(&self, i: usize) -> &[T] {
        let n = self.sh_coeffs() * 3;
        &self.sh[i * n..(i + 1) * n]
    }

    /// Activated opacity of Gaussian `i`.
    pub fn opacity(&self, i: usize) -> T {
        sigmoid(self.opacity_logits[i])
    }

    /// Checks that every buffer has the length the Gaussian count implies.
    pub fn check_lengths(&self) -> Result<(), String> {
        let n = self.len();
        let want_sh = n * self.sh_coeffs() * 3;
        if self.log_scales.len() != n
            || self.quats.len() != n
            || self.opacity_logits.len() != n
            || self.sh.len() != want_sh
        {
            return Err(format!(
                "inconsistent Gaussian buffers: {} means, {} scales, {} rotations, {} opacities, {} SH values (want {})",
                n,
                self.log_scales.len(),
                self.quats.len(),
                self.opacity_logits.len(),
                self.sh.len(),
                want_sh
            ));
        }
        Ok(())
    }

    /// NaN or infinite values: `Some((count, first Gaussian holding one))`, `None` when all
    /// are finite (PLY reading and SOG encoding reject such input with these figures).
    pub fn non_finite(&self) -> Option<(usize, usize)>
    where
        T: Send + Sync,
    {
        use rayon::prelude::*;
        let per = self.sh_coeffs() * 3;
        let (count, first) = (0..self.len())
            .into_par_iter()
            .map(|i| {
                let bad = self.means[i]
                    .iter()
                    .chain(&self.log_scales[i])
                    .chain(&self.quats[i])
                    .chain(std::iter::once(&self.opacity_logits[i]))
                    .chain(&self.sh[i * per..(i + 1) * per])
                    .filter(|v| !v.is_finite())
                    .count();
                (bad, if bad > 0 { i } else { usize::MAX })
            })
            .reduce(|| (0, usize::MAX), |a, b| (a.0 + b.0, a.1.min(b.1)));
        (count > 0).then_some((count, first))
    }

    /// Converts every value to another float type.
    pub fn cast<U: Float>(&self) -> Splats<U> {
        let c = |v: T| U::from(v).unwrap_or_else(U::nan);
        Splats {
            means: self.means.iter().map(|a| a.map(c)).collect(),
            log_scales: self.log_scales.iter().map(|a| a.map(c)).collect(),
            quats: self.quats.iter().map(|a| a.map(c)).collect(),
            opacity_logits: self.opacity_logits.iter().map(|&v| c(v)).collect(),
            sh: self.sh.iter().map(|&v| c(v)).collect(),
            sh_degree: self.sh_degree,
        }
    }

    /// Appends one Gaussian; `sh` must hold `coeffs x 3` values.
    pub fn push(
        &mut self,
        mean: [T; 3],
        log_scale: [T; 3],
        quat: [T; 4],
        opacity_logit: T,
        sh: &[T],
    ) {
        debug_assert_eq!(sh.len(), self.sh_coeffs() * 3);
        self.means.push(mean);
        self.log_scales.push(log_scale);
        self.quats.push(quat);
        self.opacity_logits.push(opacity_logit);
        self.sh.extend_from_slice(sh);
    }
}

/// The logistic function.
pub fn sigmoid<T: Float>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

/// The inverse of the logistic function.
pub fn logit<T: Float>(p: T) -> T {
    (p / (T::one() - p)).ln()
}

impl<T: Float> Splats<T> {
    /// All-zero buffers shaped like `self` (gradients, optimizer moments).
    pub fn zeros_like(&self) -> Self {
        let n = self.len();
        Self {
            means: vec![[T::zero(); 3]; n],
            log_scales: vec![[T::zero(); 3]; n],
            quats: vec![[T::zero(); 4]; n],
            opacity_logits: vec![T::zero(); n],
            sh: vec![T::zero(); self.sh.len()],
            sh_degree: self.sh_degree,
        }
    }

    /// Keeps the Gaussians whose `keep` flag is set, in order.
    pub fn retain_mask(&mut self, keep: &[bool]) {
        debug_assert_eq!(keep.len(), self.len());
        let nsh = self.sh_coeffs() * 3;
        retain_flagged(&mut self.means, keep);
        retain_flagged(&mut self.log_scales, keep);
        retain_flagged(&mut self.quats, keep);
        retain_flagged(&mut self.opacity_logits, keep);
        let mut out = Vec::with_capacity(self.means.len() * nsh);
        for (i, chunk) in self.sh.chunks(nsh).enumerate() {
            if keep[i] {
                out.extend_from_slice(chunk);
            }
        }
        self.sh = out;
    }

    /// Appends copies of the Gaussians at `indices` to the end.
    pub fn append_copies(&mut self, indices: &[usize]) {
        let nsh = self.sh_coeffs() * 3;
        for &i in indices {
            self.means.push(self.means[i]);
            self.log_scales.push(self.log_scales[i]);
            self.quats.push(self.quats[i]);
            self.opacity_logits.push(self.opacity_logits[i]);
            self.sh.extend_from_within(i * nsh..(i + 1) * nsh);
        }
    }

    /// Appends `count` all-zero Gaussians (fresh optimizer state).
    pub fn append_zeros(&mut self, count: usize) {
        let nsh = self.sh_coeffs() * 3;
        let z = T::zero();
        self.means.extend(std::iter::repeat_n([z; 3], count));
        self.log_scales.extend(std::iter::repeat_n([z; 3], count));
        self.quats.extend(std::iter::repeat_n([z; 4], count));
        self.opacity_logits.extend(std::iter::repeat_n(z, count));
        self.sh.extend(std::iter::repeat_n(z, count * nsh));
    }
}

/// Keeps the elements of `v` whose `keep` flag is set, in order (elements past the flags drop):
/// the rule every per-Gaussian array follows when Gaussians are pruned.
pub(crate) fn retain_flagged<T>(v: &mut Vec<T>, keep: &[bool]) {
    let mut k = keep.iter();
    v.retain(|_| *k.next().unwrap_or(&false));
}
