//! Canceling a job: SIGTERM (or SIGINT) asks the job to stop cleanly; a second one forces it
//! (after ending what the job started, so that a forced job leaves nothing behind).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Shared "stop now" flag, checked by every wait in the runner.
#[derive(Clone, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
    forced: Arc<AtomicBool>,
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

    /// Whether a second signal forced the job: the process exits 1 from the signal thread,
    /// and the job's own ending (which the forced end of its processes lets go on) must not
    /// exit first with the job's status.
    pub fn forced(&self) -> bool {
        self.forced.load(Ordering::SeqCst)
    }

    /// Asks the job to stop.
    pub fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    /// The flag, for code that polls it.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    /// Sets the flag on SIGTERM and SIGINT; a second signal while it is set runs `force`
    /// and exits the process (status 1), for jobs whose clean-up hangs.
    pub fn on_signals(&self, force: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
        let flag = self.flag.clone();
        let forced = self.forced.clone();
        std::thread::Builder::new()
            .name("basalt-signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    if flag.swap(true, Ordering::SeqCst) {
                        // Before anything is ended: the job's thread only goes on once its
                        // processes are gone, and by then it sees this.
                        forced.store(true, Ordering::SeqCst);
                        force();
                        std::process::exit(1);
                    }
                }
            })?;
        Ok(())
    }
}
