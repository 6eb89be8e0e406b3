//! `basalt jobs submit|list|show|cancel|logs|results`, against a master.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use super::{field, print_table, time_field, Client, MasterArgs};
use crate::cli::Format;

/// Flags of `basalt jobs submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// The job definition (LAVA pipeline YAML).
    pub file: PathBuf,
    /// Stream the job's log until it ends, then print its results; the exit status is 0
    /// only if the job completed.
    #[arg(long)]
    pub follow: bool,
    /// Run it on this device only.
    #[arg(long)]
    pub device: Option<String>,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags of `basalt jobs list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only jobs in this state.
    #[arg(long)]
    pub state: Option<String>,
    /// At most this many (newest first).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags naming one job.
#[derive(Args, Debug)]
pub struct JobArgs {
    /// The job id.
    pub id: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags of `basalt jobs wait`.
#[derive(Args, Debug)]
pub struct WaitArgs {
    /// The job id.
    pub id: u64,
    /// Give up after this many seconds (exit status 2); without it, wait as long as it takes.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags of `basalt jobs logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The job id.
    pub id: u64,
    /// Keep printing until the job ends.
    #[arg(long)]
    pub follow: bool,
    /// Print the log as stored (LAVA's YAML lines).
    #[arg(long)]
    pub raw: bool,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// `basalt jobs submit`.
pub fn submit(args: &SubmitArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let client = args.master.client();
    let path = match &args.device {
        Some(device) => format!("/api/v1/jobs?device={device}"),
        None => "/api/v1/jobs".into(),
    };
    let answer = client.send_text("POST", &path, &text)?;
    let id = answer
        .get("id")
        .and_then(Value::as_u64)
        .context("the master answered without a job id")?;
    println!("submitted job {id}");
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let job = follow_log(&client, id, true, false)?;
    println!();
    print_results(&client, id, Format::Text)?;
    let health = field(&job, "health");
    println!("\njob {id}: {health}");
    Ok(if health == "complete" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prints a job's log from the start, optionally until it ends; returns the job's last
/// state.
fn follow_log(client: &Client, id: u64, follow: bool, raw: bool) -> anyhow::Result<Value> {
    let mut offset = 0u64;
    let stdout = std::io::stdout();
    loop {
        let piece = client.get(&format!("/api/v1/jobs/{id}/logs?offset={offset}"))?;
        let text = piece.get("text").and_then(Value::as_str).unwrap_or("");
        let mut out = stdout.lock();
        for line in text.lines() {
            let shown = if raw { line.to_owned() } else { readable(line) };
            // A closed pipe (`| head`) ends the command quietly.
            if writeln!(out, "{shown}").is_err() {
                return Ok(piece);
            }
        }
        drop(out);
        offset = piece.get("end").and_then(Value::as_u64).unwrap_or(offset);
        let size = piece.get("size").and_then(Value::as_u64).unwrap_or(offset);
        let finished = field(&piece, "state") == "finished";
        if offset < size {
            continue;
        }
        if !follow || finished {
            return Ok(piece);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// One log line as `HH:MM:SS level message`.
fn readable(line: &str) -> String {
    let Ok(entry) = crate::yaml11::from_str(line.strip_prefix("- ").unwrap_or(line)) else {
        return line.to_owned();
    };
    let dt = field(&entry, "dt");
    let time = dt.get(11..19).unwrap_or(&dt);
    let message = match entry.get("msg") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    format!("{time} {:<8} {message}", field(&entry, "lvl"))
}

/// `basalt jobs list`.
pub fn list(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let mut path = format!("/api/v1/jobs?limit={}", args.limit);
    if let Some(state) = &args.state {
        path.push_str(&format!("&state={state}"));
    }
    let jobs = args.master.client().get(&path)?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = jobs
        .as_array()
        .into_iter()
        .flatten()
        .map(|j| {
            [
                "id",
                "name",
                "device_type",
                "state",
                "health",
                "actual_device",
            ]
            .iter()
            .map(|f| field(j, f))
            .collect()
        })
        .collect();
    print_table(&["ID", "NAME", "TYPE", "STATE", "HEALTH", "DEVICE"], &rows);
    Ok(ExitCode::SUCCESS)
}

/// `basalt jobs show`.
pub fn show(args: &JobArgs) -> anyhow::Result<ExitCode> {
    let job = args
        .master
        .client()
        .get(&format!("/api/v1/jobs/{}", args.id))?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&job)?);
        return Ok(ExitCode::SUCCESS);
    }
    for name in [
        "id",
        "name",
        "device_type",
        "state",
        "health",
        "actual_device",
        "worker",
        "submit_time",
        "start_time",
        "end_time",
        "failure_comment",
        "health_check",
    ] {
        let shown = if name.ends_with("_time") {
            time_field(&job, name)
        } else {
            field(&job, name)
        };
        println!("{name:<16} {shown}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `basalt jobs resubmit`.
pub fn resubmit(args: &JobArgs) -> anyhow::Result<ExitCode> {
    let answer = args
        .master
        .client()
        .post(&format!("/api/v1/jobs/{}/resubmit", args.id), &Value::Null)?;
    println!(
        "submitted job {} (again from job {})",
        field(&answer, "id"),
        args.id
    );
    Ok(ExitCode::SUCCESS)
}

/// `basalt jobs cancel`.
pub fn cancel(args: &JobArgs) -> anyhow::Result<ExitCode> {
    let answer = args
        .master
        .client()
        .post(&format!("/api/v1/jobs/{}/cancel", args.id), &Value::Null)?;
    println!("job {}: {}", args.id, field(&answer, "state"));
    Ok(ExitCode::SUCCESS)
}

/// `basalt jobs wait`.
pub fn wait(args: &WaitArgs) -> anyhow::Result<ExitCode> {
    let client = args.master.client();
    let deadline = args
        .timeout
        .map(|secs| std::time::Instant::now() + std::time::Duration::from_secs(secs));
    let mut unreachable_said = false;
    loop {
        match client.get(&format!("/api/v1/jobs/{}", args.id)) {
            Ok(job) if job["state"] == "finished" => {
                println!("job {}: finished, {}", args.id, field(&job, "health"));
                let complete = job["health"] == "complete";
                return Ok(ExitCode::from(if complete { 0 } else { 1 }));
            }
            Ok(_) => {}
            // No such job, or not allowed to see it: waiting cannot help.
            Err(e) if e.to_string().starts_with("the master refused") => return Err(e),
            Err(e) => {
                if !unreachable_said {
                    eprintln!("{e:#}; still waiting");
                    unreachable_said = true;
                }
            }
        }
        if deadline.is_some_and(|at| std::time::Instant::now() >= at) {
            eprintln!(
                "job {}: not finished within {}s",
                args.id,
                args.timeout.unwrap_or(0)
            );
            return Ok(ExitCode::from(2));
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// `basalt jobs logs`.
pub fn logs(args: &LogsArgs) -> anyhow::Result<ExitCode> {
    follow_log(&args.master.client(), args.id, args.follow, args.raw)?;
    Ok(ExitCode::SUCCESS)
}

/// `basalt jobs results`.
pub fn results(args: &JobArgs) -> anyhow::Result<ExitCode> {
    print_results(&args.master.client(), args.id, args.format)?;
    Ok(ExitCode::SUCCESS)
}

fn print_results(client: &Client, id: u64, format: Format) -> anyhow::Result<()> {
    let results = client.get(&format!("/api/v1/jobs/{id}/results"))?;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = results
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            ["suite", "name", "result", "measurement", "units"]
                .iter()
                .map(|f| field(r, f))
                .collect()
        })
        .collect();
    print_table(&["SUITE", "CASE", "RESULT", "MEASUREMENT", "UNITS"], &rows);
    Ok(())
}
