//! `CudaSession`: a whole training session on the device. Parameters, Adam moments,
//! densification statistics and the targets stay resident. A step makes one device-to-host
//! copy: the loss/PSNR sums with the intersection count. The tile lists are sized from the
//! largest count seen so far (with slack); a step whose count overflows them leaves
//! parameters, moments and statistics untouched (its Adam and statistics kernels check the
//! count on the device) and is run again with larger buffers.

use std::collections::HashMap;

use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut};
use splat_core::backend::densify::{
    opacity_reset_cap, NOISE_OPACITY_K, NOISE_OPACITY_T, SPLIT_SCALE_DIVISOR,
};
use splat_core::backend::{
    DensifyParams, DensifyReport, DensifyStats, SessionState, SourceImage, StageTimes, StepParams,
    StepStats, Target, TrainBackend, TrainSession,
};
use splat_core::camera::Camera;
use splat_core::gaussians::Gaussians;
use splat_core::loss;
use splat_core::optim::{Adam, GroupRates};
use splat_core::render::RenderOptions;
use splat_core::train::strategy::select_within_budget;
use splat_core::BackendError;

use crate::args::{
    AdamStep, DensifyChildren, DensifyClassify, DensifyMark, DensifyScatter, In, LossBlurH,
    LossBlurV, LossBwdH, LossBwdV, OpacityCap, Out, PositionNoise, Regularise, ResizeAreaH,
    ResizeAreaV, SqErrSum, StatsAccumulate,
};
use crate::backend::{blocks, chunks, download, CudaBackend, DeviceSplats, THREADS};
use crate::device::{dptr, mark, uninit, zeros, Job, Marks};

/// The SSIM window's weights: splat-core's own, so both sides blur with bit-equal weights
/// (kernels/train.cu takes them as an argument; its WIN_R must equal loss::WINDOW_RADIUS).
fn ssim_window() -> [f32; 2 * loss::WINDOW_RADIUS + 1] {
    loss::ssim_window()
}

/// Loss value and gradient computed on the device (see [`CudaBackend::loss_host`]).
#[cfg(feature = "testing")]
#[derive(Clone, Debug)]
pub struct DeviceLoss {
    /// (1 - λ) L1 + λ (1 - SSIM).
    pub loss: f64,
    /// Mean absolute error.
    pub l1: f64,
    /// Mean SSIM.
    pub ssim: f64,
    /// PSNR of the clamped render (dB).
    pub psnr: f32,
    /// dLoss/d(render).
    pub grad: Vec<f32>,
}

/// Sums the loss kernels leave on the device: |x - y|, SSIM, clamped squared error.
const N_SUMS: usize = 3;
/// Slot of the step's read-back for the regularisers' loss (after the intersection count).
const N_REG: usize = N_SUMS + 1;
/// The step's read-back: the sums, one slot whose low 32 bits receive the intersection
/// count, and the regularisers' loss.
const N_READBACK: usize = N_SUMS + 2;

/// Stage names of a step, in order; stage `i` runs between marks `i` and `i + 1`.
const STAGES: [&str; 7] = [
    "project",
    "tiles_sort",
    "raster_fwd",
    "loss",
    "raster_bwd",
    "project_bwd",
    "stats_adam",
];

/// Accumulated per-stage device times of a window of steps.
struct Profile {
    marks: Marks,
    /// Two marks around a densification.
    densify_marks: Marks,
    ms: [f64; STAGES.len()],
    densify_ms: f64,
    reruns: usize,
    steps: usize,
}

/// Loss and PSNR from the device sums of an image of `n` values.
fn loss_from_sums(sums: &[f64], n: usize, ssim_weight: f32) -> (f64, f64, f64, f32) {
    let nf = n.max(1) as f64;
    let l1 = sums[0] / nf;
    let ssim = sums[1] / nf;
    let lw = ssim_weight as f64;
    let mse = sums[2] / nf;
    let psnr = loss::psnr_from_mse(mse);
    ((1.0 - lw) * l1 + lw * (1.0 - ssim), l1, ssim, psnr)
}

impl CudaBackend {
    /// Queues the L1 + SSIM loss of `render` against `target` (both `h x w x 3` on the
    /// device): returns dLoss/d(render) and adds the sums into `sums` (zeroed by the caller).
    pub(crate) fn loss_device(
        &self,
        window: &CudaSlice<f32>,
        render: &CudaSlice<f32>,
        target: &CudaSlice<f32>,
        width: u32,
        height: u32,
        ssim_weight: f32,
        sums: &CudaSlice<f64>,
    ) -> Result<CudaSlice<f32>, BackendError> {
        let n = 3 * width as usize * height as usize;
        let job = Job {
            gaussians: 0,
            width,
            height,
        };
        let e = |w: &'static str| job.err(w);
        let s = &self.stream;
        let k = &self.kernels;
        let hsum = uninit::<f32>(s, 5 * n).map_err(e("alloc"))?;
        let partials = uninit::<f32>(s, 3 * n).map_err(e("alloc"))?;
        let hpart = uninit::<f32>(s, 3 * n).map_err(e("alloc"))?;
        let grad = uninit::<f32>(s, n).map_err(e("alloc"))?;
        let grid = (blocks(n, THREADS as usize), 1, 1);
        let (w, h) = (width as i32, height as i32);
        LossBlurH {
            w,
            h,
            win: In::of(window, s),
            x: In::of(render, s),
            y: In::of(target, s),
            out: Out::of(&hsum, s),
        }
        .launch(k, s, grid, THREADS)
        .map_err(e("loss_blur_h"))?;
        LossBlurV {
            w,
            h,
            ssim_weight,
            win: In::of(window, s),
            hsum: In::of(&hsum, s),
            x: In::of(render, s),
            y: In::of(target, s),
            partials: Out::of(&partials, s),
            sums: Out::of(sums, s),
        }
        .launch(k, s, grid, THREADS)
        .map_err(e("loss_blur_v"))?;
        LossBwdH {
            w,
            h,
            win: In::of(window, s),
            partials: In::of(&partials, s),
            out: Out::of(&hpart, s),
        }
        .launch(k, s, grid, THREADS)
        .map_err(e("loss_bwd_h"))?;
        LossBwdV {
            w,
            h,
            ssim_weight,
            win: In::of(window, s),
            hpart: In::of(&hpart, s),
            x: In::of(render, s),
            y: In::of(target, s),
            grad: Out::of(&grad, s),
        }
        .launch(k, s, grid, THREADS)
        .map_err(e("loss_bwd_v"))?;
        Ok(grad)
    }

    /// The device loss kernels on host images (a test hook, `testing` feature): value, PSNR
    /// and gradient, the counterpart of `splat_core::loss::l1_ssim_loss` and `loss::psnr`.
    #[cfg(feature = "testing")]
    pub fn loss_host(
        &self,
        render: &[f32],
        target: &[f32],
        width: u32,
        height: u32,
        ssim_weight: f32,
    ) -> Result<DeviceLoss, BackendError> {
        let n = 3 * width as usize * height as usize;
        if render.len() != n || target.len() != n || n == 0 {
            return Err(BackendError::InvalidInput(format!(
                "images of {} and {} values for {width}x{height}x3",
                render.len(),
                target.len()
            )));
        }
        self.bind()?;
        let job = Job {
            gaussians: 0,
            width,
            height,
        };
        let s = &self.stream;
        let window = s.clone_htod(&ssim_window()).map_err(job.err("upload"))?;
        let r = s.clone_htod(render).map_err(job.err("upload"))?;
        let t = s.clone_htod(target).map_err(job.err("upload"))?;
        let sums = zeros::<f64>(s, N_SUMS).map_err(job.err("alloc"))?;
        let grad = self.loss_device(&window, &r, &t, width, height, ssim_weight, &sums)?;
        let sums = s.clone_dtoh(&sums).map_err(job.err("download"))?;
        let grad = download(s, &grad, n, job)?;
        let (loss, l1, ssim, psnr) = loss_from_sums(&sums, n, ssim_weight);
        Ok(DeviceLoss {
            loss,
            l1,
            ssim,
            psnr,
            grad,
        })
    }

    /// Queues the area downscale of `src` (`sh x sw x 3` on the device) to `ow x oh`, as
    /// `Image::resize_area` computes it.
    pub(crate) fn resize_device(
        &self,
        src: &CudaSlice<f32>,
        (sw, sh): (u32, u32),
        (ow, oh): (u32, u32),
    ) -> Result<CudaSlice<f32>, BackendError> {
        let job = Job {
            gaussians: 0,
            width: ow,
            height: oh,
        };
        let s = &self.stream;
        let (sw, sh, ow, oh) = (sw as usize, sh as usize, ow as usize, oh as usize);
        let rows = uninit::<f32>(s, sh * ow * 3).map_err(job.err("alloc"))?;
        let out = uninit::<f32>(s, oh * ow * 3).map_err(job.err("alloc"))?;
        ResizeAreaH {
            sw: sw as i32,
            sh: sh as i32,
            ow: ow as i32,
            src: In::of(src, s),
            rows: Out::of(&rows, s),
        }
        .launch(
            &self.kernels,
            s,
            (blocks(sh * ow, THREADS as usize), 1, 1),
            THREADS,
        )
        .map_err(job.err("resize_area_h"))?;
        ResizeAreaV {
            sh: sh as i32,
            ow: ow as i32,
            oh: oh as i32,
            rows: In::of(&rows, s),
            out: Out::of(&out, s),
        }
        .launch(
            &self.kernels,
            s,
            (blocks(oh * ow, THREADS as usize), 1, 1),
            THREADS,
        )
        .map_err(job.err("resize_area_v"))?;
        Ok(out)
    }

    /// The device area downscale on host images (a test hook, `testing` feature): the
    /// counterpart of `splat_core::scene::Image::resize_area`.
    #[cfg(feature = "testing")]
    pub fn resize_area_host(
        &self,
        src: &[f32],
        (sw, sh): (u32, u32),
        (ow, oh): (u32, u32),
    ) -> Result<Vec<f32>, BackendError> {
        if src.len() != sw as usize * sh as usize * 3 || sw * sh == 0 || ow * oh == 0 {
            return Err(BackendError::InvalidInput(format!(
                "an image of {} values for {sw}x{sh}x3, or an empty size",
                src.len()
            )));
        }
        self.bind()?;
        let job = Job {
            gaussians: 0,
            width: ow,
            height: oh,
        };
        let d = self.stream.clone_htod(src).map_err(job.err("upload"))?;
        let out = self.resize_device(&d, (sw, sh), (ow, oh))?;
        download(&self.stream, &out, ow as usize * oh as usize * 3, job)
    }

    /// Starts a device session (the concrete type, for callers that want its extra methods).
    pub fn start_cuda_session(&self, state: SessionState) -> Result<CudaSession, BackendError> {
        let n = state.check().map_err(BackendError::InvalidInput)?;
        let SessionState {
            params,
            adam,
            stats,
        } = state;
        let be = self.share();
        let p = be.upload(&params)?;
        let m = be.upload(&adam.m)?;
        let v = be.upload(&adam.v)?;
        let job = Job {
            gaussians: n,
            width: 0,
            height: 0,
        };
        let s = &be.stream;
        let up_f = |x: &[f32]| -> Result<CudaSlice<f32>, BackendError> {
            let mut d = uninit::<f32>(s, x.len()).map_err(job.err("alloc"))?;
            if !x.is_empty() {
                s.memcpy_htod(x, &mut d).map_err(job.err("upload"))?;
            }
            Ok(d)
        };
        let up_u = |x: &[u32]| -> Result<CudaSlice<u32>, BackendError> {
            let mut d = uninit::<u32>(s, x.len()).map_err(job.err("alloc"))?;
            if !x.is_empty() {
                s.memcpy_htod(x, &mut d).map_err(job.err("upload"))?;
            }
            Ok(d)
        };
        let grad_accum = up_f(&stats.grad_accum)?;
        let count = up_u(&stats.count)?;
        let max_radius = up_u(&stats.max_radius)?;
        let window = s.clone_htod(&ssim_window()).map_err(job.err("upload"))?;
        let sums = zeros::<f64>(s, N_READBACK).map_err(job.err("alloc"))?;
        let no_isect = zeros::<u32>(s, 1).map_err(job.err("alloc"))?;
        let ev = |e| BackendError::Device(format!("creating timing events: {e:?}"));
        let profile = Profile {
            marks: Marks::new(STAGES.len() + 1).map_err(ev)?,
            densify_marks: Marks::new(2).map_err(ev)?,
            ms: [0.0; STAGES.len()],
            densify_ms: 0.0,
            reruns: 0,
            steps: 0,
        };
        Ok(CudaSession {
            p,
            m,
            v,
            grad_accum,
            count,
            max_radius,
            targets: HashMap::new(),
            sources: HashMap::new(),
            window,
            sums,
            no_isect,
            isect_cap: 0,
            profile,
            last_sums: [0.0; N_SUMS],
            last_reg: 0.0,
            adam_step: adam.step,
            beta1: adam.beta1,
            beta2: adam.beta2,
            eps: adam.eps,
            be,
        })
    }
}

impl TrainBackend for CudaBackend {
    fn name(&self) -> String {
        splat_core::Backend::name(self)
    }

    fn start_session(
        &mut self,
        state: SessionState,
    ) -> Result<Box<dyn TrainSession>, BackendError> {
        Ok(Box::new(self.start_cuda_session(state)?))
    }
}

/// A training session held on the GPU (see the module documentation).
pub struct CudaSession {
    // Device buffers go before `be` (and its kernels) when dropped.
    p: DeviceSplats,
    m: DeviceSplats,
    v: DeviceSplats,
    grad_accum: CudaSlice<f32>,
    count: CudaSlice<u32>,
    max_radius: CudaSlice<u32>,
    /// Resident targets by view: the key they were uploaded under and the image.
    targets: HashMap<usize, (u64, CudaSlice<f32>)>,
    /// Resident full-size ground truths by view (`step_from_source`).
    sources: HashMap<usize, CudaSlice<f32>>,
    window: CudaSlice<f32>,
    sums: CudaSlice<f64>,
    /// A zero intersection count, for updates outside a step (nothing to check).
    no_isect: CudaSlice<u32>,
    /// Entries the next step's tile lists hold.
    isect_cap: usize,
    profile: Profile,
    /// The sums of the last step's read-back.
    last_sums: [f64; N_SUMS],
    /// The regularisers' loss of the last step.
    last_reg: f64,
    adam_step: u64,
    beta1: f32,
    beta2: f32,
    eps: f32,
    be: CudaBackend,
}

/// Device gradients of the parameters, in the layout of [`DeviceSplats`].
struct GradRefs<'a> {
    means: &'a CudaSlice<f32>,
    log_scales: &'a CudaSlice<f32>,
    quats: &'a CudaSlice<f32>,
    opacity_logits: &'a CudaSlice<f32>,
    sh: &'a CudaSlice<f32>,
}

impl CudaSession {
    fn job(&self, width: u32, height: u32) -> Job {
        Job {
            gaussians: self.p.n,
            width,
            height,
        }
    }

    fn nsh(&self) -> usize {
        (self.p.sh_degree + 1) * (self.p.sh_degree + 1) * 3
    }

    /// Queues one Adam update of every group; `isect` is (count on the device, capacity) of
    /// the step's tile lists: the update is skipped on the device when the count exceeds it.
    fn adam(
        &mut self,
        g: GradRefs<'_>,
        lr: &GroupRates,
        isect: Option<(cudarc::driver::sys::CUdeviceptr, usize)>,
    ) -> Result<(), BackendError> {
        self.adam_step += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        // Bias corrections on the host, with the same f32 operations as optim.rs.
        let t = self.adam_step.min(i32::MAX as u64) as i32;
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        let sbc2 = bc2.sqrt();
        let n = self.p.n;
        let nsh = self.nsh();
        let job = self.job(0, 0);
        let s = &self.be.stream;
        let groups: [(usize, usize, usize, f32, f32, &CudaSlice<f32>, usize); 5] = [
            (3 * n, 1, 1, lr.means, lr.means, g.means, 0),
            (3 * n, 1, 1, lr.scales, lr.scales, g.log_scales, 1),
            (4 * n, 1, 1, lr.rotations, lr.rotations, g.quats, 2),
            (n, 1, 1, lr.opacity, lr.opacity, g.opacity_logits, 3),
            (nsh * n, nsh, 3, lr.sh_dc, lr.sh_rest, g.sh, 4),
        ];
        let (count, cap) = isect.unwrap_or((dptr(&self.no_isect, 0, s), 0));
        for (len, stride, split, la, lb, grad, which) in groups {
            let pick = |d: &DeviceSplats| -> Out {
                match which {
                    0 => Out::of(&d.means, s),
                    1 => Out::of(&d.log_scales, s),
                    2 => Out::of(&d.quats, s),
                    3 => Out::of(&d.opacity_logits, s),
                    _ => Out::of(&d.sh, s),
                }
            };
            AdamStep {
                isect: In(count),
                cap: cap as u32,
                len: len as i32,
                stride: stride as i32,
                split: split as i32,
                p: pick(&self.p),
                g: In::of(grad, s),
                m: pick(&self.m),
                v: pick(&self.v),
                lr_a: la,
                lr_b: lb,
                b1,
                b2,
                eps: self.eps,
                bc1,
                sbc2,
            }
            .launch(
                &self.be.kernels,
                s,
                (blocks(len, THREADS as usize), 1, 1),
                THREADS,
            )
            .map_err(job.err("adam_step"))?;
        }
        Ok(())
    }

    /// One Adam update with host gradients shaped like the parameters (a test hook, `testing`
    /// feature).
    #[cfg(feature = "testing")]
    pub fn apply_gradients(
        &mut self,
        grads: &Gaussians,
        rates: &GroupRates,
    ) -> Result<(), BackendError> {
        if grads.len() != self.p.n || grads.sh_degree != self.p.sh_degree {
            return Err(BackendError::InvalidInput(
                "gradients differ in shape from the parameters".into(),
            ));
        }
        let g = self.be.upload(grads)?;
        self.adam(
            GradRefs {
                means: &g.means,
                log_scales: &g.log_scales,
                quats: &g.quats,
                opacity_logits: &g.opacity_logits,
                sh: &g.sh,
            },
            rates,
            None,
        )?;
        self.be.synchronize()
    }

    /// Adds one step's screen-space gradients to the densification statistics on the device.
    #[cfg(feature = "testing")]
    pub fn accumulate_stats_host(
        &mut self,
        means2d_grad: &[[f32; 2]],
        radii: &[u32],
        width: u32,
        height: u32,
    ) -> Result<(), BackendError> {
        let n = self.p.n;
        if means2d_grad.len() != n || radii.len() != n {
            return Err(BackendError::InvalidInput(
                "statistics inputs differ in length from the parameters".into(),
            ));
        }
        let job = self.job(width, height);
        let s = &self.be.stream;
        let mut screen = vec![0f32; crate::backend::SG_STRIDE * n];
        for (i, g) in means2d_grad.iter().enumerate() {
            screen[crate::backend::SG_STRIDE * i] = g[0];
            screen[crate::backend::SG_STRIDE * i + 1] = g[1];
        }
        let screen = s.clone_htod(&screen).map_err(job.err("upload"))?;
        let radius = s.clone_htod(radii).map_err(job.err("upload"))?;
        let none = dptr(&self.no_isect, 0, s);
        self.accumulate(&screen, &radius, width, height, (none, 0))?;
        self.be.synchronize()
    }

    /// Queues the statistics update; skipped on the device when the count of `isect` (a
    /// device pointer) exceeds its capacity.
    fn accumulate(
        &mut self,
        screen: &CudaSlice<f32>,
        radius: &CudaSlice<u32>,
        width: u32,
        height: u32,
        isect: (cudarc::driver::sys::CUdeviceptr, usize),
    ) -> Result<(), BackendError> {
        let n = self.p.n;
        let s = &self.be.stream;
        StatsAccumulate {
            isect: In(isect.0),
            cap: isect.1 as u32,
            n: n as i32,
            sx: width as f32 * 0.5,
            sy: height as f32 * 0.5,
            screen: In::of(screen, s),
            radius: In::of(radius, s),
            grad_accum: Out::of(&self.grad_accum, s),
            count: Out::of(&self.count, s),
            max_radius: Out::of(&self.max_radius, s),
        }
        .launch(
            &self.be.kernels,
            s,
            (blocks(n, THREADS as usize), 1, 1),
            THREADS,
        )
        .map_err(self.job(width, height).err("stats_accumulate"))
    }

    /// A training view's full-size image of `full` values (as `SourceImage::check_size` returned) on the
    /// device, uploaded the first time; taken out of the cache so that it can be borrowed
    /// beside `self` (the caller puts it back).
    fn take_source(
        &mut self,
        src: SourceImage<'_>,
        full: usize,
        job: Job,
    ) -> Result<CudaSlice<f32>, BackendError> {
        let resident = matches!(self.sources.get(&src.view), Some(d) if d.len() == full);
        if !resident {
            let s = &self.be.stream;
            let mut d = uninit::<f32>(s, full).map_err(job.err("alloc"))?;
            s.memcpy_htod(src.data, &mut d).map_err(job.err("upload"))?;
            self.sources.insert(src.view, d);
        }
        self.sources
            .remove(&src.view)
            .ok_or_else(|| BackendError::Device("source cache lost an entry".into()))
    }

    /// The resident target of a view, uploaded when its key changed.
    fn target(&mut self, t: &Target<'_>, job: Job) -> Result<(), BackendError> {
        let fresh = matches!(self.targets.get(&t.view),
            Some((key, d)) if *key == t.key && d.len() == t.data.len().max(1));
        if !fresh {
            let s = &self.be.stream;
            let mut d = uninit::<f32>(s, t.data.len()).map_err(job.err("alloc"))?;
            if !t.data.is_empty() {
                s.memcpy_htod(t.data, &mut d).map_err(job.err("upload"))?;
            }
            self.targets.insert(t.view, (t.key, d));
        }
        Ok(())
    }

    /// Replaces parameters and moments by the compacted arrays of a densification.
    fn compact(
        &mut self,
        n_out: usize,
        flags: &CudaSlice<u32>,
        offsets: &CudaSlice<u32>,
        seed: u64,
        ln16: f32,
    ) -> Result<(), BackendError> {
        let n = self.p.n;
        let nsh = self.nsh();
        let job = self.job(0, 0);
        let s = self.be.stream.clone();
        let k = &self.be.kernels;
        let grid = (blocks(n, THREADS as usize), 1, 1);
        let scatter = |src: &CudaSlice<f32>, width: usize, zero_new: bool| {
            let dst = uninit::<f32>(&s, n_out * width).map_err(job.err("alloc"))?;
            DensifyScatter {
                n: n as i32,
                width: width as i32,
                zero_new: zero_new as i32,
                flags: In::of(flags, &s),
                offsets: In::of(offsets, &s),
                src: In::of(src, &s),
                dst: Out::of(&dst, &s),
            }
            .launch(k, &s, grid, THREADS)
            .map_err(job.err("densify_scatter"))?;
            Ok::<_, BackendError>(dst)
        };
        let compact_all =
            |d: &DeviceSplats, zero_new: bool| -> Result<DeviceSplats, BackendError> {
                Ok(DeviceSplats {
                    n: n_out,
                    sh_degree: d.sh_degree,
                    means: scatter(&d.means, 3, zero_new)?,
                    log_scales: scatter(&d.log_scales, 3, zero_new)?,
                    quats: scatter(&d.quats, 4, zero_new)?,
                    opacity_logits: scatter(&d.opacity_logits, 1, zero_new)?,
                    sh: scatter(&d.sh, nsh, zero_new)?,
                })
            };
        let p = compact_all(&self.p, false)?;
        let m = compact_all(&self.m, true)?;
        let v = compact_all(&self.v, true)?;
        DensifyChildren {
            n: n as i32,
            seed,
            ln16,
            flags: In::of(flags, &s),
            offsets: In::of(offsets, &s),
            means: In::of(&self.p.means, &s),
            log_scales: In::of(&self.p.log_scales, &s),
            quats: In::of(&self.p.quats, &s),
            out_means: Out::of(&p.means, &s),
            out_log_scales: Out::of(&p.log_scales, &s),
        }
        .launch(k, &s, grid, THREADS)
        .map_err(job.err("densify_children"))?;
        self.p = p;
        self.m = m;
        self.v = v;
        Ok(())
    }

    /// One pass of a step with tile lists of `isect_cap` entries: returns the intersection
    /// count and the capacity. When the count exceeds the capacity, the pass changed nothing
    /// but the Adam step counter, which it restores.
    fn step_once(
        &mut self,
        camera: &Camera,
        tdev: &CudaSlice<f32>,
        p: &StepParams,
        job: Job,
    ) -> Result<(usize, usize), BackendError> {
        let s = self.be.stream.clone();
        let ev = |e| BackendError::Device(format!("timing event: {e:?}"));
        s.memset_zeros(&mut self.sums).map_err(job.err("memset"))?;
        mark(Some(&self.profile.marks), 0, &s).map_err(ev)?;
        let cap = self.isect_cap;
        let frame = self.be.forward_inner(
            &self.p,
            camera,
            &p.render,
            Some(cap),
            Some(&self.profile.marks),
        )?;
        let d_image = self.be.loss_device(
            &self.window,
            frame.image(),
            tdev,
            camera.width,
            camera.height,
            p.ssim_weight,
            &self.sums,
        )?;
        mark(Some(&self.profile.marks), 4, &s).map_err(ev)?;
        let g = self
            .be
            .backward_inner(&self.p, &frame, &d_image, Some(&self.profile.marks))?;
        let n = self.p.n;
        if (p.opacity_reg != 0.0 || p.scale_reg != 0.0) && n > 0 {
            Regularise {
                isect: In::at(&frame.offsets, n, &s),
                cap: cap as u32,
                n: n as i32,
                w_opacity: p.opacity_reg / n as f32,
                w_scale: p.scale_reg / (3 * n) as f32,
                opacity: In::of(&self.p.opacity_logits, &s),
                log_scales: In::of(&self.p.log_scales, &s),
                g_opacity: Out::of(&g.opacity_logits, &s),
                g_log_scales: Out::of(&g.log_scales, &s),
                loss: Out(dptr(&self.sums, N_REG, &s)),
            }
            .launch(
                &self.be.kernels,
                &s,
                (blocks(n, THREADS as usize), 1, 1),
                THREADS,
            )
            .map_err(job.err("regularise"))?;
        }
        if p.accumulate_stats {
            let isect = (dptr(&frame.offsets, n, &s), cap);
            self.accumulate(&g.screen, &frame.radius, camera.width, camera.height, isect)?;
        }
        self.adam(
            GradRefs {
                means: &g.means,
                log_scales: &g.log_scales,
                quats: &g.quats,
                opacity_logits: &g.opacity_logits,
                sh: &g.sh,
            },
            &p.rates,
            Some((dptr(&frame.offsets, n, &s), cap)),
        )?;
        mark(Some(&self.profile.marks), STAGES.len(), &s).map_err(ev)?;
        // The count joins the sums so that one copy reads both.
        {
            let (dst, _) = self.sums.device_ptr_mut(&s);
            let (src, _) = frame.offsets.device_ptr(&s);
            // SAFETY: both ranges lie inside live allocations of this context (slot N_SUMS of
            // the read-back, entry n of the scan) and the copy is ordered on the one stream.
            unsafe {
                cudarc::driver::result::memcpy_dtod_async(
                    dst + (N_SUMS * 8) as u64,
                    src + (n * 4) as u64,
                    4,
                    s.cu_stream(),
                )
            }
            .map_err(job.err("copy"))?;
        }
        // The step's one read-back; it also surfaces any failed kernel of the step.
        let back = s
            .clone_dtoh(&self.sums)
            .map_err(|e| BackendError::Device(format!("step: {e:?}")))?;
        let count = (back[N_SUMS].to_bits() & 0xffff_ffff) as usize;
        self.last_sums.copy_from_slice(&back[..N_SUMS]);
        self.last_reg = back[N_REG];
        let prof = &mut self.profile;
        for (i, ms) in prof.ms.iter_mut().enumerate() {
            *ms += prof.marks.elapsed_ms(i, i + 1).map_err(ev)? as f64;
        }
        if count > cap {
            self.adam_step -= 1;
        } else {
            prof.steps += 1;
        }
        Ok((count, cap))
    }

    fn densify_inner(
        &mut self,
        cfg: &DensifyParams,
        extent: f32,
        prune_large: bool,
        seed: u64,
    ) -> Result<DensifyReport, BackendError> {
        let n = self.p.n;
        if n == 0 {
            return Ok(DensifyReport::default());
        }
        let job = self.job(0, 0);
        let s = self.be.stream.clone();
        let k = &self.be.kernels;
        let grid = (blocks(n, THREADS as usize), 1, 1);
        let mut flags = uninit::<u32>(&s, n).map_err(job.err("alloc"))?;
        let counts = zeros::<u32>(&s, 4).map_err(job.err("alloc"))?;
        DensifyClassify {
            n: n as i32,
            grad_threshold: cfg.grad_threshold,
            split_limit: cfg.percent_dense * extent,
            grad_accum: In::of(&self.grad_accum, &s),
            count: In::of(&self.count, &s),
            log_scales: In::of(&self.p.log_scales, &s),
            flags: Out::of(&flags, &s),
            counts: Out::of(&counts, &s),
        }
        .launch(k, &s, grid, THREADS)
        .map_err(job.err("densify_classify"))?;
        let candidates = s.clone_dtoh(&counts).map_err(job.err("download"))?[0] as usize;
        let room = if cfg.max_gaussians == 0 {
            usize::MAX
        } else {
            cfg.max_gaussians.saturating_sub(n)
        };
        if candidates > room {
            // Rare (only at the cap): the default strategy's budget rule, on the host.
            let acc = download(&s, &self.grad_accum, n, job)?;
            let cnt = download(&s, &self.count, n, job)?;
            let opa = download(&s, &self.p.opacity_logits, n, job)?;
            let mut fl = download(&s, &flags, n, job)?;
            let avg: Vec<f32> = (0..n)
                .map(|i| {
                    if cnt[i] > 0 {
                        acc[i] / cnt[i] as f32
                    } else {
                        0.0
                    }
                })
                .collect();
            let all: Vec<usize> = (0..n).filter(|&i| fl[i] != 0).collect();
            let chosen = select_within_budget(&all, &avg, &opa, room);
            let mut chosen = chosen.into_iter().peekable();
            for &i in &all {
                if chosen.peek() == Some(&i) {
                    chosen.next();
                } else {
                    fl[i] = 0;
                }
            }
            s.memcpy_htod(&fl, &mut flags).map_err(job.err("upload"))?;
        }
        let ln16 = SPLIT_SCALE_DIVISOR.ln();
        let mark = |no_prune: bool| -> Result<(CudaSlice<u32>, Vec<u32>, usize), BackendError> {
            let counts = zeros::<u32>(&s, 4).map_err(job.err("alloc"))?;
            let keep = zeros::<u32>(&s, 3 * n + 1).map_err(job.err("alloc"))?;
            DensifyMark {
                n: n as i32,
                prune_large: prune_large as i32,
                no_prune: no_prune as i32,
                prune_opacity: cfg.prune_opacity,
                world_limit: cfg.prune_world_size * extent,
                screen_limit: cfg.prune_screen_size,
                ln16,
                opacity: In::of(&self.p.opacity_logits, &s),
                log_scales: In::of(&self.p.log_scales, &s),
                max_radius: In::of(&self.max_radius, &s),
                flags: Out::of(&flags, &s),
                keep_counts: Out::of(&keep, &s),
                counts: Out::of(&counts, &s),
            }
            .launch(k, &s, grid, THREADS)
            .map_err(job.err("densify_mark"))?;
            let mut offsets = uninit::<u32>(&s, 3 * n + 1).map_err(job.err("alloc"))?;
            self.be.scan(&keep, &mut offsets, 3 * n + 1, job)?;
            let total = s
                .clone_dtoh(&offsets.slice(3 * n..3 * n + 1))
                .map_err(job.err("download"))?[0] as usize;
            let c = s.clone_dtoh(&counts).map_err(job.err("download"))?;
            Ok((offsets, c, total))
        };
        let (mut offsets, mut c, mut total) = mark(false)?;
        if total == 0 {
            // Never prune everything: an empty scene cannot recover (the CPU's rule).
            (offsets, c, total) = mark(true)?;
            c[1] = 0;
        }
        self.compact(total, &flags, &offsets, seed, ln16)?;
        self.reset_stats()?;
        self.be.synchronize()?;
        Ok(DensifyReport {
            cloned: c[2] as usize,
            split: c[3] as usize,
            pruned: c[1] as usize,
            ..Default::default()
        })
    }

    /// A step against the device target `tdev`, run again with larger tile lists when they
    /// overflowed.
    fn step_with(
        &mut self,
        camera: &Camera,
        tdev: &CudaSlice<f32>,
        p: &StepParams,
        job: Job,
    ) -> Result<StepStats, BackendError> {
        if p.exposure.is_some() {
            return Err(BackendError::Unsupported(
                "exposure compensation runs on the CPU backend only so far: set \
                 exposure.enabled to false or train with --device cpu"
                    .into(),
            ));
        }
        crate::backend::refuse_antialias(&p.render)?;
        let npix = 3 * camera.width as usize * camera.height as usize;
        if tdev.len() < npix {
            return Err(BackendError::InvalidInput(format!(
                "target of {} values for {npix}",
                tdev.len()
            )));
        }
        // At most two passes: the second has room for the count the first measured.
        for _ in 0..2 {
            let (count, cap) = self.step_once(camera, tdev, p, job)?;
            if count <= cap {
                let (loss, _, _, psnr) = loss_from_sums(&self.last_sums, npix, p.ssim_weight);
                return Ok(StepStats {
                    loss: loss + self.last_reg,
                    psnr,
                    exposure_grad: None,
                });
            }
            // Room for the count plus slack for growth, so that overflows stay rare.
            self.isect_cap = count + count / 4 + 4096;
            self.profile.reruns += 1;
        }
        Err(BackendError::Device(
            "the tile lists overflowed twice in one step".into(),
        ))
    }

    fn reset_stats(&mut self) -> Result<(), BackendError> {
        let n = self.p.n;
        let job = self.job(0, 0);
        let s = &self.be.stream;
        self.grad_accum = zeros::<f32>(s, n).map_err(job.err("alloc"))?;
        self.count = zeros::<u32>(s, n).map_err(job.err("alloc"))?;
        self.max_radius = zeros::<u32>(s, n).map_err(job.err("alloc"))?;
        Ok(())
    }
}

impl TrainSession for CudaSession {
    fn len(&self) -> usize {
        self.p.n
    }

    fn step(
        &mut self,
        camera: &Camera,
        target: Target<'_>,
        p: &StepParams,
    ) -> Result<StepStats, BackendError> {
        self.be.bind()?;
        target.check_size(camera)?;
        let job = self.job(camera.width, camera.height);
        self.target(&target, job)?;
        // The target leaves the cache for the step (the step borrows the session mutably).
        let Some((key, tdev)) = self.targets.remove(&target.view) else {
            return Err(BackendError::Device("target cache lost an entry".into()));
        };
        let r = self.step_with(camera, &tdev, p, job);
        self.targets.insert(target.view, (key, tdev));
        r
    }

    fn resizes_targets(&self) -> bool {
        true
    }

    fn step_from_source(
        &mut self,
        camera: &Camera,
        src: SourceImage<'_>,
        p: &StepParams,
    ) -> Result<StepStats, BackendError> {
        self.be.bind()?;
        let full = src.check_size()?;
        if camera.width > src.width || camera.height > src.height {
            return Err(BackendError::InvalidInput(format!(
                "working size {}x{} exceeds the source's {}x{}",
                camera.width, camera.height, src.width, src.height
            )));
        }
        let job = self.job(camera.width, camera.height);
        let sdev = self.take_source(src, full, job)?;
        let r = if (camera.width, camera.height) == (src.width, src.height) {
            self.step_with(camera, &sdev, p, job)
        } else {
            self.be
                .resize_device(
                    &sdev,
                    (src.width, src.height),
                    (camera.width, camera.height),
                )
                .and_then(|t| self.step_with(camera, &t, p, job))
        };
        self.sources.insert(src.view, sdev);
        r
    }

    fn view_psnr(
        &mut self,
        camera: &Camera,
        opts: &RenderOptions,
        src: SourceImage<'_>,
    ) -> Result<f32, BackendError> {
        self.be.bind()?;
        let n = src.check_size()?;
        if (camera.width, camera.height) != (src.width, src.height) {
            return Err(BackendError::InvalidInput(format!(
                "view {}: image {}x{} for a {}x{} camera",
                src.view, src.width, src.height, camera.width, camera.height
            )));
        }
        let job = self.job(camera.width, camera.height);
        let frame = self.be.forward_device(&self.p, camera, opts)?;
        let sdev = self.take_source(src, n, job)?;
        let s = &self.be.stream;
        let out = zeros::<f64>(s, 1).map_err(job.err("alloc"));
        let r = out.and_then(|out| {
            SqErrSum {
                n: n as i32,
                x: In::of(frame.image(), s),
                y: In::of(&sdev, s),
                out: Out::of(&out, s),
            }
            .launch(
                &self.be.kernels,
                s,
                (blocks(n, THREADS as usize), 1, 1),
                THREADS,
            )
            .map_err(job.err("sq_err_sum"))?;
            s.clone_dtoh(&out).map_err(job.err("download"))
        });
        self.sources.insert(src.view, sdev);
        let mse = r?.first().copied().unwrap_or(0.0) / n.max(1) as f64;
        Ok(loss::psnr_from_mse(mse))
    }

    fn fuses_densify(&self) -> bool {
        true
    }

    /// Re-uploads the whole state (the host-side path of the strategy primitives: correct, not
    /// fast); resident targets, tile-list capacity and timings are kept.
    fn restore(&mut self, state: SessionState) -> Result<(), BackendError> {
        self.be.bind()?;
        let fresh = self.be.start_cuda_session(state)?;
        self.p = fresh.p;
        self.m = fresh.m;
        self.v = fresh.v;
        self.grad_accum = fresh.grad_accum;
        self.count = fresh.count;
        self.max_radius = fresh.max_radius;
        self.adam_step = fresh.adam_step;
        self.beta1 = fresh.beta1;
        self.beta2 = fresh.beta2;
        self.eps = fresh.eps;
        Ok(())
    }

    fn densify(
        &mut self,
        cfg: &DensifyParams,
        extent: f32,
        prune_large: bool,
        seed: u64,
    ) -> Result<DensifyReport, BackendError> {
        self.be.bind()?;
        let ev = |e| BackendError::Device(format!("timing event: {e:?}"));
        let s = self.be.stream.clone();
        self.profile.densify_marks.record(0, &s).map_err(ev)?;
        let report = self.densify_inner(cfg, extent, prune_large, seed)?;
        self.profile.densify_marks.record(1, &s).map_err(ev)?;
        self.be.synchronize()?;
        self.profile.densify_ms += self.profile.densify_marks.elapsed_ms(0, 1).map_err(ev)? as f64;
        Ok(report)
    }

    fn take_stage_times(&mut self) -> Option<StageTimes> {
        let prof = &mut self.profile;
        let mut ms: Vec<(String, f64)> = STAGES
            .iter()
            .zip(prof.ms)
            .map(|(name, v)| (name.to_string(), v))
            .collect();
        ms.push(("densify".into(), prof.densify_ms));
        ms.push(("overflow_reruns".into(), prof.reruns as f64));
        let out = StageTimes {
            steps: prof.steps,
            ms,
            peak_device_bytes: self.be.peak_pool_bytes(),
        };
        prof.ms = [0.0; STAGES.len()];
        prof.densify_ms = 0.0;
        prof.reruns = 0;
        prof.steps = 0;
        Some(out)
    }
    fn add_position_noise(&mut self, scale: f32, seed: u64) -> Result<(), BackendError> {
        self.be.bind()?;
        let n = self.p.n;
        if n == 0 {
            return Ok(());
        }
        let job = self.job(0, 0);
        let s = self.be.stream.clone();
        PositionNoise {
            n: n as i32,
            seed,
            scale,
            k: NOISE_OPACITY_K,
            t: NOISE_OPACITY_T,
            opacity: In::of(&self.p.opacity_logits, &s),
            log_scales: In::of(&self.p.log_scales, &s),
            quats: In::of(&self.p.quats, &s),
            means: Out::of(&self.p.means, &s),
        }
        .launch(
            &self.be.kernels,
            &s,
            (blocks(n, THREADS as usize), 1, 1),
            THREADS,
        )
        .map_err(job.err("position_noise"))
    }

    fn reset_opacity(&mut self, prune_opacity: f32) -> Result<(), BackendError> {
        self.be.bind()?;
        let n = self.p.n;
        let job = self.job(0, 0);
        let s = self.be.stream.clone();
        let cap: f32 = opacity_reset_cap(prune_opacity);
        OpacityCap {
            n: n as i32,
            cap,
            opacity: Out::of(&self.p.opacity_logits, &s),
        }
        .launch(
            &self.be.kernels,
            &s,
            (blocks(n, THREADS as usize), 1, 1),
            THREADS,
        )
        .map_err(job.err("opacity_cap"))?;
        s.memset_zeros(&mut self.m.opacity_logits)
            .map_err(job.err("memset"))?;
        s.memset_zeros(&mut self.v.opacity_logits)
            .map_err(job.err("memset"))?;
        Ok(())
    }

    fn render(&mut self, camera: &Camera, opts: &RenderOptions) -> Result<Vec<f32>, BackendError> {
        self.be.bind()?;
        let frame = self.be.forward_device(&self.p, camera, opts)?;
        let npix = 3 * camera.width as usize * camera.height as usize;
        download(
            &self.be.stream,
            frame.image(),
            npix,
            self.job(camera.width, camera.height),
        )
    }

    fn snapshot(&mut self) -> Result<SessionState, BackendError> {
        self.be.bind()?;
        let n = self.p.n;
        let nsh = self.nsh();
        let job = self.job(0, 0);
        let s = &self.be.stream;
        let host = |d: &DeviceSplats| -> Result<Gaussians, BackendError> {
            Ok(Gaussians {
                means: chunks::<3>(download(s, &d.means, 3 * n, job)?),
                log_scales: chunks::<3>(download(s, &d.log_scales, 3 * n, job)?),
                quats: chunks::<4>(download(s, &d.quats, 4 * n, job)?),
                opacity_logits: download(s, &d.opacity_logits, n, job)?,
                sh: download(s, &d.sh, nsh * n, job)?,
                sh_degree: d.sh_degree,
            })
        };
        let params = host(&self.p)?;
        let adam = Adam {
            m: host(&self.m)?,
            v: host(&self.v)?,
            step: self.adam_step,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
        };
        let stats = DensifyStats {
            grad_accum: download(s, &self.grad_accum, n, job)?,
            count: download(s, &self.count, n, job)?,
            max_radius: download(s, &self.max_radius, n, job)?,
        };
        Ok(SessionState {
            params,
            adam,
            stats,
        })
    }
}
