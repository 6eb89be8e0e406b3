//! One artifact, downloaded as LAVA downloads it: in one streaming pass from the network or
//! an allowed local file, through the checksums (over the bytes as downloaded, compressed,
//! as LAVA computes them), through the decompressor the job names (`compression: gz | xz |
//! bz2 | zstd`), to disk. Memory stays bounded whatever the image size; the decompressed size
//! is bounded too, so a decompression bomb is a clear job error, and a corrupt or truncated
//! archive names the offset it broke at.

use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::time::Duration;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512};

use super::local_files::{LocalFiles, Source};

/// The largest file a decompression may produce (a rootfs image is a few GiB).
pub const MAX_DECOMPRESSED: u64 = 64 << 30;

/// A compression LAVA names in `compression:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `none` or absent.
    None,
    /// `gz`.
    Gz,
    /// `xz`.
    Xz,
    /// `bz2`.
    Bz2,
    /// `zstd`.
    Zstd,
}

impl Compression {
    /// The job's `compression:` value; `None` when it is not one this dispatcher unpacks.
    pub fn parse(name: Option<&str>) -> Option<Self> {
        match name {
            None | Some("none") => Some(Self::None),
            Some("gz") => Some(Self::Gz),
            Some("xz") => Some(Self::Xz),
            Some("bz2") => Some(Self::Bz2),
            Some("zstd") => Some(Self::Zstd),
            Some(_) => None,
        }
    }

    /// The names `compression:` accepts.
    pub const NAMES: &'static str = "gz, xz, bz2, zstd or none";

    /// `NAME` without the compression's file extension (`rootfs.ext4.xz` → `rootfs.ext4`),
    /// as LAVA names the decompressed file.
    pub fn strip_extension(self, name: &str) -> &str {
        let extension = match self {
            Self::None => return name,
            Self::Gz => ".gz",
            Self::Xz => ".xz",
            Self::Bz2 => ".bz2",
            Self::Zstd => ".zst",
        };
        name.strip_suffix(extension)
            .filter(|stem| !stem.is_empty())
            .unwrap_or(name)
    }
}

/// What came down: sizes and the checksums of the downloaded bytes.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// Bytes downloaded (compressed).
    pub downloaded: u64,
    /// Bytes written (decompressed).
    pub written: u64,
    /// md5, sha256 and sha512 of the downloaded bytes, lower-case hex.
    pub md5: String,
    /// See `md5`.
    pub sha256: String,
    /// See `md5`.
    pub sha512: String,
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The source could not be read (network, refused local file).
    #[error("cannot download {url}: {message}")]
    Source {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The archive is corrupt or cut short.
    #[error("the {compression} data of {url} is corrupt or truncated after {offset} compressed bytes: {message}")]
    Corrupt {
        /// The URL.
        url: String,
        /// `gz`, `xz`, ...
        compression: &'static str,
        /// Compressed bytes read when it broke.
        offset: u64,
        /// The decompressor's words.
        message: String,
    },
    /// It decompresses to more than [`MAX_DECOMPRESSED`].
    #[error("{url} decompresses to more than {limit} bytes: refused as a decompression bomb")]
    TooLarge {
        /// The URL.
        url: String,
        /// The bound.
        limit: u64,
    },
    /// The file could not be written (disk full).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl DownloadError {
    /// Whether the job is at fault (a bad archive or bomb) rather than the infrastructure.
    pub fn is_job_error(&self) -> bool {
        matches!(self, Self::Corrupt { .. } | Self::TooLarge { .. })
    }
}

/// Counts and hashes what passes through it.
struct Hashing<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
    md5: Md5,
    sha256: Sha256,
    sha512: Sha512,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.md5.update(&buf[..n]);
        self.sha256.update(&buf[..n]);
        self.sha512.update(&buf[..n]);
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// A file that refuses to grow past a bound.
struct Bounded<W> {
    inner: W,
    written: u64,
    limit: u64,
}

/// The error a [`Bounded`] writer gives at its bound.
#[derive(Debug)]
struct OverLimit;

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("over the decompressed size limit")
    }
}

impl std::error::Error for OverLimit {}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.written + data.len() as u64 > self.limit {
            return Err(std::io::Error::other(OverLimit));
        }
        let n = self.inner.write(data)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads `url` into `target`, decompressing with `compression`, within `timeout` for
/// network reads; at most `limit` bytes are written.
pub fn download(
    url: &str,
    compression: Compression,
    target: &Path,
    timeout: Duration,
    local: &LocalFiles,
    limit: u64,
) -> Result<Downloaded, DownloadError> {
    let source_error = |message: String| DownloadError::Source {
        url: url.to_owned(),
        message,
    };
    let reader: Box<dyn Read> = match Source::of(url).map_err(source_error)? {
        Source::Remote(url) => {
            let response = ureq::AgentBuilder::new()
                .timeout(timeout)
                .build()
                .get(url)
                .call()
                .map_err(|e| source_error(e.to_string()))?;
            Box::new(response.into_reader())
        }
        Source::Local(path) => {
            let path = local.check(path).map_err(source_error)?;
            Box::new(std::fs::File::open(&path).map_err(|e| source_error(e.to_string()))?)
        }
    };
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut hashing = Hashing {
        inner: reader,
        count: count.clone(),
        md5: Md5::new(),
        sha256: Sha256::new(),
        sha512: Sha512::new(),
    };
    let file = std::fs::File::create(target).map_err(|source| DownloadError::Write {
        path: target.display().to_string(),
        source,
    })?;
    let mut out = Bounded {
        inner: std::io::BufWriter::with_capacity(1 << 20, file),
        written: 0,
        limit,
    };
    let name = match compression {
        Compression::None => "plain",
        Compression::Gz => "gz",
        Compression::Xz => "xz",
        Compression::Bz2 => "bz2",
        Compression::Zstd => "zstd",
    };
    let copied: std::io::Result<()> = match compression {
        Compression::None => std::io::copy(&mut hashing, &mut out).map(drop),
        Compression::Gz => std::io::copy(
            &mut flate2::read::MultiGzDecoder::new(&mut hashing),
            &mut out,
        )
        .map(drop),
        Compression::Bz2 => std::io::copy(
            &mut bzip2::read::MultiBzDecoder::new(&mut hashing),
            &mut out,
        )
        .map(drop),
        Compression::Zstd => zstd::stream::read::Decoder::new(&mut hashing)
            .and_then(|mut decoder| std::io::copy(&mut decoder, &mut out))
            .map(drop),
        Compression::Xz => {
            let mut input = BufReader::with_capacity(1 << 16, &mut hashing);
            lzma_rs::xz_decompress(&mut input, &mut out).map_err(|e| match e {
                lzma_rs::error::Error::IoError(io) => io,
                other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
            })
        }
    };
    let copied = copied.and_then(|()| out.flush());
    if let Err(e) = copied {
        let _ = std::fs::remove_file(target);
        let offset = count.load(std::sync::atomic::Ordering::Relaxed);
        if e.get_ref().is_some_and(|inner| inner.is::<OverLimit>()) {
            return Err(DownloadError::TooLarge {
                url: url.to_owned(),
                limit,
            });
        }
        return Err(match (compression, e.kind()) {
            // Disk full and the like: where it was going.
            (_, std::io::ErrorKind::StorageFull | std::io::ErrorKind::PermissionDenied) => {
                DownloadError::Write {
                    path: target.display().to_string(),
                    source: e,
                }
            }
            (Compression::None, _) => source_error(e.to_string()),
            _ => DownloadError::Corrupt {
                url: url.to_owned(),
                compression: name,
                offset,
                message: e.to_string(),
            },
        });
    }
    Ok(Downloaded {
        downloaded: count.load(std::sync::atomic::Ordering::Relaxed),
        written: out.written,
        md5: hex(&hashing.md5.finalize()),
        sha256: hex(&hashing.sha256.finalize()),
        sha512: hex(&hashing.sha512.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(compression: Compression, data: &[u8]) -> Vec<u8> {
        match compression {
            Compression::None => data.to_vec(),
            Compression::Gz => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Bz2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::stream::encode_all(data, 1).unwrap(),
            Compression::Xz => {
                let mut out = Vec::new();
                lzma_rs::xz_compress(&mut &data[..], &mut out).unwrap();
                out
            }
        }
    }

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gz,
        Compression::Xz,
        Compression::Bz2,
        Compression::Zstd,
    ];

    #[test]
    fn every_compression_decompresses_and_checksums_cover_the_downloaded_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalFiles::new([dir.path().to_path_buf()]);
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for compression in ALL {
            let packed = compress(compression, &data);
            let source = dir.path().join("image.bin.packed");
            std::fs::write(&source, &packed).unwrap();
            let target = dir.path().join("image.bin");
            let url = format!("file://{}", source.display());
            let got = download(
                &url,
                compression,
                &target,
                Duration::from_secs(5),
                &local,
                MAX_DECOMPRESSED,
            )
            .unwrap();
            assert_eq!(std::fs::read(&target).unwrap(), data, "{compression:?}");
            assert_eq!(got.downloaded, packed.len() as u64);
            assert_eq!(got.written, data.len() as u64);
            assert_eq!(got.sha256, hex(&Sha256::digest(&packed)), "{compression:?}");
        }
    }

    #[test]
    fn a_truncated_archive_names_the_offset_and_a_bomb_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalFiles::new([dir.path().to_path_buf()]);
        let data = vec![0u8; 4 << 20];
        for compression in &ALL[1..] {
            let packed = compress(*compression, &data);
            let source = dir.path().join("cut");
            std::fs::write(&source, &packed[..packed.len() / 2]).unwrap();
            let url = format!("file://{}", source.display());
            let target = dir.path().join("out");
            let error = download(
                &url,
                *compression,
                &target,
                Duration::from_secs(5),
                &local,
                MAX_DECOMPRESSED,
            )
            .unwrap_err();
            assert!(
                matches!(error, DownloadError::Corrupt { .. }),
                "{compression:?}: {error}"
            );
            assert!(error.to_string().contains("compressed bytes"), "{error}");
            assert!(!target.exists(), "a broken download is not left behind");
            std::fs::write(&source, &packed).unwrap();
            let bomb = download(
                &url,
                *compression,
                &target,
                Duration::from_secs(5),
                &local,
                1 << 20,
            )
            .unwrap_err();
            assert!(
                matches!(bomb, DownloadError::TooLarge { .. }),
                "{compression:?}: {bomb}"
            );
            assert!(bomb.is_job_error());
        }
    }

    #[test]
    fn the_decompressed_name_loses_the_extension() {
        assert_eq!(
            Compression::Xz.strip_extension("rootfs.ext4.xz"),
            "rootfs.ext4"
        );
        assert_eq!(Compression::Gz.strip_extension("Image.gz"), "Image");
        assert_eq!(Compression::Zstd.strip_extension("a.img.zst"), "a.img");
        assert_eq!(Compression::Gz.strip_extension("kernel"), "kernel");
        assert_eq!(Compression::Gz.strip_extension(".gz"), ".gz");
        assert_eq!(Compression::parse(Some("zip")), None);
    }
}
