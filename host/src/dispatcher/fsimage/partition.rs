//! Finding a partition in a disk image, numbered as LAVA numbers them (`root_partition`,
//! `partition`): the index into the list `sfdisk -J` prints, so 0 is the first partition the
//! table holds — for MBR the used primary slots in order, then the logical partitions of the
//! extended one; for GPT the used entries in order.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The sector size disk images are read with (sfdisk's default for a file).
pub const SECTOR: u64 = 512;
/// GPT's partition type in a protective MBR.
const PROTECTIVE: u8 = 0xEE;
/// MBR's extended partition types (CHS, LBA, Linux).
const EXTENDED: [u8; 3] = [0x05, 0x0F, 0x85];
/// More logical partitions than any real table holds: a loop in the EBR chain ends here.
const MAX_LOGICAL: usize = 128;
/// More GPT entries than a header may claim.
const MAX_GPT_ENTRIES: u32 = 1024;

/// One partition: where it starts and how long it is, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// Its first byte.
    pub start: u64,
    /// Its length.
    pub size: u64,
}

/// Why a partition could not be found.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// The image cannot be read.
    #[error("cannot read its partition table: {0}")]
    Io(#[from] std::io::Error),
    /// Sector 0 holds no MBR.
    #[error("it has no partition table (no MBR signature)")]
    NoTable,
    /// The table has fewer partitions.
    #[error("invalid partition number {index} (image has {count} partitions)")]
    NoSuchPartition {
        /// The number asked for.
        index: usize,
        /// How many there are.
        count: usize,
    },
    /// A GPT that cannot be read.
    #[error("its GPT header is invalid: {0}")]
    BadGpt(&'static str),
}

/// The partition `index` of the disk image at `path`.
pub fn find(path: &Path, index: usize) -> Result<Partition, PartitionError> {
    let mut file = std::fs::File::open(path)?;
    let partitions = read_table(&mut file)?;
    partitions
        .get(index)
        .copied()
        .ok_or(PartitionError::NoSuchPartition {
            index,
            count: partitions.len(),
        })
}

/// Every partition of the table, in sfdisk's order.
pub fn read_table<F: Read + Seek>(file: &mut F) -> Result<Vec<Partition>, PartitionError> {
    let mbr = sector(file, 0)?;
    if mbr[510..512] != [0x55, 0xAA] {
        return Err(PartitionError::NoTable);
    }
    let entries = mbr_entries(&mbr);
    if entries.iter().any(|e| e.kind == PROTECTIVE) {
        return gpt(file);
    }
    let mut partitions: Vec<Partition> = entries
        .iter()
        .filter(|e| e.kind != 0 && e.sectors != 0)
        .map(|e| Partition {
            start: e.first * SECTOR,
            size: e.sectors * SECTOR,
        })
        .collect();
    if let Some(extended) = entries.iter().find(|e| EXTENDED.contains(&e.kind)) {
        partitions.extend(logical(file, extended.first)?);
    }
    Ok(partitions)
}

struct MbrEntry {
    kind: u8,
    first: u64,
    sectors: u64,
}

fn mbr_entries(sector: &[u8; SECTOR as usize]) -> Vec<MbrEntry> {
    (0..4)
        .map(|i| {
            let at = 446 + 16 * i;
            let u32_at = |o: usize| {
                u64::from(u32::from_le_bytes([
                    sector[at + o],
                    sector[at + o + 1],
                    sector[at + o + 2],
                    sector[at + o + 3],
                ]))
            };
            MbrEntry {
                kind: sector[at + 4],
                first: u32_at(8),
                sectors: u32_at(12),
            }
        })
        .collect()
}

/// The logical partitions: a chain of EBRs, each giving one partition relative to itself and
/// the next EBR relative to the extended partition's start.
fn logical<F: Read + Seek>(file: &mut F, base: u64) -> Result<Vec<Partition>, PartitionError> {
    let mut found = Vec::new();
    let mut ebr = base;
    while found.len() < MAX_LOGICAL {
        let block = sector(file, ebr)?;
        if block[510..512] != [0x55, 0xAA] {
            break;
        }
        let entries = mbr_entries(&block);
        if entries[0].kind != 0 && entries[0].sectors != 0 {
            found.push(Partition {
                start: (ebr + entries[0].first) * SECTOR,
                size: entries[0].sectors * SECTOR,
            });
        }
        if entries[1].kind == 0 || entries[1].first == 0 {
            break;
        }
        ebr = base + entries[1].first;
    }
    Ok(found)
}

fn gpt<F: Read + Seek>(file: &mut F) -> Result<Vec<Partition>, PartitionError> {
    let header = sector(file, 1)?;
    if &header[0..8] != b"EFI PART" {
        return Err(PartitionError::BadGpt(
            "no 'EFI PART' signature in sector 1",
        ));
    }
    let u32_at =
        |o: usize| u32::from_le_bytes([header[o], header[o + 1], header[o + 2], header[o + 3]]);
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[o..o + 8]);
        u64::from_le_bytes(b)
    };
    let entries_lba = u64_at(72);
    let count = u32_at(80);
    let entry_size = u32_at(84);
    if count > MAX_GPT_ENTRIES || !(128..=4096).contains(&entry_size) {
        return Err(PartitionError::BadGpt("implausible entry count or size"));
    }
    let mut table = vec![0u8; count as usize * entry_size as usize];
    file.seek(SeekFrom::Start(entries_lba.saturating_mul(SECTOR)))?;
    file.read_exact(&mut table)?;
    Ok(table
        .chunks(entry_size as usize)
        .filter(|entry| entry[0..16].iter().any(|&b| b != 0))
        .filter_map(|entry| {
            let lba = |o: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&entry[o..o + 8]);
                u64::from_le_bytes(b)
            };
            let (first, last) = (lba(32), lba(40));
            (last >= first).then(|| Partition {
                start: first * SECTOR,
                size: (last - first + 1) * SECTOR,
            })
        })
        .collect())
}

fn sector<F: Read + Seek>(file: &mut F, lba: u64) -> Result<[u8; SECTOR as usize], PartitionError> {
    let mut block = [0u8; SECTOR as usize];
    file.seek(SeekFrom::Start(lba.saturating_mul(SECTOR)))?;
    file.read_exact(&mut block)?;
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn entry(disk: &mut [u8], sector: u64, slot: usize, kind: u8, first: u32, sectors: u32) {
        let at = (sector * SECTOR) as usize + 446 + 16 * slot;
        disk[at + 4] = kind;
        disk[at + 8..at + 12].copy_from_slice(&first.to_le_bytes());
        disk[at + 12..at + 16].copy_from_slice(&sectors.to_le_bytes());
        let sig = (sector * SECTOR) as usize + 510;
        disk[sig..sig + 2].copy_from_slice(&[0x55, 0xAA]);
    }

    /// Slot 1 empty, slot 2 a Linux partition, slot 3 extended with two logical ones:
    /// sfdisk lists sda2, sda3 (the extended one), sda5, sda6.
    #[test]
    fn mbr_partitions_are_numbered_as_sfdisk_lists_them() {
        let mut disk = vec![0u8; 64 * SECTOR as usize];
        entry(&mut disk, 0, 1, 0x83, 2, 4);
        entry(&mut disk, 0, 2, 0x05, 10, 40);
        entry(&mut disk, 10, 0, 0x83, 1, 5);
        entry(&mut disk, 10, 1, 0x05, 10, 12);
        entry(&mut disk, 20, 0, 0x83, 2, 6);
        let parts = read_table(&mut Cursor::new(disk)).unwrap();
        assert_eq!(
            parts,
            vec![
                Partition {
                    start: 2 * 512,
                    size: 4 * 512
                },
                Partition {
                    start: 10 * 512,
                    size: 40 * 512
                },
                Partition {
                    start: 11 * 512,
                    size: 5 * 512
                },
                Partition {
                    start: 22 * 512,
                    size: 6 * 512
                },
            ]
        );
    }

    #[test]
    fn gpt_entries_in_use_are_listed_in_order() {
        let mut disk = vec![0u8; 64 * SECTOR as usize];
        entry(&mut disk, 0, 0, PROTECTIVE, 1, 63);
        let h = SECTOR as usize;
        disk[h..h + 8].copy_from_slice(b"EFI PART");
        disk[h + 72..h + 80].copy_from_slice(&2u64.to_le_bytes());
        disk[h + 80..h + 84].copy_from_slice(&4u32.to_le_bytes());
        disk[h + 84..h + 88].copy_from_slice(&128u32.to_le_bytes());
        for (slot, first, last) in [(1usize, 34u64, 40u64), (3, 41, 60)] {
            let at = 2 * SECTOR as usize + slot * 128;
            disk[at] = 0xAF;
            disk[at + 32..at + 40].copy_from_slice(&first.to_le_bytes());
            disk[at + 40..at + 48].copy_from_slice(&last.to_le_bytes());
        }
        let parts = read_table(&mut Cursor::new(disk)).unwrap();
        assert_eq!(
            parts,
            vec![
                Partition {
                    start: 34 * 512,
                    size: 7 * 512
                },
                Partition {
                    start: 41 * 512,
                    size: 20 * 512
                },
            ]
        );
    }

    #[test]
    fn a_disk_without_a_table_or_partition_is_named() {
        let blank = vec![0u8; 4 * SECTOR as usize];
        assert!(matches!(
            read_table(&mut Cursor::new(blank)),
            Err(PartitionError::NoTable)
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let mut disk = vec![0u8; 8 * SECTOR as usize];
        entry(&mut disk, 0, 0, 0x83, 2, 4);
        std::fs::write(&path, disk).unwrap();
        let error = find(&path, 3).unwrap_err().to_string();
        assert_eq!(error, "invalid partition number 3 (image has 1 partitions)");
    }
}
