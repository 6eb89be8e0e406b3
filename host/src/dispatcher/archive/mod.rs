//! Archive and image formats a deploy reads and writes: the compressions LAVA names, cpio
//! (`newc`) ramdisks, tarballs, and U-Boot's legacy header. Formats only: which artifact gets
//! what is the deploy's business.

pub mod compression;
pub mod cpio;
pub mod tarball;
pub mod uimage;

pub use compression::Compression;

#[cfg(test)]
pub(crate) mod tests {
    /// Whether a missing third-party tool fails a test instead of skipping it (CI, or
    /// `BASALT_REQUIRE_TOOLS` as `.ci/run` sets once it installed them).
    pub(crate) fn tools_required() -> bool {
        std::env::var("CI").as_deref() == Ok("true")
            || std::env::var_os("BASALT_REQUIRE_TOOLS").is_some()
    }
}
