//! The cost of reading what outsiders send: job YAML (as submitted: parsed with positions and
//! validated), deeply nested YAML, XML-RPC calls and JSON bodies, each at sizes from 64 KiB
//! up to the limit the master accepts, and past it. Run with `cargo xtask bench parse`.
//!
//! What it shows: the cost per KiB stays flat as documents grow (linear cost below the limits),
//! a document past a limit is refused quickly, and the figures sit beside what LAVA itself runs
//! on the same bytes: PyYAML's libyaml loader (`CSafeLoader`), `xmlrpc.client.loads` and
//! `json.loads` (skipped, with a note, where python3-yaml is missing).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use basalt::job::parse_job;
use basalt::xmlrpc::parse_call;
use basalt::yaml11;

const KIB: usize = 1024;
/// The sizes measured; the largest is just under the 4 MiB job limit.
const SIZES: [usize; 4] = [64 * KIB, 256 * KIB, 1024 * KIB, 4 * 1024 * KIB - 16 * KIB];

/// One input of one size, and how to read it in Basalt and in Python.
struct Case {
    kind: &'static str,
    text: String,
    python: &'static str,
}

fn main() {
    let lava = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/lava/jobs");
    let sample = std::fs::read_to_string(lava.join("docs__inline-test-definition-example.yaml"))
        .unwrap_or_else(|e| panic!("{}: {e} (the LAVA fixtures are needed)", lava.display()));
    let scratch = tempfile::tempdir().expect("a scratch directory");

    println!(
        "{:<24} {:>9} {:>11} {:>10} {:>11} {:>10} {:>7}",
        "input", "size", "basalt", "µs/KiB", "LAVA's", "µs/KiB", "ratio"
    );
    let mut per_kib: Vec<(&'static str, Vec<f64>)> = Vec::new();
    for size in SIZES {
        for case in cases(&sample, size) {
            let basalt = best_of(5, || read_in_basalt(&case));
            let file = scratch.path().join(format!("{}-{size}", case.kind));
            std::fs::write(&file, &case.text).expect("scratch file");
            let python = python_seconds(case.python, &file);
            let kib = case.text.len() as f64 / KIB as f64;
            let ours = basalt * 1e6 / kib;
            match per_kib.iter_mut().find(|(kind, _)| *kind == case.kind) {
                Some((_, costs)) => costs.push(ours),
                None => per_kib.push((case.kind, vec![ours])),
            }
            let (theirs, per, ratio) = match python {
                Some(seconds) => (
                    format!("{:.2} ms", seconds * 1e3),
                    format!("{:.2}", seconds * 1e6 / kib),
                    format!("{:.1}×", seconds / basalt),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            println!(
                "{:<24} {:>9} {:>11} {:>10.2} {:>11} {:>10} {:>7}",
                case.kind,
                format!("{:.0} KiB", kib),
                format!("{:.2} ms", basalt * 1e3),
                ours,
                theirs,
                per,
                ratio
            );
        }
    }
    println!();
    println!("cost per KiB at the largest size against the smallest (1.0 = linear):");
    for (kind, costs) in &per_kib {
        let (first, last) = (costs[0], costs[costs.len() - 1]);
        println!("  {kind:<22} {:.2}", last / first);
    }

    println!();
    println!("refused past a limit:");
    for (what, text) in past_the_limits(&sample) {
        let started = Instant::now();
        let refused = match what {
            "job over 4 MiB" => parse_job(&text).is_err(),
            "xml-rpc 65 levels deep" | "xml-rpc over 200,000 elements" => {
                parse_call(&text).is_err()
            }
            _ => yaml11::from_str(&text).is_err(),
        };
        assert!(refused, "{what} was accepted");
        println!(
            "  {what:<34} {:>9} refused in {:.2} ms",
            format!("{:.0} KiB", text.len() as f64 / KIB as f64),
            started.elapsed().as_secs_f64() * 1e3
        );
    }
}

/// The inputs of about `size` bytes.
fn cases(sample: &str, size: usize) -> Vec<Case> {
    let job = wide_job(sample, size);
    let mut xml = String::from(
        "<?xml version='1.0'?><methodCall><methodName>scheduler.submit_job</methodName>\
         <params><param><value><string>",
    );
    for c in job.chars() {
        match c {
            '<' => xml.push_str("&lt;"),
            '&' => xml.push_str("&amp;"),
            other => xml.push(other),
        }
    }
    xml.push_str("</string></value></param></params></methodCall>");
    let json = serde_json::json!({ "definition": job }).to_string();
    vec![
        Case {
            kind: "job yaml (validated)",
            text: job,
            python: "yaml",
        },
        Case {
            kind: "yaml nested 200 deep",
            text: deep_yaml(size, 200),
            python: "yaml",
        },
        Case {
            kind: "xml-rpc submit_job",
            text: xml,
            python: "xmlrpc",
        },
        Case {
            kind: "xml-rpc struct 32 deep",
            text: deep_xmlrpc(size, 32),
            python: "xmlrpc",
        },
        Case {
            kind: "json submit body",
            text: json,
            python: "json",
        },
    ]
}

fn read_in_basalt(case: &Case) {
    match case.kind {
        "job yaml (validated)" => {
            parse_job(&case.text).expect("the wide job is valid");
        }
        "yaml nested 200 deep" => {
            yaml11::from_str(&case.text).expect("within the depth limit");
        }
        "json submit body" => {
            serde_json::from_str::<serde_json::Value>(&case.text).expect("valid JSON");
        }
        _ => {
            parse_call(&case.text).expect("a well-formed call");
        }
    }
}

/// LAVA's sample job with its inline test action repeated until the job is about `size` bytes.
fn wide_job(sample: &str, size: usize) -> String {
    let (head, rest) = sample
        .split_once("# START-INLINE-TEST-BLOCK\n")
        .expect("the sample marks its test block");
    let (block, _) = rest
        .split_once("# END-INLINE-TEST-BLOCK")
        .expect("the sample marks its test block");
    let mut job = head.to_string();
    let mut n = 0;
    while job.len() + block.len() < size {
        job.push_str(&block.replace("apache-server", &format!("apache-server-{n}")));
        n += 1;
    }
    job
}

/// A mapping of flow sequences, each `depth` levels deep, about `size` bytes in all.
fn deep_yaml(size: usize, depth: usize) -> String {
    let value = format!("{}x{}", "[".repeat(depth - 1), "]".repeat(depth - 1));
    let mut text = String::new();
    let mut n = 0;
    while text.len() + value.len() < size {
        let _ = writeln!(text, "k{n}: {value}");
        n += 1;
    }
    text
}

/// An XML-RPC call whose one parameter is an array of structs `depth` levels deep, about
/// `size` bytes or as many as the parser's element limit (200,000) takes, whichever is less.
fn deep_xmlrpc(size: usize, depth: usize) -> String {
    let elements_each = 4 * depth + 2;
    let mut elements = 8;
    let mut one = String::new();
    for _ in 0..depth {
        one.push_str("<value><struct><member><name>m</name>");
    }
    one.push_str("<value><int>1</int></value>");
    for _ in 0..depth {
        one.push_str("</member></struct></value>");
    }
    let mut xml = String::from(
        "<?xml version='1.0'?><methodCall><methodName>x</methodName><params><param>\
         <value><array><data>",
    );
    while xml.len() + one.len() < size && elements + elements_each < 200_000 {
        xml.push_str(&one);
        elements += elements_each;
    }
    xml.push_str("</data></array></value></param></params></methodCall>");
    xml
}

/// Inputs just past a limit, which must be refused.
fn past_the_limits(sample: &str) -> Vec<(&'static str, String)> {
    let mut xml = String::from("<methodCall><methodName>x</methodName><params><param>");
    xml.push_str(&"<value><array><data>".repeat(65));
    xml.push_str(&"</data></array></value>".repeat(65));
    xml.push_str("</param></params></methodCall>");
    let mut wide =
        String::from("<methodCall><methodName>x</methodName><params><param><value><array><data>");
    wide.push_str(&"<value><int>1</int></value>".repeat(100_001));
    wide.push_str("</data></array></value></param></params></methodCall>");
    vec![
        (
            "job over 4 MiB",
            wide_job(sample, 4 * 1024 * KIB + 64 * KIB),
        ),
        (
            "yaml 257 deep",
            format!("{}x{}", "[".repeat(257), "]".repeat(257)),
        ),
        ("yaml 4 MiB of '['", "[".repeat(4 * 1024 * KIB)),
        ("xml-rpc 65 levels deep", xml),
        ("xml-rpc over 200,000 elements", wide),
    ]
}

/// Seconds LAVA's own parser takes on `file` (best of 5, or one run past a second), or None
/// without python3-yaml.
fn python_seconds(parser: &str, file: &Path) -> Option<f64> {
    let load = match parser {
        "yaml" => "import yaml; f = lambda t: yaml.load(t, Loader=yaml.CSafeLoader)",
        "xmlrpc" => "import xmlrpc.client; f = xmlrpc.client.loads",
        _ => "import json; f = json.loads",
    };
    let script = format!(
        "{load}\nimport sys, time\nt = open(sys.argv[1]).read()\nbest = 1e9\n\
         for _ in range(5):\n    s = time.perf_counter(); f(t); best = min(best, time.perf_counter() - s)\n    if best > 1: break\n\
         print(best)"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .arg(file)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The fastest of `rounds` runs of `f`, in seconds.
fn best_of(rounds: usize, mut f: impl FnMut()) -> f64 {
    (0..rounds)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
