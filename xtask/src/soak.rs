//! `cargo xtask soak --runs N [--seed S]`: the fault campaign as a script. Each run starts a
//! master and a slave (the end-to-end harness's cluster, with the simulated board), submits a
//! job whose test prints numbered lines, and at a random moment kills the master, the slave
//! or both with SIGKILL, then starts them again after a random pause. The job must end
//! complete, the master's log must be byte for byte what the job process wrote, and every
//! numbered line and the final result must be in it exactly once.
//!
//! A run that fails is reported with its seed (its choices follow from it) and the soak goes
//! on; the task fails if any run did. The figures at the end are what the closing notes of
//! the correctness issues quote.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use basalt_e2e::cluster::Cluster;

/// Numbered lines each job prints.
const LINES: u32 = 40;
/// How long a run may take before it counts as lost.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// What a run kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    Master,
    Slave,
    Both,
}

/// One run's random choices.
#[derive(Debug, Clone, Copy)]
struct Plan {
    victim: Victim,
    /// After the job is running, how long to wait before the kill.
    kill_after: Duration,
    /// How long the killed daemons stay down.
    down_for: Duration,
}

/// xorshift64*: enough to spread kills over a job's life, and reproducible from a seed
/// without a dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn millis(&mut self, below: u64) -> Duration {
        Duration::from_millis(self.next() % below)
    }

    fn plan(&mut self) -> Plan {
        let victim = match self.next() % 3 {
            0 => Victim::Master,
            1 => Victim::Slave,
            _ => Victim::Both,
        };
        Plan {
            victim,
            // The job's test prints for 4 s after a boot of about 1 s: kills land in the
            // boot, the test and the final result.
            kill_after: self.millis(5_500),
            down_for: self.millis(3_000),
        }
    }
}

/// How one run went.
struct Outcome {
    plan: Plan,
    took: Duration,
    failure: Option<String>,
}

/// Parses `--runs N [--seed S]` and runs the soak.
pub fn main(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let mut runs = 100u32;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("{name} needs a value"))
                .cloned()
        };
        match arg.as_str() {
            "--runs" => runs = value("--runs")?.parse().context("--runs takes a number")?,
            "--seed" => seed = value("--seed")?.parse().context("--seed takes a number")?,
            other => bail!("soak: unknown argument {other:?} (use --runs N [--seed S])"),
        }
    }
    super::cargo(root, &["build", "--workspace"])?;
    // The harness finds `basalt` and `simboard` from here.
    std::env::set_var("BASALT_BIN", root.join("target/debug/basalt"));
    println!("soak: {runs} runs, seed {seed}");
    let session = crate::leftovers::Session::new(crate::leftovers::SOAK, "soak");
    let (var, mark) = session.env();
    std::env::set_var(var, mark);
    let mut random = Random(seed);
    let mut outcomes = Vec::new();
    for run in 1..=runs {
        let run_seed = random.next() | 1;
        let outcome = soak_once(Random(run_seed));
        match &outcome.failure {
            None => println!(
                "run {run:>3}: ok    kill {:<6} {:>5} ms into the job, down {:>4} ms, {:.1} s",
                format!("{:?}", outcome.plan.victim).to_lowercase(),
                outcome.plan.kill_after.as_millis(),
                outcome.plan.down_for.as_millis(),
                outcome.took.as_secs_f64()
            ),
            Some(why) => println!("run {run:>3}: FAIL  (run seed {run_seed}) {why}"),
        }
        outcomes.push(outcome);
    }
    let left = session.end_leftovers();
    summarize(&outcomes);
    left?;
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    if failed > 0 {
        bail!("{failed} of {runs} soak runs failed");
    }
    Ok(())
}

fn summarize(outcomes: &[Outcome]) {
    let count = |victim| outcomes.iter().filter(|o| o.plan.victim == victim).count();
    let correct = outcomes.iter().filter(|o| o.failure.is_none()).count();
    let mut took: Vec<f64> = outcomes.iter().map(|o| o.took.as_secs_f64()).collect();
    took.sort_by(f64::total_cmp);
    let median = took.get(took.len() / 2).copied().unwrap_or_default();
    let worst = took.last().copied().unwrap_or_default();
    println!(
        "\nsoak: {correct}/{} runs correct (kill -9 of the master {}, the slave {}, both {}); \
         every correct run: job complete, master log byte-identical to the job's, each of \
         {LINES} numbered lines and the final result once; run time median {median:.1} s, \
         worst {worst:.1} s",
        outcomes.len(),
        count(Victim::Master),
        count(Victim::Slave),
        count(Victim::Both),
    );
}

/// One run; a panic of the harness (a timeout, a refused command) is a failure too.
fn soak_once(mut random: Random) -> Outcome {
    let plan = random.plan();
    let started = Instant::now();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| run(plan)));
    let failure = match result {
        Ok(Ok(())) => None,
        Ok(Err(why)) => Some(why),
        Err(panic) => Some(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "the harness panicked".into()),
        ),
    };
    Outcome {
        plan,
        took: started.elapsed(),
        failure,
    }
}

fn run(plan: Plan) -> Result<(), String> {
    let mut cluster = Cluster::new();
    let mut master = Some(cluster.start_master());
    cluster.register_board();
    let mut slave = Some(cluster.start_slave());
    let count = format!("for i in $(seq 1 {LINES}); do echo numbered-line-$i; sleep 0.1; done");
    let job = cluster.job(
        "soak",
        &[
            "lava-test-case before --shell true",
            &count,
            "lava-test-case after --result pass",
        ],
    );
    let id = cluster.submit(&job);
    cluster.wait_state(id, "running", RUN_LIMIT);
    std::thread::sleep(plan.kill_after);
    if matches!(plan.victim, Victim::Master | Victim::Both) {
        if let Some(master) = master.take() {
            master.kill();
        }
    }
    if matches!(plan.victim, Victim::Slave | Victim::Both) {
        if let Some(slave) = slave.take() {
            slave.kill();
        }
    }
    std::thread::sleep(plan.down_for);
    if master.is_none() {
        master = Some(cluster.start_master());
    }
    if slave.is_none() {
        slave = Some(cluster.start_slave());
    }
    let record = cluster.wait_state(id, "finished", RUN_LIMIT);
    if record["health"] != "complete" {
        return Err(format!("job {id} ended {}: {record}", record["health"]));
    }
    check_log(&cluster, id)?;
    drop((master, slave));
    Ok(())
}

/// The master's log is the job process's, byte for byte; each numbered line, each test
/// case and the final result are in it once.
fn check_log(cluster: &Cluster, id: u64) -> Result<(), String> {
    // The master acknowledges the end only once it holds the whole log, but the job can
    // show finished a moment before the slave has moved its copy aside.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (master, slave) = loop {
        let (master, slave) = (cluster.master_log(id), cluster.slave_log(id));
        if master == slave || Instant::now() > deadline {
            break (master, slave);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if master.is_empty() {
        return Err(format!("the master has no log for job {id}"));
    }
    if master != slave {
        return Err(format!(
            "the master's log ({} bytes) differs from the job process's ({} bytes)",
            master.len(),
            slave.len()
        ));
    }
    let lines: Vec<&str> = master.lines().collect();
    let distinct: std::collections::HashSet<&str> = lines.iter().copied().collect();
    if distinct.len() != lines.len() {
        return Err(format!(
            "{} log lines doubled",
            lines.len() - distinct.len()
        ));
    }
    for i in 1..=LINES {
        let line = format!("\"numbered-line-{i}\"");
        let found = master.matches(&line).count();
        if found != 1 {
            return Err(format!("numbered line {i} is in the log {found} times"));
        }
    }
    for case in ["before", "after", "job"] {
        let found = master.matches(&format!("\"case\": \"{case}\"")).count();
        if found != 1 {
            return Err(format!("result {case} is in the log {found} times"));
        }
    }
    Ok(())
}
