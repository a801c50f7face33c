//! Thin layer over cudarc's driver API: PTX modules loaded without NVRTC, raw kernel launches
//! with typed arguments, and allocation helpers that map driver errors to backend errors.

use std::ffi::{c_void, CString};
use std::sync::Arc;

use cudarc::driver::result::{self, DriverError};
use cudarc::driver::sys;
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr, DeviceRepr, ValidAsZeroBits};
use splat_core::render::TILE_SIZE;
use splat_core::BackendError;

use crate::ptx::MODULES;

/// Camera constants as the kernels take them; mirrors `struct Cam` in kernels/project.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CamParams {
    /// World-to-camera rotation, row-major.
    pub w: [f32; 9],
    /// World-to-camera translation.
    pub t: [f32; 3],
    /// Camera centre in world coordinates.
    pub center: [f32; 3],
    /// Focal lengths and principal point, pixels.
    pub fx: f32,
    /// Focal length along y.
    pub fy: f32,
    /// Principal point x.
    pub cx: f32,
    /// Principal point y.
    pub cy: f32,
    /// Guard-band limits of x/z and y/z for the Jacobian clamp.
    pub lim: [f32; 4],
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Tiles across.
    pub tiles_x: u32,
    /// Tiles down.
    pub tiles_y: u32,
    /// Near plane (camera-space z).
    pub near: f32,
    /// SH degree evaluated.
    pub sh_degree: i32,
    /// SH coefficients per channel stored per Gaussian.
    pub sh_coeffs: i32,
    /// Padding to a multiple of 8 bytes.
    pub pad: i32,
}

/// One kernel argument, kept alive in a vector while the launch reads it.
pub(crate) enum Arg {
    U32(u32),
    I32(i32),
    U64(u64),
    F32(f32),
    Ptr(sys::CUdeviceptr),
    Cam(CamParams),
}

/// Where the launch of a failing call came from, for error messages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Job {
    pub gaussians: usize,
    pub width: u32,
    pub height: u32,
}

impl Job {
    /// Maps a driver error: out of memory names the work, anything else says what failed.
    pub fn err(self, what: &str) -> impl Fn(DriverError) -> BackendError + '_ {
        move |e: DriverError| {
            if e.0 == sys::cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY {
                BackendError::OutOfMemory {
                    gaussians: self.gaussians,
                    width: self.width,
                    height: self.height,
                }
            } else {
                BackendError::Device(format!("{what}: {e:?}"))
            }
        }
    }
}

/// The loaded modules and the kernels the backend launches.
pub(crate) struct Kernels {
    modules: Vec<sys::CUmodule>,
    pub project_fwd: sys::CUfunction,
    pub project_bwd: sys::CUfunction,
    pub count_tiles: sys::CUfunction,
    pub emit_keys: sys::CUfunction,
    pub tile_ranges: sys::CUfunction,
    pub scan_blocks: sys::CUfunction,
    pub scan_add: sys::CUfunction,
    pub radix_histogram: sys::CUfunction,
    pub radix_scatter: sys::CUfunction,
    /// Threads per block of raster_fwd and raster_bwd (their __launch_bounds__).
    pub raster_threads: u32,
    pub raster_fwd: sys::CUfunction,
    pub raster_bwd: sys::CUfunction,
    pub loss_blur_h: sys::CUfunction,
    pub loss_blur_v: sys::CUfunction,
    pub loss_bwd_h: sys::CUfunction,
    pub loss_bwd_v: sys::CUfunction,
    pub adam_step: sys::CUfunction,
    pub regularise: sys::CUfunction,
    pub position_noise: sys::CUfunction,
    pub stats_accumulate: sys::CUfunction,
    pub densify_classify: sys::CUfunction,
    pub densify_mark: sys::CUfunction,
    pub densify_scatter: sys::CUfunction,
    pub densify_children: sys::CUfunction,
    pub opacity_cap: sys::CUfunction,
    pub sq_err_sum: sys::CUfunction,
    pub resize_area_h: sys::CUfunction,
    pub resize_area_v: sys::CUfunction,
    pub match_nearest: sys::CUfunction,
}

// SAFETY: module and function handles are plain driver handles valid in the context they were
// loaded in; the backend binds that context to the calling thread before each use.
unsafe impl Send for Kernels {}
// SAFETY: the handles are never mutated after loading, and the driver API may be called on
// them from any thread once the context is bound (sessions share the kernels through an Arc).
unsafe impl Sync for Kernels {}

impl Kernels {
    /// Loads every embedded PTX into the current context and looks up the kernels.
    pub fn load(ctx: &Arc<CudaContext>) -> Result<Self, BackendError> {
        ctx.bind_to_thread()
            .map_err(|e| BackendError::Device(format!("binding context: {e:?}")))?;
        let mut modules = Vec::new();
        // A developer's knob for timing kernel variants without rebuilding: PTX files named
        // like the modules in this folder replace the embedded ones.
        let override_dir = std::env::var_os("SPLAT_CUDA_PTX_DIR").map(std::path::PathBuf::from);
        for m in MODULES {
            let text = match override_dir
                .as_ref()
                .map(|d| d.join(format!("{}.ptx", m.name)))
            {
                Some(path) if path.exists() => std::fs::read_to_string(&path).map_err(|e| {
                    BackendError::Device(format!("reading {}: {e}", path.display()))
                })?,
                _ => m.ptx.to_string(),
            };
            let src = CString::new(text)
                .map_err(|_| BackendError::Device(format!("PTX of {} holds a NUL byte", m.name)))?;
            // SAFETY: a NUL-terminated PTX image; the driver copies what it needs.
            let module = unsafe { result::module::load_data(src.as_ptr() as *const c_void) }
                .map_err(|e| BackendError::Device(format!("loading PTX {}: {e:?}", m.name)))?;
            modules.push(module);
        }
        let get = |mi: usize, name: &str| -> Result<sys::CUfunction, BackendError> {
            let cname = CString::new(name)
                .map_err(|_| BackendError::Device(format!("kernel name {name}")))?;
            // SAFETY: the module was loaded above and is still alive.
            unsafe { result::module::get_function(modules[mi], cname) }
                .map_err(|e| BackendError::Device(format!("kernel {name}: {e:?}")))
        };
        let raster_fwd = get(3, "raster_fwd")?;
        let raster_bwd = get(3, "raster_bwd")?;
        // The compositing kernels declare their block size in __launch_bounds__; reading it
        // back lets a kernel variant with another block size (several pixels per thread, as
        // timed in BENCHMARKS.md) run without a host change.
        let max_threads = |f| {
            // SAFETY: `f` was looked up in a loaded module above.
            unsafe {
                result::function::get_function_attribute(
                    f,
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
                )
            }
            .map_err(|e| BackendError::Device(format!("raster block size: {e:?}")))
        };
        let raster_threads = max_threads(raster_fwd)? as u32;
        let tile_pixels = TILE_SIZE * TILE_SIZE;
        if raster_threads == 0
            || !tile_pixels.is_multiple_of(raster_threads)
            || max_threads(raster_bwd)? as u32 != raster_threads
        {
            return Err(BackendError::Device(format!(
                "raster kernels declare {raster_threads} threads per block, not a divisor of {tile_pixels} shared by both"
            )));
        }
        Ok(Kernels {
            raster_threads,
            project_fwd: get(0, "project_fwd")?,
            project_bwd: get(0, "project_bwd")?,
            count_tiles: get(1, "count_tiles")?,
            emit_keys: get(1, "emit_keys")?,
            tile_ranges: get(1, "tile_ranges")?,
            scan_blocks: get(2, "scan_blocks")?,
            scan_add: get(2, "scan_add")?,
            radix_histogram: get(2, "radix_histogram")?,
            radix_scatter: get(2, "radix_scatter")?,
            raster_fwd,
            raster_bwd,
            loss_blur_h: get(4, "loss_blur_h")?,
            loss_blur_v: get(4, "loss_blur_v")?,
            loss_bwd_h: get(4, "loss_bwd_h")?,
            loss_bwd_v: get(4, "loss_bwd_v")?,
            adam_step: get(4, "adam_step")?,
            regularise: get(4, "regularise")?,
            position_noise: get(4, "position_noise")?,
            stats_accumulate: get(4, "stats_accumulate")?,
            densify_classify: get(4, "densify_classify")?,
            densify_mark: get(4, "densify_mark")?,
            densify_scatter: get(4, "densify_scatter")?,
            densify_children: get(4, "densify_children")?,
            opacity_cap: get(4, "opacity_cap")?,
            sq_err_sum: get(4, "sq_err_sum")?,
            resize_area_h: get(4, "resize_area_h")?,
            resize_area_v: get(4, "resize_area_v")?,
            match_nearest: get(5, "match_nearest")?,
            modules,
        })
    }
}

impl Drop for Kernels {
    fn drop(&mut self) {
        for &m in &self.modules {
            // SAFETY: each module was loaded once and is unloaded once; errors at teardown
            // cannot be acted on.
            let _ = unsafe { result::module::unload(m) };
        }
    }
}

/// Launches `f` on `stream` with `args`.
pub(crate) fn launch(
    stream: &CudaStream,
    f: sys::CUfunction,
    grid: (u32, u32, u32),
    block: u32,
    mut args: Vec<Arg>,
) -> Result<(), DriverError> {
    let mut ptrs: Vec<*mut c_void> = args
        .iter_mut()
        .map(|a| match a {
            Arg::U32(v) => v as *mut u32 as *mut c_void,
            Arg::I32(v) => v as *mut i32 as *mut c_void,
            Arg::U64(v) => v as *mut u64 as *mut c_void,
            Arg::F32(v) => v as *mut f32 as *mut c_void,
            Arg::Ptr(v) => v as *mut sys::CUdeviceptr as *mut c_void,
            Arg::Cam(v) => v as *mut CamParams as *mut c_void,
        })
        .collect();
    if grid.0 == 0 || grid.1 == 0 || grid.2 == 0 {
        return Ok(());
    }
    // SAFETY: the argument list matches the kernel's signature (it comes from the kernel's
    // argument struct in args.rs, which a test holds to the .cu prototype) and every pointer
    // refers to a live allocation on this context.
    unsafe { result::launch_kernel(f, grid, (block, 1, 1), 0, stream.cu_stream(), &mut ptrs) }
}

/// Zero-filled device buffer of at least one element (the driver refuses empty allocations).
pub(crate) fn zeros<T: DeviceRepr + ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    len: usize,
) -> Result<CudaSlice<T>, DriverError> {
    stream.alloc_zeros::<T>(len.max(1))
}

/// Uninitialised device buffer of at least one element, for outputs a kernel fully writes.
pub(crate) fn uninit<T: DeviceRepr>(
    stream: &Arc<CudaStream>,
    len: usize,
) -> Result<CudaSlice<T>, DriverError> {
    // SAFETY: callers only read elements after a kernel has written them.
    unsafe { stream.alloc::<T>(len.max(1)) }
}

/// The raw device address of element `index` of a buffer (event tracking is off, so nothing
/// is recorded).
pub(crate) fn dptr<T>(s: &CudaSlice<T>, index: usize, stream: &CudaStream) -> sys::CUdeviceptr {
    let (p, _sync) = s.device_ptr(stream);
    p + (index * std::mem::size_of::<T>()) as u64
}

/// CUDA events marking the stage boundaries of a step, for per-stage device times.
pub(crate) struct Marks {
    events: Vec<sys::CUevent>,
}

// SAFETY: event handles are plain driver handles of the context, used only by the session
// that owns them, after binding that context.
unsafe impl Send for Marks {}

impl Marks {
    /// `n` timing events in the current context.
    pub fn new(n: usize) -> Result<Self, DriverError> {
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            match result::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT) {
                Ok(e) => events.push(e),
                Err(err) => {
                    // Drop the ones made so far.
                    drop(Marks { events });
                    return Err(err);
                }
            }
        }
        Ok(Marks { events })
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Records event `i` on `stream`.
    pub fn record(&self, i: usize, stream: &CudaStream) -> Result<(), DriverError> {
        // SAFETY: the event and stream belong to the current context.
        unsafe { result::event::record(self.events[i], stream.cu_stream()) }
    }

    /// Milliseconds between the completed events `a` and `b`.
    pub fn elapsed_ms(&self, a: usize, b: usize) -> Result<f32, DriverError> {
        // SAFETY: both events were recorded on one stream and have completed (the caller
        // synchronised after recording them).
        unsafe { result::event::elapsed(self.events[a], self.events[b]) }
    }
}

impl Drop for Marks {
    fn drop(&mut self) {
        for &e in &self.events {
            // SAFETY: each event was created once and is destroyed once.
            let _ = unsafe { result::event::destroy(e) };
        }
    }
}

/// Records mark `i` when marks are being taken.
pub(crate) fn mark(m: Option<&Marks>, i: usize, stream: &CudaStream) -> Result<(), DriverError> {
    match m {
        Some(m) if i < m.len() => m.record(i, stream),
        _ => Ok(()),
    }
}
