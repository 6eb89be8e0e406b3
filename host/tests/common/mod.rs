//! Shared by the host's integration tests: where LAVA's fixtures are.

use std::path::{Path, PathBuf};

/// `../shared/lava` beside the repository, or `None` (with a message) when it is missing —
/// except under `CI=true`, where a missing fixture directory fails the test.
pub fn lava_fixtures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/lava");
    if dir.join("devices").is_dir() && dir.join("jobs.json").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "LAVA fixtures missing at {} (required under CI=true)",
        dir.display()
    );
    eprintln!("skipping: LAVA fixtures not found at {}", dir.display());
    None
}
