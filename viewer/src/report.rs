//! `report.html`: a run's report.md as HTML with its pictures, the monitor PSNR curve and the
//! viewer on the run's `.sog`, all in one file that opens from disk (no server, no network).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::ViewError;

const INDEX_HTML: &str = include_str!("../web/index.html");
const VIEWER_JS: &str = include_str!("../web/viewer.js");
const WORKER_JS: &str = include_str!("../web/sort-worker.js");

/// Largest model embedded in report.html; a bigger one is left out with a note (browsers and
/// editors choke on very large single HTML files).
pub const MAX_EMBED_BYTES: u64 = 200 << 20;

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= c.len() {
                s.push(T[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `code` spans and `![alt](file)` images of one markdown line; images become data URIs.
fn inline(line: &str, dir: &Path) -> String {
    let mut out = String::new();
    let mut rest = line;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("![") {
            if let Some((alt, after)) = r.split_once("](") {
                if let Some((file, tail)) = after.split_once(')') {
                    out.push_str(&image_tag(dir, file, alt));
                    rest = tail;
                    continue;
                }
            }
        }
        if let Some(r) = rest.strip_prefix('`') {
            if let Some((code, tail)) = r.split_once('`') {
                let _ = write!(out, "<code>{}</code>", escape(code));
                rest = tail;
                continue;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push_str(&escape(&c.to_string()));
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn image_tag(dir: &Path, file: &str, alt: &str) -> String {
    let mime = if file.ends_with(".png") {
        "image/png"
    } else if file.ends_with(".jpg") || file.ends_with(".jpeg") {
        "image/jpeg"
    } else {
        "application/octet-stream"
    };
    // Only files inside the run folder are embedded.
    match crate::paths::safe_relative(file)
        .ok()
        .and_then(|rel| crate::paths::resolve_inside(dir, &rel))
        .and_then(|p| std::fs::read(p).ok())
    {
        Some(bytes) => format!(
            "<img alt=\"{}\" src=\"data:{mime};base64,{}\">",
            escape(alt),
            base64(&bytes)
        ),
        None => format!("<em>[missing picture {}]</em>", escape(file)),
    }
}

/// The small markdown subset report.md uses: headings, pipe tables, pictures, paragraphs.
pub fn markdown_to_html(md: &str, dir: &Path) -> String {
    let mut html = String::new();
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim_end();
        if l.trim().is_empty() {
            i += 1;
        } else if let Some(h) = l.strip_prefix('#') {
            let level = 1 + h.chars().take_while(|&c| c == '#').count();
            let text = h.trim_start_matches('#').trim();
            let _ = writeln!(html, "<h{level}>{}</h{level}>", inline(text, dir));
            i += 1;
        } else if l.trim_start().starts_with('|') {
            html.push_str("<table>\n");
            let mut first = true;
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                let row = lines[i].trim().trim_matches('|');
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                let is_rule = cells
                    .iter()
                    .all(|c| !c.is_empty() && c.chars().all(|ch| ch == '-' || ch == ':'));
                if !is_rule {
                    let tag = if first { "th" } else { "td" };
                    html.push_str("<tr>");
                    for c in cells {
                        let _ = write!(html, "<{tag}>{}</{tag}>", inline(c, dir));
                    }
                    html.push_str("</tr>\n");
                }
                first = false;
                i += 1;
            }
            html.push_str("</table>\n");
        } else {
            let mut para = Vec::new();
            while i < lines.len() && !lines[i].trim().is_empty() && !lines[i].starts_with('#') {
                para.push(inline(lines[i].trim(), dir));
                i += 1;
            }
            let _ = writeln!(html, "<p>{}</p>", para.join("\n"));
        }
    }
    html
}

/// One line of a chart: its name, colour and (x, y) points.
struct Series<'a> {
    name: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
}

/// An SVG line chart (element id `id`) of the series on shared axes, or None when no series
/// has two points. Each polyline carries `data-series` and `data-points` for readers and tests.
fn curve_svg(id: &str, series: &[Series], x_label: &str, y_label: &str) -> Option<String> {
    let drawn: Vec<&Series> = series.iter().filter(|s| s.points.len() >= 2).collect();
    if drawn.is_empty() {
        return None;
    }
    let (w, h, m) = (560.0, 220.0, 40.0);
    let all = || drawn.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let sx = |x: f64| m + (x - x0) / (x1 - x0).max(1e-9) * (w - 2.0 * m);
    let sy = |y: f64| h - m - (y - y0) / (y1 - y0).max(1e-9) * (h - 2.0 * m);
    let mut lines = String::new();
    let mut legend = String::new();
    for (k, s) in drawn.iter().enumerate() {
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        lines += &format!(
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" data-series=\"{}\" data-points=\"{}\" points=\"{}\"/>",
            s.color,
            escape(s.name),
            s.points.len(),
            path.join(" ")
        );
        legend += &format!(
            "<text x=\"{}\" y=\"14\" font-size=\"11\" fill=\"{}\">{}</text>",
            m + 200.0 + 150.0 * k as f64,
            s.color,
            escape(s.name)
        );
    }
    Some(format!(
        "<svg id=\"{id}\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\">\
<rect width=\"{w}\" height=\"{h}\" fill=\"#fafafa\"/>{lines}{legend}\
<text x=\"{m}\" y=\"{}\" font-size=\"11\">{x_label}: {x0} .. {x1}</text>\
<text x=\"4\" y=\"14\" font-size=\"11\">{y_label}: {y0:.4} .. {y1:.4}</text></svg>",
        h - 10.0
    ))
}

/// The loss and PSNR curves of metrics.json, or a sentence saying why there are none.
fn curves(dir: &Path) -> String {
    let metrics: Option<serde_json::Value> = std::fs::read(dir.join("metrics.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(m) = metrics else {
        return "<h2>Training curves</h2>\n<p>No curves: metrics.json is missing or unreadable.</p>\n"
            .into();
    };
    let column = |c: &serde_json::Value, key: &str| -> Vec<(f64, f64)> {
        let (Some(x), Some(y)) = (c["iteration"].as_array(), c[key].as_array()) else {
            return vec![];
        };
        x.iter()
            .zip(y)
            .filter_map(|(x, y)| Some((x.as_f64()?, y.as_f64()?)))
            .filter(|(_, y)| y.is_finite())
            .collect()
    };
    let lc = &m["loss_curve"];
    let every = lc["every"].as_u64().unwrap_or(1);
    let monitor: Vec<(f64, f64)> = m["monitor"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| Some((c["iteration"].as_f64()?, c["psnr"].as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    let window = if every > 1 {
        format!(" (means over {every} steps)")
    } else {
        String::new()
    };
    let loss = curve_svg(
        "loss-curve",
        &[Series {
            name: "training loss",
            color: "#c62828",
            points: column(lc, "loss"),
        }],
        "iteration",
        "loss",
    );
    let psnr = curve_svg(
        "psnr-curve",
        &[
            Series {
                name: "training-view PSNR",
                color: "#1565c0",
                points: column(lc, "psnr"),
            },
            Series {
                name: "monitor PSNR",
                color: "#2e7d32",
                points: monitor,
            },
        ],
        "iteration",
        "PSNR (dB)",
    );
    let mut out = String::from("<h2>Training curves</h2>\n");
    match (loss, psnr) {
        (None, None) => {
            out += "<p>No curves: metrics.json records fewer than two points of loss or PSNR \
                    for this run.</p>\n"
        }
        (l, p) => {
            out += &format!("<p>Per step{window}; the monitor PSNR is measured on held training views at full size when the plateau rule is on.</p>\n");
            for svg in [l, p].into_iter().flatten() {
                out += &svg;
                out += "\n";
            }
        }
    }
    out
}

/// The embedded viewer: index.html with the model, the scene description and the sort worker
/// inlined, as an iframe `srcdoc` (so that its full-window styles stay inside the frame).
fn viewer_frame(target: &crate::Target) -> Result<String, ViewError> {
    let path = target.model_path();
    let md = std::fs::metadata(&path).map_err(|e| ViewError::Open {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if md.len() > MAX_EMBED_BYTES {
        return Ok(format!(
            "<p>{} is {} MB, too large to embed; view it with <code>spaceport view</code>.</p>",
            escape(&path.display().to_string()),
            md.len() >> 20
        ));
    }
    let mut files = serde_json::Map::new();
    let mut scene = target.scene_json();
    match target.kind {
        crate::ModelKind::SogFolder => {
            // Every file meta.json names, under the URL the page will ask for.
            let meta_bytes = std::fs::read(&path).map_err(|e| ViewError::Open {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let dir = path.parent().unwrap_or(Path::new("."));
            let prefix = scene["url"]
                .as_str()
                .and_then(|u| u.rsplit_once('/'))
                .map(|(p, _)| p.to_string())
                .unwrap_or_default();
            files.insert(
                scene["url"].as_str().unwrap_or("").into(),
                base64(&meta_bytes).into(),
            );
            let meta: serde_json::Value = serde_json::from_slice(&meta_bytes).unwrap_or_default();
            for sect in ["means", "scales", "quats", "sh0", "shN"] {
                for f in meta[sect]["files"].as_array().into_iter().flatten() {
                    let Some(name) = f.as_str() else { continue };
                    let Ok(rel) = crate::paths::safe_relative(name) else {
                        continue;
                    };
                    if let Some(p) = crate::paths::resolve_inside(dir, &rel) {
                        if let Ok(b) = std::fs::read(p) {
                            let url = format!("{prefix}/{}", crate::target::url_encode_path(name));
                            files.insert(url, base64(&b).into());
                        }
                    }
                }
            }
        }
        _ => {
            let bytes = std::fs::read(&path).map_err(|e| ViewError::Open {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            files.insert(
                scene["url"].as_str().unwrap_or("").into(),
                base64(&bytes).into(),
            );
        }
    }
    // Photos stay out (they would multiply the file size); frusta and jumps still work.
    if let Some(cams) = scene["cameras"].as_array_mut() {
        for c in cams {
            c["image"] = serde_json::Value::Null;
        }
    }
    let embed = serde_json::json!({ "scene": scene, "files": files, "worker": WORKER_JS });
    // `</` inside a script would end it early; JSON allows the escaped form.
    let embed_js = embed.to_string().replace("</", "<\\/");
    let viewer_js = VIEWER_JS.replace("</script", "<\\/script");
    let doc = INDEX_HTML.replace(
        "<script src=\"/viewer.js\"></script>",
        &format!(
            "<script>window.SPACEPORT_EMBED = {embed_js};</script>\n<script>{viewer_js}</script>"
        ),
    );
    Ok(format!(
        "<iframe id=\"viewer\" title=\"viewer\" srcdoc=\"{}\"></iframe>",
        escape(&doc)
    ))
}

/// The whole report.html of a run folder.
pub fn report_html(run: &Path) -> Result<String, ViewError> {
    let md_path = run.join("report.md");
    let md = std::fs::read_to_string(&md_path).map_err(|e| ViewError::Open {
        path: md_path.clone(),
        reason: e.to_string(),
    })?;
    let target = crate::Target::open(run)?;
    let body = markdown_to_html(&md, run);
    let viewer = match &target.problem {
        Some(p) => format!("<p>The model cannot be shown: {}</p>", escape(p)),
        None => viewer_frame(&target)?,
    };
    Ok(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Spaceport report</title>\n\
<style>body{{font:14px system-ui,sans-serif;max-width:1100px;margin:20px auto;padding:0 12px;color:#222}}\
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}\
img{{max-width:100%}}#viewer{{width:100%;height:560px;border:1px solid #444}}</style></head><body>\n\
{body}{}<h2>Viewer ({})</h2>\n{viewer}\n</body></html>\n",
        curves(run),
        escape(&target.model.display().to_string()),
    ))
}

/// Writes `run/report.html` atomically and returns its path.
pub fn write_report_html(run: &Path) -> Result<PathBuf, ViewError> {
    let html = report_html(run)?;
    let out = run.join("report.html");
    spaceport_io::write_atomic(&out, html.as_bytes()).map_err(|e| ViewError::Open {
        path: out.clone(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn curves_from_metrics_json() {
        let dir = std::env::temp_dir().join(format!("spv-curves-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let none = curves(&dir);
        assert!(none.contains("metrics.json is missing"), "{none}");
        std::fs::write(
            dir.join("metrics.json"),
            r#"{"loss_curve": {"every": 2, "iteration": [2, 4, 6], "loss": [0.3, 0.2, 0.1],
                "psnr": [12.0, 14.0, 15.5]},
               "monitor": [{"iteration": 3, "psnr": 13.0}, {"iteration": 6, "psnr": 15.0}]}"#,
        )
        .unwrap();
        let h = curves(&dir);
        assert!(h.contains("<svg id=\"loss-curve\""), "{h}");
        assert!(h.contains("<svg id=\"psnr-curve\""), "{h}");
        assert!(
            h.contains("data-series=\"training loss\" data-points=\"3\""),
            "{h}"
        );
        assert!(
            h.contains("data-series=\"monitor PSNR\" data-points=\"2\""),
            "{h}"
        );
        assert!(h.contains("means over 2 steps"), "{h}");
        // The loss axis spans the values given.
        assert!(h.contains("loss: 0.1000 .. 0.3000"), "{h}");
        std::fs::write(dir.join("metrics.json"), r#"{"monitor": []}"#).unwrap();
        assert!(curves(&dir).contains("No curves"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn markdown_subset() {
        let h = markdown_to_html(
            "# Title\n\n| a | b |\n|---|---|\n| `x` | 2 < 3 |\n\ntext ![p](nope.png)\n",
            Path::new("/nonexistent"),
        );
        assert!(h.contains("<h1>Title</h1>"), "{h}");
        assert!(h.contains("<th>a</th><th>b</th>"), "{h}");
        assert!(
            h.contains("<td><code>x</code></td><td>2 &lt; 3</td>"),
            "{h}"
        );
        assert!(h.contains("[missing picture nope.png]"), "{h}");
        assert!(!h.contains("---"), "{h}");
    }
}
