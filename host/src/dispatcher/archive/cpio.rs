//! cpio archives in the `newc` format (`cpio -H newc`), the format of Linux initramfs images.
//!
//! A ramdisk is changed by copying its entries into a new archive and appending new ones
//! after them, never by unpacking it on the worker: the kernel unpacks an initramfs in order
//! and a later entry replaces an earlier file of the same name, so the board sees what an
//! unpack-and-repack would give, while device nodes, owners and modes stay exactly as the
//! image had them (unpacking needs root for those), and no name inside the archive is ever a
//! path on the worker.

use std::collections::HashSet;
use std::io::{BufRead, Read, Write};

/// The `newc` magic; `070702` is the same layout with a checksum field in use.
const MAGIC: &[u8; 6] = b"070701";
const MAGIC_CRC: &[u8; 6] = b"070702";
const HEADER_LEN: usize = 110;
const TRAILER: &[u8] = b"TRAILER!!!";
/// Longer names are not paths the kernel takes (PATH_MAX).
const MAX_NAME: u64 = 4096;

/// File type bits of `mode`, as in `stat.h`.
pub const S_IFMT: u32 = 0o170000;
/// A directory.
pub const S_IFDIR: u32 = 0o040000;
/// A regular file.
pub const S_IFREG: u32 = 0o100000;
/// A symbolic link.
pub const S_IFLNK: u32 = 0o120000;
/// A character device.
pub const S_IFCHR: u32 = 0o020000;
/// A block device.
pub const S_IFBLK: u32 = 0o060000;
/// A named pipe.
pub const S_IFIFO: u32 = 0o010000;

/// What a cpio archive is not.
#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    /// Not a newc header where one should start.
    #[error("not a cpio (newc) archive at byte {offset}: {what}")]
    Format {
        /// Bytes of the uncompressed archive read before it.
        offset: u64,
        /// What was wrong.
        what: String,
    },
    /// Reading or writing failed (a truncated archive says so here).
    #[error("at byte {offset}: {source}")]
    Io {
        /// Bytes of the uncompressed archive read before it.
        offset: u64,
        /// Why.
        source: std::io::Error,
    },
}

/// One entry's header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// Inode number (hard links share one).
    pub ino: u32,
    /// Type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// Modification time (seconds since the epoch).
    pub mtime: u32,
    /// Size of the data that follows (a symlink's data is its target).
    pub filesize: u32,
    /// Device of the file (major, minor).
    pub dev: (u32, u32),
    /// Device a node stands for (major, minor).
    pub rdev: (u32, u32),
    /// The name, without the terminating NUL.
    pub name: Vec<u8>,
}

impl Header {
    /// A directory, file or symlink entry as Basalt adds them: root-owned, one link.
    pub fn new(name: &str, mode: u32, filesize: u32, mtime: u32) -> Self {
        Self {
            ino: 0,
            mode,
            uid: 0,
            gid: 0,
            nlink: if mode & S_IFMT == S_IFDIR { 2 } else { 1 },
            mtime,
            filesize,
            dev: (0, 0),
            rdev: (0, 0),
            name: name.as_bytes().to_vec(),
        }
    }

    fn is_trailer(&self) -> bool {
        self.name == TRAILER
    }
}

fn pad4(n: u64) -> u64 {
    (4 - n % 4) % 4
}

/// Reads entries from an uncompressed newc stream, across trailers: the zero padding after a
/// `TRAILER!!!` is skipped and a following archive read on, as the kernel does.
pub struct Reader<R> {
    inner: R,
    offset: u64,
    /// Data of the current entry not yet read.
    pending: u64,
}

impl<R: BufRead> Reader<R> {
    /// Reads from `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            offset: 0,
            pending: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The stream, for what follows the archive (another, compressed part).
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn io(&self, source: std::io::Error) -> CpioError {
        CpioError::Io {
            offset: self.offset,
            source,
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), CpioError> {
        self.inner.read_exact(buf).map_err(|e| self.io(e))?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn skip(&mut self, n: u64) -> Result<(), CpioError> {
        let copied = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())
            .map_err(|e| self.io(e))?;
        self.offset += copied;
        if copied < n {
            return Err(self.io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }

    /// Skips zero bytes (padding between archives); false at the end of the stream.
    fn skip_zeros(&mut self) -> Result<bool, CpioError> {
        loop {
            let buf = self.inner.fill_buf().map_err(|e| CpioError::Io {
                offset: self.offset,
                source: e,
            })?;
            if buf.is_empty() {
                return Ok(false);
            }
            let zeros = buf.iter().take_while(|b| **b == 0).count();
            let more = zeros < buf.len();
            self.inner.consume(zeros);
            self.offset += zeros as u64;
            if more {
                return Ok(true);
            }
        }
    }

    /// The next entry (its data is read with [`Reader::data`] or skipped by the next call),
    /// or `None` at the end of the stream. Trailers are not returned.
    pub fn next_entry(&mut self) -> Result<Option<Header>, CpioError> {
        loop {
            if self.pending > 0 {
                let rest = self.pending;
                self.pending = 0;
                self.skip(rest)?;
            }
            if !self.offset.is_multiple_of(4) {
                self.skip(pad4(self.offset))?;
            }
            if !self.skip_zeros()? {
                return Ok(None);
            }
            if !self.offset.is_multiple_of(4) {
                return Err(CpioError::Format {
                    offset: self.offset,
                    what: "data after the archive's end".into(),
                });
            }
            let header = self.header()?;
            if header.is_trailer() {
                // Another archive may follow; anything else (a compressed part) is the
                // caller's to read from the stream.
                if self.at_archive()? {
                    continue;
                }
                return Ok(None);
            }
            return Ok(Some(header));
        }
    }

    /// Whether the stream, at the next non-zero byte, starts another newc archive (false
    /// when something else follows, such as a compressed part).
    pub fn at_archive(&mut self) -> Result<bool, CpioError> {
        if !self.skip_zeros()? {
            return Ok(false);
        }
        let offset = self.offset;
        let buf = self
            .inner
            .fill_buf()
            .map_err(|source| CpioError::Io { offset, source })?;
        Ok(buf.starts_with(&MAGIC[..5]))
    }

    fn header(&mut self) -> Result<Header, CpioError> {
        let start = self.offset;
        let mut raw = [0u8; HEADER_LEN];
        self.read_exact(&mut raw[..6])?;
        if &raw[..6] != MAGIC && &raw[..6] != MAGIC_CRC {
            return Err(CpioError::Format {
                offset: start,
                what: format!("magic {:?}", String::from_utf8_lossy(&raw[..6])),
            });
        }
        self.read_exact(&mut raw[6..])?;
        let mut fields = [0u32; 13];
        for (i, field) in fields.iter_mut().enumerate() {
            let text = &raw[6 + i * 8..6 + (i + 1) * 8];
            *field = std::str::from_utf8(text)
                .ok()
                .and_then(|t| u32::from_str_radix(t, 16).ok())
                .ok_or_else(|| CpioError::Format {
                    offset: start,
                    what: format!("header field {i} is not hexadecimal"),
                })?;
        }
        let namesize = u64::from(fields[11]);
        if namesize == 0 || namesize > MAX_NAME {
            return Err(CpioError::Format {
                offset: start,
                what: format!("name size {namesize}"),
            });
        }
        let mut name = vec![0u8; namesize as usize];
        self.read_exact(&mut name)?;
        if name.pop() != Some(0) {
            return Err(CpioError::Format {
                offset: start,
                what: "a name without its terminating NUL".into(),
            });
        }
        self.skip(pad4(self.offset))?;
        self.pending = u64::from(fields[6]);
        Ok(Header {
            ino: fields[0],
            mode: fields[1],
            uid: fields[2],
            gid: fields[3],
            nlink: fields[4],
            mtime: fields[5],
            filesize: fields[6],
            dev: (fields[7], fields[8]),
            rdev: (fields[9], fields[10]),
            name,
        })
    }

    /// The current entry's data, copied into `out`.
    pub fn data(&mut self, out: &mut impl Write) -> Result<(), CpioError> {
        let n = self.pending;
        self.pending = 0;
        let copied = std::io::copy(&mut (&mut self.inner).take(n), out).map_err(|e| self.io(e))?;
        self.offset += copied;
        if copied < n {
            return Err(self.io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(())
    }
}

/// Writes a newc archive. Remembers every directory it wrote (and the name of every entry),
/// so that entries added later get their missing parent directories first: the kernel
/// creates no directory an archive does not name.
pub struct Writer<W> {
    inner: W,
    offset: u64,
    names: HashSet<Vec<u8>>,
    next_ino: u32,
}

impl<W: Write> Writer<W> {
    /// Writes into `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            offset: 0,
            names: HashSet::new(),
            next_ino: 1 << 30,
        }
    }

    fn io(&self, source: std::io::Error) -> CpioError {
        CpioError::Io {
            offset: self.offset,
            source,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), CpioError> {
        self.inner.write_all(bytes).map_err(|e| self.io(e))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<(), CpioError> {
        let n = pad4(self.offset) as usize;
        self.put(&[0u8; 3][..n])
    }

    fn header(&mut self, header: &Header) -> Result<(), CpioError> {
        let fields = [
            header.ino,
            header.mode,
            header.uid,
            header.gid,
            header.nlink,
            header.mtime,
            header.filesize,
            header.dev.0,
            header.dev.1,
            header.rdev.0,
            header.rdev.1,
            header.name.len() as u32 + 1,
            0,
        ];
        let mut text = String::with_capacity(HEADER_LEN);
        text.push_str("070701");
        for field in fields {
            text.push_str(&format!("{field:08x}"));
        }
        self.put(text.as_bytes())?;
        let name = header.name.clone();
        self.put(&name)?;
        self.put(&[0])?;
        self.pad()
    }

    /// Writes one entry with `header.filesize` bytes of data from `data`.
    pub fn entry(&mut self, header: &Header, data: &mut dyn Read) -> Result<(), CpioError> {
        self.header(header)?;
        let n = u64::from(header.filesize);
        let mut counting = CountingWriter {
            inner: &mut self.inner,
            count: 0,
        };
        let copied = std::io::copy(&mut data.take(n), &mut counting);
        let count = counting.count;
        self.offset += count;
        copied.map_err(|e| self.io(e))?;
        if count < n {
            return Err(self.io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        self.pad()?;
        self.names.insert(header.name.clone());
        Ok(())
    }

    /// Copies every entry of `reader` into this archive (trailers aside), as they are.
    pub fn copy_from<R: BufRead>(&mut self, reader: &mut Reader<R>) -> Result<u64, CpioError> {
        let mut entries = 0;
        while let Some(header) = reader.next_entry()? {
            self.header(&header)?;
            let mut counting = CountingWriter {
                inner: &mut self.inner,
                count: 0,
            };
            reader.data(&mut counting)?;
            self.offset += counting.count;
            self.pad()?;
            self.names.insert(header.name);
            entries += 1;
        }
        Ok(entries)
    }

    /// Adds an entry (its name a relative path, already checked) after the directories
    /// leading to it that the archive does not have yet. Inode numbers of added entries are
    /// Basalt's own, above any a real image uses.
    pub fn add(&mut self, mut header: Header, data: &mut dyn Read) -> Result<(), CpioError> {
        let name = String::from_utf8_lossy(&header.name).into_owned();
        self.parents(&name, header.mtime)?;
        header.ino = self.take_ino();
        self.entry(&header, data)
    }

    fn take_ino(&mut self) -> u32 {
        self.next_ino = self.next_ino.wrapping_add(1);
        self.next_ino
    }

    /// Writes the directories above `name` that no entry named yet.
    pub fn parents(&mut self, name: &str, mtime: u32) -> Result<(), CpioError> {
        let mut at = 0;
        while let Some(slash) = name[at..].find('/') {
            let parent = &name[..at + slash];
            at += slash + 1;
            if parent.is_empty() || self.names.contains(parent.as_bytes()) {
                continue;
            }
            let mut header = Header::new(parent, S_IFDIR | 0o755, 0, mtime);
            header.ino = self.take_ino();
            self.entry(&header, &mut std::io::empty())?;
        }
        Ok(())
    }

    /// Writes the trailer, pads to a 512-byte block as `cpio` does, and hands back the writer.
    pub fn finish(mut self) -> Result<W, CpioError> {
        let trailer = Header {
            nlink: 1,
            name: TRAILER.to_vec(),
            ..Header::default()
        };
        self.header(&trailer)?;
        let block = ((512 - self.offset % 512) % 512) as usize;
        self.put(&vec![0u8; block])?;
        self.inner.flush().map_err(|e| self.io(e))?;
        Ok(self.inner)
    }
}

struct CountingWriter<'a, W> {
    inner: &'a mut W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn archive(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut writer = Writer::new(Vec::new());
        for (name, mode, data) in entries {
            let mut header = Header::new(name, *mode, data.len() as u32, 0);
            header.ino = 7;
            writer.entry(&header, &mut &data[..]).unwrap();
        }
        writer.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut reader = Reader::new(BufReader::new(bytes));
        let mut out = Vec::new();
        while let Some(header) = reader.next_entry().unwrap() {
            let mut data = Vec::new();
            reader.data(&mut data).unwrap();
            out.push((String::from_utf8(header.name).unwrap(), header.mode, data));
        }
        out
    }

    /// What the archive says comes back, and GNU cpio (where installed) reads it the same.
    #[test]
    fn entries_round_trip_and_cpio_lists_them() {
        let bytes = archive(&[
            ("init", S_IFREG | 0o755, b"#!/bin/sh\n"),
            ("bin", S_IFDIR | 0o755, b""),
            ("bin/sh", S_IFLNK | 0o777, b"busybox"),
        ]);
        assert_eq!(bytes.len() % 512, 0);
        let entries = read_all(&bytes);
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[0],
            ("init".into(), S_IFREG | 0o755, b"#!/bin/sh\n".to_vec())
        );
        assert_eq!(entries[2].2, b"busybox");
        let Ok(mut child) = std::process::Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            assert!(
                !super::super::tests::tools_required(),
                "GNU cpio is required here"
            );
            return;
        };
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "init\nbin\nbin/sh\n");
    }

    /// Two archives one after the other (with the zero padding `cpio` writes) read as one.
    #[test]
    fn concatenated_archives_read_through_their_trailers() {
        let mut bytes = archive(&[("a", S_IFREG | 0o644, b"1")]);
        bytes.extend(archive(&[("b", S_IFREG | 0o644, b"22")]));
        let names: Vec<String> = read_all(&bytes).into_iter().map(|e| e.0).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn added_entries_get_their_parent_directories_once() {
        let original = archive(&[("lib", S_IFDIR | 0o755, b"")]);
        let mut writer = Writer::new(Vec::new());
        writer
            .copy_from(&mut Reader::new(BufReader::new(&original[..])))
            .unwrap();
        let ko = |name, size| Header::new(name, S_IFREG | 0o644, size, 0);
        writer
            .add(ko("lib/modules/6.1/a.ko", 2), &mut &b"ko"[..])
            .unwrap();
        writer
            .add(ko("lib/modules/6.1/b.ko", 1), &mut &b"k"[..])
            .unwrap();
        let bytes = writer.finish().unwrap();
        let names: Vec<String> = read_all(&bytes).into_iter().map(|e| e.0).collect();
        assert_eq!(
            names,
            [
                "lib",
                "lib/modules",
                "lib/modules/6.1",
                "lib/modules/6.1/a.ko",
                "lib/modules/6.1/b.ko"
            ]
        );
    }

    #[test]
    fn truncated_and_foreign_input_are_errors_with_an_offset() {
        let bytes = archive(&[("init", S_IFREG | 0o755, b"0123456789")]);
        let mut reader = Reader::new(BufReader::new(&bytes[..120]));
        let header = reader.next_entry().unwrap().unwrap();
        assert_eq!(header.name, b"init");
        let error = reader.data(&mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("at byte"), "{error}");
        let mut foreign = Reader::new(BufReader::new(&b"ustar and more bytes here"[..]));
        let error = foreign.next_entry().unwrap_err();
        assert!(error.to_string().contains("not a cpio"), "{error}");
        let mut bad_size = bytes.clone();
        bad_size[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"FFFFFFFF");
        let error = Reader::new(BufReader::new(&bad_size[..]))
            .next_entry()
            .unwrap_err();
        assert!(error.to_string().contains("name size"), "{error}");
    }
}
