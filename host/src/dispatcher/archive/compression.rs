//! The compressions LAVA names in `compression:`, as stream decoders and encoders.
//!
//! LAVA decompresses `gz`, `xz`, `bz2` and `zstd` while it downloads and keeps `zip` as it
//! came (its deploy methods unzip later, where they need the contents). A ramdisk is kept
//! compressed at download and, when the job changes it, recompressed with what it came in:
//! `xz` with the CRC32 check, the only one the kernel's initramfs decoder accepts.

use std::io::{BufReader, Read, Write};

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
    /// `zip`: downloaded as it is.
    Zip,
}

impl Compression {
    /// The names `compression:` accepts.
    pub const NAMES: &'static str = "gz, xz, bz2, zstd, zip or none";

    /// The job's `compression:` value; `None` when it is not one LAVA knows.
    pub fn parse(name: Option<&str>) -> Option<Self> {
        match name {
            None | Some("none") => Some(Self::None),
            Some("gz") => Some(Self::Gz),
            Some("xz") => Some(Self::Xz),
            Some("bz2") => Some(Self::Bz2),
            Some("zstd") => Some(Self::Zstd),
            Some("zip") => Some(Self::Zip),
            Some(_) => None,
        }
    }

    /// The name as a job writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gz => "gz",
            Self::Xz => "xz",
            Self::Bz2 => "bz2",
            Self::Zstd => "zstd",
            Self::Zip => "zip",
        }
    }

    /// What LAVA's `gzip`, `xz`, ... would append to a file name.
    pub fn extension(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Gz => ".gz",
            Self::Xz => ".xz",
            Self::Bz2 => ".bz2",
            Self::Zstd => ".zst",
            Self::Zip => ".zip",
        }
    }

    /// Whether a download is decompressed on its way to disk (LAVA's `decompress_command_map`).
    pub fn decompresses_on_download(self) -> bool {
        !matches!(self, Self::None | Self::Zip)
    }

    /// Recognises compressed data by its first bytes (a modules tarball or an overlay that
    /// arrives still compressed, a part of a ramdisk).
    pub fn sniff(head: &[u8]) -> Self {
        match head {
            [0x1f, 0x8b, ..] => Self::Gz,
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Self::Xz,
            [b'B', b'Z', b'h', ..] => Self::Bz2,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Self::Zstd,
            [b'P', b'K', 0x03, 0x04, ..] => Self::Zip,
            _ => Self::None,
        }
    }

    /// A reader of the decompressed data. `Zip` and `None` pass the bytes through.
    pub fn decoder<'r, R: Read + 'r>(self, reader: R) -> std::io::Result<Box<dyn Read + 'r>> {
        Ok(match self {
            Self::None | Self::Zip => Box::new(reader),
            Self::Gz => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
                1 << 16,
                reader,
            ))),
            Self::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(reader)),
            Self::Bz2 => Box::new(bzip2::read::MultiBzDecoder::new(reader)),
            Self::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
        })
    }

    /// A writer that compresses into `writer`, as LAVA's `compress_file` does (`gzip`,
    /// `xz --check=crc32`, `bzip2`, `zstd`, each at its default level). Call
    /// [`Encoder::finish`] to complete the stream.
    pub fn encoder<'w, W: Write + 'w>(self, writer: W) -> std::io::Result<Encoder<'w, W>> {
        Ok(match self {
            Self::None | Self::Zip => Encoder::Plain(writer),
            Self::Gz => Encoder::Gz(flate2::write::GzEncoder::new(
                writer,
                flate2::Compression::new(6),
            )),
            Self::Xz => {
                let stream =
                    liblzma::stream::Stream::new_easy_encoder(6, liblzma::stream::Check::Crc32)
                        .map_err(std::io::Error::other)?;
                Encoder::Xz(liblzma::write::XzEncoder::new_stream(writer, stream))
            }
            Self::Bz2 => Encoder::Bz2(bzip2::write::BzEncoder::new(
                writer,
                bzip2::Compression::new(9),
            )),
            Self::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(writer, 3)?),
        })
    }
}

/// A compressing writer from [`Compression::encoder`].
pub enum Encoder<'w, W: Write + 'w> {
    /// No compression.
    Plain(W),
    /// gzip.
    Gz(flate2::write::GzEncoder<W>),
    /// xz (CRC32 check).
    Xz(liblzma::write::XzEncoder<W>),
    /// bzip2.
    Bz2(bzip2::write::BzEncoder<W>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'w, W>),
}

impl<W: Write> Encoder<'_, W> {
    /// Ends the compressed stream and hands back the writer.
    pub fn finish(self) -> std::io::Result<W> {
        match self {
            Self::Plain(mut w) => w.flush().map(|()| w),
            Self::Gz(e) => e.finish(),
            Self::Xz(e) => e.finish(),
            Self::Bz2(e) => e.finish(),
            Self::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<'_, W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(w) => w.write(data),
            Self::Gz(e) => e.write(data),
            Self::Xz(e) => e.write(data),
            Self::Bz2(e) => e.write(data),
            Self::Zstd(e) => e.write(data),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Gz(e) => e.flush(),
            Self::Xz(e) => e.flush(),
            Self::Bz2(e) => e.flush(),
            Self::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const DECOMPRESSING: [Compression; 4] = [
        Compression::Gz,
        Compression::Xz,
        Compression::Bz2,
        Compression::Zstd,
    ];

    fn pack(compression: Compression, data: &[u8]) -> Vec<u8> {
        let mut encoder = compression.encoder(Vec::new()).unwrap();
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn every_encoder_round_trips_through_its_decoder_and_is_recognised() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for compression in DECOMPRESSING {
            let packed = pack(compression, &data);
            assert_eq!(Compression::sniff(&packed), compression);
            let mut out = Vec::new();
            compression
                .decoder(&packed[..])
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data, "{compression:?}");
        }
        assert_eq!(Compression::sniff(b"070701"), Compression::None);
    }

    /// The kernel's initramfs xz decoder takes CRC32 (or no) checks only: the stream flags
    /// (bytes 6 and 7 of the header) must say CRC32, as `xz --check=crc32` writes.
    #[test]
    fn xz_is_written_with_the_crc32_check_the_kernel_needs() {
        let packed = pack(Compression::Xz, b"initramfs");
        assert_eq!(&packed[6..8], &[0x00, 0x01]);
    }

    /// Concatenated streams (how `pigz`, `cat a.gz b.gz` and multi-part images come) decode
    /// whole.
    #[test]
    fn concatenated_streams_decode_whole() {
        for compression in DECOMPRESSING {
            let mut packed = pack(compression, b"first ");
            packed.extend(pack(compression, b"second"));
            let mut out = String::new();
            compression
                .decoder(&packed[..])
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            assert_eq!(out, "first second", "{compression:?}");
        }
    }

    #[test]
    fn names_parse_back() {
        for c in [Compression::None, Compression::Zip]
            .into_iter()
            .chain(DECOMPRESSING)
        {
            assert_eq!(Compression::parse(Some(c.name())), Some(c));
        }
        assert_eq!(Compression::parse(Some("lz4")), None);
        assert!(!Compression::Zip.decompresses_on_download());
    }
}
