//! COLMAP camera models: parameter layouts, intrinsics and lens distortion.

use super::ColmapError;

/// The COLMAP camera models this crate reads and writes, with COLMAP's numeric ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CameraModel {
    /// `SIMPLE_PINHOLE` (id 0): f, cx, cy.
    SimplePinhole,
    /// `PINHOLE` (id 1): fx, fy, cx, cy.
    Pinhole,
    /// `SIMPLE_RADIAL` (id 2): f, cx, cy, k.
    SimpleRadial,
    /// `RADIAL` (id 3): f, cx, cy, k1, k2.
    Radial,
    /// `OPENCV` (id 4): fx, fy, cx, cy, k1, k2, p1, p2.
    OpenCv,
}

/// Names of every COLMAP model id, so that an unsupported one can be named in errors.
const COLMAP_MODEL_NAMES: [&str; 18] = [
    "SIMPLE_PINHOLE",
    "PINHOLE",
    "SIMPLE_RADIAL",
    "RADIAL",
    "OPENCV",
    "OPENCV_FISHEYE",
    "FULL_OPENCV",
    "FOV",
    "SIMPLE_RADIAL_FISHEYE",
    "RADIAL_FISHEYE",
    "THIN_PRISM_FISHEYE",
    "RAD_TAN_THIN_PRISM_FISHEYE",
    "SIMPLE_DIVISION",
    "DIVISION",
    "SIMPLE_FISHEYE",
    "FISHEYE",
    "SPHERICAL",
    "EQUIRECTANGULAR",
];

impl CameraModel {
    /// Every supported model, in id order.
    pub const ALL: [CameraModel; 5] = [
        CameraModel::SimplePinhole,
        CameraModel::Pinhole,
        CameraModel::SimpleRadial,
        CameraModel::Radial,
        CameraModel::OpenCv,
    ];

    /// COLMAP's numeric model id.
    pub fn id(self) -> i32 {
        match self {
            CameraModel::SimplePinhole => 0,
            CameraModel::Pinhole => 1,
            CameraModel::SimpleRadial => 2,
            CameraModel::Radial => 3,
            CameraModel::OpenCv => 4,
        }
    }

    /// COLMAP's model name, as written in `cameras.txt`.
    pub fn name(self) -> &'static str {
        COLMAP_MODEL_NAMES[self.id() as usize]
    }

    /// Number of parameters COLMAP stores for this model.
    pub fn num_params(self) -> usize {
        match self {
            CameraModel::SimplePinhole => 3,
            CameraModel::Pinhole => 4,
            CameraModel::SimpleRadial => 4,
            CameraModel::Radial => 5,
            CameraModel::OpenCv => 8,
        }
    }

    /// The model with this COLMAP id, if supported.
    pub fn from_id(id: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.id() == id)
    }

    /// The model with this COLMAP name (exact, upper case), if supported.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// A readable description of a model id for error messages, e.g. `OPENCV_FISHEYE (id 5)`.
    pub(crate) fn describe_id(id: i32) -> String {
        match usize::try_from(id)
            .ok()
            .and_then(|i| COLMAP_MODEL_NAMES.get(i))
        {
            Some(name) => format!("{name} (id {id})"),
            None => format!("id {id}"),
        }
    }

    /// Whether the model has lens distortion terms.
    pub fn is_distorted(self) -> bool {
        !matches!(self, CameraModel::SimplePinhole | CameraModel::Pinhole)
    }
}

impl std::fmt::Display for CameraModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Pinhole intrinsics in pixels (COLMAP convention: pixel (0,0) is the top-left corner).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Intrinsics {
    /// Focal length along x.
    pub fx: f64,
    /// Focal length along y.
    pub fy: f64,
    /// Principal point x.
    pub cx: f64,
    /// Principal point y.
    pub cy: f64,
}

/// Lens distortion acting on normalised image coordinates (x/z, y/z).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distortion {
    /// No distortion (pinhole models).
    None,
    /// One radial term: factor 1 + k r² (`SIMPLE_RADIAL`).
    Radial1 {
        /// Radial coefficient.
        k: f64,
    },
    /// Two radial terms: factor 1 + k1 r² + k2 r⁴ (`RADIAL`).
    Radial2 {
        /// First radial coefficient.
        k1: f64,
        /// Second radial coefficient.
        k2: f64,
    },
    /// OpenCV's two radial and two tangential terms (`OPENCV`).
    OpenCv {
        /// First radial coefficient.
        k1: f64,
        /// Second radial coefficient.
        k2: f64,
        /// First tangential coefficient.
        p1: f64,
        /// Second tangential coefficient.
        p2: f64,
    },
}

impl Distortion {
    /// The four OpenCV coefficients (k1, k2, p1, p2) that express this distortion.
    fn coefficients(self) -> [f64; 4] {
        match self {
            Distortion::None => [0.0; 4],
            Distortion::Radial1 { k } => [k, 0.0, 0.0, 0.0],
            Distortion::Radial2 { k1, k2 } => [k1, k2, 0.0, 0.0],
            Distortion::OpenCv { k1, k2, p1, p2 } => [k1, k2, p1, p2],
        }
    }

    /// Whether this is the identity.
    pub fn is_none(self) -> bool {
        self.coefficients() == [0.0; 4]
    }

    /// Distorted normalised point and the 2x2 Jacobian d(distorted)/d(undistorted), row-major.
    fn distort_with_jacobian(self, p: [f64; 2]) -> ([f64; 2], [f64; 4]) {
        let [k1, k2, p1, p2] = self.coefficients();
        let [u, v] = p;
        let (u2, v2, uv) = (u * u, v * v, u * v);
        let r2 = u2 + v2;
        let radial = 1.0 + k1 * r2 + k2 * r2 * r2;
        let d_radial = 2.0 * k1 + 4.0 * k2 * r2; // d(radial)/du = d_radial * u
        let ud = u * radial + 2.0 * p1 * uv + p2 * (r2 + 2.0 * u2);
        let vd = v * radial + 2.0 * p2 * uv + p1 * (r2 + 2.0 * v2);
        let j = [
            radial + u * u * d_radial + 2.0 * p1 * v + 6.0 * p2 * u,
            u * v * d_radial + 2.0 * p1 * u + 2.0 * p2 * v,
            u * v * d_radial + 2.0 * p2 * v + 2.0 * p1 * u,
            radial + v * v * d_radial + 2.0 * p2 * u + 6.0 * p1 * v,
        ];
        ([ud, vd], j)
    }

    /// Applies the distortion to an undistorted normalised point.
    pub fn distort(self, p: [f64; 2]) -> [f64; 2] {
        if self.is_none() {
            return p;
        }
        self.distort_with_jacobian(p).0
    }

    /// Inverts [`Distortion::distort`] by Newton iteration; `None` if the point lies outside
    /// the region where the distortion is invertible (the iteration does not converge).
    pub fn undistort(self, p: [f64; 2]) -> Option<[f64; 2]> {
        if self.is_none() {
            return Some(p);
        }
        if !(p[0].is_finite() && p[1].is_finite()) {
            return None;
        }
        // Starting at the distorted point keeps Newton on the monotone branch nearest the
        // centre for both barrel (k < 0) and pincushion (k > 0) lenses.
        let mut x = p;
        let scale = 1.0 + p[0].abs().max(p[1].abs());
        for _ in 0..100 {
            let (d, j) = self.distort_with_jacobian(x);
            let r = [d[0] - p[0], d[1] - p[1]];
            if r[0].abs().max(r[1].abs()) <= 1e-15 * scale {
                break;
            }
            let det = j[0] * j[3] - j[1] * j[2];
            let step = if det.abs() > 1e-12 {
                [
                    (j[3] * r[0] - j[1] * r[1]) / det,
                    (-j[2] * r[0] + j[0] * r[1]) / det,
                ]
            } else {
                // A singular Jacobian means we sit on the fold; a plain fixed-point step
                // moves off it.
                r
            };
            x = [x[0] - step[0], x[1] - step[1]];
            if !(x[0].is_finite() && x[1].is_finite()) {
                return None;
            }
            if step[0].abs().max(step[1].abs()) <= 1e-16 * scale {
                break;
            }
        }
        let d = self.distort(x);
        let err = (d[0] - p[0]).abs().max((d[1] - p[1]).abs());
        // Past the fold of the lens model (Jacobian no longer positive) or where the radial
        // factor flips sign, a root maps to a different ray than the camera saw.
        let (_, j) = self.distort_with_jacobian(x);
        let [k1, k2, _, _] = self.coefficients();
        let r2 = x[0] * x[0] + x[1] * x[1];
        let radial = 1.0 + k1 * r2 + k2 * r2 * r2;
        (err <= 1e-9 * scale && j[0] * j[3] - j[1] * j[2] > 0.0 && radial > 0.0).then_some(x)
    }
}

/// A COLMAP camera: model, image size and the model's parameters in COLMAP order.
#[derive(Clone, Debug, PartialEq)]
pub struct Camera {
    /// Camera id (unique within a reconstruction).
    pub id: u32,
    /// Camera model.
    pub model: CameraModel,
    /// Image width in pixels.
    pub width: u64,
    /// Image height in pixels.
    pub height: u64,
    /// Parameters; always exactly `model.num_params()` long.
    params: Vec<f64>,
}

impl Camera {
    /// A camera; fails if `params` does not have the model's parameter count.
    pub fn new(
        id: u32,
        model: CameraModel,
        width: u64,
        height: u64,
        params: Vec<f64>,
    ) -> Result<Self, ColmapError> {
        if params.len() != model.num_params() {
            return Err(ColmapError::ParamCount {
                model,
                expected: model.num_params(),
                got: params.len(),
            });
        }
        Ok(Self {
            id,
            model,
            width,
            height,
            params,
        })
    }

    /// A `PINHOLE` camera.
    pub fn pinhole(id: u32, width: u64, height: u64, fx: f64, fy: f64, cx: f64, cy: f64) -> Self {
        Self {
            id,
            model: CameraModel::Pinhole,
            width,
            height,
            params: vec![fx, fy, cx, cy],
        }
    }

    /// The parameters in COLMAP order.
    pub fn params(&self) -> &[f64] {
        &self.params
    }

    /// Mutable parameters (the count is fixed by the model).
    pub fn params_mut(&mut self) -> &mut [f64] {
        &mut self.params
    }

    /// Focal lengths and principal point.
    pub fn intrinsics(&self) -> Intrinsics {
        let p = &self.params;
        match self.model {
            CameraModel::SimplePinhole | CameraModel::SimpleRadial | CameraModel::Radial => {
                Intrinsics {
                    fx: p[0],
                    fy: p[0],
                    cx: p[1],
                    cy: p[2],
                }
            }
            CameraModel::Pinhole | CameraModel::OpenCv => Intrinsics {
                fx: p[0],
                fy: p[1],
                cx: p[2],
                cy: p[3],
            },
        }
    }

    /// The distortion parameters (those after focal length and principal point).
    pub fn distortion_params(&self) -> &[f64] {
        let start = match self.model {
            CameraModel::SimplePinhole | CameraModel::SimpleRadial | CameraModel::Radial => 3,
            CameraModel::Pinhole | CameraModel::OpenCv => 4,
        };
        &self.params[start..]
    }

    /// The lens distortion of this camera.
    pub fn distortion(&self) -> Distortion {
        let d = self.distortion_params();
        match self.model {
            CameraModel::SimplePinhole | CameraModel::Pinhole => Distortion::None,
            CameraModel::SimpleRadial => Distortion::Radial1 { k: d[0] },
            CameraModel::Radial => Distortion::Radial2 { k1: d[0], k2: d[1] },
            CameraModel::OpenCv => Distortion::OpenCv {
                k1: d[0],
                k2: d[1],
                p1: d[2],
                p2: d[3],
            },
        }
    }

    /// Projects a point in camera coordinates (z forward) to pixels, with distortion.
    pub fn project(&self, p: [f64; 3]) -> [f64; 2] {
        let n = self.distortion().distort([p[0] / p[2], p[1] / p[2]]);
        self.normalized_to_pixel(n)
    }

    /// Pixel to undistorted normalised coordinates; `None` where distortion is not invertible.
    pub fn unproject(&self, pixel: [f64; 2]) -> Option<[f64; 2]> {
        self.distortion().undistort(self.pixel_to_normalized(pixel))
    }

    /// Pixel to (distorted) normalised coordinates, applying only focal length and principal point.
    pub fn pixel_to_normalized(&self, pixel: [f64; 2]) -> [f64; 2] {
        let k = self.intrinsics();
        [(pixel[0] - k.cx) / k.fx, (pixel[1] - k.cy) / k.fy]
    }

    /// (Distorted) normalised coordinates to pixels, applying only focal length and principal point.
    pub fn normalized_to_pixel(&self, n: [f64; 2]) -> [f64; 2] {
        let k = self.intrinsics();
        [k.fx * n[0] + k.cx, k.fy * n[1] + k.cy]
    }
}
