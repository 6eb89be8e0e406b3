//! Archive and image formats a deploy reads and writes: the compressions LAVA names, cpio
//! (`newc`) ramdisks, tarballs, and U-Boot's legacy header. Formats only: which artifact gets
//! what is the deploy's business.

pub mod compression;
pub mod cpio;
pub mod tarball;
pub mod uimage;

pub use compression::Compression;
