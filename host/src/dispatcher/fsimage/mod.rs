//! File system images a deploy puts files into: ext2/3/4 images (whole, or a partition of a
//! disk image) changed with e2fsprogs as LAVA's e2fsprogs backend changes them, Android sparse
//! images unpacked and packed again with Debian's `simg2img`/`img2simg`, and the qemu guest
//! disk LAVA builds for a board whose image has no room for the overlay.
//!
//! Nothing here knows about jobs: callers pass files and say where they go.

pub mod debugfs;
pub mod partition;
pub mod sparse;
pub mod superblock;

#[cfg(test)]
mod tests;

pub use debugfs::{create, inject_file, inject_tar, FileSystem, Injected, TarInjection};

/// Why a file system image could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum FsImageError {
    /// No ext superblock where the file system should start.
    #[error("{image}: no ext2/3/4 file system at byte {offset} (is the image's format ext4, and its partition right?)")]
    NotExt {
        /// The image file.
        image: String,
        /// Where the file system was looked for.
        offset: u64,
    },
    /// What goes in does not fit.
    #[error("no space left in {image} for the overlay (it needs about {needed} bytes, {free} are free): make the image larger or drop the overlay")]
    NoSpace {
        /// The image file.
        image: String,
        /// Bytes needed (0 when debugfs found out while writing).
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// debugfs reported errors.
    #[error("debugfs failed on {image} ({status}): {errors}")]
    Debugfs {
        /// The image file.
        image: String,
        /// debugfs's exit status.
        status: String,
        /// Its first error lines.
        errors: String,
    },
    /// A name the tarball or the job gives that cannot be written.
    #[error("{0}")]
    BadName(String),
    /// The tarball cannot be read.
    #[error("{0}")]
    Tar(String),
    /// A file on the worker cannot be read or written.
    #[error("{0}")]
    Io(String),
    /// A tool is missing or failed.
    #[error("{0}")]
    Tool(String),
    /// The deploy's time ran out.
    #[error("{0}")]
    Timeout(String),
    /// The partition the job names is not there.
    #[error("{0}")]
    Partition(String),
}

impl FsImageError {
    /// Whether the job is at fault (its image or tarball), as LAVA raises JobError for these,
    /// rather than the worker.
    pub fn is_job_error(&self) -> bool {
        matches!(
            self,
            Self::NotExt { .. }
                | Self::NoSpace { .. }
                | Self::BadName(_)
                | Self::Tar(_)
                | Self::Partition(_)
        )
    }
}
