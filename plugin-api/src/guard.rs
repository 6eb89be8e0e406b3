//! Keeps panics on their own side of the boundary.
//!
//! Unwinding through an `extern "C"` call is undefined behaviour and abi_stable aborts on it,
//! which would take the whole dispatcher down. Every call into a driver goes through
//! [`guard`], which turns a panic into a [`PluginError`] of kind `BUG`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::std_types::RResult;

use crate::PluginError;

/// Runs a driver call, turning its `Result` into the ABI's `RResult` and a panic into a bug
/// report that names the panic message.
pub fn guard<T>(call: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, PluginError> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(result) => result.into(),
        Err(payload) => RResult::RErr(PluginError::bug(format!(
            "driver panicked: {}",
            panic_message(payload.as_ref())
        ))),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(non-string panic payload)"
    }
}

/// Converts a timeout in whole milliseconds (as it crosses the ABI) into a `Duration`.
pub(crate) fn millis(ms: u64) -> std::time::Duration {
    std::time::Duration::from_millis(ms)
}

/// Converts a `Duration` into whole milliseconds for the ABI, saturating.
pub fn to_millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
