//! Android sparse images: recognised by their magic, unpacked and packed again with Debian's
//! `simg2img` and `img2simg` (android-sdk-libsparse-utils), as LAVA does.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use basalt_plugin_api::Log;

use super::FsImageError;

/// The first four bytes of a sparse image (`SPARSE_HEADER_MAGIC`, little-endian).
const MAGIC: [u8; 4] = [0x3A, 0xFF, 0x26, 0xED];

/// Whether the file is an Android sparse image.
pub fn is_sparse(path: &Path) -> std::io::Result<bool> {
    let mut head = [0u8; 4];
    let mut file = std::fs::File::open(path)?;
    match file.read_exact(&mut head) {
        Ok(()) => Ok(head == MAGIC),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Runs one of the two converters, `from` → `to`.
fn convert(
    tool: &str,
    from: &Path,
    to: &Path,
    deadline: Instant,
    log: &Log,
) -> Result<(), FsImageError> {
    let argv = [
        tool.to_owned(),
        from.display().to_string(),
        to.display().to_string(),
    ];
    basalt_plugin_api::process::run_program_output(tool, &argv, deadline, log)
        .map(drop)
        .map_err(|e| {
            FsImageError::Tool(format!(
                "{tool} failed for {} (is android-sdk-libsparse-utils installed?): {}",
                from.display(),
                e.message()
            ))
        })
}

/// The sparse image as a raw one.
pub fn unpack(sparse: &Path, raw: &Path, deadline: Instant, log: &Log) -> Result<(), FsImageError> {
    convert("simg2img", sparse, raw, deadline, log)
}

/// The raw image as a sparse one.
pub fn pack(raw: &Path, sparse: &Path, deadline: Instant, log: &Log) -> Result<(), FsImageError> {
    convert("img2simg", raw, sparse, deadline, log)
}
