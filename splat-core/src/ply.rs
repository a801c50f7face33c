//! Standard 3D Gaussian Splatting PLY files (the Inria layout) read and written as [`Gaussians`].
//!
//! The layout is `x y z nx ny nz f_dc_0..2 f_rest_0..(3K-1) opacity scale_0..2 rot_0..3`, with
//! `f_rest` channel-major (`f_rest[c*K + k]`) while [`Gaussians::sh`] is coefficient-major.
//! Reading accepts any property order and scalar type, extra properties and other elements,
//! binary (either endianness) and ascii; writing is always binary little-endian float.

use std::fs;
use std::path::{Path, PathBuf};

use crate::gaussians::{sh_coeffs_for_degree, Gaussians};

/// Everything that can go wrong reading or writing a Gaussian PLY; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PlyError {
    /// The file does not exist.
    #[error("{path}: no such file")]
    NotFound {
        /// The file asked for.
        path: PathBuf,
    },
    /// An operating-system error while reading or writing.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The header is malformed.
    #[error("{path}: bad PLY header: {reason}")]
    BadHeader {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The header is valid PLY but describes something this reader does not handle.
    #[error("{path}: unsupported PLY: {reason}")]
    UnsupportedFormat {
        /// The file involved.
        path: PathBuf,
        /// What is not supported.
        reason: String,
    },
    /// A property every Gaussian needs is absent.
    #[error("{path}: missing vertex property `{name}`")]
    MissingProperty {
        /// The file involved.
        path: PathBuf,
        /// The property's name.
        name: String,
    },
    /// The body ends before the header's vertex count is reached.
    #[error(
        "{path}: truncated: header promises {expected} bytes of vertex data, file has {actual}"
    )]
    Truncated {
        /// The file involved.
        path: PathBuf,
        /// Bytes the header implies.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// The body holds more vertex data than the header declares: the count is wrong, and
    /// reading only the declared rows would silently drop Gaussians.
    #[error("{path}: the header declares {declared} vertices but the file holds more ({extra} bytes or rows of vertex data after them)")]
    ExtraData {
        /// The file involved.
        path: PathBuf,
        /// Vertices the header declares.
        declared: usize,
        /// Bytes (binary) or non-empty lines (ascii) after the declared vertices.
        extra: u64,
    },
    /// An ascii body value could not be parsed, or a row is short.
    #[error("{path}: bad ascii data at vertex {index}: {reason}")]
    BadAscii {
        /// The file involved.
        path: PathBuf,
        /// The Gaussian (vertex) index.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// Some Gaussians carry NaN or infinite values.
    #[error("{path}: {count} non-finite values, first in Gaussian {first_index}")]
    NonFinite {
        /// The file involved.
        path: PathBuf,
        /// How many values are NaN or infinite.
        count: usize,
        /// The first Gaussian holding one.
        first_index: usize,
    },
    /// The Gaussians to write have inconsistent buffers or an unsupported SH degree.
    #[error("{path}: cannot write: {reason}")]
    InvalidGaussians {
        /// The file that was to be written.
        path: PathBuf,
        /// What is inconsistent.
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Ascii,
    BinaryLe,
    BinaryBe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scalar {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl Scalar {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "char" | "int8" => Scalar::I8,
            "uchar" | "uint8" => Scalar::U8,
            "short" | "int16" => Scalar::I16,
            "ushort" | "uint16" => Scalar::U16,
            "int" | "int32" => Scalar::I32,
            "uint" | "uint32" => Scalar::U32,
            "float" | "float32" => Scalar::F32,
            "double" | "float64" => Scalar::F64,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Scalar::I8 | Scalar::U8 => 1,
            Scalar::I16 | Scalar::U16 => 2,
            Scalar::I32 | Scalar::U32 | Scalar::F32 => 4,
            Scalar::F64 => 8,
        }
    }

    /// Reads one value; `b` holds at least `size()` bytes.
    #[inline]
    fn read(self, b: &[u8], enc: Encoding) -> f32 {
        macro_rules! rd {
            ($t:ty, $n:expr) => {{
                let mut a = [0u8; $n];
                a.copy_from_slice(&b[..$n]);
                if enc == Encoding::BinaryBe {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                }
            }};
        }
        match self {
            Scalar::I8 => b[0] as i8 as f32,
            Scalar::U8 => b[0] as f32,
            Scalar::I16 => rd!(i16, 2) as f32,
            Scalar::U16 => rd!(u16, 2) as f32,
            Scalar::I32 => rd!(i32, 4) as f32,
            Scalar::U32 => rd!(u32, 4) as f32,
            Scalar::F32 => rd!(f32, 4),
            Scalar::F64 => rd!(f64, 8) as f32,
        }
    }
}

struct Property {
    name: String,
    scalar: Scalar,
}

struct Element {
    name: String,
    count: usize,
    props: Vec<Property>,
    has_list: bool,
}

struct Header {
    encoding: Encoding,
    elements: Vec<Element>,
    body_start: usize,
}

fn parse_header(path: &Path, data: &[u8]) -> Result<Header, PlyError> {
    let bad = |reason: String| PlyError::BadHeader {
        path: path.to_path_buf(),
        reason,
    };
    if !data.starts_with(b"ply\n") && !data.starts_with(b"ply\r\n") {
        return Err(bad("file does not start with `ply`".into()));
    }
    const END: &[u8] = b"end_header";
    // Headers are small; capping the search keeps a binary blob without a header from being scanned whole.
    let limit = data.len().min(1 << 20);
    let end = data[..limit]
        .windows(END.len())
        .position(|w| w == END)
        .ok_or_else(|| bad("no `end_header` line".into()))?;
    let mut body_start = end + END.len();
    if data.get(body_start) == Some(&b'\r') {
        body_start += 1;
    }
    if data.get(body_start) != Some(&b'\n') {
        return Err(bad("`end_header` is not followed by a newline".into()));
    }
    body_start += 1;
    let text =
        std::str::from_utf8(&data[..end]).map_err(|_| bad("header is not valid text".into()))?;
    let mut encoding = None;
    let mut elements: Vec<Element> = Vec::new();
    for (ln, line) in text.lines().enumerate().skip(1) {
        let toks: Vec<&str> = line.split_whitespace().collect();
        match toks.first().copied() {
            None | Some("comment") | Some("obj_info") => {}
            Some("format") => {
                if toks.len() != 3 {
                    return Err(bad(format!(
                        "line {}: malformed format line `{line}`",
                        ln + 1
                    )));
                }
                encoding = Some(match toks[1] {
                    "ascii" => Encoding::Ascii,
                    "binary_little_endian" => Encoding::BinaryLe,
                    "binary_big_endian" => Encoding::BinaryBe,
                    other => {
                        return Err(PlyError::UnsupportedFormat {
                            path: path.to_path_buf(),
                            reason: format!("format `{other}`"),
                        })
                    }
                });
            }
            Some("element") => {
                if toks.len() != 3 {
                    return Err(bad(format!(
                        "line {}: malformed element line `{line}`",
                        ln + 1
                    )));
                }
                let count = toks[2].parse::<usize>().map_err(|_| {
                    bad(format!("line {}: bad element count `{}`", ln + 1, toks[2]))
                })?;
                elements.push(Element {
                    name: toks[1].to_string(),
                    count,
                    props: vec![],
                    has_list: false,
                });
            }
            Some("property") => {
                let el = elements
                    .last_mut()
                    .ok_or_else(|| bad(format!("line {}: property before any element", ln + 1)))?;
                if toks.get(1) == Some(&"list") {
                    if toks.len() != 5
                        || Scalar::parse(toks[2]).is_none()
                        || Scalar::parse(toks[3]).is_none()
                    {
                        return Err(bad(format!(
                            "line {}: malformed list property `{line}`",
                            ln + 1
                        )));
                    }
                    el.has_list = true;
                    continue;
                }
                if toks.len() != 3 {
                    return Err(bad(format!(
                        "line {}: malformed property line `{line}`",
                        ln + 1
                    )));
                }
                let scalar = Scalar::parse(toks[1]).ok_or_else(|| {
                    bad(format!(
                        "line {}: unknown property type `{}`",
                        ln + 1,
                        toks[1]
                    ))
                })?;
                el.props.push(Property {
                    name: toks[2].to_string(),
                    scalar,
                });
            }
            Some(other) => {
                return Err(bad(format!(
                    "line {}: unexpected keyword `{other}`",
                    ln + 1
                )))
            }
        }
    }
    let encoding = encoding.ok_or_else(|| bad("no `format` line".into()))?;
    Ok(Header {
        encoding,
        elements,
        body_start,
    })
}

/// Where each attribute of a Gaussian lives among the vertex properties.
struct Columns {
    mean: [usize; 3],
    dc: [usize; 3],
    rest: Vec<usize>,
    opacity: usize,
    scale: [usize; 3],
    rot: [usize; 4],
    sh_degree: usize,
}

fn find_columns(path: &Path, props: &[Property]) -> Result<Columns, PlyError> {
    let find = |name: &str| {
        props
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| PlyError::MissingProperty {
                path: path.to_path_buf(),
                name: name.to_string(),
            })
    };
    let n_rest = props
        .iter()
        .filter(|p| p.name.starts_with("f_rest_"))
        .count();
    let sh_degree = match n_rest {
        0 => 0,
        9 => 1,
        24 => 2,
        45 => 3,
        n => {
            return Err(PlyError::UnsupportedFormat {
                path: path.to_path_buf(),
                reason: format!("{n} f_rest properties (expected 0, 9, 24 or 45)"),
            })
        }
    };
    let rest = (0..n_rest)
        .map(|i| find(&format!("f_rest_{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Columns {
        mean: [find("x")?, find("y")?, find("z")?],
        dc: [find("f_dc_0")?, find("f_dc_1")?, find("f_dc_2")?],
        rest,
        opacity: find("opacity")?,
        scale: [find("scale_0")?, find("scale_1")?, find("scale_2")?],
        rot: [
            find("rot_0")?,
            find("rot_1")?,
            find("rot_2")?,
            find("rot_3")?,
        ],
        sh_degree,
    })
}

/// Fills Gaussian `i` from one row of vertex values (`get(column)`), converting f_rest to coefficient-major.
#[inline]
fn push_row(g: &mut Gaussians, cols: &Columns, k_rest: usize, get: impl Fn(usize) -> f32) {
    g.means.push(cols.mean.map(&get));
    g.log_scales.push(cols.scale.map(&get));
    g.quats.push(cols.rot.map(&get));
    g.opacity_logits.push(get(cols.opacity));
    for c in 0..3 {
        g.sh.push(get(cols.dc[c]));
    }
    for k in 0..k_rest {
        for c in 0..3 {
            g.sh.push(get(cols.rest[c * k_rest + k]));
        }
    }
}

/// Reads a Gaussian PLY file.
pub fn read_ply(path: impl AsRef<Path>) -> Result<Gaussians, PlyError> {
    let path = path.as_ref();
    let data = fs::read(path).map_err(|e| io_err(path, e))?;
    parse_ply(path, &data)
}

/// Parses PLY bytes; `path` is used only to name the source in errors.
pub fn parse_ply(path: &Path, data: &[u8]) -> Result<Gaussians, PlyError> {
    let header = parse_header(path, data)?;
    let vi = header
        .elements
        .iter()
        .position(|e| e.name == "vertex")
        .ok_or_else(|| PlyError::BadHeader {
            path: path.to_path_buf(),
            reason: "no `vertex` element".into(),
        })?;
    let vertex = &header.elements[vi];
    if vertex.has_list {
        return Err(PlyError::UnsupportedFormat {
            path: path.to_path_buf(),
            reason: "list property in the vertex element".into(),
        });
    }
    let cols = find_columns(path, &vertex.props)?;
    let n = vertex.count;
    let coeffs = sh_coeffs_for_degree(cols.sh_degree);
    let k_rest = coeffs - 1;
    let mut g = Gaussians::empty(cols.sh_degree);
    // Capacity from the header only when the body could really hold that many, so a lying header cannot exhaust memory.
    let row_bytes: usize = vertex.props.iter().map(|p| p.scalar.size()).sum();
    let plausible = n <= data.len() / row_bytes.max(1) + 1;
    if plausible {
        g.means.reserve(n);
        g.log_scales.reserve(n);
        g.quats.reserve(n);
        g.opacity_logits.reserve(n);
        g.sh.reserve(n * coeffs * 3);
    }

    let body = &data[header.body_start..];
    match header.encoding {
        Encoding::Ascii => parse_ascii_body(path, body, &header, vi, &cols, k_rest, &mut g)?,
        enc => {
            let mut skip = 0usize;
            for e in &header.elements[..vi] {
                if e.has_list {
                    return Err(PlyError::UnsupportedFormat {
                        path: path.to_path_buf(),
                        reason: format!(
                            "list property in element `{}` before the vertices",
                            e.name
                        ),
                    });
                }
                let sz: usize = e.props.iter().map(|p| p.scalar.size()).sum();
                skip = skip.saturating_add(sz.saturating_mul(e.count));
            }
            let expected =
                (skip as u64).saturating_add((row_bytes as u64).saturating_mul(n as u64));
            if (body.len() as u64) < expected {
                return Err(PlyError::Truncated {
                    path: path.to_path_buf(),
                    expected,
                    actual: body.len() as u64,
                });
            }
            // Only when the vertices end the file can extra bytes be told apart from another
            // element; a trailing newline some writers add is not a row.
            let extra = body.len() as u64 - expected;
            let trailing_ws = body[expected as usize..]
                .iter()
                .all(u8::is_ascii_whitespace);
            if vi + 1 == header.elements.len()
                && extra > 0
                && !(trailing_ws && extra < row_bytes as u64)
            {
                return Err(PlyError::ExtraData {
                    path: path.to_path_buf(),
                    declared: n,
                    extra,
                });
            }
            let mut offsets = Vec::with_capacity(vertex.props.len());
            let mut o = 0;
            for p in &vertex.props {
                offsets.push(o);
                o += p.scalar.size();
            }
            let rows = &body[skip..skip + row_bytes * n];
            for row in rows.chunks_exact(row_bytes.max(1)).take(n) {
                push_row(&mut g, &cols, k_rest, |c| {
                    vertex.props[c].scalar.read(&row[offsets[c]..], enc)
                });
            }
        }
    }
    check_finite(path, &g)?;
    Ok(g)
}

fn parse_ascii_body(
    path: &Path,
    body: &[u8],
    header: &Header,
    vi: usize,
    cols: &Columns,
    k_rest: usize,
    g: &mut Gaussians,
) -> Result<(), PlyError> {
    let text = std::str::from_utf8(body).map_err(|_| PlyError::BadAscii {
        path: path.to_path_buf(),
        index: 0,
        reason: "body is not text".into(),
    })?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    for e in &header.elements[..vi] {
        for _ in 0..e.count {
            lines.next();
        }
    }
    let vertex = &header.elements[vi];
    let mut vals = vec![0f32; vertex.props.len()];
    for i in 0..vertex.count {
        let line = lines.next().ok_or_else(|| PlyError::BadAscii {
            path: path.to_path_buf(),
            index: i,
            reason: format!("file ends after {i} of {} vertices", vertex.count),
        })?;
        let mut toks = line.split_whitespace();
        for (j, v) in vals.iter_mut().enumerate() {
            let t = toks.next().ok_or_else(|| PlyError::BadAscii {
                path: path.to_path_buf(),
                index: i,
                reason: format!("row has fewer than {} values", vertex.props.len()),
            })?;
            *v = t.parse::<f32>().map_err(|_| PlyError::BadAscii {
                path: path.to_path_buf(),
                index: i,
                reason: format!("property `{}`: `{t}` is not a number", vertex.props[j].name),
            })?;
        }
        push_row(g, cols, k_rest, |c| vals[c]);
    }
    if vi + 1 == header.elements.len() {
        let extra = lines.count() as u64;
        if extra > 0 {
            return Err(PlyError::ExtraData {
                path: path.to_path_buf(),
                declared: vertex.count,
                extra,
            });
        }
    }
    Ok(())
}

/// Counts NaN/infinite values; errors with the count and the first Gaussian holding one.
fn check_finite(path: &Path, g: &Gaussians) -> Result<(), PlyError> {
    match g.non_finite() {
        Some((count, first_index)) => Err(PlyError::NonFinite {
            path: path.to_path_buf(),
            count,
            first_index,
        }),
        None => Ok(()),
    }
}

fn io_err(path: &Path, e: std::io::Error) -> PlyError {
    if e.kind() == std::io::ErrorKind::NotFound {
        PlyError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        PlyError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }
}

/// The property names of the standard layout for an SH degree, in file order.
pub fn standard_property_names(sh_degree: usize) -> Vec<String> {
    let mut names: Vec<String> = [
        "x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let n_rest = 3 * (sh_coeffs_for_degree(sh_degree) - 1);
    names.extend((0..n_rest).map(|i| format!("f_rest_{i}")));
    names.extend(
        [
            "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    names
}

/// Encodes Gaussians as a binary little-endian standard PLY; `path` only names the target in errors.
pub fn encode_ply(path: &Path, g: &Gaussians) -> Result<Vec<u8>, PlyError> {
    if g.sh_degree > 3 {
        return Err(PlyError::InvalidGaussians {
            path: path.to_path_buf(),
            reason: format!("SH degree {} (at most 3)", g.sh_degree),
        });
    }
    g.check_lengths()
        .map_err(|reason| PlyError::InvalidGaussians {
            path: path.to_path_buf(),
            reason,
        })?;
    check_finite(path, g)?;
    let names = standard_property_names(g.sh_degree);
    let mut out = Vec::with_capacity(200 + names.len() * 24 + g.len() * names.len() * 4);
    out.extend_from_slice(
        format!(
            "ply\nformat binary_little_endian 1.0\nelement vertex {}\n",
            g.len()
        )
        .as_bytes(),
    );
    for n in &names {
        out.extend_from_slice(format!("property float {n}\n").as_bytes());
    }
    out.extend_from_slice(b"end_header\n");
    let coeffs = g.sh_coeffs();
    let k_rest = coeffs - 1;
    for i in 0..g.len() {
        let sh = g.sh_of(i);
        let mut put = |v: f32| out.extend_from_slice(&v.to_le_bytes());
        g.means[i].iter().for_each(|&v| put(v));
        [0.0f32; 3].iter().for_each(|&v| put(v));
        sh[..3].iter().for_each(|&v| put(v));
        for c in 0..3 {
            for k in 0..k_rest {
                put(sh[(1 + k) * 3 + c]);
            }
        }
        put(g.opacity_logits[i]);
        g.log_scales[i].iter().for_each(|&v| put(v));
        g.quats[i].iter().for_each(|&v| put(v));
    }
    Ok(out)
}

/// Writes Gaussians as a standard PLY, atomically: a temporary file beside `path` is renamed over it,
/// so a failure leaves no partial output.
pub fn write_ply(path: impl AsRef<Path>, g: &Gaussians) -> Result<(), PlyError> {
    let path = path.as_ref();
    let bytes = encode_ply(path, g)?;
    spaceport_io::write_atomic(path, &bytes).map_err(|e| PlyError::Io {
        path: e.path,
        source: e.source,
    })
}
