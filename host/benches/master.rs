//! The master under load, measured end to end against the real `basalt master` binary on
//! 127.0.0.1 (`cargo xtask bench master`):
//!
//! 1. a scheduling pass as the master runs it: the store snapshot (10,000 queued jobs,
//!    1,000 devices in SQLite) plus the pure pass;
//! 2. submit → START latency on an idle device: HTTP submit until the simulated slave holds
//!    START (median and 99th percentile of 200 jobs);
//! 3. log lines per second from one slave into the master's storage (acknowledged LOGS of
//!    100-byte lines until the master confirms the last byte);
//! 4. the master's CPU while 2,000 simulated slaves ping it (at LAVA's 20 s interval and at
//!    1 s), read from /proc.
//!
//! 3 and 4 run twice, over a plaintext link and over CURVE (`--encrypt`, one certificate per
//! simulated slave in the allow-list), and print the two side by side: what encryption costs.
//!
//! Simulated slaves are plain ZMQ DEALER sockets sharing one context (2,000 Basalt slaves
//! would need 2,000 processes); they speak the same frames through `ControlMessage`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use basalt::store::{NewJob, Store};
use basalt::transport::{
    Certificate, ClientCurve, ControlMessage, SlaveSocket, FEATURE_ACKED_LOGS,
};
use serde_json::json;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The link's key pairs: the master's, and one per slave name in the allow-list.
struct Keys {
    master: Certificate,
    slaves: std::collections::HashMap<String, Certificate>,
}

impl Keys {
    /// Writes the master's pair and one pair per name under `dir` (`master.key_secret`,
    /// `slaves/NAME.key`), as `basalt certs generate` would.
    fn generate(dir: &std::path::Path, names: impl Iterator<Item = String>) -> Self {
        let slaves_dir = dir.join("slaves");
        let secrets = dir.join("secrets");
        std::fs::create_dir_all(&slaves_dir).unwrap();
        std::fs::create_dir_all(&secrets).unwrap();
        let master = Certificate::generate().expect("libzmq with CURVE");
        master.write_pair(dir, "master").unwrap();
        let slaves = names
            .map(|name| {
                let pair = Certificate::generate().unwrap();
                let (public, _) = pair.write_pair(&secrets, &name).unwrap();
                std::fs::rename(public, slaves_dir.join(format!("{name}.key"))).unwrap();
                (name, pair)
            })
            .collect();
        Self { master, slaves }
    }

    fn client(&self, name: &str) -> ClientCurve {
        ClientCurve {
            master: self.master.public,
            own: self.slaves[name].clone(),
        }
    }
}

/// Whether a run is over plaintext or CURVE, for the side-by-side figures.
#[derive(Clone, Copy, PartialEq)]
enum Link {
    Plain,
    Curve,
}

impl Link {
    fn name(self) -> &'static str {
        match self {
            Link::Plain => "plaintext",
            Link::Curve => "CURVE",
        }
    }
}

struct Master {
    child: Child,
    http: String,
    control: String,
    token: String,
    keys: Option<Keys>,
    _dir: tempfile::TempDir,
}

impl Drop for Master {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Master {
    fn start(ping_interval: u64) -> Self {
        Self::start_with(ping_interval, Link::Plain, Vec::new())
    }

    /// A master over `link`; with CURVE, `slaves` are the names in its allow-list.
    fn start_with(ping_interval: u64, link: Link, slaves: Vec<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (control, logs, http) = (free_port(), free_port(), free_port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_basalt"));
        let keys = (link == Link::Curve).then(|| {
            let keys = Keys::generate(dir.path(), slaves.into_iter());
            command
                .arg("master")
                .arg("--encrypt")
                .arg("--master-cert")
                .arg(dir.path().join("master.key_secret"))
                .arg("--slaves-certs")
                .arg(dir.path().join("slaves"));
            keys
        });
        if keys.is_none() {
            command.arg("master");
        }
        let child = command
            .args(["--listen", "127.0.0.1", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--control-port", &control.to_string()])
            .args(["--log-port", &logs.to_string()])
            .args(["--http-port", &http.to_string()])
            .args(["--ping-interval", &ping_interval.to_string()])
            .args(["--offline-after", &(ping_interval * 3).to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start basalt master");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
            assert!(Instant::now() < deadline, "the master did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let token = std::fs::read_to_string(dir.path().join("data/admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        Self {
            child,
            http: format!("http://127.0.0.1:{http}"),
            control: format!("tcp://127.0.0.1:{control}"),
            token,
            keys,
            _dir: dir,
        }
    }

    fn post(&self, path: &str, body: &str) -> serde_json::Value {
        let response = ureq::post(&format!("{}{path}", self.http))
            .set("Authorization", &format!("Bearer {}", self.token))
            .set(
                "Content-Type",
                if body.starts_with('{') {
                    "application/json"
                } else {
                    "text/plain"
                },
            )
            .send_string(body)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        serde_json::from_str(&response.into_string().unwrap()).unwrap()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The CURVE settings of slave `name`, if the link is encrypted.
    fn client(&self, name: &str) -> Option<ClientCurve> {
        self.keys.as_ref().map(|keys| keys.client(name))
    }
}

/// A device `bench-01` of type qemu on worker `w1`, and a connected slave `w1`.
fn lab(master: &Master) -> SlaveSocket {
    master.post("/api/v1/workers", &json!({"hostname": "w1"}).to_string());
    master.post("/api/v1/device-types", &json!({"name": "qemu"}).to_string());
    master.post(
        "/api/v1/devices",
        &json!({
            "hostname": "bench-01", "device_type": "qemu", "worker": "w1",
            "dictionary": "{% extends 'qemu.jinja2' %}\n{% set memory = 512 %}\n",
        })
        .to_string(),
    );
    let slave =
        SlaveSocket::connect_with(&master.control, "w1", master.client("w1").as_ref()).unwrap();
    slave.send(&ControlMessage::Hello {
        protocol: 3,
        version: Some("bench".into()),
        features: vec![FEATURE_ACKED_LOGS.into()],
    });
    wait(&slave, |m| matches!(m, ControlMessage::HelloOk { .. }));
    slave
}

fn wait(slave: &SlaveSocket, mut want: impl FnMut(&ControlMessage) -> bool) -> ControlMessage {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the master did not answer");
        for frames in slave.recv(Duration::from_millis(50)) {
            if let Ok(message) = ControlMessage::decode(&frames) {
                if want(&message) {
                    return message;
                }
            }
        }
    }
}

const JOB: &str = "job_name: bench
device_type: qemu
timeouts: {job: {minutes: 5}}
visibility: public
priority: medium
context: {arch: amd64}
actions:
- boot:
    method: qemu
    media: tmpfs
    prompts: ['# ']
";

fn started_job(master: &Master, slave: &SlaveSocket) -> (u64, Duration) {
    let submitted = Instant::now();
    let id = master.post("/api/v1/jobs", JOB)["id"].as_u64().unwrap();
    let start = wait(
        slave,
        |m| matches!(m, ControlMessage::Start { job, .. } if *job == id),
    );
    let latency = submitted.elapsed();
    let ControlMessage::Start { files, .. } = start else {
        unreachable!()
    };
    assert!(
        files.device.contains("qemu"),
        "START carries the rendered device"
    );
    slave.send(&ControlMessage::StartOk { job: id });
    (id, latency)
}

fn end_job(slave: &SlaveSocket, id: u64, log_bytes: u64) {
    slave.send(&ControlMessage::End {
        job: id,
        stderr: String::new(),
        description: Vec::new(),
        log_bytes: Some(log_bytes),
    });
    wait(slave, |m| *m == ControlMessage::EndOk { job: id });
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn bench_latency() {
    let master = Master::start(20);
    let slave = lab(&master);
    let mut latencies = Vec::new();
    for _ in 0..200 {
        let (id, latency) = started_job(&master, &slave);
        latencies.push(latency);
        end_job(&slave, id, 0);
    }
    latencies.sort();
    println!(
        "submit -> START on an idle device (HTTP submit, schedule, render, send; 200 jobs): \
         median {:.2} ms, p99 {:.2} ms, max {:.2} ms (target <= 10 ms)",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
}

/// Log lines per second into storage over `link`: (lines/s, MiB/s, lines, MiB).
fn bench_logs(link: Link) -> (f64, f64, u64, u64) {
    let master = Master::start_with(20, link, vec!["w1".into()]);
    let slave = lab(&master);
    let (id, _) = started_job(&master, &slave);
    // ~100-byte lines as `basalt run` writes them; one in 500 a test result.
    let mut chunk = Vec::new();
    let mut lines_per_chunk = 0u64;
    while chunk.len() < 1024 * 1024 - 200 {
        let line = if lines_per_chunk % 500 == 499 {
            format!("- {{\"dt\": \"2026-11-25T12:00:00.{lines_per_chunk:06}+00:00\", \"lvl\": \"results\", \"msg\": {{\"case\": \"c{lines_per_chunk}\", \"definition\": \"0_x\", \"result\": \"pass\"}}}}\n")
        } else {
            format!("- {{\"dt\": \"2026-11-25T12:00:00.{lines_per_chunk:06}+00:00\", \"lvl\": \"target\", \"msg\": \"[   12.345678] console output line {lines_per_chunk:08}\"}}\n")
        };
        chunk.extend_from_slice(line.as_bytes());
        lines_per_chunk += 1;
    }
    let chunks = 400u64;
    let total = chunk.len() as u64 * chunks;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut acked = 0u64;
    let window = 4 * chunk.len() as u64;
    while acked < total {
        while sent < total && sent - acked < window {
            slave.send(&ControlMessage::Logs {
                job: id,
                offset: sent,
                data: chunk.clone(),
            });
            sent += chunk.len() as u64;
        }
        if let ControlMessage::LogsOk { stored, .. } =
            wait(&slave, |m| matches!(m, ControlMessage::LogsOk { .. }))
        {
            acked = acked.max(stored);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let lines = lines_per_chunk * chunks;
    end_job(&slave, id, total);
    (
        lines as f64 / elapsed,
        total as f64 / elapsed / (1024.0 * 1024.0),
        lines,
        total >> 20,
    )
}

fn report_logs() {
    let plain = bench_logs(Link::Plain);
    let curve = bench_logs(Link::Curve);
    println!(
        "log lines into the master's storage (one slave, acknowledged LOGS, {} MiB, {} lines, \
         one in 500 a result; target >= 500,000 lines/s):\n    plaintext {:.0} lines/s \
         ({:.0} MiB/s) | CURVE {:.0} lines/s ({:.0} MiB/s): encryption costs {:.0}%",
        plain.3,
        plain.2,
        plain.0,
        plain.1,
        curve.0,
        curve.1,
        (1.0 - curve.0 / plain.0) * 100.0
    );
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// The master's CPU while `count` slaves ping it every `interval` over `link`:
/// (% of one core, microseconds of CPU per PING, PINGs).
fn bench_many_slaves(
    count: usize,
    interval: Duration,
    measure: Duration,
    link: Link,
) -> (f64, f64, u64) {
    basalt::master::raise_open_file_limit();
    let names = (0..count)
        .map(|i| format!("sim-{i:04}"))
        .collect::<Vec<_>>();
    let master = Master::start_with(interval.as_secs().max(1), link, names.clone());
    // A libzmq context holds at most 1,023 sockets: one context per 500 slaves.
    let contexts: Vec<zmq::Context> = (0..count.div_ceil(500))
        .map(|_| zmq::Context::new())
        .collect();
    let sockets: Vec<zmq::Socket> = (0..count)
        .map(|i| {
            let socket = contexts[i / 500].socket(zmq::DEALER).unwrap();
            if let Some(curve) = master.client(&names[i]) {
                socket.set_curve_serverkey(&curve.master).unwrap();
                socket.set_curve_publickey(&curve.own.public).unwrap();
                socket
                    .set_curve_secretkey(&curve.own.secret.unwrap())
                    .unwrap();
            }
            socket.set_identity(names[i].as_bytes()).unwrap();
            socket.set_linger(0).unwrap();
            socket.connect(&master.control).unwrap();
            socket
                .send_multipart(
                    ControlMessage::Hello {
                        protocol: 3,
                        version: None,
                        features: vec![],
                    }
                    .encode(),
                    0,
                )
                .unwrap();
            socket
        })
        .collect();
    // Let every handshake and HELLO be handled (each creates a worker row), then measure
    // steady pinging.
    std::thread::sleep(Duration::from_secs(10));
    let drain = |sockets: &[zmq::Socket]| {
        for socket in sockets {
            while socket.recv_multipart(zmq::DONTWAIT).is_ok() {}
        }
    };
    drain(&sockets);
    let cpu_before = cpu_seconds(master.pid());
    let started = Instant::now();
    let mut pings = 0u64;
    // Pings spread evenly over the interval, as independent slaves' would be.
    let spacing = interval / count as u32;
    let mut next = Instant::now();
    let mut index = 0;
    while started.elapsed() < measure {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        }
        next += spacing;
        sockets[index]
            .send_multipart(ControlMessage::Ping.encode(), zmq::DONTWAIT)
            .ok();
        pings += 1;
        index = (index + 1) % count;
        if index == 0 {
            drain(&sockets);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(master.pid()) - cpu_before;
    let online = master_workers_online(&master);
    assert_eq!(
        online,
        count,
        "every simulated slave is online over {}",
        link.name()
    );
    (cpu / wall * 100.0, cpu / pings as f64 * 1e6, pings)
}

/// How many workers the master shows online.
fn master_workers_online(master: &Master) -> usize {
    let workers: serde_json::Value = serde_json::from_str(
        &ureq::get(&format!("{}/api/v1/workers", master.http))
            .call()
            .unwrap()
            .into_string()
            .unwrap(),
    )
    .unwrap();
    workers.as_array().map_or(0, |all| {
        all.iter().filter(|w| w["state"] == "online").count()
    })
}

fn report_many_slaves(count: usize, interval: Duration, measure: Duration) {
    let [plain, curve] =
        [Link::Plain, Link::Curve].map(|link| bench_many_slaves(count, interval, measure, link));
    println!(
        "master CPU with {count} slaves pinging every {interval:?} ({} s measured):\n    \
         plaintext {:.1}% of one core ({:.1} us per PING, {} PINGs) | CURVE {:.1}% of one core \
         ({:.1} us per PING, {} PINGs; includes ZMQ heartbeats every 5 s per connection)",
        measure.as_secs(),
        plain.0,
        plain.1,
        plain.2,
        curve.0,
        curve.1,
        curve.2,
    );
}

fn bench_snapshot_pass() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    for t in 0..20 {
        store.add_device_type(&format!("type-{t:02}"), "").unwrap();
    }
    for w in 0..100 {
        store.add_worker(&format!("worker-{w:03}"), "", 0).unwrap();
        store
            .worker_seen(&format!("worker-{w:03}"), None, true)
            .unwrap();
    }
    for d in 0..1000 {
        store
            .add_device(
                &format!("dev-{d:04}"),
                &format!("type-{:02}", d % 20),
                &format!("worker-{:03}", d % 100),
                "{% extends 'qemu.jinja2' %}\n",
                &[],
                "",
            )
            .unwrap();
    }
    for j in 0..10_000u64 {
        store
            .submit(&NewJob {
                name: format!("job {j}"),
                visibility: basalt::store::Visibility::Public,
                definition: JOB.into(),
                device_type: format!("type-{:02}", j % 25),
                requested_device: None,
                tags: vec![],
                context: json!({}),
                priority: (j % 3 * 50) as u8,
                submitter: "bench".into(),
                health_check: false,
            })
            .unwrap();
    }
    let mut times = Vec::new();
    for seed in 0..20 {
        let started = Instant::now();
        let snapshot = store.snapshot(seed).unwrap();
        let assignments = basalt::scheduler::schedule(&snapshot);
        times.push(started.elapsed());
        assert!(!assignments.is_empty());
    }
    times.sort();
    println!(
        "scheduling pass as the master runs it (SQLite snapshot of 10,000 queued jobs and \
         1,000 devices + the pass): median {:.2} ms (target <= 20 ms)",
        percentile(&times, 0.5).as_secs_f64() * 1e3
    );
}

/// Sends `chunks` MiB of log lines for job `id` and waits until the master holds them all;
/// returns (bytes, lines).
fn send_log(slave: &SlaveSocket, id: u64, chunks: u64) -> (u64, u64) {
    let mut chunk = Vec::new();
    let mut lines_per_chunk = 0u64;
    while chunk.len() < 1024 * 1024 - 200 {
        chunk.extend_from_slice(
            format!("- {{\"dt\": \"2026-11-25T12:00:00.{lines_per_chunk:06}+00:00\", \"lvl\": \"target\", \"msg\": \"[   12.345678] console output line {lines_per_chunk:08}\"}}\n")
                .as_bytes(),
        );
        lines_per_chunk += 1;
    }
    let total = chunk.len() as u64 * chunks;
    let (mut sent, mut acked) = (0u64, 0u64);
    while acked < total {
        while sent < total && sent - acked < 4 * chunk.len() as u64 {
            slave.send(&ControlMessage::Logs {
                job: id,
                offset: sent,
                data: chunk.clone(),
            });
            sent += chunk.len() as u64;
        }
        if let ControlMessage::LogsOk { stored, .. } =
            wait(slave, |m| matches!(m, ControlMessage::LogsOk { .. }))
        {
            acked = acked.max(stored);
        }
    }
    (total, lines_per_chunk * chunks)
}

/// Median and requests per second of `request` from `clients` threads for `seconds`.
fn load(clients: usize, seconds: u64, request: impl Fn() + Sync) -> (Duration, f64) {
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut all: Vec<Duration> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let mut times = Vec::new();
                    while Instant::now() < until {
                        let at = Instant::now();
                        request();
                        times.push(at.elapsed());
                    }
                    times
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    all.sort();
    (percentile(&all, 0.5), all.len() as f64 / seconds as f64)
}

fn xmlrpc_logs(master: &Master, id: u64, start: u64) -> usize {
    let body = format!(
        "<?xml version='1.0'?><methodCall><methodName>scheduler.jobs.logs</methodName><params>\
         <param><value><int>{id}</int></value></param><param><value><int>{start}</int></value>\
         </param></params></methodCall>"
    );
    ureq::post(&format!("{}/RPC2", master.http))
        .send_string(&body)
        .unwrap()
        .into_string()
        .unwrap()
        .len()
}

/// The HTTP port under load: REST reads, the web job page, and lavacli's log polling on a
/// large running job.
fn bench_api() {
    let master = Master::start(20);
    let slave = lab(&master);
    let (id, _) = started_job(&master, &slave);
    let (bytes, lines) = send_log(&slave, id, 100);
    let get = |path: &str| {
        ureq::get(&format!("{}{path}", master.http))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
    };
    for (what, path) in [
        ("REST GET /api/v1/devices", "/api/v1/devices".to_owned()),
        (
            "REST GET /api/v1/jobs?limit=100",
            "/api/v1/jobs?limit=100".to_owned(),
        ),
        ("web lab page /", "/".to_owned()),
        (
            "REST log follow (GET /api/v1/jobs/ID/logs at the end)",
            format!("/api/v1/jobs/{id}/logs?offset={bytes}"),
        ),
    ] {
        let (median, rate) = load(8, 3, || get(&path));
        println!(
            "{what}, 8 clients: median {:.2} ms, {rate:.0} requests/s",
            median.as_secs_f64() * 1e3
        );
    }
    let first = Instant::now();
    xmlrpc_logs(&master, id, lines - 10);
    let first = first.elapsed();
    let (median, rate) = load(8, 3, || {
        xmlrpc_logs(&master, id, lines - 10);
    });
    println!(
        "XML-RPC scheduler.jobs.logs tail poll on a {} MiB, {lines}-line running job: first call \
         {:.1} ms (indexes the log), then median {:.2} ms, {rate:.0} calls/s with 8 clients",
        bytes >> 20,
        first.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
    );
    end_job(&slave, id, bytes);
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    if wants("snapshot") {
        bench_snapshot_pass();
    }
    if wants("latency") {
        bench_latency();
    }
    if wants("logs") {
        report_logs();
    }
    if wants("api") {
        bench_api();
    }
    if wants("slaves") {
        report_many_slaves(2000, Duration::from_secs(20), Duration::from_secs(40));
        report_many_slaves(2000, Duration::from_secs(1), Duration::from_secs(20));
    }
}
