//! `cargo xtask fuzz TARGET --seconds N [--seed S] [--executions E]`: the in-process fuzzer
//! (`host/examples/fuzz.rs`) in a release build, and the short pass over every target that
//! `cargo xtask test` ends with. `cargo xtask fuzz TARGET --replay FILE` runs one saved input
//! (`target/fuzz/TARGET/crash-N`, or `in-flight`, left by a run that aborted) with its panic
//! shown.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

/// Every fuzz target.
pub const TARGETS: [&str; 5] = ["job", "dictionary", "frames", "xmlrpc", "rest"];

/// Seconds per target of the pass `cargo xtask test` makes.
const SMOKE_SECONDS: &str = "3";

/// Parses the task's arguments and runs one target.
pub fn main(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let usage = "usage: cargo xtask fuzz TARGET --seconds N [--seed S] [--executions E] \
                 | cargo xtask fuzz TARGET --replay FILE \
                 (targets: job dictionary frames xmlrpc rest)";
    let Some(target) = args.first().filter(|t| TARGETS.contains(&t.as_str())) else {
        bail!("{usage}");
    };
    let (mut seconds, mut seed, mut executions, mut replay) = ("60".to_owned(), None, None, None);
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .with_context(|| format!("{flag} needs a value\n{usage}"))?;
        match flag.as_str() {
            "--seconds" => seconds = value.clone(),
            "--seed" => seed = Some(value.clone()),
            "--executions" => executions = Some(value.clone()),
            "--replay" => replay = Some(value.clone()),
            other => bail!("unknown argument {other:?}\n{usage}"),
        }
    }
    super::cargo(
        root,
        &["build", "--release", "-p", "basalt", "--example", "fuzz"],
    )?;
    let fuzz = root.join("target/release/examples/fuzz");
    if let Some(file) = replay {
        return run(&fuzz, &[target.clone(), "replay".to_owned(), file]);
    }
    let mut fuzz_args = vec![target.clone(), seconds];
    fuzz_args.push(seed.unwrap_or_else(|| std::process::id().to_string()));
    if let Some(executions) = executions {
        fuzz_args.push(executions);
    }
    run(&fuzz, &fuzz_args)
}

/// A few seconds of every target with the debug build `cargo test` made.
pub fn smoke(root: &Path) -> anyhow::Result<()> {
    let fuzz = root.join("target/debug/examples/fuzz");
    for target in TARGETS {
        run(&fuzz, &[target.to_owned(), SMOKE_SECONDS.to_owned()])?;
    }
    Ok(())
}

fn run(fuzz: &Path, args: &[String]) -> anyhow::Result<()> {
    let status = Command::new(fuzz)
        .args(args)
        .status()
        .with_context(|| format!("cannot run {}", fuzz.display()))?;
    if !status.success() {
        bail!(
            "fuzz {} found crashes or crashed ({status})",
            args.join(" ")
        );
    }
    Ok(())
}
