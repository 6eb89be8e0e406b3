//! Archive and image formats a deploy reads and writes: the compressions LAVA names, cpio
//! (`newc`) ramdisks, tarballs, and U-Boot's legacy header. Formats only: which artifact gets
//! what is the deploy's business.

pub mod compression;
pub mod cpio;
pub mod tarball;
pub mod uimage;

pub use compression::Compression;

use std::io::{BufRead, BufReader};

/// The names of a ramdisk's entries, in order: the file at `path`, after its u-boot header
/// when `header`, decompressed as its first bytes say. What a board would unpack, for checks
/// and tests.
pub fn ramdisk_names(path: &std::path::Path, header: bool) -> Result<Vec<String>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut file = BufReader::new(file);
    if header {
        uimage::strip(&mut file)?;
    }
    let compression = Compression::sniff(file.fill_buf().map_err(|e| e.to_string())?);
    let decoder = compression.decoder(file).map_err(|e| e.to_string())?;
    let mut reader = cpio::Reader::new(BufReader::new(decoder));
    let mut names = Vec::new();
    while let Some(entry) = reader.next_entry().map_err(|e| e.to_string())? {
        names.push(String::from_utf8_lossy(&entry.name).into_owned());
    }
    Ok(names)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    /// A newc archive of `entries` (regular files, with their parent directories), compressed
    /// with `compression`.
    pub(crate) fn ramdisk(entries: &[(&str, &[u8])], compression: super::Compression) -> Vec<u8> {
        let mut writer = super::cpio::Writer::new(Vec::new());
        for (name, data) in entries {
            let header =
                super::cpio::Header::new(name, super::cpio::S_IFREG | 0o755, data.len() as u32, 0);
            writer.add(header, &mut &data[..]).unwrap();
        }
        let mut encoder = compression.encoder(Vec::new()).unwrap();
        encoder.write_all(&writer.finish().unwrap()).unwrap();
        encoder.finish().unwrap()
    }

    /// Whether a missing third-party tool fails a test instead of skipping it (CI, or
    /// `BASALT_REQUIRE_TOOLS` as `.ci/run` sets once it installed them).
    pub(crate) fn tools_required() -> bool {
        std::env::var("CI").as_deref() == Ok("true")
            || std::env::var_os("BASALT_REQUIRE_TOOLS").is_some()
    }
}
