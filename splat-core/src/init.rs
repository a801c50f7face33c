//! Initial Gaussians for training: from a structure-from-motion point cloud, or random in a box.
//!
//! Follows the 3DGS recipe: DC colour from the point colour, higher SH bands zero, an isotropic
//! scale from the mean squared distance to the three nearest neighbours, identity rotation and
//! opacity 0.1.

use std::num::NonZero;

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::gaussians::{logit, Gaussians};
use crate::sh::rgb_to_sh_dc;

/// Why initial Gaussians could not be built.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// There are no points to start from.
    #[error("no points to initialise Gaussians from")]
    Empty,
    /// Points and colours differ in number.
    #[error("{points} points but {colors} colours")]
    LengthMismatch {
        /// Number of points.
        points: usize,
        /// Number of colours.
        colors: usize,
    },
    /// A point or colour is NaN or infinite.
    #[error("point {index} has a non-finite coordinate or colour")]
    NonFinite {
        /// Index of the first offending point.
        index: usize,
    },
    /// The options are out of range.
    #[error("invalid initialisation options: {0}")]
    BadOptions(String),
}

/// Settings shared by both initialisers.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// SH degree to size the buffers for (0..=3); bands above 0 start at zero.
    pub sh_degree: usize,
    /// Keep at most this many points, chosen uniformly at random (order preserved).
    pub max_points: Option<usize>,
    /// Seed of the subsampling and of random initialisation.
    pub seed: u64,
    /// Opacity every Gaussian starts with (3DGS: 0.1).
    pub initial_opacity: f32,
    /// Factor on the neighbour-distance scale (3DGS: 1; gsplat's MCMC recipe: 0.1).
    pub scale_factor: f32,
    /// Lower bound on the neighbour distance, so duplicate points do not get a zero (−∞ log) scale.
    pub min_distance: f32,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            sh_degree: 3,
            max_points: None,
            seed: 0,
            initial_opacity: 0.1,
            scale_factor: 1.0,
            min_distance: 1e-7,
        }
    }
}

impl InitOptions {
    fn validate(&self) -> Result<(), InitError> {
        if self.sh_degree > 3 {
            return Err(InitError::BadOptions(format!(
                "SH degree {} (at most 3)",
                self.sh_degree
            )));
        }
        if !(self.initial_opacity > 0.0 && self.initial_opacity < 1.0) {
            return Err(InitError::BadOptions(format!(
                "initial opacity {} not in (0, 1)",
                self.initial_opacity
            )));
        }
        if !(self.scale_factor > 0.0 && self.scale_factor.is_finite()) {
            return Err(InitError::BadOptions(format!(
                "scale factor {} not positive",
                self.scale_factor
            )));
        }
        if !(self.min_distance > 0.0 && self.min_distance.is_finite()) {
            return Err(InitError::BadOptions(format!(
                "minimum distance {} not positive",
                self.min_distance
            )));
        }
        if self.max_points == Some(0) {
            return Err(InitError::BadOptions("max_points is 0".into()));
        }
        Ok(())
    }
}

/// Gaussians from SfM points with colours in [0, 1] (values outside are used as given).
pub fn from_points(
    points: &[[f32; 3]],
    colors: &[[f32; 3]],
    opts: &InitOptions,
) -> Result<Gaussians, InitError> {
    opts.validate()?;
    if points.len() != colors.len() {
        return Err(InitError::LengthMismatch {
            points: points.len(),
            colors: colors.len(),
        });
    }
    if points.is_empty() {
        return Err(InitError::Empty);
    }
    if let Some(index) = points
        .iter()
        .zip(colors)
        .position(|(p, c)| p.iter().chain(c).any(|v| !v.is_finite()))
    {
        return Err(InitError::NonFinite { index });
    }
    let keep: Vec<usize> = match opts.max_points {
        Some(m) if m < points.len() => {
            let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
            let mut idx = rand::seq::index::sample(&mut rng, points.len(), m).into_vec();
            idx.sort_unstable();
            idx
        }
        _ => (0..points.len()).collect(),
    };
    let pts: Vec<[f32; 3]> = keep.iter().map(|&i| points[i]).collect();
    let cols: Vec<[f32; 3]> = keep.iter().map(|&i| colors[i]).collect();
    Ok(build(&pts, &cols, opts))
}

/// Gaussians from SfM points with 8-bit colours, as COLMAP stores them.
pub fn from_points_u8(
    points: &[[f32; 3]],
    colors: &[[u8; 3]],
    opts: &InitOptions,
) -> Result<Gaussians, InitError> {
    let c: Vec<[f32; 3]> = colors.iter().map(|c| c.map(|v| v as f32 / 255.0)).collect();
    from_points(points, &c, opts)
}

/// `count` Gaussians uniform in the box `[lo, hi]` with uniform random colours (3DGS's random init).
pub fn random_in_box(
    count: usize,
    lo: [f32; 3],
    hi: [f32; 3],
    opts: &InitOptions,
) -> Result<Gaussians, InitError> {
    opts.validate()?;
    if count == 0 {
        return Err(InitError::Empty);
    }
    if (0..3).any(|a| !(lo[a].is_finite() && hi[a].is_finite() && lo[a] <= hi[a])) {
        return Err(InitError::BadOptions(format!(
            "box {lo:?}..{hi:?} is empty or not finite"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let pts: Vec<[f32; 3]> = (0..count)
        .map(|_| [0, 1, 2].map(|a| lo[a] + (hi[a] - lo[a]) * rng.random::<f32>()))
        .collect();
    let cols: Vec<[f32; 3]> = (0..count)
        .map(|_| {
            [
                rng.random::<f32>(),
                rng.random::<f32>(),
                rng.random::<f32>(),
            ]
        })
        .collect();
    Ok(build(&pts, &cols, opts))
}

/// Mean squared distance to (up to) the three nearest other points, per point.
pub fn mean_sq_knn_distance(points: &[[f32; 3]]) -> Vec<f32> {
    if points.len() < 2 {
        return vec![0.0; points.len()];
    }
    // new_from_slice only fails on inputs it cannot index (far beyond any SfM cloud); fall back to brute force then.
    let Ok(tree) = ImmutableKdTree::<f32, 3>::new_from_slice(points) else {
        return brute_force_knn(points);
    };
    let want = points.len().min(4);
    let Some(k) = NonZero::new(want) else {
        return vec![0.0; points.len()];
    };
    let results = tree
        .query_batch(points)
        .nearest_n::<SquaredEuclidean<f32>>(k)
        .execute();
    results
        .iter()
        .enumerate()
        .map(|(i, r)| {
            // The query point itself is among the results; with duplicates it may not be first.
            let mut skipped_self = false;
            let mut sum = 0.0f32;
            let mut n = 0usize;
            for item in r.iter() {
                if !skipped_self && item.item as usize == i {
                    skipped_self = true;
                    continue;
                }
                if n < 3 {
                    sum += item.distance;
                    n += 1;
                }
            }
            if n == 0 {
                0.0
            } else {
                sum / n as f32
            }
        })
        .collect()
}

fn brute_force_knn(points: &[[f32; 3]]) -> Vec<f32> {
    points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut d: Vec<f32> = points
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, q)| (0..3).map(|a| (p[a] - q[a]).powi(2)).sum())
                .collect();
            d.sort_by(f32::total_cmp);
            let n = d.len().min(3);
            d[..n].iter().sum::<f32>() / n.max(1) as f32
        })
        .collect()
}

fn build(points: &[[f32; 3]], colors: &[[f32; 3]], opts: &InitOptions) -> Gaussians {
    let d2 = mean_sq_knn_distance(points);
    let min_d2 = opts.min_distance * opts.min_distance;
    let mut g = Gaussians::empty(opts.sh_degree);
    let per = g.sh_coeffs() * 3;
    let mut sh = vec![0.0f32; per];
    let op = logit(opts.initial_opacity);
    let ln_factor = opts.scale_factor.ln();
    for (i, p) in points.iter().enumerate() {
        // A lone point has no neighbours; give it the clamped minimum like a duplicate.
        let s = 0.5 * d2[i].max(min_d2).ln() + ln_factor;
        for c in 0..3 {
            sh[c] = rgb_to_sh_dc(colors[i][c]);
        }
        g.push(*p, [s; 3], [1.0, 0.0, 0.0, 0.0], op, &sh);
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gaussians::sigmoid;
    use crate::sh::SH_C0;

    fn grid(n: usize, spacing: f32) -> Vec<[f32; 3]> {
        (0..n * n * n)
            .map(|i| {
                [
                    (i % n) as f32 * spacing,
                    ((i / n) % n) as f32 * spacing,
                    (i / (n * n)) as f32 * spacing,
                ]
            })
            .collect()
    }

    #[test]
    fn scale_colour_rotation_opacity_follow_the_recipe() {
        // On a cubic lattice every interior point has 6 neighbours at `spacing`, so the scale is ln(spacing).
        let pts = grid(5, 0.25);
        let cols: Vec<[f32; 3]> = (0..pts.len())
            .map(|i| [i as f32 / pts.len() as f32, 0.5, 1.0])
            .collect();
        let g = from_points(
            &pts,
            &cols,
            &InitOptions {
                sh_degree: 2,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(g.len(), 125);
        assert_eq!(g.sh_degree, 2);
        g.check_lengths().unwrap();
        let centre = 2 + 2 * 5 + 2 * 25;
        for a in 0..3 {
            assert!(
                (g.log_scales[centre][a] - 0.25f32.ln()).abs() < 1e-5,
                "{:?}",
                g.log_scales[centre]
            );
        }
        for i in 0..g.len() {
            assert_eq!(g.quats[i], [1.0, 0.0, 0.0, 0.0]);
            assert!((g.opacity(i) - 0.1).abs() < 1e-6);
            let sh = g.sh_of(i);
            for c in 0..3 {
                assert!((sh[c] * SH_C0 as f32 + 0.5 - cols[i][c]).abs() < 1e-6);
            }
            assert!(sh[3..].iter().all(|&v| v == 0.0));
        }
        assert!((sigmoid(g.opacity_logits[0]) - 0.1).abs() < 1e-6);
    }

    #[test]
    fn scale_factor_and_opacity_options_apply() {
        let pts = grid(4, 0.5);
        let cols = vec![[0.5f32; 3]; pts.len()];
        let plain = from_points(&pts, &cols, &InitOptions::default()).unwrap();
        let opts = InitOptions {
            scale_factor: 0.1,
            initial_opacity: 0.5,
            ..Default::default()
        };
        let g = from_points(&pts, &cols, &opts).unwrap();
        for i in 0..g.len() {
            for a in 0..3 {
                let d = g.log_scales[i][a] - plain.log_scales[i][a];
                assert!((d - 0.1f32.ln()).abs() < 1e-5, "{d}");
            }
            assert!((g.opacity(i) - 0.5).abs() < 1e-6);
        }
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let opts = InitOptions {
                scale_factor: bad,
                ..Default::default()
            };
            assert!(from_points(&pts, &cols, &opts).is_err(), "{bad}");
        }
    }

    #[test]
    fn knn_matches_brute_force_and_clamps_duplicates() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut pts: Vec<[f32; 3]> = (0..500)
            .map(|_| {
                [
                    rng.random::<f32>(),
                    rng.random::<f32>(),
                    rng.random::<f32>() * 0.1,
                ]
            })
            .collect();
        let fast = mean_sq_knn_distance(&pts);
        let slow = brute_force_knn(&pts);
        for (a, b) in fast.iter().zip(&slow) {
            assert!((a - b).abs() <= 1e-6 * b.max(1e-6), "{a} vs {b}");
        }
        // Four copies of one point: all three nearest neighbours are at distance 0 -> clamped, finite.
        pts.truncate(10);
        for _ in 0..3 {
            pts.push(pts[0]);
        }
        let cols = vec![[0.5; 3]; pts.len()];
        let opts = InitOptions {
            min_distance: 1e-4,
            ..Default::default()
        };
        let g = from_points(&pts, &cols, &opts).unwrap();
        assert!((g.log_scales[0][0] - 1e-4f32.ln()).abs() < 1e-4);
        assert!(g.log_scales.iter().flatten().all(|v| v.is_finite()));
    }

    #[test]
    fn subsample_is_seeded_and_keeps_order() {
        let pts = grid(6, 1.0);
        let cols: Vec<[u8; 3]> = (0..pts.len()).map(|i| [(i % 256) as u8, 0, 255]).collect();
        let o = |seed| InitOptions {
            max_points: Some(50),
            seed,
            sh_degree: 0,
            ..Default::default()
        };
        let a = from_points_u8(&pts, &cols, &o(7)).unwrap();
        let b = from_points_u8(&pts, &cols, &o(7)).unwrap();
        let c = from_points_u8(&pts, &cols, &o(8)).unwrap();
        assert_eq!(a.len(), 50);
        assert_eq!(a, b);
        assert_ne!(a.means, c.means);
        // Subsampled points keep their input order (lattice index grows with x, then y, then z).
        let key = |p: &[f32; 3]| (p[2], p[1], p[0]);
        assert!(a.means.windows(2).all(|w| key(&w[0]) < key(&w[1])));
        assert!((a.sh[2] * SH_C0 as f32 + 0.5 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn random_box_is_seeded_and_inside() {
        let o = InitOptions {
            seed: 11,
            sh_degree: 3,
            ..Default::default()
        };
        let a = random_in_box(2000, [-1.3; 3], [1.3, 1.3, 0.5], &o).unwrap();
        let b = random_in_box(2000, [-1.3; 3], [1.3, 1.3, 0.5], &o).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 2000);
        assert!(a
            .means
            .iter()
            .all(|p| p.iter().all(|&v| (-1.3..=1.3).contains(&v)) && p[2] <= 0.5));
        // Colours span [0, 1] -> DC spans about ±0.5/C0.
        let dc: Vec<f32> = (0..a.len()).map(|i| a.sh_of(i)[0]).collect();
        let (lo, hi) = dc
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        assert!(
            lo < -1.6 && hi > 1.6 && lo >= -1.7725 && hi <= 1.7725,
            "{lo} {hi}"
        );
        let other = random_in_box(
            2000,
            [-1.3; 3],
            [1.3, 1.3, 0.5],
            &InitOptions {
                seed: 12,
                ..o.clone()
            },
        )
        .unwrap();
        assert_ne!(a.means, other.means);
    }

    #[test]
    fn bad_input_is_an_error() {
        let o = InitOptions::default();
        assert!(matches!(from_points(&[], &[], &o), Err(InitError::Empty)));
        assert!(matches!(
            from_points(&[[0.0; 3]], &[], &o),
            Err(InitError::LengthMismatch {
                points: 1,
                colors: 0
            })
        ));
        let pts = [[0.0; 3], [1.0, f32::NAN, 0.0]];
        assert!(matches!(
            from_points(&pts, &[[0.5; 3]; 2], &o),
            Err(InitError::NonFinite { index: 1 })
        ));
        assert!(matches!(
            random_in_box(10, [1.0; 3], [0.0; 3], &o),
            Err(InitError::BadOptions(_))
        ));
        let bad = InitOptions {
            sh_degree: 4,
            ..Default::default()
        };
        assert!(matches!(
            random_in_box(10, [0.0; 3], [1.0; 3], &bad),
            Err(InitError::BadOptions(_))
        ));
        let bad = InitOptions {
            initial_opacity: 1.0,
            ..Default::default()
        };
        assert!(matches!(
            random_in_box(10, [0.0; 3], [1.0; 3], &bad),
            Err(InitError::BadOptions(_))
        ));
    }
}
