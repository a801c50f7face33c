//! The single-file `.sog` bundle: a ZIP of stored entries with meta.json last and no comment,
//! laid out as splat-transform writes it (data descriptors, UTF-8 names, no ZIP64).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::error::SogError;

/// ZIP general-purpose flags: bit 3 (sizes in a data descriptor) and bit 11 (UTF-8 names).
const FLAGS: u16 = 0x0808;
/// 1980-01-01 00:00, so the same input always gives the same bytes.
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = (1 << 5) | 1;

/// Builds a stored ZIP from `(name, bytes)` entries in the given order.
pub fn zip_stored(entries: &[(String, Vec<u8>)]) -> Result<Vec<u8>, SogError> {
    let total: usize = entries
        .iter()
        .map(|(n, d)| d.len() + 2 * n.len() + 100)
        .sum();
    if total as u64 >= u32::MAX as u64 || entries.len() > u16::MAX as usize {
        return Err(SogError::InvalidInput {
            reason: "bundle would exceed 4 GiB or 65535 entries (no ZIP64)".into(),
        });
    }
    let mut out = Vec::with_capacity(total + 22);
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32fast::hash(data);
        let size = data.len() as u32;
        let name_b = name.as_bytes();
        // Local header: CRC and sizes are zero here and follow the data in the descriptor.
        put32(&mut out, 0x0403_4b50);
        put16(&mut out, 20);
        put16(&mut out, FLAGS);
        put16(&mut out, 0);
        put16(&mut out, DOS_TIME);
        put16(&mut out, DOS_DATE);
        put32(&mut out, 0);
        put32(&mut out, 0);
        put32(&mut out, 0);
        put16(&mut out, name_b.len() as u16);
        put16(&mut out, 0);
        out.extend_from_slice(name_b);
        out.extend_from_slice(data);
        put32(&mut out, 0x0807_4b50);
        put32(&mut out, crc);
        put32(&mut out, size);
        put32(&mut out, size);

        put32(&mut central, 0x0201_4b50);
        put16(&mut central, 20);
        put16(&mut central, 20);
        put16(&mut central, FLAGS);
        put16(&mut central, 0);
        put16(&mut central, DOS_TIME);
        put16(&mut central, DOS_DATE);
        put32(&mut central, crc);
        put32(&mut central, size);
        put32(&mut central, size);
        put16(&mut central, name_b.len() as u16);
        put16(&mut central, 0);
        put16(&mut central, 0);
        put16(&mut central, 0);
        put16(&mut central, 0);
        put32(&mut central, 0);
        put32(&mut central, offset);
        central.extend_from_slice(name_b);
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    put32(&mut out, 0x0605_4b50);
    put16(&mut out, 0);
    put16(&mut out, 0);
    put16(&mut out, entries.len() as u16);
    put16(&mut out, entries.len() as u16);
    put32(&mut out, central.len() as u32);
    put32(&mut out, cd_offset);
    put16(&mut out, 0);
    Ok(out)
}

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

/// Whether bytes start like a ZIP archive.
pub fn looks_like_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// Reads every entry of a ZIP (stored or deflated) into memory, checking CRCs.
pub fn unzip(path: &Path, bytes: &[u8]) -> Result<HashMap<String, Vec<u8>>, SogError> {
    let bad = |reason: String| SogError::BadBundle {
        path: path.to_path_buf(),
        reason,
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(format!("not a readable ZIP ({e})")))?;
    let mut files = HashMap::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| bad(format!("entry {i}: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry
            .name()
            .map_err(|e| bad(format!("entry {i}: bad name ({e})")))?
            .to_string();
        // Sizes come from the archive itself; cap the pre-allocation by the archive size.
        let mut data =
            Vec::with_capacity((entry.size() as usize).min(bytes.len().saturating_mul(4)));
        entry
            .read_to_end(&mut data)
            .map_err(|e| bad(format!("entry `{name}`: {e}")))?;
        files.insert(name, data);
    }
    Ok(files)
}
