//! U-Boot's legacy image header (`mkimage`'s 64 bytes), written in Rust so a worker needs no
//! u-boot-tools: stripped from a ramdisk a job marks `header: u-boot`, and put back on a
//! rebuilt ramdisk where the device sets `add_header: u-boot` (LAVA runs `mkimage -A ARCH -T
//! ramdisk -C none -d IN OUT`, which is what [`ramdisk_header`] writes).

use std::io::Read;

/// The header's length.
pub const HEADER_LEN: usize = 64;
const MAGIC: u32 = 0x2705_1956;
/// `IH_OS_LINUX`: mkimage's default operating system.
const OS_LINUX: u8 = 5;
/// `IH_TYPE_RAMDISK`.
const TYPE_RAMDISK: u8 = 3;
/// `IH_COMP_NONE`.
const COMP_NONE: u8 = 0;

/// An architecture as mkimage's `-A` names it, and its `IH_ARCH_*` number.
pub fn arch_code(name: &str) -> Option<u8> {
    Some(match name {
        "alpha" => 1,
        "arm" => 2,
        "x86" | "i386" => 3,
        "ia64" => 4,
        "mips" => 5,
        "mips64" => 6,
        "powerpc" | "ppc" => 7,
        "s390" => 8,
        "sh" => 9,
        "sparc" => 10,
        "sparc64" => 11,
        "m68k" => 12,
        "microblaze" => 14,
        "nios2" => 15,
        "blackfin" => 16,
        "avr32" => 17,
        "nds32" => 20,
        "arm64" => 22,
        "arc" => 23,
        "x86_64" => 24,
        "xtensa" => 25,
        "riscv" => 26,
        _ => return None,
    })
}

/// The header mkimage writes for a ramdisk of `data` (`-T ramdisk -C none`, load and entry
/// address 0, no name), stamped `time`.
pub fn ramdisk_header(arch: u8, data_len: u32, data_crc: u32, time: u32) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    header[8..12].copy_from_slice(&time.to_be_bytes());
    header[12..16].copy_from_slice(&data_len.to_be_bytes());
    // ih_load and ih_ep stay 0.
    header[24..28].copy_from_slice(&data_crc.to_be_bytes());
    header[28] = OS_LINUX;
    header[29] = arch;
    header[30] = TYPE_RAMDISK;
    header[31] = COMP_NONE;
    let header_crc = crc32fast::hash(&header);
    header[4..8].copy_from_slice(&header_crc.to_be_bytes());
    header
}

/// Reads past a legacy header at the start of `reader`, refusing anything that is not one
/// (LAVA cuts 64 bytes blindly; a wrong `header: u-boot` is better said than booted).
pub fn strip(reader: &mut impl Read) -> Result<(), String> {
    let mut header = [0u8; HEADER_LEN];
    reader
        .read_exact(&mut header)
        .map_err(|e| format!("cannot read its u-boot header: {e}"))?;
    let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if magic != MAGIC {
        return Err(format!(
            "it has no u-boot header (magic {magic:#010x}, not {MAGIC:#010x}); remove \
             `header: u-boot` from the job"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mkimage (where u-boot-tools is installed) reads the header as the one it writes.
    #[test]
    fn the_header_is_the_one_mkimage_writes_and_lists() {
        let data = b"a ramdisk's bytes".repeat(100);
        let header = ramdisk_header(
            arch_code("arm64").unwrap(),
            data.len() as u32,
            crc32fast::hash(&data),
            1_700_000_000,
        );
        let mut image = header.to_vec();
        image.extend(&data);
        let mut reader = &image[..];
        strip(&mut reader).unwrap();
        assert_eq!(reader, &data[..]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data"), &data).unwrap();
        let made = std::process::Command::new("mkimage")
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["-A", "arm64", "-T", "ramdisk", "-C", "none", "-d"])
            .arg(dir.path().join("data"))
            .arg(dir.path().join("image"))
            .output();
        let Ok(made) = made else {
            assert!(
                !super::super::tests::tools_required(),
                "mkimage (u-boot-tools) is required here"
            );
            return; // no u-boot-tools here
        };
        assert!(made.status.success(), "{made:?}");
        let theirs = std::fs::read(dir.path().join("image")).unwrap();
        assert_eq!(&theirs[..HEADER_LEN], &header[..]);
    }

    #[test]
    fn data_without_a_header_is_refused() {
        let error = strip(&mut &[0x1f_u8; 100][..]).unwrap_err();
        assert!(error.contains("no u-boot header"), "{error}");
        assert!(strip(&mut &b"short"[..])
            .unwrap_err()
            .contains("cannot read"));
        assert_eq!(arch_code("arm64"), Some(22));
        assert_eq!(arch_code("vax"), None);
    }
}
