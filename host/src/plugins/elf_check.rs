//! A look at a library file before the dynamic loader maps it.
//!
//! `dlopen` trusts the file: a truncated library is mapped past its end and the first touch
//! of a missing page kills the process with SIGBUS. So every candidate is parsed first (with
//! the `object` crate) and refused unless it is a shared object for this machine whose
//! headers and loadable segments all lie inside the file. Only the headers are read (through
//! a read cache), not the whole library.

use std::path::Path;

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, ReadCache, ReadRef};

/// The ELF machine this process runs on.
fn host_machine() -> Option<u16> {
    match std::env::consts::ARCH {
        "x86_64" => Some(elf::EM_X86_64),
        "aarch64" => Some(elf::EM_AARCH64),
        "riscv64" => Some(elf::EM_RISCV),
        "powerpc64" => Some(elf::EM_PPC64),
        "s390x" => Some(elf::EM_S390),
        "loongarch64" => Some(elf::EM_LOONGARCH),
        _ => None,
    }
}

/// Checks the file at `path` (see [`check_shared_object`]).
pub fn check_file(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?
        .len();
    check_shared_object(&ReadCache::new(file), len)
}

/// Checks that `data` (`len` bytes) is a complete 64-bit ELF shared object for this machine;
/// the error says what is wrong with it in words an admin understands.
pub fn check_shared_object<'d, R: ReadRef<'d>>(data: R, len: u64) -> Result<(), String> {
    let header = elf::FileHeader64::<Endianness>::parse(data)
        .map_err(|e| format!("not an ELF file for this machine ({e})"))?;
    let endian = header
        .endian()
        .map_err(|e| format!("unsupported ELF byte order ({e})"))?;
    if header.e_type(endian) != elf::ET_DYN {
        return Err("an ELF file, but not a shared library".into());
    }
    if let Some(machine) = host_machine() {
        if header.e_machine(endian) != machine {
            return Err(format!(
                "a shared library for another processor (ELF machine {}, this host is {})",
                header.e_machine(endian),
                std::env::consts::ARCH
            ));
        }
    }
    let segments = header
        .program_headers(endian, data)
        .map_err(|e| format!("truncated or corrupt (program headers: {e})"))?;
    for segment in segments {
        let (offset, size) = segment.file_range(endian);
        if segment.p_type(endian) == elf::PT_LOAD && offset.saturating_add(size) > len {
            return Err(format!(
                "truncated: a loadable segment needs bytes {offset}..{} but the file has {len}",
                offset.saturating_add(size),
            ));
        }
    }
    header
        .section_headers(endian, data)
        .map_err(|e| format!("truncated or corrupt (section headers: {e})"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_truncated_files_are_refused_with_a_reason() {
        let empty: &[u8] = b"";
        assert!(check_shared_object(empty, 0)
            .unwrap_err()
            .contains("not an ELF file"));
        let stub: &[u8] = &[0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
        assert!(check_shared_object(stub, 8)
            .unwrap_err()
            .contains("not an ELF file"));
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // The test binary is an executable (PIE executables are ET_DYN too, so only check
        // the truncation path on it).
        let truncated = &me[..me.len() / 2];
        let error = check_shared_object(truncated, truncated.len() as u64).unwrap_err();
        assert!(error.contains("truncated"), "{error}");
    }
}
