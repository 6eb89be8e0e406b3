//! Console matcher throughput: how fast the expect engine scans board output for several
//! patterns at once (a boot log of 256 MiB with the awaited prompt at its very end).
//!
//! Run with `cargo xtask bench console`. Board output is split into lines for the job log as
//! it goes (to a discarding log here), as in a real job.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use basalt::console::Expecter;
use basalt::plugins::ConsoleStream;
use basalt_plugin_api::{console_box, Console, Log, PluginError};

const TOTAL: usize = 256 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

struct Replay(VecDeque<Vec<u8>>);

impl Console for Replay {
    fn read(&mut self, _max: usize, _timeout: Duration) -> Result<Vec<u8>, PluginError> {
        Ok(self.0.pop_front().unwrap_or_default())
    }
    fn write(&mut self, _data: &[u8]) -> Result<(), PluginError> {
        Ok(())
    }
    fn close(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

fn main() {
    let line = "[   12.345678] usb 1-1: new high-speed USB device number 2 using ehci-platform\r\n";
    let mut chunk = String::new();
    while chunk.len() + line.len() <= CHUNK {
        chunk.push_str(line);
    }
    let mut chunks: VecDeque<Vec<u8>> = VecDeque::new();
    let mut total = 0;
    while total < TOTAL {
        chunks.push_back(chunk.clone().into_bytes());
        total += chunk.len();
    }
    chunks.push_back(b"\r\nroot@board:~# ".to_vec());
    total += 16;
    let patterns: Vec<String> = [
        r"root@board:~# ",
        r"login:\s*$",
        r"Kernel panic - not syncing",
        r"<LAVA_SIGNAL_(\w+)([^>\r\n]*)>",
        r"(Resetting CPU|Must RESET board to recover|TIMEOUT)",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect();
    let stream = ConsoleStream::in_process("replay", console_box(Replay(chunks)));
    let mut expecter = Expecter::new(stream, Log::discard());
    let started = Instant::now();
    let found = expecter
        .expect(&patterns, Duration::from_secs(600))
        .expect("the prompt is at the end");
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(found.index, 0);
    println!(
        "console matcher: {} MiB scanned for {} patterns in {:.2} s = {:.0} MB/s",
        total / (1024 * 1024),
        patterns.len(),
        elapsed,
        total as f64 / elapsed / 1e6
    );
}
