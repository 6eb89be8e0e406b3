//! The few fields of an ext2/3/4 superblock a deploy needs: that it is one, how much room is
//! left, and its UUID (what `/dev/disk/by-uuid/` names it by on the board).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Where the superblock starts, from the file system's first byte.
const OFFSET: u64 = 1024;
/// Its size.
const SIZE: usize = 1024;
/// `s_magic`.
const MAGIC: u16 = 0xEF53;
/// `INCOMPAT_64BIT`: the free block count has a high half.
const INCOMPAT_64BIT: u32 = 0x80;

/// What Basalt reads of a superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// Bytes per block.
    pub block_size: u64,
    /// Blocks not in use.
    pub free_blocks: u64,
    /// `s_uuid`, formatted as blkid prints it.
    pub uuid: String,
}

impl Superblock {
    /// Bytes not in use.
    pub fn free_bytes(&self) -> u64 {
        self.free_blocks.saturating_mul(self.block_size)
    }

    /// Reads the superblock of the file system that starts `offset` bytes into `image`;
    /// `None` when there is none there (not an ext file system, or too short).
    pub fn read(image: &Path, offset: u64) -> std::io::Result<Option<Self>> {
        let mut file = std::fs::File::open(image)?;
        file.seek(SeekFrom::Start(offset + OFFSET))?;
        let mut raw = [0u8; SIZE];
        match file.read_exact(&mut raw) {
            Ok(()) => Ok(Self::parse(&raw)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Parses a superblock's bytes.
    pub fn parse(raw: &[u8; SIZE]) -> Option<Self> {
        let u16_at = |at: usize| u16::from_le_bytes([raw[at], raw[at + 1]]);
        let u32_at =
            |at: usize| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
        if u16_at(0x38) != MAGIC {
            return None;
        }
        let log_block_size = u32_at(0x18);
        if log_block_size > 6 {
            return None;
        }
        let mut free_blocks = u64::from(u32_at(0x0C));
        if u32_at(0x60) & INCOMPAT_64BIT != 0 {
            free_blocks |= u64::from(u32_at(0x158)) << 32;
        }
        let id = &raw[0x68..0x78];
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        Some(Self {
            block_size: 1024 << log_block_size,
            free_blocks,
            uuid: format!(
                "{}-{}-{}-{}-{}",
                hex(&id[0..4]),
                hex(&id[4..6]),
                hex(&id[6..8]),
                hex(&id[8..10]),
                hex(&id[10..16])
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_where_ext4_keeps_them() {
        let mut raw = [0u8; SIZE];
        raw[0x38..0x3A].copy_from_slice(&MAGIC.to_le_bytes());
        raw[0x18..0x1C].copy_from_slice(&2u32.to_le_bytes());
        raw[0x0C..0x10].copy_from_slice(&10u32.to_le_bytes());
        raw[0x60..0x64].copy_from_slice(&INCOMPAT_64BIT.to_le_bytes());
        raw[0x158..0x15C].copy_from_slice(&1u32.to_le_bytes());
        raw[0x68..0x78].copy_from_slice(&[
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0, 1, 2, 3, 4, 5, 6, 7,
        ]);
        let sb = Superblock::parse(&raw).unwrap();
        assert_eq!(sb.block_size, 4096);
        assert_eq!(sb.free_blocks, (1 << 32) + 10);
        assert_eq!(sb.uuid, "12345678-9abc-def0-0001-020304050607");
        raw[0x38] = 0;
        assert_eq!(Superblock::parse(&raw), None);
    }
}
