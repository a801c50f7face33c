//! The hyper-parameter sweep harness: a grid over any config keys on one scene, with
//! `results.csv` and a chart of test PSNR against wall time per configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use super::{TrainConfig, TrainError, Trainer};
use crate::backend::TrainBackend;
use crate::scene::{load_scene, Downscale, Image, LoadOptions};

/// A sweep: one scene, a base configuration, and values to try per dotted config key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// The scene directory or transforms file.
    pub scene: PathBuf,
    /// Downscale factor on load.
    #[serde(default)]
    pub downscale: Option<f64>,
    /// Base configuration, as in a config file (missing keys keep their defaults).
    #[serde(default)]
    pub base: serde_yaml::Value,
    /// Values per dotted key (e.g. `densify.grad_threshold: [0.0001, 0.0002]`); the sweep runs
    /// every combination.
    pub grid: BTreeMap<String, Vec<serde_yaml::Value>>,
}

impl SweepSpec {
    /// Reads a sweep file; a relative `scene` is taken from the file's folder.
    pub fn from_yaml_file(path: &Path) -> Result<Self, super::ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| super::ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut spec: SweepSpec =
            serde_yaml::from_str(&text).map_err(|e| super::ConfigError::Parse {
                origin: path.display().to_string(),
                message: e.to_string(),
            })?;
        if spec.scene.is_relative() {
            if let Some(dir) = path.parent() {
                spec.scene = dir.join(&spec.scene);
            }
        }
        Ok(spec)
    }
}

/// One configuration's outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepResult {
    /// Values of the swept keys, in key order.
    pub values: Vec<(String, String)>,
    /// Test PSNR (dB).
    pub psnr: f32,
    /// Test SSIM.
    pub ssim: f32,
    /// Training wall time (s).
    pub seconds: f64,
    /// Iterations run.
    pub iterations: usize,
    /// Final Gaussians.
    pub gaussians: usize,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

pub use crate::config::set_dotted;

/// Every combination of the grid, as lists of (key, value).
pub fn combinations(
    grid: &BTreeMap<String, Vec<serde_yaml::Value>>,
) -> Vec<Vec<(String, serde_yaml::Value)>> {
    let mut out: Vec<Vec<(String, serde_yaml::Value)>> = vec![vec![]];
    for (k, vals) in grid {
        let mut next = Vec::with_capacity(out.len() * vals.len());
        for prefix in &out {
            for v in vals {
                let mut p = prefix.clone();
                p.push((k.clone(), v.clone()));
                next.push(p);
            }
        }
        out = next;
    }
    out
}

/// The configuration for one grid point: the defaults, then `base`, then the point's dotted
/// keys, through the same overlay as config files (unknown keys are an error naming them).
pub fn config_for(
    base: &serde_yaml::Value,
    point: &[(String, serde_yaml::Value)],
) -> Result<TrainConfig, TrainError> {
    let cfg = crate::config::overlay(&TrainConfig::default(), base, "sweep base")?;
    let origin = format!("sweep point {}", point_label(point));
    let cfg = crate::config::overlay_assignments(&cfg, point, &origin)?;
    cfg.validate()?;
    Ok(cfg)
}

/// `key=value key=value` for a grid point.
fn point_label(point: &[(String, serde_yaml::Value)]) -> String {
    let vals: Vec<String> = point
        .iter()
        .map(|(k, v)| format!("{k}={}", yaml_scalar(v)))
        .collect();
    vals.join(" ")
}

fn yaml_scalar(v: &serde_yaml::Value) -> String {
    serde_yaml::to_string(v)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Runs the sweep, writing `results.csv` and `chart.png` into `out`; `backend` runs each
/// configuration and `on_run` reports each finished configuration.
pub fn run_sweep(
    spec: &SweepSpec,
    out: &Path,
    backend: &mut dyn TrainBackend,
    on_run: &mut dyn FnMut(usize, usize, &SweepResult),
) -> Result<Vec<SweepResult>, TrainError> {
    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    let points = combinations(&spec.grid);
    // Check every configuration before spending time on any.
    let configs: Vec<TrainConfig> = points
        .iter()
        .map(|p| config_for(&spec.base, p))
        .collect::<Result<_, _>>()?;
    let background = configs
        .first()
        .and_then(|c| c.background)
        .unwrap_or([0.0; 3]);
    let load = LoadOptions {
        downscale: spec.downscale.map(Downscale::Factor).unwrap_or_default(),
        background,
        ..Default::default()
    };
    let scene = load_scene(&spec.scene, &load).map_err(|e| io_err(&spec.scene, e))?;
    let stop = AtomicBool::new(false);
    let mut results = Vec::new();
    for (i, (point, cfg)) in points.iter().zip(configs).enumerate() {
        let mut t = Trainer::new(&scene, cfg, backend)?;
        t.run(&stop, &mut |_, _| {})?;
        let seconds = t.elapsed_seconds();
        let test = scene.test.clone();
        let e = t.evaluate(&test, &mut |_, _, _| Ok(()))?;
        let r = SweepResult {
            values: point
                .iter()
                .map(|(k, v)| (k.clone(), yaml_scalar(v)))
                .collect(),
            psnr: e.psnr,
            ssim: e.ssim,
            seconds,
            iterations: t.state.iteration,
            gaussians: t.gaussians_len(),
        };
        on_run(i, points.len(), &r);
        results.push(r);
        write_csv(&out.join("results.csv"), &spec.grid, &results)?;
    }
    let chart = plot_psnr_vs_time(&results);
    crate::scene::save_png(out.join("chart.png"), &chart)
        .map_err(|e| io_err(&out.join("chart.png"), e))?;
    Ok(results)
}

fn write_csv(
    path: &Path,
    grid: &BTreeMap<String, Vec<serde_yaml::Value>>,
    results: &[SweepResult],
) -> Result<(), TrainError> {
    let mut s = String::new();
    for k in grid.keys() {
        s.push_str(k);
        s.push(',');
    }
    s.push_str("test_psnr,test_ssim,seconds,iterations,gaussians\n");
    for r in results {
        for (_, v) in &r.values {
            s.push_str(&v.replace(',', ";"));
            s.push(',');
        }
        s.push_str(&format!(
            "{:.3},{:.4},{:.2},{},{}\n",
            r.psnr, r.ssim, r.seconds, r.iterations, r.gaussians
        ));
    }
    super::write_atomic(path, s.as_bytes())
}

/// 3x5 pixel glyphs for the chart's labels (digits, '.', and a few letters).
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        'd' => [1, 1, 7, 5, 7],
        'B' => [6, 5, 6, 5, 6],
        's' => [0, 7, 4, 1, 7],
        'P' => [7, 5, 7, 4, 4],
        'N' => [5, 7, 7, 7, 5],
        'R' => [7, 5, 6, 5, 5],
        'S' => [7, 4, 7, 1, 7],
        ' ' => [0, 0, 0, 0, 0],
        _ => return None,
    })
}

fn draw_text(img: &mut Image, x: i32, y: i32, text: &str, scale: i32, rgb: [f32; 3]) {
    for (ci, ch) in text.chars().enumerate() {
        let Some(g) = glyph(ch) else { continue };
        for (row, bits) in g.iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) != 0 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let px = x + (ci as i32 * 4 + col) * scale + dx;
                            let py = y + row as i32 * scale + dy;
                            if px >= 0
                                && py >= 0
                                && (px as u32) < img.width
                                && (py as u32) < img.height
                            {
                                img.set_pixel(px as u32, py as u32, rgb);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A scatter plot of test PSNR (y) against wall time (x), one dot per configuration, each
/// labelled with its index in `results.csv`.
pub fn plot_psnr_vs_time(results: &[SweepResult]) -> Image {
    let (w, h) = (640u32, 420u32);
    let mut img = Image::filled(w, h, [1.0; 3]);
    let (l, r, t, b) = (70i32, 20i32, 20i32, 50i32);
    let black = [0.0; 3];
    for x in l..(w as i32 - r) {
        img.set_pixel(x as u32, (h as i32 - b) as u32, black);
    }
    for y in t..=(h as i32 - b) {
        img.set_pixel(l as u32, y as u32, black);
    }
    if results.is_empty() {
        return img;
    }
    let (mut x0, mut x1) = (f64::MAX, f64::MIN);
    let (mut y0, mut y1) = (f64::MAX, f64::MIN);
    for res in results {
        x0 = x0.min(res.seconds);
        x1 = x1.max(res.seconds);
        y0 = y0.min(res.psnr as f64);
        y1 = y1.max(res.psnr as f64);
    }
    let pad = |a: f64, b: f64| {
        if b - a < 1e-6 {
            (a - 0.5, b + 0.5)
        } else {
            (a - 0.08 * (b - a), b + 0.08 * (b - a))
        }
    };
    let (x0, x1) = pad(x0, x1);
    let (y0, y1) = pad(y0, y1);
    let px = |v: f64| l + ((v - x0) / (x1 - x0) * (w as i32 - l - r) as f64) as i32;
    let py = |v: f64| (h as i32 - b) - ((v - y0) / (y1 - y0) * (h as i32 - b - t) as f64) as i32;
    draw_text(&mut img, 4, t, &format!("{y1:.2}"), 2, black);
    draw_text(
        &mut img,
        4,
        h as i32 - b - 10,
        &format!("{y0:.2}"),
        2,
        black,
    );
    draw_text(&mut img, 4, h as i32 / 2, "PSNR dB", 2, black);
    draw_text(&mut img, l, h as i32 - b + 8, &format!("{x0:.1}"), 2, black);
    draw_text(
        &mut img,
        w as i32 - r - 60,
        h as i32 - b + 8,
        &format!("{x1:.1}"),
        2,
        black,
    );
    draw_text(&mut img, w as i32 / 2 - 10, h as i32 - 20, "s", 2, black);
    for (i, res) in results.iter().enumerate() {
        let (cx, cy) = (px(res.seconds), py(res.psnr as f64));
        let hue = i as f32 / results.len() as f32;
        let col = [0.8 * (1.0 - hue), 0.2, 0.8 * hue];
        for dy in -4..=4 {
            for dx in -4..=4 {
                if dx * dx + dy * dy <= 16
                    && cx + dx >= 0
                    && cy + dy >= 0
                    && ((cx + dx) as u32) < w
                    && ((cy + dy) as u32) < h
                {
                    img.set_pixel((cx + dx) as u32, (cy + dy) as u32, col);
                }
            }
        }
        draw_text(&mut img, cx + 6, cy - 12, &i.to_string(), 2, col);
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_expands_and_keys_reach_the_config() {
        let spec: SweepSpec = serde_yaml::from_str(
            "
            scene: x
            base: { iterations: 100, densify: { interval: 50 } }
            grid:
              densify.grad_threshold: [0.0001, 0.0004]
              densify.percent_dense: [0.005, 0.01, 0.02]
            ",
        )
        .expect("spec");
        let pts = combinations(&spec.grid);
        assert_eq!(pts.len(), 6);
        let c = config_for(&spec.base, &pts[5]).expect("config");
        assert_eq!(
            (
                c.iterations,
                c.densify.interval,
                c.densify.grad_threshold,
                c.densify.percent_dense
            ),
            (100, 50, 0.0004, 0.02)
        );
        // A misspelt key fails before anything runs.
        let bad = config_for(
            &spec.base,
            &[("densify.grad_treshold".into(), serde_yaml::Value::from(1.0))],
        );
        let msg = bad.expect_err("misspelt key").to_string();
        assert!(msg.contains("unknown key densify.grad_treshold"), "{msg}");
        // The anti-aliasing switches sweep like any other key.
        let aa = config_for(
            &spec.base,
            &[
                ("antialias.mip2d".into(), serde_yaml::Value::from(true)),
                ("antialias.filter3d".into(), serde_yaml::Value::from(true)),
                (
                    "antialias.filter3d_scale".into(),
                    serde_yaml::Value::from(0.1),
                ),
            ],
        )
        .expect("anti-aliasing keys");
        assert!(aa.antialias.mip2d && aa.antialias.filter3d);
        assert_eq!(aa.antialias.filter3d_scale, 0.1);
    }

    #[test]
    fn chart_marks_each_result() {
        let r = |s: f64, p: f32| SweepResult {
            values: vec![],
            psnr: p,
            ssim: 0.9,
            seconds: s,
            iterations: 1,
            gaussians: 1,
        };
        let img = plot_psnr_vs_time(&[r(10.0, 25.0), r(20.0, 27.0)]);
        let coloured = img.data.chunks(3).filter(|p| p[1] == 0.2).count();
        assert!(coloured > 2 * 40, "both dots drawn");
    }
}
