//! Rebuilding a ramdisk as LAVA does: its u-boot header cut off (`header: u-boot`), every
//! part read (an uncompressed early cpio, then the compressed main one), the additions
//! appended (the LAVA overlay, `modules`, `overlays:`), the result compressed as it came
//! and, where the device says `add_header: u-boot`, given a u-boot header again.
//! The original's entries are copied, not unpacked (see [`crate::dispatcher::archive::cpio`]).

use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::dispatcher::archive::cpio::{self, Header};
use crate::dispatcher::archive::{tarball, uimage, Compression};
use crate::dispatcher::failure::Failure;

/// Something a rebuilt ramdisk gains after the original's entries.
#[derive(Debug, Clone)]
pub enum Addition {
    /// A tarball's entries, under a directory of the ramdisk (relative, "" for the top).
    Tar {
        /// The tarball (any compression).
        path: PathBuf,
        /// Where its entries go.
        under: String,
    },
    /// One file, at a path of the ramdisk (relative).
    File {
        /// The file on the worker.
        path: PathBuf,
        /// Its name in the ramdisk.
        name: String,
    },
}

/// How the rebuilt ramdisk is written.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// The compression to write it with (the job's `compression:`).
    pub compression: Compression,
    /// The architecture for a u-boot header (`mkimage -A`), if one goes on.
    pub uboot_arch: Option<u8>,
}

/// Reads the cpio parts of `input` (after a u-boot header when `strip_header`), appends
/// `additions`, and writes the result to `output_path` as `output` says. `what` names the
/// artifact in errors. Returns the number of entries copied from the original.
pub fn rebuild(
    what: &str,
    input: &Path,
    strip_header: bool,
    additions: &[Addition],
    output_path: &Path,
    output: Output,
) -> Result<u64, Failure> {
    let job_error = |e: String| Failure::job(format!("{what}: {e}"));
    let write_error = |e: std::io::Error| {
        Failure::infrastructure(format!("cannot write {}: {e}", output_path.display()))
    };
    let file = std::fs::File::open(input)
        .map_err(|e| Failure::infrastructure(format!("cannot read {}: {e}", input.display())))?;
    let mut raw = BufReader::with_capacity(1 << 16, file);
    if strip_header {
        uimage::strip(&mut raw).map_err(job_error)?;
    }
    let out = std::fs::File::create(output_path).map_err(write_error)?;
    let mut out = BufWriter::with_capacity(1 << 20, out);
    if output.uboot_arch.is_some() {
        // Room for the header, written once the data's length and CRC are known.
        out.write_all(&[0; uimage::HEADER_LEN])
            .map_err(write_error)?;
    }
    let encoder = output
        .compression
        .encoder(Crc32Writer {
            inner: out,
            crc: crc32fast::Hasher::new(),
            len: 0,
        })
        .map_err(write_error)?;
    let mut writer = cpio::Writer::new(encoder);
    let copied = copy_parts(&mut raw, &mut writer).map_err(job_error)?;
    for addition in additions {
        add(&mut writer, addition).map_err(job_error)?;
    }
    let encoder = writer.finish().map_err(|e| job_error(e.to_string()))?;
    let Crc32Writer {
        inner: mut out,
        crc,
        len,
    } = encoder.finish().map_err(write_error)?;
    if let Some(arch) = output.uboot_arch {
        let len = u32::try_from(len)
            .map_err(|_| Failure::job(format!("{what}: a u-boot image holds at most 4 GiB")))?;
        let header = uimage::ramdisk_header(arch, len, crc.finalize(), now());
        out.seek(SeekFrom::Start(0))
            .and_then(|_| out.write_all(&header))
            .map_err(write_error)?;
    }
    out.flush().map_err(write_error)?;
    Ok(copied)
}

/// Copies the entries of every part: uncompressed archives one after another, then at most
/// one compressed stream (which may hold several archives), as mkinitramfs writes them.
fn copy_parts<R: BufRead, W: Write>(
    raw: &mut R,
    writer: &mut cpio::Writer<W>,
) -> Result<u64, String> {
    let mut copied = 0;
    let mut consumed = 0u64;
    loop {
        let head = raw.fill_buf().map_err(|e| e.to_string())?;
        if head.is_empty() {
            return Ok(copied);
        }
        match Compression::sniff(head) {
            Compression::None => {
                let mut reader = cpio::Reader::new(&mut *raw);
                copied += writer
                    .copy_from(&mut reader)
                    .map_err(|e| format!("{e} (offset in the ramdisk: {consumed} + that)"))?;
                let read = reader.offset();
                if read == 0 {
                    return Err("not a cpio archive".into());
                }
                consumed += read;
            }
            Compression::Zip => return Err("a zip file, not a ramdisk".into()),
            compression => {
                let decoder = compression.decoder(&mut *raw).map_err(|e| e.to_string())?;
                let mut reader = cpio::Reader::new(BufReader::with_capacity(1 << 16, decoder));
                copied += writer.copy_from(&mut reader).map_err(|e| {
                    format!("the {} part at byte {consumed}: {e}", compression.name())
                })?;
                let mut rest = reader.into_inner();
                if !rest.fill_buf().map_err(|e| e.to_string())?.is_empty() {
                    return Err(format!(
                        "the {} part at byte {consumed} holds something after its cpio archive",
                        compression.name()
                    ));
                }
                return Ok(copied);
            }
        }
    }
}

fn add<W: Write>(writer: &mut cpio::Writer<W>, addition: &Addition) -> Result<(), String> {
    match addition {
        Addition::Tar { path, under } => tarball::append_to_cpio(path, under, writer)
            .map(drop)
            .map_err(|e| e.to_string()),
        Addition::File { path, name } => {
            let file = std::fs::File::open(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let size = file.metadata().map_err(|e| e.to_string())?.len();
            let size = u32::try_from(size)
                .map_err(|_| format!("{} is larger than a cpio archive holds", path.display()))?;
            let header = Header::new(name, cpio::S_IFREG | 0o644, size, now());
            writer
                .add(header, &mut BufReader::new(file))
                .map_err(|e| e.to_string())
        }
    }
}

fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().min(u64::from(u32::MAX)) as u32)
        .unwrap_or(0)
}

/// Counts and CRCs what is written through it: the u-boot header's data size and data CRC.
struct Crc32Writer<W> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Write for Crc32Writer<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.crc.update(&data[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatcher::archive::ramdisk_names;
    use crate::dispatcher::archive::tarball::tests::tarball;
    use crate::dispatcher::archive::tests::ramdisk;

    fn cpio_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        ramdisk(entries, Compression::None)
    }

    fn pack(compression: Compression, data: &[u8]) -> Vec<u8> {
        let mut encoder = compression.encoder(Vec::new()).unwrap();
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// An early (uncompressed) part and a compressed main part behind a u-boot header come
    /// out as one archive with the modules and overlay after the original's entries,
    /// compressed as the job said and with a header mkimage would write.
    #[test]
    fn a_ramdisk_gains_modules_and_files_in_every_compression() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("modules.tar");
        std::fs::write(
            &modules,
            tarball(
                &[("./lib/modules/6.1/", ""), ("./lib/modules/6.1/a.ko", "ko")],
                Compression::None,
            ),
        )
        .unwrap();
        for compression in [
            Compression::Gz,
            Compression::Xz,
            Compression::Bz2,
            Compression::Zstd,
            Compression::None,
        ] {
            let mut image = uimage::ramdisk_header(22, 0, 0, 0).to_vec();
            image.extend(cpio_of(&[(
                "kernel/x86/microcode/GenuineIntel.bin",
                b"ucode",
            )]));
            image.extend(pack(
                compression,
                &cpio_of(&[("init", b"#!/bin/sh\n"), ("lib", b"")]),
            ));
            let input = dir.path().join("ramdisk.cpio.uboot");
            std::fs::write(&input, image).unwrap();
            let helper = dir.path().join("lava-test-case");
            std::fs::write(&helper, "#!/bin/sh\n").unwrap();
            let output = dir.path().join("out");
            let copied = rebuild(
                "ramdisk",
                &input,
                true,
                &[
                    Addition::Tar {
                        path: modules.clone(),
                        under: String::new(),
                    },
                    Addition::File {
                        path: helper.clone(),
                        name: "lava-1/bin/lava-test-case".into(),
                    },
                ],
                &output,
                Output {
                    compression,
                    uboot_arch: Some(22),
                },
            )
            .unwrap();
            // The early part's directories, its file, and the main part's two files.
            assert_eq!(copied, 6, "{compression:?}");
            // The header is mkimage's for exactly the bytes behind it.
            let image = std::fs::read(&output).unwrap();
            let (header, data) = image.split_at(uimage::HEADER_LEN);
            let expected = uimage::ramdisk_header(
                22,
                data.len() as u32,
                crc32fast::hash(data),
                u32::from_be_bytes([header[8], header[9], header[10], header[11]]),
            );
            assert_eq!(header, &expected[..], "{compression:?}");
            assert_eq!(
                ramdisk_names(&output, true).unwrap(),
                [
                    "kernel",
                    "kernel/x86",
                    "kernel/x86/microcode",
                    "kernel/x86/microcode/GenuineIntel.bin",
                    "init",
                    "lib",
                    "lib/modules",
                    "lib/modules/6.1",
                    "lib/modules/6.1/a.ko",
                    "lava-1",
                    "lava-1/bin",
                    "lava-1/bin/lava-test-case"
                ],
                "{compression:?}"
            );
        }
    }

    #[test]
    fn a_corrupt_ramdisk_is_a_job_error_that_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let whole = pack(Compression::Gz, &cpio_of(&[("init", &[7u8; 100_000])]));
        let input = dir.path().join("ramdisk.cpio.gz");
        std::fs::write(&input, &whole[..whole.len() / 2]).unwrap();
        let output = Output {
            compression: Compression::Gz,
            uboot_arch: None,
        };
        let out = dir.path().join("out");
        let fails =
            |header: bool| rebuild("ramdisk", &input, header, &[], &out, output).unwrap_err();
        let error = fails(false);
        assert!(
            error.message.starts_with("ramdisk: the gz part at byte 0"),
            "{}",
            error.message
        );
        std::fs::write(&input, b"this is no ramdisk at all").unwrap();
        let error = fails(false);
        assert!(error.message.contains("not a cpio"), "{}", error.message);
        let error = fails(true);
        assert!(error.message.contains("u-boot header"), "{}", error.message);
    }
}
