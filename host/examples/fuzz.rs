//! An in-process mutation fuzzer on stable Rust, run by `cargo xtask fuzz TARGET --seconds N`
//! (release build): every parser an outsider can reach, fed mutated real inputs.
//!
//! Targets: `job` (job YAML through validation), `dictionary` (a device dictionary rendered
//! with the LAVA templates and parsed), `frames` (ZMQ multipart messages decoded), `xmlrpc`
//! (a `<methodCall>` parsed) and `rest` (HTTP requests through the master's whole router:
//! REST bodies, XML-RPC calls, job submission). Seeds are the shared LAVA data (sample jobs,
//! dictionaries) plus hand-made edge cases (deep nesting, huge repeats). A panic is a crash:
//! its input is saved under `target/fuzz/TARGET/` and the run goes on; the figures printed at
//! the end are executions, executions per second and distinct crashes. A crash that aborts
//! the process (a stack overflow) ends the run, and the task fails; its input is left in
//! `target/fuzz/TARGET/in-flight` (the seed is printed first). `fuzz TARGET replay FILE` runs
//! one input again with its panic shown.
//!
//! Mutations: bit flips, byte insertions and deletions, a chunk repeated, a chunk from
//! another seed spliced in, structure characters (`[{:-|>'"`) inserted, a number made huge.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// xorshift64*: reproducible from the printed seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// The largest input a mutation may grow to.
const MAX_INPUT: usize = 256 * 1024;

fn mutate(input: &[u8], seeds: &[Vec<u8>], random: &mut Random) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=random.below(4) {
        let at = random.below(out.len() + 1);
        match random.below(7) {
            0 if !out.is_empty() => {
                let i = random.below(out.len());
                out[i] ^= 1 << random.below(8);
            }
            1 => out.insert(at, random.next() as u8),
            2 if at < out.len() => {
                let len = random.below(16).min(out.len() - at);
                out.drain(at..at + len);
            }
            3 if !out.is_empty() => {
                let start = random.below(out.len());
                let len = random.below(64).min(out.len() - start);
                let chunk: Vec<u8> = out[start..start + len].to_vec();
                for _ in 0..=random.below(8) {
                    out.splice(at..at, chunk.iter().copied());
                }
            }
            4 => {
                let other = &seeds[random.below(seeds.len())];
                if !other.is_empty() {
                    let start = random.below(other.len());
                    let len = random.below(256).min(other.len() - start);
                    out.splice(at..at, other[start..start + len].iter().copied());
                }
            }
            5 => {
                const STRUCTURE: &[u8] = b"[]{}:-|>'\"\n #&*!%\\";
                out.insert(at, STRUCTURE[random.below(STRUCTURE.len())]);
            }
            _ => {
                let number = ["999999999999999999999", "-1", "0", "1e999", "0x7fffffff"];
                out.splice(at..at, number[random.below(number.len())].bytes());
            }
        }
    }
    out.truncate(MAX_INPUT);
    out
}

/// Inputs that once hurt parsers: deep nesting, long repeats, odd encodings.
fn edge_cases() -> Vec<Vec<u8>> {
    vec![
        "[".repeat(20_000).into_bytes(),
        "{a: ".repeat(10_000).into_bytes(),
        "- ".repeat(20_000).into_bytes(),
        format!("{}1", "{{ ".repeat(2_000)).into_bytes(),
        format!("{}1{}", "(".repeat(5_000), ")".repeat(5_000)).into_bytes(),
        format!("{{{{ {}x }}}}", "x + ".repeat(15_000)).into_bytes(),
        format!("{{{{ x{} }}}}", "|f".repeat(20_000)).into_bytes(),
        "{% if x %}".repeat(3_000).into_bytes(),
        "<value><array><data>".repeat(5_000).into_bytes(),
        b"a: &a [*a]\n".to_vec(),
        b"\xff\xfe\x00\x00".to_vec(),
        Vec::new(),
    ]
}

fn files(dir: &Path, extension: &str) -> Vec<Vec<u8>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    found.sort();
    found.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// What a target does with one input.
type Run = Box<dyn FnMut(&[u8])>;

/// One fuzz target: its seeds and what it does with an input.
struct Target {
    seeds: Vec<Vec<u8>>,
    run: Run,
}

fn job_target(lava: &Path) -> Target {
    let mut seeds = files(&lava.join("jobs"), "yaml");
    seeds.extend(edge_cases());
    Target {
        seeds,
        run: Box::new(|input| {
            let text = String::from_utf8_lossy(input);
            let _ = basalt::job::parse_job(&text);
            let _ = basalt::job::secrets::mask_definition(&text);
        }),
    }
}

fn dictionary_target(lava: &Path, root: &Path) -> Target {
    use basalt::template::{SearchPath, TemplateEngine};
    let mut seeds = files(&lava.join("devices"), "jinja2");
    seeds.extend(edge_cases());
    let engine = TemplateEngine::new(SearchPath::new(vec![
        lava.join("device-types"),
        root.join("device-types"),
    ]))
    .with_fuel(200_000);
    Target {
        seeds,
        run: Box::new(move |input| {
            let text = String::from_utf8_lossy(input);
            let _ = engine.render_source("fuzz.jinja2", &text, &serde_json::json!({}));
        }),
    }
}

/// Frames of a multipart message: the input split at `\0\x01`.
fn frames_of(input: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut rest = input;
    while let Some(at) = rest.windows(2).position(|w| w == b"\0\x01") {
        frames.push(rest[..at].to_vec());
        rest = &rest[at + 2..];
    }
    frames.push(rest.to_vec());
    frames
}

fn frames_target() -> Target {
    use basalt::transport::ControlMessage;
    let join = |frames: Vec<Vec<u8>>| frames.join(&b"\0\x01"[..]);
    let mut seeds: Vec<Vec<u8>> = [
        &[&b"HELLO"[..], b"3"][..],
        &[b"HELLO_RETRY", b"3", b"5"],
        &[b"PING"],
        &[b"PONG", b"20"],
        &[
            b"START",
            b"12",
            b"job_name: x\n",
            b"device: y\n",
            b"",
            b"",
            b"",
        ],
        &[b"START_OK", b"12"],
        &[b"END", b"12", b"", b"\xfd7zXZ\0\0"],
        &[b"LOGS", b"12", b"0", b"- {\"dt\": 1}\n"],
        &[b"CANCEL", b"12"],
        &[b"STATUS", b"12"],
    ]
    .iter()
    .map(|frames| join(frames.iter().map(|f| f.to_vec()).collect()))
    .collect();
    seeds.extend(edge_cases());
    Target {
        seeds,
        run: Box::new(|input| {
            let _ = ControlMessage::decode(&frames_of(input));
        }),
    }
}

fn xmlrpc_seeds() -> Vec<Vec<u8>> {
    let call = |method: &str, params: &str| {
        format!(
            "<?xml version='1.0'?><methodCall><methodName>{method}</methodName><params>{params}</params></methodCall>"
        )
        .into_bytes()
    };
    vec![
        call("system.version", ""),
        call(
            "scheduler.jobs.submit",
            "<param><value><string>job_name: x\ndevice_type: qemu\n</string></value></param>",
        ),
        call(
            "scheduler.devices.list",
            "<param><value><boolean>1</boolean></value></param><param><value><array><data>\
             <value><int>1</int></value><value><double>1.5</double></value></data></array>\
             </value></param>",
        ),
        call(
            "scheduler.jobs.show",
            "<param><value><struct><member><name>a</name><value><base64>aGk=</base64></value>\
             </member></struct></value></param>",
        ),
    ]
}

fn xmlrpc_target() -> Target {
    let mut seeds = xmlrpc_seeds();
    seeds.extend(edge_cases());
    Target {
        seeds,
        run: Box::new(|input| {
            let _ = basalt::xmlrpc::parse_call(&String::from_utf8_lossy(input));
        }),
    }
}

/// Requests through the master's router: the method and path come from the input's first
/// byte, the body is the rest; as the admin, so submissions and changes are exercised too.
fn rest_target(lava: &Path, root: &Path, scratch: &Path) -> Target {
    use basalt::master::service::Service;
    use basalt::store::Store;
    use basalt::template::{SearchPath, TemplateEngine};
    let data = scratch.join("master");
    std::fs::create_dir_all(data.join("jobs")).expect("a scratch data directory");
    let engine = TemplateEngine::new(SearchPath::new(vec![
        lava.join("device-types"),
        root.join("device-types"),
    ]));
    let store = Store::open(&data.join("basalt.db")).expect("a scratch database");
    let service = Service::new(store, || {}, engine, data.clone(), data.join("jobs"));
    service.ensure_admin("fuzz-admin").expect("the admin");
    let router = basalt::master::http::router(std::sync::Arc::new(service));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    const ROUTES: &[(&str, &str)] = &[
        ("POST", "/api/v1/jobs/validate"),
        ("POST", "/api/v1/jobs"),
        ("POST", "/RPC2"),
        ("POST", "/api/v1/devices"),
        ("POST", "/api/v1/workers"),
        ("POST", "/api/v1/users"),
        ("PUT", "/api/v1/device-types/qemu/template"),
        ("PATCH", "/api/v1/devices/x"),
    ];
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for (i, job) in files(&lava.join("jobs"), "yaml")
        .into_iter()
        .take(40)
        .enumerate()
    {
        let mut seed = vec![(i % 2) as u8];
        seed.extend(job);
        seeds.push(seed);
    }
    for call in xmlrpc_seeds() {
        let mut seed = vec![2u8];
        seed.extend(call);
        seeds.push(seed);
    }
    for (route, body) in [
        (
            3u8,
            r#"{"hostname": "d1", "device_type": "qemu", "worker": "w1", "dictionary": ""}"#,
        ),
        (
            4,
            r#"{"hostname": "w1", "description": "x", "job_limit": 2}"#,
        ),
        (5, r#"{"name": "bob", "superuser": false, "groups": ["a"]}"#),
        (6, "{% extends 'base.jinja2' %}"),
        (7, r#"{"worker": "w1", "description": "y"}"#),
    ] {
        let mut seed = vec![route];
        seed.extend(body.bytes());
        seeds.push(seed);
    }
    seeds.extend(edge_cases());
    Target {
        seeds,
        run: Box::new(move |input| {
            let (route, body) = match input.split_first() {
                Some((first, body)) => (ROUTES[*first as usize % ROUTES.len()], body),
                None => (ROUTES[0], &[][..]),
            };
            let request = axum::http::Request::builder()
                .method(route.0)
                .uri(route.1)
                .header("authorization", "Bearer fuzz-admin")
                .header(
                    "content-type",
                    if route.1.contains("/api/v1/jobs") || route.1.contains("template") {
                        "text/plain"
                    } else if route.1 == "/RPC2" {
                        "text/xml"
                    } else {
                        "application/json"
                    },
                )
                .body(axum::body::Body::from(body.to_vec()))
                .expect("a request");
            let mut router = router.clone();
            runtime.block_on(async move {
                let Ok(response) = tower::Service::call(&mut router, request).await;
                let _ = axum::body::to_bytes(response.into_body(), 64 << 20).await;
            });
        }),
    }
}

const USAGE: &str = "usage: fuzz TARGET SECONDS [SEED [EXECUTIONS]] | fuzz TARGET replay FILE  \
                     (targets: job dictionary frames xmlrpc rest)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let (Some(name), Some("replay"), Some(file)) =
        (args.first(), args.get(1).map(String::as_str), args.get(2))
    {
        replay(name, Path::new(file));
        return;
    }
    let (Some(name), Some(seconds)) = (args.first(), args.get(1).and_then(|s| s.parse().ok()))
    else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    }) | 1;
    let most: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
    let root = repository_root();
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let mut target = target_named(name, &root, scratch.path());
    let crashes_dir = root.join("target/fuzz").join(name);
    // Panics are counted, not printed one by one.
    std::panic::set_hook(Box::new(|_| {}));
    let mut random = Random(seed);
    let (mut executions, mut crashes) = (0u64, HashSet::new());
    let started = Instant::now();
    let limit = Duration::from_secs(seconds);
    // Every seed as it is first, then mutations of random seeds.
    let seeds = target.seeds.clone();
    let _ = std::fs::create_dir_all(&crashes_dir);
    let in_flight = crashes_dir.join("in-flight");
    // Kept open and rewritten in place (two system calls an execution, not an open, a write
    // and a close): the fast targets run tens of thousands of inputs a second.
    let mut in_flight_file = std::fs::File::create(&in_flight).ok();
    eprintln!(
        "fuzz {name}: seed {seed}; an input that aborts the process is left in {}",
        in_flight.display()
    );
    while started.elapsed() < limit && executions < most {
        let input = match usize::try_from(executions) {
            Ok(i) if i < seeds.len() => seeds[i].clone(),
            _ => mutate(&seeds[random.below(seeds.len())], &seeds, &mut random),
        };
        // A crash that aborts the process (a stack overflow) leaves its input here.
        if let Some(file) = &in_flight_file {
            use std::os::unix::fs::FileExt;
            let kept =
                file.write_all_at(&input, 0).is_ok() && file.set_len(input.len() as u64).is_ok();
            if !kept {
                in_flight_file = None;
            }
        }
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
        executions += 1;
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            if crashes.insert(message.clone()) {
                let _ = std::fs::create_dir_all(&crashes_dir);
                let file = crashes_dir.join(format!("crash-{}", crashes.len()));
                let _ = std::fs::write(&file, &input);
                println!(
                    "crash {}: {message} (input in {})",
                    crashes.len(),
                    file.display()
                );
            }
        }
    }
    let _ = std::fs::remove_file(&in_flight);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "fuzz {name}: {executions} executions in {secs:.0} s ({:.0}/s), {} distinct crash(es), seed {seed}",
        executions as f64 / secs,
        crashes.len()
    );
    if !crashes.is_empty() {
        std::process::exit(1);
    }
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn target_named(name: &str, root: &Path, scratch: &Path) -> Target {
    let lava = root.join("../shared/lava");
    match name {
        "job" => job_target(&lava),
        "dictionary" => dictionary_target(&lava, root),
        "frames" => frames_target(),
        "xmlrpc" => xmlrpc_target(),
        "rest" => rest_target(&lava, root, scratch),
        other => {
            eprintln!("unknown fuzz target {other:?}\n{USAGE}");
            std::process::exit(2);
        }
    }
}

/// Runs one saved input through a target, panics shown: how a crash is debugged.
fn replay(name: &str, file: &Path) {
    let input = std::fs::read(file).unwrap_or_else(|e| {
        eprintln!("cannot read {}: {e}", file.display());
        std::process::exit(2);
    });
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let mut target = target_named(name, &repository_root(), scratch.path());
    (target.run)(&input);
    println!("fuzz {name}: {} ran without a crash", file.display());
}
