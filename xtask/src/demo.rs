//! `cargo xtask demo`: the product's main job on this machine — a master with its embedded
//! store, a slave, the simulated board registered as a device, a LAVA job submitted and
//! followed to its results.
//!
//! Everything runs on 127.0.0.1 on free ports, in a temporary directory that is kept for
//! inspection; both daemons are stopped with SIGTERM at the end (the job processes they
//! ran have ended by then).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use basalt_e2e::cluster::Ports;

use crate::leftovers::Session;
use crate::simlab::write_lab;

/// A daemon stopped with SIGTERM when dropped.
struct Daemon(Child, &'static str);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                println!("{} stopped", self.1);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
    }
}

fn spawn(
    session: &Session,
    basalt: &Path,
    name: &'static str,
    args: &[&str],
    log: &Path,
) -> anyhow::Result<Daemon> {
    let file = std::fs::File::create(log)?;
    let (var, mark) = session.env();
    let child = Command::new(basalt)
        .args(args)
        .env(var, mark)
        .env("BASALT_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .with_context(|| format!("cannot start basalt {name}"))?;
    Ok(Daemon(child, name))
}

/// Runs the demo; whatever it started (the daemons, the job process and what the job
/// started) is gone afterwards, however the demo ended.
pub fn run(root: &Path) -> anyhow::Result<()> {
    let session = Session::new(crate::leftovers::DEMO, "demo");
    let demo = run_demo(root, &session);
    let left = session.end_leftovers();
    demo?;
    left
}

fn run_demo(root: &Path, session: &Session) -> anyhow::Result<()> {
    super::cargo(root, &["build", "--workspace"])?;
    let bin_dir = root.join("target/debug");
    let basalt = bin_dir.join("basalt");
    let dir = std::env::temp_dir().join(format!("basalt-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("create demo directory")?;
    let lab = write_lab(&dir, &bin_dir)?;
    let data_dir = dir.join("master");
    let state_dir = dir.join("slave");
    let ready_file = dir.join("master.ready");
    let certs = dir.join("certs");

    println!("== basalt certs generate: the master's and the slave's CURVE key pairs ==");
    for name in ["master", "demo-worker"] {
        let status = Command::new(&basalt)
            .args(["certs", "generate", name, "--dir", &path(&certs.join(name))])
            .status()
            .context("cannot run basalt certs generate")?;
        anyhow::ensure!(status.success(), "basalt certs generate {name} failed");
    }
    // The master admits the slave's public certificate, as WORKER.key.
    let slaves = certs.join("slaves");
    std::fs::create_dir_all(&slaves).context("create the slaves' certificates directory")?;
    std::fs::copy(
        certs.join("demo-worker/demo-worker.key"),
        slaves.join("demo-worker.key"),
    )
    .context("copy the slave's public certificate")?;

    println!(
        "\n== basalt master --encrypt --data-dir {} ==",
        data_dir.display()
    );
    let mut master = spawn(
        session,
        &basalt,
        "master",
        &[
            "master",
            "--data-dir",
            &path(&data_dir),
            "--listen",
            "127.0.0.1",
            "--control-port",
            "0",
            "--log-port",
            "0",
            "--http-port",
            "0",
            "--ready-file",
            &path(&ready_file),
            "--encrypt",
            "--master-cert",
            &path(&certs.join("master/master.key_secret")),
            "--slaves-certs",
            &path(&slaves),
        ],
        &dir.join("master.log"),
    )?;
    // Port 0 everywhere: the master says in its ready file which ports it got.
    let ports = Ports::await_master(&mut master.0, &ready_file)
        .map_err(|why| anyhow::anyhow!("{why}; see {}", dir.join("master.log").display()))?;
    let url = format!("http://127.0.0.1:{}", ports.http);
    let token = std::fs::read_to_string(data_dir.join("admin-token"))
        .context("the master wrote no admin token")?
        .trim()
        .to_owned();
    let cli = Cli {
        basalt: basalt.clone(),
        url,
        token,
    };

    cli.step(
        "register the worker, the device type and the board",
        &["workers", "add", "demo-worker"],
    )?;
    cli.step("", &["device-types", "add", "beaglebone-black"])?;
    cli.step(
        "",
        &[
            "devices",
            "add",
            "demo-01",
            "--type",
            "beaglebone-black",
            "--worker",
            "demo-worker",
            "--dict",
            &path(&lab.board.dictionary),
        ],
    )?;

    println!("\n== basalt slave --encrypt --master 127.0.0.1 --name demo-worker ==");
    let _slave = spawn(
        session,
        &basalt,
        "slave",
        &[
            "slave",
            "--master",
            "127.0.0.1",
            "--control-port",
            &ports.control.to_string(),
            "--log-port",
            &ports.log.to_string(),
            "--name",
            "demo-worker",
            "--state-dir",
            &path(&state_dir),
            // The demo's kernel is a file in the demo directory.
            "--local-file-dir",
            &path(&dir),
            "--encrypt",
            "--master-cert",
            &path(&certs.join("master/master.key")),
            "--slave-cert",
            &path(&certs.join("demo-worker/demo-worker.key_secret")),
        ],
        &dir.join("slave.log"),
    )?;
    wait_until_online(&cli)?;
    cli.step("workers", &["workers", "list"])?;
    cli.step("devices", &["devices", "list"])?;
    cli.step(
        "submit the job and follow its log (deploy, power-cycle, boot, log in, test)",
        &["jobs", "submit", &path(&lab.job), "--follow"],
    )?;
    cli.step("the job", &["jobs", "show", "1"])?;
    cli.step("devices after the job", &["devices", "list"])?;
    println!("\n== the outlet log written by the power commands ==");
    print!(
        "{}",
        std::fs::read_to_string(&lab.board.power_log).unwrap_or_default()
    );
    println!(
        "\nmaster data (database, job logs, admin token) in {}\ndaemon logs: {}/master.log, {}/slave.log",
        data_dir.display(),
        dir.display(),
        dir.display()
    );
    Ok(())
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn wait_until_online(cli: &Cli) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let out = cli
            .command(&["workers", "list", "--format", "json"])
            .output()?;
        if String::from_utf8_lossy(&out.stdout).contains("\"online\"") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("the slave did not come online within 30 s")
}

struct Cli {
    basalt: PathBuf,
    url: String,
    token: String,
}

impl Cli {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.basalt);
        command
            .args(args)
            .env("BASALT_URL", &self.url)
            .env("BASALT_TOKEN", &self.token);
        command
    }

    fn step(&self, title: &str, args: &[&str]) -> anyhow::Result<()> {
        if !title.is_empty() {
            println!("\n== {title} ==");
        }
        println!("$ basalt {}", args.join(" "));
        let status = self
            .command(args)
            .status()
            .with_context(|| format!("cannot run {}", self.basalt.display()))?;
        if !status.success() {
            bail!("basalt {} exited with {status}", args.join(" "));
        }
        Ok(())
    }
}
