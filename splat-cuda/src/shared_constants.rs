//! The kernels repeat splat-core's constants as `#define`s (the committed PTX is compiled from
//! the .cu text alone); these tests hold each to the Rust value it mirrors, and the host's
//! launch constants to the kernels' block sizes.

use splat_core::render::project::{
    COVER_K_MARGIN, COVER_K_SCALE, COVER_MARGIN_PX, EXTENT_SIGMAS, LOW_PASS,
};
use splat_core::render::raster::{MAX_ALPHA, MIN_ALPHA, MIN_TRANSMITTANCE};
use splat_core::render::TILE_SIZE;
use splat_core::{gaussians, loss, sh};

use crate::cu_text::{define, eval_define, initialiser, number};
use crate::ptx::MODULES;

fn source(name: &str) -> &'static str {
    MODULES
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no module {name}"))
        .source
}

/// `(float)x` of the kernels against `T::from(x)` of the reference: both round the double once.
fn same_f32(cu: f64, rust: f64, what: &str) {
    assert_eq!(
        cu as f32, rust as f32,
        "{what}: kernels {cu:e}, splat-core {rust:e}"
    );
}

#[test]
fn tile_size_is_splat_cores_in_every_kernel_that_bins() {
    for m in ["project", "raster", "tiles"] {
        assert_eq!(
            eval_define(source(m), "TILE"),
            TILE_SIZE as f64,
            "kernels/{m}.cu TILE"
        );
    }
}

#[test]
fn projection_constants_match_the_reference() {
    let src = source("project");
    same_f32(eval_define(src, "LOW_PASS"), LOW_PASS, "LOW_PASS");
    same_f32(
        eval_define(src, "EXTENT_SIGMAS"),
        EXTENT_SIGMAS,
        "EXTENT_SIGMAS",
    );
    // The SH table, coefficient by coefficient.
    same_f32(initialiser(src, "SH_C0")[0], sh::SH_C0, "SH_C0");
    same_f32(initialiser(src, "SH_C1")[0], sh::SH_C1, "SH_C1");
    let c2 = initialiser(src, "SH_C2");
    assert_eq!(c2.len(), sh::SH_C2.len());
    for (i, (a, b)) in c2.iter().zip(sh::SH_C2).enumerate() {
        same_f32(*a, b, &format!("SH_C2[{i}]"));
    }
    let c3 = initialiser(src, "SH_C3");
    assert_eq!(c3.len(), sh::SH_C3.len());
    for (i, (a, b)) in c3.iter().zip(sh::SH_C3).enumerate() {
        same_f32(*a, b, &format!("SH_C3[{i}]"));
    }
    // project_bwd stages every Gaussian's SH in shared memory: room for the highest degree
    // that `upload` accepts (3).
    assert_eq!(
        eval_define(src, "PB_MAX_NSH") as usize,
        3 * gaussians::sh_coeffs_for_degree(3)
    );
}

#[test]
fn compositing_constants_match_the_reference() {
    let src = source("raster");
    same_f32(eval_define(src, "MAX_ALPHA"), MAX_ALPHA, "MAX_ALPHA");
    same_f32(eval_define(src, "MIN_ALPHA"), MIN_ALPHA, "MIN_ALPHA");
    same_f32(eval_define(src, "MIN_T"), MIN_TRANSMITTANCE, "MIN_T");
}

#[test]
fn tile_cover_test_matches_the_reference() {
    let src = source("tiles");
    same_f32(
        eval_define(src, "COVER_MARGIN"),
        COVER_MARGIN_PX,
        "COVER_MARGIN",
    );
    // k = 2 ln(o / MIN_ALPHA), written as ln(255 o), widened by the same factors.
    let k_line = src
        .lines()
        .find(|l| l.contains("float k = "))
        .expect("cover_init's k");
    let scale_at = k_line.find("co.w * ").expect("co.w * 1/MIN_ALPHA") + "co.w * ".len();
    let inv = number(
        k_line[scale_at..]
            .split(|c: char| c == ')' || c.is_whitespace())
            .next()
            .unwrap_or(""),
    );
    assert_eq!(
        inv,
        (1.0 / MIN_ALPHA).round(),
        "1 / MIN_ALPHA in cover_init"
    );
    assert_eq!((1.0 / MIN_ALPHA).round() * MIN_ALPHA, 1.0);
    let thr_line = src
        .lines()
        .find(|l| l.contains("float thr = "))
        .expect("cover_init's thr")
        .trim();
    assert_eq!(
        thr_line,
        format!("float thr = k * {COVER_K_SCALE}f + {COVER_K_MARGIN}f;"),
        "the widening of k in kernels/tiles.cu"
    );
}

#[test]
fn ssim_window_and_constants_match_loss_rs() {
    let src = source("train");
    assert_eq!(eval_define(src, "WIN_R") as usize, loss::WINDOW_RADIUS);
    assert_eq!(
        eval_define(src, "WIN") as usize,
        2 * loss::WINDOW_RADIUS + 1
    );
    assert_eq!(loss::ssim_window().len(), 2 * loss::WINDOW_RADIUS + 1);
    // `const float C1 = 0.01f * 0.01f, C2 = 0.03f * 0.03f;`: products in f32, as in loss.rs.
    let line = src
        .lines()
        .find(|l| l.contains("const float C1 ="))
        .expect("the SSIM constants in kernels/train.cu");
    for (name, want) in [("C1", loss::C1), ("C2", loss::C2)] {
        let at = line.find(&format!("{name} = ")).expect(name) + name.len() + 3;
        let expr = line[at..].split([',', ';']).next().unwrap_or("");
        let got = expr
            .split('*')
            .map(|f| number(f.trim()) as f32)
            .fold(1.0f32, |a, b| a * b);
        assert_eq!(got, want, "SSIM {name}");
    }
}

#[test]
fn host_launch_constants_match_the_kernels() {
    use crate::backend::{PB_THREADS, RADIX_BITS, SCAN_TILE, SG_STRIDE, SORT_TILE, THREADS};
    let sort = source("sort");
    assert_eq!(eval_define(sort, "SCAN_TILE") as usize, SCAN_TILE);
    assert_eq!(eval_define(sort, "SORT_TILE") as usize, SORT_TILE);
    assert_eq!(eval_define(sort, "RADIX_BITS") as u32, RADIX_BITS);
    // The scan and sort kernels are launched with THREADS per block.
    assert_eq!(eval_define(sort, "SCAN_THREADS") as u32, THREADS);
    assert_eq!(eval_define(sort, "SORT_THREADS") as u32, THREADS);
    assert_eq!(eval_define(source("train"), "THREADS") as u32, THREADS);
    assert_eq!(
        eval_define(source("project"), "PB_THREADS") as u32,
        PB_THREADS
    );
    for m in ["project", "raster", "train"] {
        assert_eq!(
            eval_define(source(m), "SG_STRIDE") as usize,
            SG_STRIDE,
            "kernels/{m}.cu SG_STRIDE"
        );
    }
    assert!(define(sort, "NO_SUCH_DEFINE").is_none());
}

#[test]
fn matcher_launch_constants_match_the_kernel() {
    use crate::matcher::{DESC_DIM, MATCH_ROWS, MATCH_THREADS, PAIR_FIELDS};
    let src = source("match");
    assert_eq!(eval_define(src, "DESC_DIM") as usize, DESC_DIM);
    assert_eq!(eval_define(src, "MATCH_ROWS") as usize, MATCH_ROWS);
    assert_eq!(eval_define(src, "MATCH_THREADS") as u32, MATCH_THREADS);
    assert_eq!(eval_define(src, "PAIR_FIELDS") as usize, PAIR_FIELDS);
    // The kernel's thread layout: 16 x 16 threads, 4 x 4 scores each, over 64 x 64 tiles.
    assert_eq!(MATCH_THREADS, 256);
    assert_eq!(MATCH_ROWS, 64);
    assert_eq!(eval_define(src, "MATCH_COLS") as usize, 64);
    assert_eq!(DESC_DIM % eval_define(src, "MATCH_K") as usize, 0);
}
