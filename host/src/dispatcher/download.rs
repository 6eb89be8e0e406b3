//! One artifact, downloaded as LAVA downloads it: in one streaming pass from the network or
//! an allowed local file, through the checksums (over the bytes as downloaded, compressed,
//! as LAVA computes them), through the decompressor the job names (`compression: gz | xz |
//! bz2 | zstd`), to disk. Memory stays bounded whatever the image size; the decompressed size
//! is bounded too, so a decompression bomb is a clear job error, and a corrupt or truncated
//! archive names the offset it broke at.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512};

use super::archive::Compression;
use super::local_files::{LocalFiles, Source};

/// The largest file a decompression may produce (a rootfs image is a few GiB).
pub const MAX_DECOMPRESSED: u64 = 64 << 30;

/// The name LAVA gives a file downloaded as `name`: a file decompressed on the way loses its
/// last suffix (`rootfs.ext4.xz` → `rootfs.ext4`, `Image.gz` → `Image`), whatever it is;
/// a name without one (`vmlinuz`) and a file kept compressed keep theirs.
pub fn saved_name(name: &str, compression: Compression) -> &str {
    if !compression.decompresses_on_download() {
        return name;
    }
    match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => name,
    }
}

/// The bounds of one download.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For each network read.
    pub timeout: Duration,
    /// The most bytes it may write (decompressed).
    pub max_written: u64,
}

impl Limits {
    /// `timeout` and the [`MAX_DECOMPRESSED`] bound.
    pub fn within(timeout: Duration) -> Self {
        Self {
            timeout,
            max_written: MAX_DECOMPRESSED,
        }
    }
}

/// Which checksums to compute besides sha256 (which LAVA always computes and logs): only
/// those the job gives, as each costs a pass over every byte.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checksums {
    /// md5.
    pub md5: bool,
    /// sha512.
    pub sha512: bool,
}

impl Checksums {
    /// The ones an artifact's parameters ask for.
    pub fn asked_by(artifact: &serde_json::Value) -> Self {
        let given = |key| artifact.get(key).is_some_and(|v| !v.is_null());
        Self {
            md5: given("md5sum"),
            sha512: given("sha512sum"),
        }
    }
}

/// What came down: sizes and the checksums of the downloaded bytes.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// Bytes downloaded (compressed).
    pub downloaded: u64,
    /// Bytes written (decompressed).
    pub written: u64,
    /// md5 of the downloaded bytes, lower-case hex, when asked for.
    pub md5: Option<String>,
    /// sha256 of the downloaded bytes.
    pub sha256: String,
    /// sha512 of the downloaded bytes, when asked for.
    pub sha512: Option<String>,
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

/// The checksums of a byte stream, computed on a thread of their own so that hashing runs
/// beside decompression (on two cores, the slower of the two sets the pace, not their sum).
struct Hasher {
    chunks: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<Digests>>,
}

/// md5 (if asked), sha256, sha512 (if asked), lower-case hex.
type Digests = (Option<String>, String, Option<String>);

impl Hasher {
    fn start(checksums: Checksums) -> Self {
        let (chunks, received) = std::sync::mpsc::sync_channel::<Vec<u8>>(16);
        let thread = std::thread::Builder::new()
            .name("basalt-checksums".into())
            .spawn(move || {
                let mut md5 = checksums.md5.then(Md5::new);
                let mut sha256 = Sha256::new();
                let mut sha512 = checksums.sha512.then(Sha512::new);
                for chunk in received {
                    if let Some(md5) = &mut md5 {
                        md5.update(&chunk);
                    }
                    sha256.update(&chunk);
                    if let Some(sha512) = &mut sha512 {
                        sha512.update(&chunk);
                    }
                }
                (
                    md5.map(|h| hex(&h.finalize())),
                    hex(&sha256.finalize()),
                    sha512.map(|h| hex(&h.finalize())),
                )
            })
            .ok();
        Self {
            chunks: thread.as_ref().map(|_| chunks),
            thread,
        }
    }

    fn feed(&self, bytes: &[u8]) -> std::io::Result<()> {
        match &self.chunks {
            Some(chunks) => chunks
                .send(bytes.to_vec())
                .map_err(|_| std::io::Error::other("the checksum thread ended")),
            None => Err(std::io::Error::other("cannot start the checksum thread")),
        }
    }

    fn finish(mut self) -> std::io::Result<Digests> {
        self.chunks = None;
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .ok_or_else(|| std::io::Error::other("the checksum thread failed"))
    }
}

/// Counts what passes through it, hands it to the [`Hasher`], and reports progress as LAVA
/// logs it.
struct Hashing<'p, R> {
    inner: R,
    /// Bytes read so far (the offset a corrupt archive is named by).
    count: u64,
    hasher: Hasher,
    progress: Progress<'p>,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.feed(&buf[..n])?;
        self.count += n as u64;
        self.progress.update(self.count);
        Ok(n)
    }
}

const MIB: u64 = 1024 * 1024;

/// LAVA's progress lines: every 5 % when the size is known (`progress  35 % (12 MB)`),
/// every 25 MB or each second otherwise (`progress 75 MB`), never more than ten a second.
struct Progress<'p> {
    size: Option<u64>,
    last_value: i64,
    last_update: std::time::Instant,
    say: &'p dyn Fn(&str),
}

impl Progress<'_> {
    fn update(&mut self, downloaded: u64) {
        let since = self.last_update.elapsed();
        let message = match self.size {
            Some(size) => {
                let percent = (downloaded.saturating_mul(100) / size.max(1)) as i64;
                if percent < self.last_value + 5 || since < Duration::from_millis(100) {
                    return;
                }
                self.last_value = percent;
                format!("progress {percent:3} % ({} MB)", downloaded / MIB)
            }
            None => {
                let due = (downloaded as i64 >= self.last_value + 25 * MIB as i64
                    && since >= Duration::from_millis(100))
                    || since >= Duration::from_secs(1);
                if !due {
                    return;
                }
                self.last_value = downloaded as i64;
                format!("progress {} MB", downloaded / MIB)
            }
        };
        self.last_update = std::time::Instant::now();
        (self.say)(&message);
    }
}

/// A file written sparsely, as `cp --sparse` and zstd do: 64 KiB blocks of zeros (the empty
/// space of disk images) are skipped with a seek rather than written, so they cost neither
/// time nor disk. Reads of the file see the same bytes.
struct SparseFile {
    file: std::fs::File,
    buffer: Vec<u8>,
    /// The file's logical length so far (what has been handed to the disk or skipped).
    length: u64,
    /// Whether the file position is behind `length` (the last block was skipped).
    behind: bool,
}

/// Zero runs shorter than this are written: a hole is worth its seek only when it is large.
const SPARSE_BLOCK: usize = 64 * 1024;
const SPARSE_BUFFER: usize = 1 << 20;

impl SparseFile {
    fn new(file: std::fs::File) -> Self {
        Self {
            file,
            buffer: Vec::with_capacity(SPARSE_BUFFER),
            length: 0,
            behind: false,
        }
    }

    /// Writes `data` (whole blocks, or the file's end), skipping zero blocks.
    fn put(&mut self, data: &[u8]) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        static ZEROS: [u8; SPARSE_BLOCK] = [0; SPARSE_BLOCK];
        let is_zero = |start: usize| data.get(start..start + SPARSE_BLOCK) == Some(&ZEROS[..]);
        let mut at = 0;
        while at < data.len() {
            // A run of whole zero blocks is skipped; the data up to the next one is written
            // in one call.
            let mut end = at;
            if is_zero(at) {
                while is_zero(end) {
                    end += SPARSE_BLOCK;
                }
                self.behind = true;
            } else {
                end += SPARSE_BLOCK.min(data.len() - end);
                while end < data.len() && !is_zero(end) {
                    end += SPARSE_BLOCK.min(data.len() - end);
                }
                if self.behind {
                    self.file.seek(SeekFrom::Start(self.length))?;
                    self.behind = false;
                }
                self.file.write_all(&data[at..end])?;
            }
            self.length += (end - at) as u64;
            at = end;
        }
        Ok(())
    }

    fn drain(&mut self) -> std::io::Result<()> {
        let buffer = std::mem::take(&mut self.buffer);
        self.put(&buffer)?;
        self.buffer = buffer;
        self.buffer.clear();
        Ok(())
    }
}

impl Write for SparseFile {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buffer.is_empty() && data.len() >= SPARSE_BLOCK {
            // Whole blocks straight from the caller's buffer: no copy.
            let whole = data.len() - data.len() % SPARSE_BLOCK;
            self.put(&data[..whole])?;
            return Ok(whole);
        }
        let room = SPARSE_BUFFER - self.buffer.len();
        let n = data.len().min(room);
        self.buffer.extend_from_slice(&data[..n]);
        if self.buffer.len() == SPARSE_BUFFER {
            self.drain()?;
        }
        Ok(n)
    }

    /// Writes what is buffered and gives the file its whole length (a skipped tail too).
    fn flush(&mut self) -> std::io::Result<()> {
        self.drain()?;
        if self.behind {
            self.file.set_len(self.length)?;
        }
        self.file.flush()
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

/// `std::io::copy` with a 1 MiB buffer: decoders asked for 8 KiB at a time (io::copy's
/// buffer) spend more time per call than decoding, zstd most of all.
fn copy(reader: &mut dyn Read, writer: &mut dyn Write) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        writer.write_all(&buffer[..n])?;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads `url` into `target`, decompressing with `compression` where LAVA does, within
/// `limits`; local files only where `local` allows. `say` gets LAVA's debug lines (total
/// size, progress).
pub fn download(
    url: &str,
    compression: Compression,
    target: &Path,
    limits: Limits,
    local: &LocalFiles,
    checksums: Checksums,
    say: &dyn Fn(&str),
) -> Result<Downloaded, DownloadError> {
    let Limits {
        timeout,
        max_written: limit,
    } = limits;
    let source_error = |message: String| DownloadError::Source {
        url: url.to_owned(),
        message,
    };
    let (reader, size): (Box<dyn Read>, Option<u64>) =
        match Source::of(url).map_err(source_error)? {
            Source::Remote(url) => {
                let response = ureq::AgentBuilder::new()
                    .timeout(timeout)
                    .build()
                    .get(url)
                    .call()
                    .map_err(|e| source_error(e.to_string()))?;
                let size = response
                    .header("Content-Length")
                    .and_then(|n| n.trim().parse().ok())
                    .filter(|n| *n > 0);
                (Box::new(response.into_reader()), size)
            }
            Source::Local(path) => {
                let path = local.check(path).map_err(source_error)?;
                let file = std::fs::File::open(&path).map_err(|e| source_error(e.to_string()))?;
                let size = file.metadata().ok().map(|m| m.len()).filter(|n| *n > 0);
                (Box::new(file), size)
            }
        };
    match size {
        Some(size) => say(&format!("total size: {size} ({} MB)", size / MIB)),
        None => say("total size: unknown"),
    }
    let mut hashing = Hashing {
        // Large reads: each is one message to the checksum thread.
        inner: std::io::BufReader::with_capacity(1 << 18, reader),
        count: 0,
        hasher: Hasher::start(checksums),
        progress: Progress {
            size,
            last_value: if size.is_some() { -5 } else { -25 * MIB as i64 },
            last_update: std::time::Instant::now(),
            say,
        },
    };
    let file = std::fs::File::create(target).map_err(|source| DownloadError::Write {
        path: target.display().to_string(),
        source,
    })?;
    let mut out = Bounded {
        inner: SparseFile::new(file),
        written: 0,
        limit,
    };
    let applied = if compression.decompresses_on_download() {
        compression
    } else {
        Compression::None
    };
    let copied = applied
        .decoder(&mut hashing)
        .and_then(|mut decoder| copy(&mut decoder, &mut out))
        .and_then(|()| out.flush());
    if let Err(e) = copied {
        let _ = std::fs::remove_file(target);
        let offset = hashing.count;
        if e.get_ref().is_some_and(|inner| inner.is::<OverLimit>()) {
            return Err(DownloadError::TooLarge {
                url: url.to_owned(),
                limit,
            });
        }
        return Err(match (applied, e.kind()) {
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
                compression: applied.name(),
                offset,
                message: e.to_string(),
            },
        });
    }
    let downloaded = hashing.count;
    if let Some(size) = size.filter(|size| *size != downloaded) {
        let _ = std::fs::remove_file(target);
        return Err(source_error(format!(
            "the download finished ({downloaded} bytes) but was not the expected size ({size} \
             bytes), check your networking"
        )));
    }
    let (md5, sha256, sha512) = hashing
        .hasher
        .finish()
        .map_err(|e| source_error(e.to_string()))?;
    Ok(Downloaded {
        downloaded,
        written: out.written,
        md5,
        sha256,
        sha512,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(compression: Compression, data: &[u8]) -> Vec<u8> {
        let mut encoder = compression.encoder(Vec::new()).unwrap();
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn quiet(_: &str) {}

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
                Limits::within(Duration::from_secs(5)),
                &local,
                Checksums::default(),
                &quiet,
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
                Limits::within(Duration::from_secs(5)),
                &local,
                Checksums::default(),
                &quiet,
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
                Limits {
                    timeout: Duration::from_secs(5),
                    max_written: 1 << 20,
                },
                &local,
                Checksums::default(),
                &quiet,
            )
            .unwrap_err();
            assert!(
                matches!(bomb, DownloadError::TooLarge { .. }),
                "{compression:?}: {bomb}"
            );
            assert!(bomb.is_job_error());
        }
    }

    /// Zero blocks are holes, everything reads back the same, a zero tail keeps the length.
    #[test]
    fn zero_blocks_become_holes_and_read_back_as_zeros() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image");
        let mut data = vec![0u8; 8 << 20];
        data[100] = 1;
        data[5 << 20] = 2;
        data.extend(b"tail that is not block-sized");
        data.extend(vec![0u8; 3 * SPARSE_BLOCK]);
        data.extend(vec![0u8; 100]);
        let mut file = SparseFile::new(std::fs::File::create(&path).unwrap());
        for chunk in data.chunks(70_000) {
            file.write_all(chunk).unwrap();
        }
        file.flush().unwrap();
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), data);
        let allocated = std::fs::metadata(&path).unwrap().blocks() * 512;
        assert!(
            allocated < 1 << 20,
            "{allocated} bytes allocated for 8 MiB of zeros"
        );
    }

    #[test]
    fn the_decompressed_name_loses_its_last_suffix_as_lavas_does() {
        assert_eq!(saved_name("rootfs.ext4.xz", Compression::Xz), "rootfs.ext4");
        assert_eq!(saved_name("Image.gz", Compression::Gz), "Image");
        assert_eq!(saved_name("a.img.zst", Compression::Zstd), "a.img");
        assert_eq!(saved_name("vmlinux.bin", Compression::Gz), "vmlinux");
        assert_eq!(saved_name("kernel", Compression::Gz), "kernel");
        assert_eq!(saved_name(".gz", Compression::Gz), ".gz");
        assert_eq!(saved_name("image.zip", Compression::Zip), "image.zip");
        assert_eq!(
            saved_name("rootfs.cpio.gz", Compression::None),
            "rootfs.cpio.gz"
        );
    }

    /// `zip` is downloaded as it is (LAVA unzips where a method needs the contents).
    #[test]
    fn zip_is_kept_as_it_came_and_progress_is_logged() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalFiles::new([dir.path().to_path_buf()]);
        let data = vec![7u8; 3 << 20];
        std::fs::write(dir.path().join("image.zip"), &data).unwrap();
        let lines = std::cell::RefCell::new(Vec::new());
        let say = |line: &str| lines.borrow_mut().push(line.to_owned());
        let target = dir.path().join("saved");
        download(
            &format!("file://{}/image.zip", dir.path().display()),
            Compression::Zip,
            &target,
            Limits::within(Duration::from_secs(5)),
            &local,
            Checksums::default(),
            &say,
        )
        .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), data);
        let lines = lines.into_inner();
        assert_eq!(lines[0], "total size: 3145728 (3 MB)");
        assert!(
            lines[1..].iter().all(|l| l.starts_with("progress ")),
            "{lines:?}"
        );
    }
}
