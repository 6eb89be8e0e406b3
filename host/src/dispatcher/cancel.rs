//! Canceling a job: SIGTERM (or SIGINT) asks the job to stop cleanly; a second one within
//! the grace period forces it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Shared "stop now" flag, checked by every wait in the runner.
#[derive(Clone, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
}

impl Cancel {
    /// A flag nobody has set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the job was asked to stop.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Asks the job to stop.
    pub fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// The flag, for code that polls it.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    /// Sets the flag on SIGTERM and SIGINT; a second signal while it is set exits the
    /// process at once (status 1), for jobs whose clean-up hangs.
    pub fn on_signals(&self) -> std::io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        for signal in [SIGTERM, SIGINT] {
            // Order matters: the conditional shutdown sees the flag as it was before this
            // signal, so the first signal only sets it.
            signal_hook::flag::register_conditional_shutdown(signal, 1, self.flag.clone())?;
            signal_hook::flag::register(signal, self.flag.clone())?;
        }
        Ok(())
    }
}
