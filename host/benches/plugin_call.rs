//! Plugin call overhead: host -> plugin -> host for a no-op power `state`.
//!
//! Run with `cargo xtask bench plugin-call` (which builds the release plugins first). Prints
//! nanoseconds per call for: the `command` power driver loaded from its shared library, and
//! for reference the same ABI trait object built in-process (no dynamic library involved).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use basalt::plugins::Registry;
use basalt_plugin_api::{power_driver_box, to_millis, Log, PluginError, PowerDriver, PowerState};

const CALLS: u32 = 1_000_000;
const ROUNDS: usize = 7;

/// Runs `call` CALLS times per round and returns the per-call times of each round, sorted.
fn measure(mut call: impl FnMut()) -> Vec<f64> {
    for _ in 0..CALLS / 10 {
        call();
    }
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS {
                call();
            }
            start.elapsed().as_nanos() as f64 / f64::from(CALLS)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds
}

fn report(name: &str, rounds: &[f64]) {
    println!(
        "{name:<44} min {:>7.1} ns/call   median {:>7.1} ns/call   ({ROUNDS} rounds x {CALLS} calls)",
        rounds[0],
        rounds[rounds.len() / 2]
    );
}

struct NoOp;

impl PowerDriver for NoOp {
    fn on(&self, _: Duration) -> Result<(), PluginError> {
        Ok(())
    }
    fn off(&self, _: Duration) -> Result<(), PluginError> {
        Ok(())
    }
    fn reboot(&self, _: Duration) -> Result<(), PluginError> {
        Ok(())
    }
}

fn main() {
    let build_dir: PathBuf = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .expect("bench binary lives in target/<profile>/deps");
    let library = build_dir.join("libbasalt_power_command.so");
    assert!(
        library.is_file(),
        "{} missing: run `cargo xtask bench plugin-call`, which builds the plugins first",
        library.display()
    );
    let registry = Registry::load_files([library.clone()]);
    assert!(registry.errors().is_empty(), "{:?}", registry.errors());
    let driver = registry
        .power("command", r#"{"power_on": "true"}"#, Log::discard())
        .expect("build the command power driver");
    let timeout = Duration::from_secs(1);

    println!("plugin call overhead ({})", library.display());
    let loaded = measure(|| {
        let state = driver.state(black_box(timeout));
        assert!(matches!(state, Ok(PowerState::Unknown)));
    });
    report("power.state via cdylib (host wrapper)", &loaded);

    let in_process = power_driver_box(NoOp);
    let local = measure(|| {
        let state = in_process.state(black_box(to_millis(timeout)));
        assert!(state.is_ok());
    });
    report("power.state via in-process ABI object", &local);

    let direct = NoOp;
    let plain = measure(|| {
        let state = black_box(&direct).state(black_box(timeout));
        assert!(state.is_ok());
    });
    report("power.state as a plain Rust call", &plain);
}
