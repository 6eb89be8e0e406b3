//! Project automation, run as `cargo xtask <task>` (an alias in `.cargo/config.toml`).
//!
//! Tasks: `test` (build everything, then run every test), `demo` (the product's main job),
//! `soak` (random kill -9 of the daemons during jobs, checked byte for byte), `fuzz` (the
//! in-process fuzzer),
//! `lab` (a real lab of qemu boards on this machine), `bench <name>` (benchmarks that print
//! figures), `ci` (what `.ci/run` checks). Only cargo and a shell are needed, and for `lab`
//! Debian's packages, which it installs.

mod bench_run;
mod demo;
mod fuzz;
mod lab;
mod leftovers;
mod packages;
mod simlab;
mod soak;
#[cfg(test)]
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  test [ARGS...]        build the workspace (binary, plugins, fixtures), then cargo test --workspace
  demo                  a master, a slave and a simulated board: submit a job, follow it, show results
  bench plugin-call     host -> plugin -> host call overhead (release build)
  bench render          render + parse LAVA's 69 test devices, cold and warm (release build)
  bench console         console matcher throughput over a 256 MiB boot log (release build)
  bench run             peak RSS of `basalt run` on a passing job (release build)
  bench deploy          decompress-and-write of a 512 MiB image as gz, xz, zstd against
                        gzip -dc, xz -dc, zstd -dc, with peak RSS (release build)
  bench parse           job YAML, nested YAML, XML-RPC and JSON from 64 KiB to the limits, and
                        past them, against PyYAML's libyaml loader and Python's parsers
  bench scheduler       one scheduling pass: 10,000 queued jobs, 1,000 devices (release build)
  bench master          the master end to end: store-backed scheduling pass, submit->START
                        latency, log lines/s into storage, the HTTP APIs under load (REST,
                        web, lavacli log polling), CPU with 2,000 pinging slaves; logs and
                        pings over plaintext and CURVE side by side
  lab up|down|status    a real lab on this machine (Debian packages, 127.0.0.1): board A an
                        x86_64 qemu, board B qemu + u-boot + ser2net + pdudaemon + TFTP; a
                        master and a slave; health checks; `down` leaves no process
  lab run [--kill-slave-during-boot]
                        one job per board (examples/jobs/), results, boot and job times,
                        peak memory of the slave and the job processes
  soak [--runs N] [--seed S]
                        N runs (default 100) of a job with kill -9 of the master, the slave
                        or both at a random moment: each job complete, its log byte for byte
                        and every line once; prints the figures
  fuzz TARGET --seconds N [--seed S] [--executions E]
                        the in-process fuzzer (release) on job, dictionary, frames, xmlrpc
                        or rest; prints executions and crashes (test runs each for 3 s)
  ci                    cargo fmt --check, clippy -D warnings, then test";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> anyhow::Result<()> {
    let root = project_root();
    match args.first().map(String::as_str) {
        Some("test") => test(&root, &args[1..]),
        Some("demo") => demo::run(&root),
        Some("soak") => soak::main(&root, &args[1..]),
        Some("fuzz") => fuzz::main(&root, &args[1..]),
        Some("lab") => lab::main(&root, &args[1..]),
        Some("bench") => match args.get(1).map(String::as_str) {
            Some("plugin-call") => {
                cargo(&root, &["build", "--release", "--workspace"])?;
                cargo(
                    &root,
                    &["bench", "--package", "basalt", "--bench", "plugin_call"],
                )
            }
            Some("console") => cargo(
                &root,
                &["bench", "--package", "basalt", "--bench", "console_match"],
            ),
            Some("run") => bench_run::run(&root),
            Some("scheduler") => cargo(
                &root,
                &["bench", "--package", "basalt", "--bench", "scheduler"],
            ),
            Some("master") => cargo(
                &root,
                &["bench", "--package", "basalt", "--bench", "master"],
            ),
            Some("deploy") => cargo(
                &root,
                &["bench", "--package", "basalt", "--bench", "deploy"],
            ),
            Some("render") => cargo(
                &root,
                &["bench", "--package", "basalt", "--bench", "render_devices"],
            ),
            Some("parse") => cargo(&root, &["bench", "--package", "basalt", "--bench", "parse"]),
            other => bail!("unknown benchmark {other:?}\n\n{USAGE}"),
        },
        Some("ci") => {
            cargo(&root, &["fmt", "--all", "--", "--check"])?;
            cargo(
                &root,
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ],
            )?;
            test(&root, &[])
        }
        Some("help") | Some("--help") | Some("-h") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task {other:?}\n\n{USAGE}"),
    }
}

/// The workspace root, from this crate's location (works from any current directory).
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds first so the end-to-end tests find `basalt` and every plugin library (cargo does
/// not build another package's cdylib for a test that does not depend on it).
fn test(root: &Path, extra: &[String]) -> anyhow::Result<()> {
    packages::ensure(packages::TEST, "the tests")?;
    packages::ensure_lava_dispatcher()?;
    cargo(root, &["build", "--workspace"])?;
    let mut args = vec!["test", "--workspace"];
    args.extend(extra.iter().map(String::as_str));
    // Every process the tests start inherits the session mark; none may outlive them.
    let session = leftovers::Session::new(leftovers::TESTS, "tests");
    let tests = cargo_with(root, &args, &[session.env()]);
    let left = session.end_leftovers();
    if let (Err(_), Err(left)) = (&tests, &left) {
        // Both failed: say what was left too, not only that the tests failed.
        eprintln!("xtask: {left:#}");
    }
    tests?;
    left?;
    // A short pass of every fuzz target (its binary is built by cargo test).
    fuzz::smoke(root)
}

/// Runs cargo in the workspace root, failing if it fails. Installs the system libraries the
/// workspace links first.
fn cargo(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    cargo_with(root, args, &[])
}

/// [`cargo`] with extra environment variables.
fn cargo_with(root: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    packages::ensure(packages::BUILD, "building basalt")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}
