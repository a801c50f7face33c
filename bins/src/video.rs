//! Video input: frames extracted with the `ffmpeg` command line (the decoder every platform
//! has a package for; no codec code of ours), keeping the sharpest frame of each short window
//! so that motion blur, which SfM and training both suffer from, is left out.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{PipelineError, Result};

/// File extensions read as videos (lower case).
pub const VIDEO_EXTENSIONS: &[&str] = &["mp4", "mov", "m4v", "mkv", "avi", "webm", "mts"];

/// Frames kept from a capture by default: enough views for a room-sized scene, few enough
/// for SfM to stay in minutes.
pub const DEFAULT_FRAMES: usize = 200;

/// Candidates decoded per kept frame: the sharpest of each window of this many is kept.
pub const WINDOW: usize = 4;

/// Whether `p` names a video by its extension.
pub fn is_video(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The files directly in `dir` that `keep` accepts, sorted by name.
pub fn files_in(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| PipelineError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && keep(p))
        .collect();
    v.sort();
    Ok(v)
}

/// The videos directly in `dir`, sorted by name.
pub fn videos_in(dir: &Path) -> Result<Vec<PathBuf>> {
    files_in(dir, is_video)
}

/// An error unless `ffmpeg` and `ffprobe` run: said at start-up, not after other work.
pub fn check_tools() -> Result<()> {
    for tool in ["ffmpeg", "ffprobe"] {
        let ok = Command::new(tool)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return Err(PipelineError::Invalid(format!(
                "video input needs `{tool}` on the PATH, and it is not there: install FFmpeg (Debian/Ubuntu: apt-get install ffmpeg; macOS: brew install ffmpeg; Windows: winget install ffmpeg), or extract frames yourself and pass their folder"
            )));
        }
    }
    Ok(())
}

/// Duration in seconds and frame rate of `video`'s first video stream (ffprobe).
fn probe(video: &Path) -> Result<(f64, f64)> {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=avg_frame_rate:format=duration",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(video)
        .output()
        .map_err(|e| PipelineError::io(video, e))?;
    let text = String::from_utf8_lossy(&o.stdout);
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
    };
    // The rate is a fraction ("30000/1001").
    let rate = value("avg_frame_rate").and_then(|r| {
        let (n, d) = r.split_once('/').unwrap_or((r, "1"));
        Some(n.parse::<f64>().ok()? / d.parse::<f64>().ok()?)
    });
    let duration = value("duration").and_then(|d| d.parse::<f64>().ok());
    match (duration, rate) {
        (Some(d), Some(r)) if o.status.success() && d > 0.0 && r.is_finite() && r > 0.0 => {
            Ok((d, r))
        }
        _ => Err(PipelineError::Invalid(format!(
            "{}: not a readable video ({})",
            video.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
    }
}

/// Sharpness of an image: the variance of its Laplacian on the grey image (blur flattens it).
pub fn sharpness(img: &image::GrayImage) -> f64 {
    let (w, h) = img.dimensions();
    if w < 3 || h < 3 {
        return 0.0;
    }
    let p = |x: u32, y: u32| img.get_pixel(x, y)[0] as f64;
    let (mut sum, mut sum2, mut n) = (0.0, 0.0, 0.0);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let l = p(x - 1, y) + p(x + 1, y) + p(x, y - 1) + p(x, y + 1) - 4.0 * p(x, y);
            sum += l;
            sum2 += l * l;
            n += 1.0;
        }
    }
    let mean = sum / n;
    sum2 / n - mean * mean
}

/// What frame extraction kept.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Extracted {
    /// Videos read.
    pub videos: usize,
    /// Candidate frames decoded.
    pub candidates: usize,
    /// Frames kept (written).
    pub frames: usize,
}

/// Extracts about `target` frames in all from `videos` into `out` (JPEG, longest side at most
/// `max_side`): up to `WINDOW` candidates per kept frame (fewer when the video has fewer
/// frames), evenly spread over each video's duration, and the sharpest of each window kept. `progress(done, total)` counts videos.
pub fn extract_frames(
    videos: &[PathBuf],
    out: &Path,
    target: usize,
    max_side: u32,
    progress: &dyn Fn(usize, usize),
) -> Result<Extracted> {
    std::fs::create_dir_all(out).map_err(|e| PipelineError::io(out, e))?;
    let probes: Vec<(f64, f64)> = videos.iter().map(|v| probe(v)).collect::<Result<_>>()?;
    let total: f64 = probes.iter().map(|p| p.0).sum();
    let (mut candidates, mut frames) = (0, 0);
    for (vi, (video, &(d, rate))) in videos.iter().zip(&probes).enumerate() {
        progress(vi, videos.len());
        // This video's share of the frames, by duration; never more candidates than the
        // video has frames (a short clip keeps each frame, not duplicates of them).
        let keep = ((target as f64 * d / total).round() as usize).max(2);
        let fps = ((keep * WINDOW) as f64 / d).min(rate);
        let window = ((fps * d / keep as f64).round() as usize).max(1);
        let tmp = out.join(format!(".candidates-{vi}"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| PipelineError::io(&tmp, e))?;
        let scale = format!(
            "fps={fps:.6},scale='if(gt(iw,ih),min({max_side},iw),-2)':'if(gt(iw,ih),-2,min({max_side},ih))'"
        );
        let o = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-y", "-i"])
            .arg(video)
            .args(["-vf", &scale, "-q:v", "2"])
            .arg(tmp.join("c%06d.jpg"))
            .output()
            .map_err(|e| PipelineError::io(video, e))?;
        if !o.status.success() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(PipelineError::Invalid(format!(
                "{}: ffmpeg could not decode it: {}",
                video.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            )));
        }
        let mut names: Vec<PathBuf> = std::fs::read_dir(&tmp)
            .map_err(|e| PipelineError::io(&tmp, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        candidates += names.len();
        let stem = video
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("video{vi}"));
        for (wi, group) in names.chunks(window).enumerate() {
            let mut best: Option<(f64, &PathBuf)> = None;
            for p in group {
                let img = image::open(p)
                    .map_err(|e| PipelineError::Invalid(format!("{}: {e}", p.display())))?;
                // A quarter-size grey image ranks blur as well and four times faster.
                let small = img.resize(400, 400, image::imageops::FilterType::Triangle);
                let s = sharpness(&small.to_luma8());
                if best.is_none_or(|(b, _)| s > b) {
                    best = Some((s, p));
                }
            }
            if let Some((_, p)) = best {
                let dst = out.join(format!("{stem}_{wi:05}.jpg"));
                std::fs::rename(p, &dst).map_err(|e| PipelineError::io(&dst, e))?;
                frames += 1;
            }
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
    progress(videos.len(), videos.len());
    Ok(Extracted {
        videos: videos.len(),
        candidates,
        frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_lowers_sharpness_and_videos_are_told_by_name() {
        let sharp = image::GrayImage::from_fn(64, 64, |x, y| {
            image::Luma([if (x / 4 + y / 4) % 2 == 0 { 230 } else { 20 }])
        });
        let blurred = image::imageops::blur(&sharp, 2.0);
        assert!(sharpness(&sharp) > 4.0 * sharpness(&blurred));
        assert_eq!(sharpness(&image::GrayImage::new(64, 64)), 0.0);
        assert!(is_video(Path::new("a/Capture.MP4")));
        assert!(!is_video(Path::new("a/b.jpg")));
    }
}
