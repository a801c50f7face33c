//! One argument struct per kernel, fields named and ordered as the kernel's parameters in
//! `kernels/*.cu`, each with the one launch function of its kernel. A test parses every
//! prototype and holds each struct's field list (names, scalar types, pointer constness) to it,
//! so a kernel signature change that the host misses fails a plain `cargo test`.

use cudarc::driver::result::DriverError;
use cudarc::driver::{sys, CudaSlice, CudaStream};

use crate::device::{dptr, launch, Arg, CamParams, Kernels};

/// A device address the kernel only reads (`const T*`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct In(pub sys::CUdeviceptr);

/// A device address the kernel writes (`T*`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Out(pub sys::CUdeviceptr);

impl In {
    /// The start of `s`.
    pub fn of<T>(s: &CudaSlice<T>, stream: &CudaStream) -> Self {
        In(dptr(s, 0, stream))
    }

    /// Element `index` of `s`.
    pub fn at<T>(s: &CudaSlice<T>, index: usize, stream: &CudaStream) -> Self {
        In(dptr(s, index, stream))
    }
}

impl Out {
    /// The start of `s` (written through a shared reference: the stream orders the access).
    pub fn of<T>(s: &CudaSlice<T>, stream: &CudaStream) -> Self {
        Out(dptr(s, 0, stream))
    }
}

/// A Rust type that stands for one C parameter type.
pub(crate) trait KernelArg {
    /// How the C parameter is spelled, for the prototype test: a scalar type, `Cam`, or
    /// `const*` / `*` for a read-only / written pointer.
    #[cfg_attr(not(test), allow(dead_code))]
    const C: &'static str;
    /// The value for the launch.
    fn arg(self) -> Arg;
}

impl KernelArg for i32 {
    const C: &'static str = "int";
    fn arg(self) -> Arg {
        Arg::I32(self)
    }
}

impl KernelArg for u32 {
    const C: &'static str = "unsigned int";
    fn arg(self) -> Arg {
        Arg::U32(self)
    }
}

impl KernelArg for u64 {
    const C: &'static str = "unsigned long long";
    fn arg(self) -> Arg {
        Arg::U64(self)
    }
}

impl KernelArg for f32 {
    const C: &'static str = "float";
    fn arg(self) -> Arg {
        Arg::F32(self)
    }
}

impl KernelArg for CamParams {
    const C: &'static str = "Cam";
    fn arg(self) -> Arg {
        Arg::Cam(self)
    }
}

impl KernelArg for In {
    const C: &'static str = "const*";
    fn arg(self) -> Arg {
        Arg::Ptr(self.0)
    }
}

impl KernelArg for Out {
    const C: &'static str = "*";
    fn arg(self) -> Arg {
        Arg::Ptr(self.0)
    }
}

/// Declares the argument struct of each kernel and the list the prototype test reads.
macro_rules! kernels {
    ($($module:literal $kernel:ident => $name:ident { $($field:ident: $ty:ty),* $(,)? })*) => {
        $(
            #[doc = concat!("The arguments of `", stringify!($kernel), "` (kernels/", $module, ".cu).")]
            pub(crate) struct $name {
                $(pub $field: $ty,)*
            }

            impl $name {
                #[doc = concat!("Launches `", stringify!($kernel), "` on `stream`.")]
                pub fn launch(
                    self,
                    k: &Kernels,
                    stream: &CudaStream,
                    grid: (u32, u32, u32),
                    block: u32,
                ) -> Result<(), DriverError> {
                    launch(stream, k.$kernel, grid, block, vec![$(self.$field.arg()),*])
                }
            }
        )*

        /// (module, kernel, [(parameter, C spelling)]) of every kernel the host launches.
        #[cfg(test)]
        pub(crate) const ALL: &[(&str, &str, &[(&str, &str)])] = &[
            $(($module, stringify!($kernel), &[$((stringify!($field), <$ty as KernelArg>::C)),*]),)*
        ];
    };
}

kernels! {
    "project" project_fwd => ProjectFwd {
        n: i32, cam: CamParams, means: In, log_scales: In, quats: In, opacity_logits: In, sh: In,
        xy: Out, conic_opacity: Out, color: Out, depth: Out, radius: Out, rect: Out, flags: Out,
    }
    "project" project_bwd => ProjectBwd {
        n: i32, cam: CamParams, means: In, log_scales: In, quats: In, sh: In,
        conic_opacity: In, flags: In, screen: In,
        d_means: Out, d_log_scales: Out, d_quats: Out, d_logits: Out, d_sh: Out,
    }
    "raster" raster_fwd => RasterFwd {
        width: u32, height: u32, bg_r: f32, bg_g: f32, bg_b: f32,
        ranges: In, ids: In, xy: In, conic_opacity: In, color: In,
        image: Out, final_t: Out, n_contrib: Out,
    }
    "raster" raster_bwd => RasterBwd {
        width: u32, height: u32, bg_r: f32, bg_g: f32, bg_b: f32,
        ranges: In, ids: In, xy: In, conic_opacity: In, color: In, final_t: In, n_contrib: In,
        d_image: In, screen: Out,
    }
    "sort" scan_blocks => ScanBlocks { n: i32, r#in: In, out: Out, block_sums: Out }
    "sort" scan_add => ScanAdd { n: i32, data: Out, block_offsets: In }
    "sort" radix_histogram => RadixHistogram {
        count: In, cap: u32, shift: i32, keys: In, hist: Out,
    }
    "sort" radix_scatter => RadixScatter {
        count: In, cap: u32, shift: i32, keys_in: In, vals_in: In, keys_out: Out, vals_out: Out,
        hist: In,
    }
    "tiles" count_tiles => CountTiles {
        n: i32, rect: In, xy: In, conic_opacity: In, tiles_touched: Out,
    }
    "tiles" emit_keys => EmitKeys {
        n: i32, cap: u32, tiles_x: u32, rect: In, xy: In, conic_opacity: In, offsets: In,
        tiles_touched: In, depth: In, keys: Out, vals: Out,
    }
    "tiles" tile_ranges => TileRanges { count: In, cap: u32, keys: In, ranges: Out }
    "train" loss_blur_h => LossBlurH { w: i32, h: i32, win: In, x: In, y: In, out: Out }
    "train" loss_blur_v => LossBlurV {
        w: i32, h: i32, ssim_weight: f32, win: In, hsum: In, x: In, y: In, partials: Out,
        sums: Out,
    }
    "train" loss_bwd_h => LossBwdH { w: i32, h: i32, win: In, partials: In, out: Out }
    "train" loss_bwd_v => LossBwdV {
        w: i32, h: i32, ssim_weight: f32, win: In, hpart: In, x: In, y: In, grad: Out,
    }
    "train" adam_step => AdamStep {
        isect: In, cap: u32, len: i32, stride: i32, split: i32, p: Out, g: In, m: Out, v: Out,
        lr_a: f32, lr_b: f32, b1: f32, b2: f32, eps: f32, bc1: f32, sbc2: f32,
    }
    "train" regularise => Regularise {
        isect: In, cap: u32, n: i32, w_opacity: f32, w_scale: f32, opacity: In, log_scales: In,
        g_opacity: Out, g_log_scales: Out, loss: Out,
    }
    "train" stats_accumulate => StatsAccumulate {
        isect: In, cap: u32, n: i32, sx: f32, sy: f32, screen: In, radius: In,
        grad_accum: Out, count: Out, max_radius: Out,
    }
    "train" densify_classify => DensifyClassify {
        n: i32, grad_threshold: f32, split_limit: f32, grad_accum: In, count: In,
        log_scales: In, flags: Out, counts: Out,
    }
    "train" densify_mark => DensifyMark {
        n: i32, prune_large: i32, no_prune: i32, prune_opacity: f32, world_limit: f32,
        screen_limit: u32, ln16: f32, opacity: In, log_scales: In, max_radius: In, flags: Out,
        keep_counts: Out, counts: Out,
    }
    "train" densify_scatter => DensifyScatter {
        n: i32, width: i32, zero_new: i32, flags: In, offsets: In, src: In, dst: Out,
    }
    "train" densify_children => DensifyChildren {
        n: i32, seed: u64, ln16: f32, flags: In, offsets: In, means: In, log_scales: In,
        quats: In, out_means: Out, out_log_scales: Out,
    }
    "train" position_noise => PositionNoise {
        n: i32, seed: u64, scale: f32, k: f32, t: f32, opacity: In, log_scales: In, quats: In,
        means: Out,
    }
    "train" sq_err_sum => SqErrSum { n: i32, x: In, y: In, out: Out }
    "train" opacity_cap => OpacityCap { n: i32, cap: f32, opacity: Out }
    "train" resize_area_h => ResizeAreaH { sw: i32, sh: i32, ow: i32, src: In, rows: Out }
    "train" resize_area_v => ResizeAreaV { sh: i32, ow: i32, oh: i32, rows: In, out: Out }
    "match" match_nearest => MatchNearest {
        num_pairs: i32, pairs: In, desc: In, row_best: Out, col_best: Out,
    }
}

#[cfg(test)]
mod tests {
    use super::ALL;
    use crate::cu_text::kernel_params;
    use crate::ptx::MODULES;

    /// The C spelling of a parameter type as the structs record it.
    fn kind(ty: &str) -> String {
        if ty.ends_with('*') {
            if ty.starts_with("const ") {
                "const*".into()
            } else {
                "*".into()
            }
        } else {
            ty.to_string()
        }
    }

    #[test]
    fn every_argument_struct_matches_its_kernel_prototype() {
        for (module, kernel, fields) in ALL {
            let src = MODULES
                .iter()
                .find(|m| m.name == *module)
                .unwrap_or_else(|| panic!("no module {module}"))
                .source;
            let want: Vec<(String, String)> = kernel_params(src, kernel)
                .into_iter()
                .map(|p| (p.name, kind(&p.ty)))
                .collect();
            let got: Vec<(String, String)> = fields
                .iter()
                .map(|(n, t)| (n.trim_start_matches("r#").to_string(), t.to_string()))
                .collect();
            assert_eq!(
                got, want,
                "{kernel} (kernels/{module}.cu): host struct vs prototype"
            );
        }
    }

    #[test]
    fn cam_params_is_as_large_as_the_kernels_struct_cam() {
        let src = MODULES[0].source;
        let open = src
            .find("struct Cam {")
            .expect("struct Cam in kernels/project.cu");
        let body = &src[open + "struct Cam {".len()..];
        let body = &body[..body.find("};").expect("end of struct Cam")];
        // Every member is 4 bytes (float, int, unsigned int); count them with array sizes.
        let mut slots = 0;
        for decl in body.lines().map(|l| l.split("//").next().unwrap_or("")) {
            let Some(decl) = decl.trim().strip_suffix(';') else {
                continue;
            };
            let names = decl
                .trim_start_matches("unsigned int")
                .trim_start_matches("float")
                .trim_start_matches("int");
            for name in names.split(',') {
                slots += match name.split_once('[') {
                    Some((_, n)) => n
                        .trim_end_matches(']')
                        .trim()
                        .parse::<usize>()
                        .expect("size"),
                    None => 1,
                };
            }
        }
        assert_eq!(4 * slots, std::mem::size_of::<crate::device::CamParams>());
    }

    #[test]
    fn every_kernel_in_the_sources_has_an_argument_struct() {
        for m in MODULES {
            for (at, _) in m.source.match_indices("__global__") {
                // The name is the word before the first parenthesis that does not belong to
                // `__launch_bounds__(...)`.
                let mut rest = &m.source[at + "__global__".len()..];
                let name = loop {
                    let open = rest.find('(').expect("a parameter list");
                    let word = rest[..open].split_whitespace().last().expect("a name");
                    if word != "__launch_bounds__" {
                        break word;
                    }
                    rest = &rest[open + rest[open..].find(')').expect(")") + 1..];
                };
                assert!(
                    ALL.iter()
                        .any(|(module, k, _)| *module == m.name && *k == name),
                    "kernels/{}.cu declares {name}, which has no argument struct",
                    m.name
                );
            }
        }
    }
}
