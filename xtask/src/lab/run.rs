//! `cargo xtask lab run`: one job per board (`examples/jobs/`), followed to the end; prints
//! each board's results, boot time and whole-job time, and the peak memory of the slave and
//! of each job process; fails unless every job is Complete with the expected results. With
//! `--kill-slave-during-boot`, the slave is killed (SIGKILL) while board B is in u-boot and
//! started again: the job must still complete.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use super::layout::*;
use super::{processes, start_slave, wait_until, Cli};

/// What every lab job's test definition must report: (case, result).
const EXPECTED: &[(&str, &str)] = &[
    ("kernel-is-linux", "pass"),
    ("proc-mounted", "pass"),
    ("memory-total", "pass"),
    ("expected-failure", "fail"),
    // LAVA's helpers on the board's busybox: a test set, a background process, a reference.
    ("os-build", "pass"),
    ("background-process", "pass"),
    ("kernel-docs", "pass"),
];

/// Waits until `board` has passed its health check; fails if it went Bad.
pub fn wait_healthy(lab: &Layout, board: &str, within: Duration) -> anyhow::Result<()> {
    let cli = Cli::new(lab);
    let deadline = Instant::now() + within;
    loop {
        let device: Value =
            serde_json::from_str(&cli.output(&["devices", "show", board, "--format", "json"])?)?;
        match device["health"].as_str() {
            Some("good") => {
                println!("lab: {board} is good");
                return Ok(());
            }
            Some("bad") => {
                let why = device["history"]
                    .as_array()
                    .and_then(|h| h.last())
                    .map(|h| h["reason"].to_string())
                    .unwrap_or_default();
                bail!("{board}'s health check failed ({why}); its log: basalt jobs logs ID")
            }
            _ => {}
        }
        if Instant::now() > deadline {
            bail!("{board} was not checked within {}s", within.as_secs());
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Peak resident memory (VmHWM, KiB) of live processes, sampled while the jobs run.
#[derive(Default)]
struct Peaks {
    /// Per job id: the job process's peak.
    jobs: HashMap<u64, u64>,
    /// The slave's peak (over every slave process seen).
    slave: u64,
}

fn vm_hwm(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn job_id_of(command: &str) -> Option<u64> {
    let mut words = command.split(' ');
    words.by_ref().find(|w| *w == "--job-id")?;
    words.next()?.parse().ok()
}

fn sample(lab: &Layout, peaks: &Mutex<Peaks>) {
    for process in processes::find(&lab.dir) {
        let Some(hwm) = vm_hwm(process.pid) else {
            continue;
        };
        let Ok(mut peaks) = peaks.lock() else { return };
        if process.command.contains(" run ") {
            if let Some(id) = job_id_of(&process.command) {
                let peak = peaks.jobs.entry(id).or_default();
                *peak = (*peak).max(hwm);
            }
        } else if process.command.contains(" slave ") {
            peaks.slave = peaks.slave.max(hwm);
        }
    }
}

/// A log entry's time, in seconds since midnight UTC (`"dt": "2026-11-26T00:31:05.123456+00:00"`).
fn seconds_of_day(line: &str) -> Option<f64> {
    let at = line.split("\"dt\": \"").nth(1)?;
    let time = at.split('T').nth(1)?;
    let mut parts = time.splitn(3, ':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect::<String>()
        .parse()
        .ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}

/// How long the boot action (the job's second) took, from its start and end log lines.
fn boot_seconds(log: &str) -> Option<f64> {
    let start = log.lines().find(|l| l.contains("\"msg\": \"start: 2 "))?;
    let end = log.lines().find(|l| l.contains("\"msg\": \"end: 2 "))?;
    let elapsed = seconds_of_day(end)? - seconds_of_day(start)?;
    Some(if elapsed < 0.0 {
        elapsed + 86_400.0
    } else {
        elapsed
    })
}

struct Submitted {
    board: &'static str,
    id: u64,
}

fn submit(cli: &Cli, file: &std::path::Path) -> anyhow::Result<u64> {
    let out = cli.output(&["jobs", "submit", &file.display().to_string()])?;
    out.trim()
        .rsplit(' ')
        .next()
        .and_then(|id| id.parse().ok())
        .with_context(|| format!("no job id in {out:?}"))
}

fn job(cli: &Cli, id: u64) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&cli.output(&[
        "jobs",
        "show",
        &id.to_string(),
        "--format",
        "json",
    ])?)?)
}

fn log_of(cli: &Cli, id: u64) -> String {
    cli.output(&["jobs", "logs", &id.to_string(), "--raw"])
        .unwrap_or_default()
}

/// Kills the slave while board B's job is in u-boot, then starts it again.
fn kill_slave_during_boot(lab: &Layout, cli: &Cli, id: u64) -> anyhow::Result<()> {
    wait_until("board B to reach u-boot", Duration::from_secs(300), || {
        Ok(log_of(cli, id).contains("U-Boot"))
    })?;
    let slaves: Vec<_> = processes::find(&lab.dir)
        .into_iter()
        .filter(|p| p.command.contains(" slave "))
        .collect();
    if slaves.is_empty() {
        bail!("no slave to kill");
    }
    for slave in &slaves {
        println!(
            "lab: board B is in u-boot: kill -9 the slave (pid {})",
            slave.pid
        );
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &slave.pid.to_string()])
            .status();
    }
    std::thread::sleep(Duration::from_secs(3));
    let pid = start_slave(lab)?;
    println!("lab: slave started again (pid {pid}); it re-adopts job {id}");
    Ok(())
}

pub fn run(lab: &Layout, kill_slave: bool) -> anyhow::Result<()> {
    let cli = Cli::new(lab);
    if !cli.succeeds(&["workers", "show", WORKER]) {
        bail!("the lab is not up: run `cargo xtask lab up` first");
    }
    for board in BOARDS {
        wait_healthy(lab, board, Duration::from_secs(600))?;
    }
    let jobs = [
        (BOARD_A, lab.root.join("examples/jobs/qemu-x86.yaml")),
        (BOARD_B, lab.root.join("examples/jobs/uboot-x86.yaml")),
        (BOARD_C, lab.root.join("examples/jobs/ipxe-x86.yaml")),
        (BOARD_D, lab.root.join("examples/jobs/depthcharge.yaml")),
        (BOARD_E, lab.root.join("examples/jobs/barebox.yaml")),
        (BOARD_F, lab.root.join("examples/jobs/fastboot.yaml")),
        (BOARD_G, lab.root.join("examples/jobs/grub-x86.yaml")),
    ];
    let peaks = Arc::new(Mutex::new(Peaks::default()));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (lab, peaks, done) = (lab.clone(), peaks.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                sample(&lab, &peaks);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let mut submitted = Vec::new();
    for (board, file) in &jobs {
        let id = submit(&cli, file)?;
        println!("lab: job {id} submitted for {board} ({})", file.display());
        submitted.push(Submitted { board, id });
    }
    if kill_slave {
        if let Some(b) = submitted.iter().find(|s| s.board == BOARD_B) {
            kill_slave_during_boot(lab, &cli, b.id)?;
        }
    }
    let mut failures = Vec::new();
    for s in &submitted {
        wait_until(
            &format!("job {} on {}", s.id, s.board),
            Duration::from_secs(600),
            || Ok(job(&cli, s.id)?["state"] == "finished"),
        )?;
    }
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let peaks = peaks
        .lock()
        .map_err(|_| anyhow::anyhow!("sampler panicked"))?;

    println!();
    for s in &submitted {
        let record = job(&cli, s.id)?;
        let log = log_of(&cli, s.id);
        let whole = match (record["start_time"].as_i64(), record["end_time"].as_i64()) {
            (Some(start), Some(end)) => format!("{:.1} s", (end - start) as f64 / 1000.0),
            _ => "?".into(),
        };
        let boot = boot_seconds(&log)
            .map(|b| format!("{b:.1} s"))
            .unwrap_or_else(|| "?".into());
        let memory = peaks
            .jobs
            .get(&s.id)
            .map(|kb| format!("{:.1} MiB", *kb as f64 / 1024.0))
            .unwrap_or_else(|| "?".into());
        println!(
            "== {} — job {}: {} · boot {boot} · whole job {whole} · job process peak RSS {memory}",
            s.board,
            s.id,
            record["health"].as_str().unwrap_or("?")
        );
        println!("   {}/jobs/{}", lab.url(), s.id);
        print!("{}", cli.output(&["jobs", "results", &s.id.to_string()])?);
        if record["health"] != "complete" {
            failures.push(format!(
                "job {} on {} is {} ({})",
                s.id, s.board, record["health"], record["failure_comment"]
            ));
        }
        let results: Value = serde_json::from_str(&cli.output(&[
            "jobs",
            "results",
            &s.id.to_string(),
            "--format",
            "json",
        ])?)?;
        for (case, expected) in EXPECTED {
            let found = results.as_array().and_then(|all| {
                all.iter()
                    .find(|r| r["name"] == *case && r["suite"] != "lava")
            });
            match found {
                Some(r) if r["result"] == *expected => {
                    if *case == "memory-total"
                        && r["measurement"]
                            .as_str()
                            .and_then(|m| m.parse::<f64>().ok())
                            .is_none_or(|m| m <= 0.0)
                    {
                        failures.push(format!("job {}: memory-total has no measurement", s.id));
                    }
                }
                Some(r) => failures.push(format!(
                    "job {}: {case} is {}, expected {expected}",
                    s.id, r["result"]
                )),
                None => failures.push(format!("job {}: no result for {case}", s.id)),
            }
        }
        // Board C: iPXE was stopped with Ctrl-B at its own prompt and loaded the kernel over
        // TFTP from the worker.
        if s.board == BOARD_C && !log.contains("iPXE>") {
            failures.push(format!(
                "job {}: the board never showed iPXE's prompt",
                s.id
            ));
        }
        // Board G: the job interrupted Debian's GRUB for its command line, and GRUB loaded
        // the kernel from the worker's TFTP root.
        if s.board == BOARD_G
            && !(log.contains("GNU GRUB") && log.contains("linux (tftp,10.0.2.2)/"))
        {
            failures.push(format!(
                "job {}: the board's GRUB was not given the kernel over TFTP",
                s.id
            ));
        }
        // Board D: depthcharge fetched a FIT image over TFTP that parsed as one, and the
        // command line file the boot wrote.
        if s.board == BOARD_D
            && !(log.contains("FIT image with kernel") && log.contains("Command line: "))
        {
            failures.push(format!(
                "job {}: depthcharge did not load a FIT image and a command line over TFTP",
                s.id
            ));
        }
        // Board F: the fastboot client wrote the system image to its partition byte for
        // byte and booted the boot image.
        if s.board == BOARD_F {
            let flashed = std::fs::read(lab.board(BOARD_F).join("fastboot/partitions/system"))
                .unwrap_or_default();
            let image = std::fs::read(lab.images().join("system.img")).unwrap_or_default();
            if flashed.is_empty() || flashed != image {
                failures.push(format!(
                    "job {}: the system partition does not hold system.img",
                    s.id
                ));
            }
            if !log.contains(&format!("fastboot -s tcp:127.0.0.1:{FASTBOOT_PORT} boot ")) {
                failures.push(format!(
                    "job {}: the board was not booted with fastboot",
                    s.id
                ));
            }
        }
        // Board E: barebox's bootm read the kernel and the dtb from /mnt/tftp.
        if s.board == BOARD_E && !log.contains("Loading ARM Linux zImage '/mnt/tftp/") {
            failures.push(format!(
                "job {}: barebox did not load the kernel from /mnt/tftp",
                s.id
            ));
        }
        // Board B: the modules reached the board, and u-boot found the header the deploy
        // wrote intact.
        if s.board == BOARD_B {
            let found = results.as_array().and_then(|all| {
                all.iter()
                    .find(|r| r["name"] == "modules-installed" && r["suite"] != "lava")
            });
            if found.is_none_or(|r| r["result"] != "pass") {
                failures.push(format!("job {}: the modules are not on the board", s.id));
            }
            if !log.contains("Verifying Checksum ... OK") {
                failures.push(format!(
                    "job {}: u-boot did not verify the ramdisk's u-boot header",
                    s.id
                ));
            }
        }
        println!();
    }
    println!(
        "slave peak RSS {:.1} MiB{}",
        peaks.slave as f64 / 1024.0,
        if kill_slave {
            " (over both slave processes)"
        } else {
            ""
        }
    );
    if !failures.is_empty() {
        bail!(
            "the lab's jobs did not do what they should:\n  {}",
            failures.join("\n  ")
        );
    }
    println!("lab: every board ran its job to the expected results");
    Ok(())
}
