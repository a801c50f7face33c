//! `CudaBackend`: splat-core's `Backend` on an NVIDIA GPU.
//!
//! A forward keeps its device buffers (uploaded parameters, projected Gaussians, sorted tile
//! lists, per-pixel state) in the render output's `state` (a [`CudaFrame`], the backend's
//! `Backend::Frame`), so the backward reads them back without recomputing the forward or
//! re-uploading the Gaussians.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use splat_core::camera::Camera;
use splat_core::gaussians::{Gaussians, Splats};
use splat_core::render::project::jacobian_limits;
use splat_core::render::{RenderGrads, RenderOptions, RenderOutput, TILE_SIZE};
use splat_core::{Backend, BackendError};

use crate::args::{
    CountTiles, EmitKeys, In, Out, ProjectBwd, ProjectFwd, RadixHistogram, RadixScatter, RasterBwd,
    RasterFwd, ScanAdd, ScanBlocks, TileRanges,
};
use crate::device::{dptr, mark, uninit, zeros, CamParams, Job, Kernels, Marks};

/// Threads per block of the per-Gaussian kernels.
pub(crate) const THREADS: u32 = 256;
/// Elements one scan block handles (kernels/sort.cu: SCAN_TILE).
pub(crate) const SCAN_TILE: usize = 1024;
/// Keys one radix-sort block handles (kernels/sort.cu: SORT_TILE).
pub(crate) const SORT_TILE: usize = 2048;
/// Bits per radix-sort pass (kernels/sort.cu: RADIX_BITS).
pub(crate) const RADIX_BITS: u32 = 9;
/// Threads per block of project_bwd (kernels/project.cu: PB_THREADS).
pub(crate) const PB_THREADS: u32 = 128;
/// Screen-space gradient floats per Gaussian (kernels: SG_STRIDE).
pub(crate) const SG_STRIDE: usize = 9;

/// The CUDA backend: one context and stream on device 0, with the kernels loaded.
pub struct CudaBackend {
    // Field order matters for drop: kernels (modules) go before the context.
    pub(crate) kernels: Arc<Kernels>,
    pub(crate) stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
    name: String,
    /// The device's current memory pool (a `CUmemoryPool`), where stream-ordered allocations
    /// come from; 0 when it could not be queried.
    pool: usize,
}

/// Gaussian parameters on the device, laid out like [`Splats`].
pub struct DeviceSplats {
    pub(crate) n: usize,
    pub(crate) sh_degree: usize,
    pub(crate) means: CudaSlice<f32>,
    pub(crate) log_scales: CudaSlice<f32>,
    pub(crate) quats: CudaSlice<f32>,
    pub(crate) opacity_logits: CudaSlice<f32>,
    pub(crate) sh: CudaSlice<f32>,
}

impl DeviceSplats {
    /// Number of Gaussians.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// Everything one forward leaves on the device.
pub struct DeviceFrame {
    cam: CamParams,
    bg: [f32; 3],
    n: usize,
    /// The intersection count when the forward read it; otherwise the buffers' capacity.
    n_isect: usize,
    /// Exclusive scan of the per-Gaussian tile counts; entry `n` is the intersection count.
    pub(crate) offsets: CudaSlice<u32>,
    xy: CudaSlice<f32>,
    conic_opacity: CudaSlice<f32>,
    color: CudaSlice<f32>,
    depth: CudaSlice<f32>,
    pub(crate) radius: CudaSlice<u32>,
    flags: CudaSlice<u32>,
    ranges: CudaSlice<u32>,
    ids: CudaSlice<u32>,
    image: CudaSlice<f32>,
    final_t: CudaSlice<f32>,
    n_contrib: CudaSlice<u32>,
}

impl DeviceFrame {
    /// Number of (Gaussian, tile) pairs (the buffers' capacity for a forward that did not
    /// read the count back).
    pub fn n_intersections(&self) -> usize {
        self.n_isect
    }

    /// The rendered image on the device (`height x width x 3`).
    pub fn image(&self) -> &CudaSlice<f32> {
        &self.image
    }
}

/// Gradients on the device, laid out like [`Splats`], plus the screen-space ones
/// (9 per Gaussian: mean2d, conic, opacity, colour).
pub struct DeviceGrads {
    pub(crate) means: CudaSlice<f32>,
    pub(crate) log_scales: CudaSlice<f32>,
    pub(crate) quats: CudaSlice<f32>,
    pub(crate) opacity_logits: CudaSlice<f32>,
    pub(crate) sh: CudaSlice<f32>,
    pub(crate) screen: CudaSlice<f32>,
}

/// What a `CudaBackend` render keeps in `RenderOutput::state` for its backward (its
/// `Backend::Frame`). The type keeps other backends' renders out at compile time:
///
/// ```no_run
/// use splat_core::Backend;
/// # fn f(g: &splat_core::Gaussians, cam: &splat_core::Camera) -> Result<(), splat_core::BackendError> {
/// let mut cuda = splat_cuda::CudaBackend::new()?;
/// let out = cuda.render(g, cam, &Default::default())?;
/// let d = vec![0.0f32; out.image.len()];
/// cuda.render_backward(g, &out, &d)?;
/// # Ok(()) }
/// ```
///
/// ```compile_fail
/// use splat_core::{Backend, CpuBackend};
/// # fn f(g: &splat_core::Gaussians, cam: &splat_core::Camera) -> Result<(), splat_core::BackendError> {
/// let mut cuda = splat_cuda::CudaBackend::new()?;
/// let out = CpuBackend.render(g, cam, &Default::default())?;
/// let d = vec![0.0f32; out.image.len()];
/// cuda.render_backward(g, &out, &d)?;
/// # Ok(()) }
/// ```
pub struct CudaFrame {
    splats: DeviceSplats,
    frame: DeviceFrame,
    /// Identifies the context so that another backend's output is refused.
    ctx_id: usize,
}

fn cam_params(c: &Camera, opts: &RenderOptions, sh_degree: usize, sh_coeffs: usize) -> CamParams {
    // The same f64 -> f32 conversions as the CPU reference's Cam::new.
    let f = |v: f64| v as f32;
    let r = c.rotation;
    let mut w = [0f32; 9];
    for i in 0..3 {
        for j in 0..3 {
            w[i * 3 + j] = f(r.col(j)[i]);
        }
    }
    let ctr = c.center();
    let lim = jacobian_limits(c).map(f);
    CamParams {
        w,
        t: c.translation.to_array().map(f),
        center: ctr.to_array().map(f),
        fx: f(c.fx),
        fy: f(c.fy),
        cx: f(c.cx),
        cy: f(c.cy),
        lim,
        width: c.width,
        height: c.height,
        tiles_x: c.width.div_ceil(TILE_SIZE),
        tiles_y: c.height.div_ceil(TILE_SIZE),
        near: opts.near,
        sh_degree: sh_degree as i32,
        sh_coeffs: sh_coeffs as i32,
        pad: 0,
    }
}

pub(crate) fn blocks(n: usize, per: usize) -> u32 {
    n.div_ceil(per) as u32
}

impl CudaBackend {
    /// Opens device 0; `BackendError::Unavailable` when there is no driver or no device.
    pub fn new() -> Result<Self, BackendError> {
        if !crate::driver_present() {
            return Err(BackendError::Unavailable(
                "no CUDA driver library (libcuda.so) on this machine".into(),
            ));
        }
        let ctx = CudaContext::new(0)
            .map_err(|e| BackendError::Unavailable(format!("no usable CUDA device: {e:?}")))?;
        // One stream orders every use of every buffer, so cudarc's per-buffer events are
        // pure overhead.
        // SAFETY: no buffer of this context exists yet, and all work goes to one stream.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx
            .new_stream()
            .map_err(|e| BackendError::Device(format!("creating a stream: {e:?}")))?;
        let kernels = Arc::new(Kernels::load(&ctx)?);
        let dev_name = ctx.name().unwrap_or_else(|_| "unknown device".into());
        let name = format!("cuda:{} {}", ctx.ordinal(), dev_name);
        let pool = keep_pool_memory(&ctx);
        Ok(CudaBackend {
            kernels,
            stream,
            ctx,
            name,
            pool,
        })
    }

    /// Free and total device memory in bytes.
    pub fn memory_info(&self) -> Result<(u64, u64), BackendError> {
        let (free, total) = self
            .ctx
            .mem_get_info()
            .map_err(|e| BackendError::Device(format!("querying the device memory: {e:?}")))?;
        Ok((free as u64, total as u64))
    }

    /// Device name, compute capability, driver version and memory, in one line.
    pub fn describe(&self) -> Result<String, BackendError> {
        let dev = |e: cudarc::driver::DriverError| {
            BackendError::Device(format!("querying the device: {e:?}"))
        };
        let (major, minor) = self.ctx.compute_capability().map_err(dev)?;
        let (free, total) = self.ctx.mem_get_info().map_err(dev)?;
        let mut version = 0i32;
        // SAFETY: the driver is loaded (a context exists) and `version` is a valid out pointer.
        let rc = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) };
        let driver = if rc == cudarc::driver::sys::CUresult::CUDA_SUCCESS {
            format!("{}.{}", version / 1000, version % 1000 / 10)
        } else {
            "unknown".into()
        };
        let gib = |b: usize| b as f64 / (1u64 << 30) as f64;
        Ok(format!("{} (compute {major}.{minor}), CUDA driver API {driver}, memory {:.1} GiB free of {:.1} GiB", self.name, gib(free), gib(total)))
    }

    fn ctx_id(&self) -> usize {
        Arc::as_ptr(&self.ctx) as usize
    }

    /// Another handle on the same context, stream and kernels (for a training session).
    pub(crate) fn share(&self) -> CudaBackend {
        CudaBackend {
            kernels: self.kernels.clone(),
            stream: self.stream.clone(),
            ctx: self.ctx.clone(),
            name: self.name.clone(),
            pool: self.pool,
        }
    }

    /// Peak bytes allocated from the device's memory pool since the backend started.
    pub fn peak_pool_bytes(&self) -> Option<u64> {
        if self.pool == 0 {
            return None;
        }
        let mut v: u64 = 0;
        // SAFETY: the pool handle came from the driver for this device, and the attribute is
        // a u64 (cuuint64_t).
        let rc = unsafe {
            cudarc::driver::result::mem_pool::get_attribute(
                self.pool as cudarc::driver::sys::CUmemoryPool,
                cudarc::driver::sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                &mut v as *mut u64 as *mut std::ffi::c_void,
            )
        };
        rc.ok().map(|_| v)
    }

    pub(crate) fn bind(&self) -> Result<(), BackendError> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| BackendError::Device(format!("binding context: {e:?}")))
    }

    /// The stream every kernel of this backend runs on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Copies Gaussians to the device.
    pub fn upload(&self, g: &Gaussians) -> Result<DeviceSplats, BackendError> {
        g.check_lengths().map_err(BackendError::InvalidInput)?;
        if g.sh_degree > 3 {
            return Err(BackendError::InvalidInput(format!(
                "SH degree {} (at most 3)",
                g.sh_degree
            )));
        }
        self.bind()?;
        let job = Job {
            gaussians: g.len(),
            width: 0,
            height: 0,
        };
        let up = |v: &[f32]| -> Result<CudaSlice<f32>, BackendError> {
            let mut d = uninit::<f32>(&self.stream, v.len()).map_err(job.err("upload"))?;
            if !v.is_empty() {
                self.stream
                    .memcpy_htod(v, &mut d)
                    .map_err(job.err("upload"))?;
            }
            Ok(d)
        };
        Ok(DeviceSplats {
            n: g.len(),
            sh_degree: g.sh_degree,
            means: up(bytemuck::cast_slice(&g.means))?,
            log_scales: up(bytemuck::cast_slice(&g.log_scales))?,
            quats: up(bytemuck::cast_slice(&g.quats))?,
            opacity_logits: up(&g.opacity_logits)?,
            sh: up(&g.sh)?,
        })
    }

    /// Exclusive prefix sum of `len` u32 from `input` into `out`.
    pub(crate) fn scan(
        &self,
        input: &CudaSlice<u32>,
        out: &mut CudaSlice<u32>,
        len: usize,
        job: Job,
    ) -> Result<(), BackendError> {
        self.scan_from(In::of(input, &self.stream), out, len, job)
    }

    /// [`Self::scan`] in place (the kernels allow it), without a copy of the input.
    fn scan_in_place(
        &self,
        data: &mut CudaSlice<u32>,
        len: usize,
        job: Job,
    ) -> Result<(), BackendError> {
        self.scan_from(In::of(&*data, &self.stream), data, len, job)
    }

    /// The scan with its input passed as an address, which may be `out`'s.
    fn scan_from(
        &self,
        input: In,
        out: &mut CudaSlice<u32>,
        len: usize,
        job: Job,
    ) -> Result<(), BackendError> {
        let nb = len.div_ceil(SCAN_TILE);
        let s = &self.stream;
        let mut sums = uninit::<u32>(s, nb).map_err(job.err("scan"))?;
        ScanBlocks {
            n: len as i32,
            r#in: input,
            out: Out::of(out, s),
            block_sums: Out::of(&sums, s),
        }
        .launch(&self.kernels, s, (nb as u32, 1, 1), THREADS)
        .map_err(job.err("scan_blocks"))?;
        if nb > 1 {
            self.scan_in_place(&mut sums, nb, job)?;
            ScanAdd {
                n: len as i32,
                data: Out::of(out, s),
                block_offsets: In::of(&sums, s),
            }
            .launch(&self.kernels, s, (nb as u32, 1, 1), THREADS)
            .map_err(job.err("scan_add"))?;
        }
        Ok(())
    }

    /// Stable LSD radix sort of min(`count`, `cap`) (key, value) pairs by the low `bits` bits
    /// of the keys, `count` being read on the device. Returns whether the result ended in the
    /// second buffer pair.
    fn sort_pairs(
        &self,
        keys: [&mut CudaSlice<u64>; 2],
        vals: [&mut CudaSlice<u32>; 2],
        count: cudarc::driver::sys::CUdeviceptr,
        cap: usize,
        bits: u32,
        job: Job,
    ) -> Result<bool, BackendError> {
        let s = &self.stream;
        let m = cap;
        let nb = m.div_ceil(SORT_TILE);
        let radix = 1usize << RADIX_BITS;
        let mut hist = uninit::<u32>(s, radix * nb).map_err(job.err("sort"))?;
        let passes = bits.div_ceil(RADIX_BITS);
        let [k0, k1] = keys;
        let [v0, v1] = vals;
        for pass in 0..passes {
            let (src_k, src_v, dst_k, dst_v) = if pass % 2 == 0 {
                (&*k0, &*v0, &*k1, &*v1)
            } else {
                (&*k1, &*v1, &*k0, &*v0)
            };
            let shift = (RADIX_BITS * pass) as i32;
            RadixHistogram {
                count: In(count),
                cap: m as u32,
                shift,
                keys: In::of(src_k, s),
                hist: Out::of(&hist, s),
            }
            .launch(&self.kernels, s, (nb as u32, 1, 1), THREADS)
            .map_err(job.err("radix_histogram"))?;
            self.scan_in_place(&mut hist, radix * nb, job)?;
            RadixScatter {
                count: In(count),
                cap: m as u32,
                shift,
                keys_in: In::of(src_k, s),
                vals_in: In::of(src_v, s),
                keys_out: Out::of(dst_k, s),
                vals_out: Out::of(dst_v, s),
                hist: In::of(&hist, s),
            }
            .launch(&self.kernels, s, (nb as u32, 1, 1), THREADS)
            .map_err(job.err("radix_scatter"))?;
        }
        Ok(passes % 2 == 1)
    }

    /// Sorts (key, value) pairs on the device by the low `key_bits` bits of the keys, stably;
    /// a host round trip (a test hook, `testing` feature).
    #[cfg(feature = "testing")]
    pub fn sort_pairs_host(
        &mut self,
        keys: &[u64],
        vals: &[u32],
        key_bits: u32,
    ) -> Result<(Vec<u64>, Vec<u32>), BackendError> {
        if keys.len() != vals.len() || key_bits > 64 {
            return Err(BackendError::InvalidInput(
                "keys and values differ in length, or more than 64 key bits".into(),
            ));
        }
        if keys.is_empty() {
            return Ok((vec![], vec![]));
        }
        self.bind()?;
        let m = keys.len();
        let job = Job {
            gaussians: m,
            width: 0,
            height: 0,
        };
        let s = &self.stream;
        let mut k0 = uninit::<u64>(s, m).map_err(job.err("sort"))?;
        let mut k1 = uninit::<u64>(s, m).map_err(job.err("sort"))?;
        let mut v0 = uninit::<u32>(s, m).map_err(job.err("sort"))?;
        let mut v1 = uninit::<u32>(s, m).map_err(job.err("sort"))?;
        s.memcpy_htod(keys, &mut k0).map_err(job.err("sort"))?;
        s.memcpy_htod(vals, &mut v0).map_err(job.err("sort"))?;
        let count = s.clone_htod(&[m as u32]).map_err(job.err("sort"))?;
        let second = self.sort_pairs(
            [&mut k0, &mut k1],
            [&mut v0, &mut v1],
            dptr(&count, 0, s),
            m,
            key_bits,
            job,
        )?;
        let (k, v) = if second { (&k1, &v1) } else { (&k0, &v0) };
        let ko = s.clone_dtoh(k).map_err(job.err("sort"))?;
        let vo = s.clone_dtoh(v).map_err(job.err("sort"))?;
        Ok((ko, vo))
    }

    /// Renders on the device; the only host synchronisation is reading the intersection count.
    pub fn forward_device(
        &self,
        g: &DeviceSplats,
        camera: &Camera,
        opts: &RenderOptions,
    ) -> Result<DeviceFrame, BackendError> {
        self.forward_inner(g, camera, opts, None, None)
    }

    /// The forward. With `cap`, the intersection buffers hold `cap` entries and the count is
    /// not read back (no host synchronisation): entries past `cap` are dropped, and the caller
    /// compares the count (`offsets[n]`) with `cap` later. `marks` 1-3 are recorded after
    /// projection, tile sorting and compositing.
    pub(crate) fn forward_inner(
        &self,
        g: &DeviceSplats,
        camera: &Camera,
        opts: &RenderOptions,
        cap: Option<usize>,
        marks: Option<&Marks>,
    ) -> Result<DeviceFrame, BackendError> {
        refuse_antialias(opts)?;
        if camera.width == 0 || camera.height == 0 {
            return Err(BackendError::InvalidInput("empty image".into()));
        }
        self.bind()?;
        let n = g.n;
        let job = Job {
            gaussians: n,
            width: camera.width,
            height: camera.height,
        };
        let sh_degree = opts.sh_degree.unwrap_or(g.sh_degree).min(g.sh_degree);
        let cam = cam_params(
            camera,
            opts,
            sh_degree,
            (g.sh_degree + 1) * (g.sh_degree + 1),
        );
        let s = &self.stream;
        let e = |w: &'static str| job.err(w);
        let xy = uninit::<f32>(s, 2 * n).map_err(e("alloc"))?;
        let conic_opacity = uninit::<f32>(s, 4 * n).map_err(e("alloc"))?;
        let color = uninit::<f32>(s, 3 * n).map_err(e("alloc"))?;
        let depth = uninit::<f32>(s, n).map_err(e("alloc"))?;
        let radius = uninit::<u32>(s, n).map_err(e("alloc"))?;
        let rect = uninit::<u32>(s, 4 * n).map_err(e("alloc"))?;
        // One extra zero so that the exclusive scan's last entry is the total.
        let touched = zeros::<u32>(s, n + 1).map_err(e("alloc"))?;
        let flags = uninit::<u32>(s, n).map_err(e("alloc"))?;
        ProjectFwd {
            n: n as i32,
            cam,
            means: In::of(&g.means, s),
            log_scales: In::of(&g.log_scales, s),
            quats: In::of(&g.quats, s),
            opacity_logits: In::of(&g.opacity_logits, s),
            sh: In::of(&g.sh, s),
            xy: Out::of(&xy, s),
            conic_opacity: Out::of(&conic_opacity, s),
            color: Out::of(&color, s),
            depth: Out::of(&depth, s),
            radius: Out::of(&radius, s),
            rect: Out::of(&rect, s),
            flags: Out::of(&flags, s),
        }
        .launch(
            &self.kernels,
            s,
            (blocks(n, THREADS as usize), 1, 1),
            THREADS,
        )
        .map_err(e("project_fwd"))?;
        CountTiles {
            n: n as i32,
            rect: In::of(&rect, s),
            xy: In::of(&xy, s),
            conic_opacity: In::of(&conic_opacity, s),
            tiles_touched: Out::of(&touched, s),
        }
        .launch(
            &self.kernels,
            s,
            (blocks(n, THREADS as usize), 1, 1),
            THREADS,
        )
        .map_err(e("count_tiles"))?;
        let mut offsets = uninit::<u32>(s, n + 1).map_err(e("alloc"))?;
        self.scan(&touched, &mut offsets, n + 1, job)?;
        mark(marks, 1, s).map_err(e("event"))?;
        let m = match cap {
            Some(c) => c,
            None => {
                let total = s
                    .clone_dtoh(&offsets.slice(n..n + 1))
                    .map_err(e("reading the intersection count"))?;
                total.first().copied().unwrap_or(0) as usize
            }
        };

        let n_tiles = (cam.tiles_x * cam.tiles_y) as usize;
        let ranges = zeros::<u32>(s, 2 * n_tiles).map_err(e("alloc"))?;
        let mut ids = uninit::<u32>(s, m).map_err(e("alloc"))?;
        if m > 0 {
            let mut k0 = uninit::<u64>(s, m).map_err(e("alloc"))?;
            let mut k1 = uninit::<u64>(s, m).map_err(e("alloc"))?;
            let mut v1 = uninit::<u32>(s, m).map_err(e("alloc"))?;
            EmitKeys {
                n: n as i32,
                cap: m as u32,
                tiles_x: cam.tiles_x,
                rect: In::of(&rect, s),
                xy: In::of(&xy, s),
                conic_opacity: In::of(&conic_opacity, s),
                offsets: In::of(&offsets, s),
                tiles_touched: In::of(&touched, s),
                depth: In::of(&depth, s),
                keys: Out::of(&k0, s),
                vals: Out::of(&ids, s),
            }
            .launch(
                &self.kernels,
                s,
                (blocks(n, THREADS as usize), 1, 1),
                THREADS,
            )
            .map_err(e("emit_keys"))?;
            // Only the bits in use: 32 of depth and enough for the largest tile id.
            let tile_bits = 32 - (n_tiles.max(1) as u32 - 1).leading_zeros();
            let second = self.sort_pairs(
                [&mut k0, &mut k1],
                [&mut ids, &mut v1],
                dptr(&offsets, n, s),
                m,
                32 + tile_bits,
                job,
            )?;
            let keys = if second {
                ids = v1;
                k1
            } else {
                k0
            };
            TileRanges {
                count: In::at(&offsets, n, s),
                cap: m as u32,
                keys: In::of(&keys, s),
                ranges: Out::of(&ranges, s),
            }
            .launch(
                &self.kernels,
                s,
                (blocks(m, THREADS as usize), 1, 1),
                THREADS,
            )
            .map_err(e("tile_ranges"))?;
        }
        mark(marks, 2, s).map_err(e("event"))?;
        let npix = (camera.width * camera.height) as usize;
        let image = uninit::<f32>(s, 3 * npix).map_err(e("alloc"))?;
        let final_t = uninit::<f32>(s, npix).map_err(e("alloc"))?;
        let n_contrib = uninit::<u32>(s, npix).map_err(e("alloc"))?;
        let bg = opts.background;
        RasterFwd {
            width: camera.width,
            height: camera.height,
            bg_r: bg[0],
            bg_g: bg[1],
            bg_b: bg[2],
            ranges: In::of(&ranges, s),
            ids: In::of(&ids, s),
            xy: In::of(&xy, s),
            conic_opacity: In::of(&conic_opacity, s),
            color: In::of(&color, s),
            image: Out::of(&image, s),
            final_t: Out::of(&final_t, s),
            n_contrib: Out::of(&n_contrib, s),
        }
        .launch(
            &self.kernels,
            s,
            (cam.tiles_x, cam.tiles_y, 1),
            self.kernels.raster_threads,
        )
        .map_err(e("raster_fwd"))?;
        mark(marks, 3, s).map_err(e("event"))?;
        Ok(DeviceFrame {
            cam,
            bg,
            n,
            n_isect: m,
            offsets,
            xy,
            conic_opacity,
            color,
            depth,
            radius,
            flags,
            ranges,
            ids,
            image,
            final_t,
            n_contrib,
        })
    }

    /// Backward on the device, given dL/dimage on the device (`height x width x 3`).
    pub fn backward_device(
        &self,
        g: &DeviceSplats,
        f: &DeviceFrame,
        d_image: &CudaSlice<f32>,
    ) -> Result<DeviceGrads, BackendError> {
        self.backward_inner(g, f, d_image, None)
    }

    /// The backward; `marks` 5 and 6 are recorded after compositing and projection.
    pub(crate) fn backward_inner(
        &self,
        g: &DeviceSplats,
        f: &DeviceFrame,
        d_image: &CudaSlice<f32>,
        marks: Option<&Marks>,
    ) -> Result<DeviceGrads, BackendError> {
        self.bind()?;
        let n = g.n;
        let job = Job {
            gaussians: n,
            width: f.cam.width,
            height: f.cam.height,
        };
        let e = |w: &'static str| job.err(w);
        let s = &self.stream;
        if d_image.len() < (3 * f.cam.width * f.cam.height) as usize || g.n != f.n {
            return Err(BackendError::InvalidInput(
                "image gradient or Gaussians do not match the render".into(),
            ));
        }
        let screen = zeros::<f32>(s, SG_STRIDE * n).map_err(e("alloc"))?;
        RasterBwd {
            width: f.cam.width,
            height: f.cam.height,
            bg_r: f.bg[0],
            bg_g: f.bg[1],
            bg_b: f.bg[2],
            ranges: In::of(&f.ranges, s),
            ids: In::of(&f.ids, s),
            xy: In::of(&f.xy, s),
            conic_opacity: In::of(&f.conic_opacity, s),
            color: In::of(&f.color, s),
            final_t: In::of(&f.final_t, s),
            n_contrib: In::of(&f.n_contrib, s),
            d_image: In::of(d_image, s),
            screen: Out::of(&screen, s),
        }
        .launch(
            &self.kernels,
            s,
            (f.cam.tiles_x, f.cam.tiles_y, 1),
            self.kernels.raster_threads,
        )
        .map_err(e("raster_bwd"))?;
        mark(marks, 5, s).map_err(e("event"))?;
        let nsh = (g.sh_degree + 1) * (g.sh_degree + 1) * 3;
        let means = uninit::<f32>(s, 3 * n).map_err(e("alloc"))?;
        let log_scales = uninit::<f32>(s, 3 * n).map_err(e("alloc"))?;
        let quats = uninit::<f32>(s, 4 * n).map_err(e("alloc"))?;
        let opacity_logits = uninit::<f32>(s, n).map_err(e("alloc"))?;
        let sh = uninit::<f32>(s, nsh * n).map_err(e("alloc"))?;
        ProjectBwd {
            n: n as i32,
            cam: f.cam,
            means: In::of(&g.means, s),
            log_scales: In::of(&g.log_scales, s),
            quats: In::of(&g.quats, s),
            sh: In::of(&g.sh, s),
            conic_opacity: In::of(&f.conic_opacity, s),
            flags: In::of(&f.flags, s),
            screen: In::of(&screen, s),
            d_means: Out::of(&means, s),
            d_log_scales: Out::of(&log_scales, s),
            d_quats: Out::of(&quats, s),
            d_logits: Out::of(&opacity_logits, s),
            d_sh: Out::of(&sh, s),
        }
        .launch(
            &self.kernels,
            s,
            (blocks(n, PB_THREADS as usize), 1, 1),
            PB_THREADS,
        )
        .map_err(e("project_bwd"))?;
        mark(marks, 6, s).map_err(e("event"))?;
        Ok(DeviceGrads {
            means,
            log_scales,
            quats,
            opacity_logits,
            sh,
            screen,
        })
    }

    /// Waits for all queued work; reports a failed kernel.
    pub fn synchronize(&self) -> Result<(), BackendError> {
        self.stream
            .synchronize()
            .map_err(|e| BackendError::Device(format!("kernel failure: {e:?}")))
    }
}

/// Keeps freed memory in the device's pool instead of returning it to the driver at every
/// synchronisation (the default threshold of 0), so that the per-step buffers of training are
/// recycled rather than mapped and unmapped each step. Returns the pool handle, or 0.
fn keep_pool_memory(ctx: &Arc<CudaContext>) -> usize {
    use cudarc::driver::{result, sys};
    // SAFETY: the device handle comes from a live context; the attribute takes a u64.
    unsafe {
        let Ok(pool) = result::device::get_mem_pool(ctx.cu_device()) else {
            return 0;
        };
        let mut max = u64::MAX;
        let _ = result::mem_pool::set_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            &mut max as *mut u64 as *mut std::ffi::c_void,
        );
        pool as usize
    }
}

pub(crate) fn download<T: cudarc::driver::DeviceRepr + Default + Clone>(
    s: &Arc<CudaStream>,
    d: &CudaSlice<T>,
    len: usize,
    job: Job,
) -> Result<Vec<T>, BackendError> {
    if len == 0 {
        return Ok(vec![]);
    }
    s.clone_dtoh(&d.slice(0..len)).map_err(job.err("download"))
}

pub(crate) fn chunks<const K: usize>(v: Vec<f32>) -> Vec<[f32; K]> {
    v.chunks_exact(K)
        .map(|c| {
            let mut a = [0f32; K];
            a.copy_from_slice(c);
            a
        })
        .collect()
}

impl Backend for CudaBackend {
    type Frame = CudaFrame;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn render(
        &mut self,
        gaussians: &Gaussians,
        camera: &Camera,
        opts: &RenderOptions,
    ) -> Result<RenderOutput<f32, CudaFrame>, BackendError> {
        let splats = self.upload(gaussians)?;
        let frame = self.forward_device(&splats, camera, opts)?;
        let n = splats.n;
        let npix = (camera.width * camera.height) as usize;
        let job = Job {
            gaussians: n,
            width: camera.width,
            height: camera.height,
        };
        let s = &self.stream;
        let image = download(s, &frame.image, 3 * npix, job)?;
        let final_t = download(s, &frame.final_t, npix, job)?;
        let means2d = chunks::<2>(download(s, &frame.xy, 2 * n, job)?);
        let radii = download(s, &frame.radius, n, job)?;
        let depths = download(s, &frame.depth, n, job)?;
        Ok(RenderOutput {
            width: camera.width,
            height: camera.height,
            image,
            alpha: final_t.iter().map(|t| 1.0 - t).collect(),
            means2d,
            radii,
            depths,
            n_intersections: frame.n_isect,
            signature: 0,
            state: CudaFrame {
                splats,
                frame,
                ctx_id: self.ctx_id(),
            },
        })
    }

    fn render_backward(
        &mut self,
        gaussians: &Gaussians,
        fwd: &RenderOutput<f32, CudaFrame>,
        d_image: &[f32],
    ) -> Result<RenderGrads<f32>, BackendError> {
        let st = &fwd.state;
        // The type says a CUDA backend made it; another context's buffers are still refused.
        if st.ctx_id != self.ctx_id() {
            return Err(BackendError::InvalidInput(
                "the render to differentiate was not made by this CUDA backend".into(),
            ));
        }
        if d_image.len() != fwd.image.len() {
            return Err(BackendError::InvalidInput(format!(
                "image gradient has {} values, the render has {}",
                d_image.len(),
                fwd.image.len()
            )));
        }
        if gaussians.len() != st.splats.n || gaussians.sh_degree != st.splats.sh_degree {
            return Err(BackendError::InvalidInput(
                "the Gaussians differ from those rendered".into(),
            ));
        }
        self.bind()?;
        let n = st.splats.n;
        let job = Job {
            gaussians: n,
            width: fwd.width,
            height: fwd.height,
        };
        let s = &self.stream;
        let mut dd = uninit::<f32>(s, d_image.len()).map_err(job.err("alloc"))?;
        s.memcpy_htod(d_image, &mut dd).map_err(job.err("upload"))?;
        let gr = self.backward_device(&st.splats, &st.frame, &dd)?;
        let nsh = (st.splats.sh_degree + 1) * (st.splats.sh_degree + 1) * 3;
        let screen = download(s, &gr.screen, SG_STRIDE * n, job)?;
        Ok(RenderGrads {
            params: Splats {
                means: chunks::<3>(download(s, &gr.means, 3 * n, job)?),
                log_scales: chunks::<3>(download(s, &gr.log_scales, 3 * n, job)?),
                quats: chunks::<4>(download(s, &gr.quats, 4 * n, job)?),
                opacity_logits: download(s, &gr.opacity_logits, n, job)?,
                sh: download(s, &gr.sh, nsh * n, job)?,
                sh_degree: st.splats.sh_degree,
            },
            means2d: screen
                .chunks_exact(SG_STRIDE)
                .map(|c| [c[0], c[1]])
                .collect(),
        })
    }
}

/// The kernels implement the original 3DGS image formation only: render options that ask for
/// the anti-aliasing filters are refused (every forward goes through here), never ignored.
pub(crate) fn refuse_antialias(opts: &RenderOptions) -> Result<(), BackendError> {
    if opts.antialiased() {
        return Err(BackendError::Unsupported(
            "anti-aliasing (antialias.mip2d, antialias.filter3d, antialias.low_pass other than \
             0.3) is not yet implemented on the CUDA backend; use --device cpu or turn it off"
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn antialiasing_is_refused_with_a_clear_error() {
        assert!(refuse_antialias(&RenderOptions::default()).is_ok());
        let same = RenderOptions {
            low_pass: Some(0.3),
            ..Default::default()
        };
        assert!(refuse_antialias(&same).is_ok(), "3DGS's own low-pass");
        for opts in [
            RenderOptions {
                low_pass: Some(0.1),
                ..Default::default()
            },
            RenderOptions {
                mip2d: true,
                ..Default::default()
            },
            RenderOptions {
                filter3d: Some(vec![0.0f32; 3].into()),
                ..Default::default()
            },
        ] {
            let err = refuse_antialias(&opts).expect_err("refused");
            assert!(
                matches!(&err, BackendError::Unsupported(m)
                    if m.contains("not yet implemented on the CUDA backend")
                        && m.contains("--device cpu")),
                "{err}"
            );
        }
    }
}
