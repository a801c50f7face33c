//! Resumable checkpoints: parameters, optimizer moments, densification statistics and the
//! position in every schedule, written atomically.
//!
//! Layout: the magic `SPCKPT01`, a little-endian u64 header length, a JSON header, then the
//! raw little-endian f32/u32 arrays (parameters, first moments, second moments, statistics, and
//! the 3D anti-aliasing filter when the header says there is one).

use std::path::Path;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::densify::DensifyStats;
use super::schedule::PlateauMonitor;
use super::{MonitorCheck, PhaseTimes, StopReason, TrainError, TrainState, Trainer};
use crate::backend::{SessionState, TrainBackend};
use crate::gaussians::{sh_coeffs_for_degree, Gaussians};
use crate::optim::Adam;
use crate::scene::Scene;

const MAGIC: &[u8; 8] = b"SPCKPT01";

#[derive(Serialize, Deserialize)]
struct Header {
    config: TrainConfig,
    iteration: usize,
    gaussians: usize,
    sh_degree: usize,
    extent: f32,
    adam_step: u64,
    rng_seed: [u8; 32],
    rng_stream: u64,
    rng_word_pos: String,
    order: Vec<usize>,
    order_pos: usize,
    plateau: PlateauMonitor,
    lr_dropped: bool,
    checks: Vec<MonitorCheck>,
    /// Absent in checkpoints written before the curve was kept.
    #[serde(default)]
    loss_curve: super::LossCurve,
    /// Absent in checkpoints written before exposure compensation.
    #[serde(default)]
    exposures: super::exposure::Exposures,
    /// Whether the 3D filter's variances follow the statistics (absent: no filter saved; a
    /// resumed run then recomputes it).
    #[serde(default)]
    filter3d: bool,
    stop: Option<StopReason>,
    times: PhaseTimes,
    seconds: f64,
}

fn push_splats(out: &mut Vec<u8>, g: &Gaussians) {
    for s in [
        g.means.as_flattened(),
        g.log_scales.as_flattened(),
        g.quats.as_flattened(),
        &g.opacity_logits,
        &g.sh,
    ] {
        for v in s {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// Writes the trainer's state to `path` atomically.
pub fn save(trainer: &mut Trainer, path: &Path) -> Result<(), TrainError> {
    let snap = trainer.snapshot()?;
    let st = &trainer.state;
    let header = Header {
        config: trainer.cfg.clone(),
        iteration: st.iteration,
        gaussians: snap.params.len(),
        sh_degree: snap.params.sh_degree,
        extent: trainer.extent,
        adam_step: snap.adam.step,
        rng_seed: st.rng.get_seed(),
        rng_stream: st.rng.get_stream(),
        rng_word_pos: st.rng.get_word_pos().to_string(),
        order: st.order.clone(),
        order_pos: st.order_pos,
        plateau: st.plateau.clone(),
        lr_dropped: st.lr_dropped,
        checks: st.checks.clone(),
        loss_curve: st.loss_curve.clone(),
        exposures: st.exposures.clone(),
        filter3d: trainer.filter3d.is_some(),
        stop: st.stop,
        times: st.times.clone(),
        seconds: trainer.elapsed_seconds(),
    };
    let json = serde_json::to_vec(&header).map_err(|e| TrainError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(16 + json.len() + snap.params.len() * 59 * 4 * 3);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    push_splats(&mut out, &snap.params);
    push_splats(&mut out, &snap.adam.m);
    push_splats(&mut out, &snap.adam.v);
    for v in &snap.stats.grad_accum {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in snap.stats.count.iter().chain(&snap.stats.max_radius) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in trainer.filter3d.iter().flat_map(|f| f.iter()) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    super::write_atomic(path, &out)
}

struct Reader<'b> {
    data: &'b [u8],
    pos: usize,
    path: &'b Path,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], TrainError> {
        if self.data.len() - self.pos < n {
            return Err(TrainError::Io {
                path: self.path.to_path_buf(),
                message: format!("checkpoint truncated while reading {what}"),
            });
        }
        self.pos += n;
        Ok(&self.data[self.pos - n..self.pos])
    }

    fn f32s(&mut self, n: usize, what: &str) -> Result<Vec<f32>, TrainError> {
        Ok(self
            .take(n * 4, what)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn u32s(&mut self, n: usize, what: &str) -> Result<Vec<u32>, TrainError> {
        Ok(self
            .take(n * 4, what)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn splats(&mut self, n: usize, degree: usize, what: &str) -> Result<Gaussians, TrainError> {
        let to3 = |v: Vec<f32>| {
            v.chunks_exact(3)
                .map(|c| [c[0], c[1], c[2]])
                .collect::<Vec<_>>()
        };
        let means = to3(self.f32s(n * 3, what)?);
        let log_scales = to3(self.f32s(n * 3, what)?);
        let quats = self
            .f32s(n * 4, what)?
            .chunks_exact(4)
            .map(|c| [c[0], c[1], c[2], c[3]])
            .collect();
        let opacity_logits = self.f32s(n, what)?;
        let sh = self.f32s(n * sh_coeffs_for_degree(degree) * 3, what)?;
        Ok(Gaussians {
            means,
            log_scales,
            quats,
            opacity_logits,
            sh,
            sh_degree: degree,
        })
    }
}

/// Reads a checkpoint and rebuilds the trainer over `scene` and `backend`.
pub fn load<'a>(
    path: &Path,
    scene: &'a Scene,
    backend: &mut dyn TrainBackend,
) -> Result<Trainer<'a>, TrainError> {
    let io = |m: String| TrainError::Io {
        path: path.to_path_buf(),
        message: m,
    };
    let data = std::fs::read(path).map_err(|e| io(e.to_string()))?;
    let mut r = Reader {
        data: &data,
        pos: 0,
        path,
    };
    if r.take(8, "the magic")? != MAGIC {
        return Err(io("not a spaceport checkpoint (bad magic)".into()));
    }
    let len =
        u64::from_le_bytes(r.take(8, "the header length")?.try_into().unwrap_or([0; 8])) as usize;
    let h: Header = serde_json::from_slice(r.take(len, "the header")?)
        .map_err(|e| io(format!("bad checkpoint header: {e}")))?;
    if h.sh_degree > 3 {
        return Err(io(format!("bad SH degree {}", h.sh_degree)));
    }
    let n = h.gaussians;
    let params = r.splats(n, h.sh_degree, "parameters")?;
    let m = r.splats(n, h.sh_degree, "first moments")?;
    let v = r.splats(n, h.sh_degree, "second moments")?;
    let grad_accum = r.f32s(n, "statistics")?;
    let count = r.u32s(n, "statistics")?;
    let max_radius = r.u32s(n, "statistics")?;
    let filter3d = if h.filter3d {
        Some(r.f32s(n, "the 3D filter")?)
    } else {
        None
    };
    if r.pos != data.len() {
        return Err(io(format!(
            "{} unexpected bytes after the checkpoint data",
            data.len() - r.pos
        )));
    }
    if h.order.iter().any(|&i| i >= scene.train.len()) || h.order_pos > h.order.len() {
        return Err(io(
            "checkpoint was made for a scene with more training views".into(),
        ));
    }
    let word_pos: u128 = h
        .rng_word_pos
        .parse()
        .map_err(|_| io("bad random state".into()))?;
    let mut rng = <ChaCha8Rng as rand::SeedableRng>::from_seed(h.rng_seed);
    rng.set_stream(h.rng_stream);
    rng.set_word_pos(word_pos);
    let adam = Adam {
        m,
        v,
        step: h.adam_step,
        ..Adam::new(&Gaussians::empty(h.sh_degree))
    };
    let session = SessionState {
        params,
        adam,
        stats: DensifyStats {
            grad_accum,
            count,
            max_radius,
        },
    };
    let mut t = Trainer::from_session_state(scene, h.config, backend, session, h.extent)?;
    // The filter as it was (recomputing it from the centres would differ from an uninterrupted
    // run, which last computed it at a densification or interval).
    if let (Some(f), true) = (filter3d, t.cfg.antialias.filter3d) {
        t.filter3d = Some(f.into());
    }
    t.state = TrainState {
        iteration: h.iteration,
        rng,
        order: h.order,
        order_pos: h.order_pos,
        plateau: h.plateau,
        lr_dropped: h.lr_dropped,
        checks: h.checks,
        loss_curve: h.loss_curve,
        exposures: h.exposures,
        stop: h.stop,
        times: h.times,
        prior_seconds: h.seconds,
    };
    Ok(t)
}
