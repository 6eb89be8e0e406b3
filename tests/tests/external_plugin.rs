//! A plugin that lives outside the workspace, built against plugin-api alone, exactly as
//! docs/writing-a-plugin.md tells an admin to, then loaded and driven by `basalt`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use basalt_e2e::{build_dir, Basalt, TestDir};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_path_buf()
}

/// Builds tests/fixtures/external-pdu with cargo, in its own target directory (the
/// workspace's target directory is locked by the `cargo test` running us), and returns the
/// library.
fn build_external_plugin() -> PathBuf {
    let crate_dir = repo_root().join("tests/fixtures/external-pdu");
    let target_dir = build_dir()
        .parent()
        .expect("build dir is target/<profile>")
        .join("external-pdu");
    // Pin the same dependency versions as the workspace, so the build needs nothing new.
    let lock = crate_dir.join("Cargo.lock");
    if !lock.exists() {
        std::fs::copy(repo_root().join("Cargo.lock"), &lock).expect("copy Cargo.lock");
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .output()
        .expect("run cargo");
    assert!(
        output.status.success(),
        "building the external plugin failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let library = target_dir.join("debug/libacme_pdu.so");
    assert!(library.is_file(), "{} was not built", library.display());
    library
}

/// An ACME PDU on 127.0.0.1: keeps outlet states and records every request.
fn start_pdu() -> (String, Arc<Mutex<Vec<String>>>) {
    start_pdu_for(None)
}

/// Like [`start_pdu`]; with `board`, the outlet powers the simulated board whose power file
/// that is (a new token at every power-on, as the simulator boots on one).
fn start_pdu_for(board: Option<PathBuf>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        let mut on = false;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut line = String::new();
            if BufReader::new(stream.try_clone().unwrap())
                .read_line(&mut line)
                .is_err()
            {
                continue;
            }
            let line = line.trim().to_owned();
            let answer = match line.split(' ').next() {
                Some("on") | Some("cycle") => {
                    on = true;
                    if let Some(power) = &board {
                        let _ = std::fs::write(
                            power,
                            format!("on {}\n", line.len() + seen.lock().unwrap().len()),
                        );
                    }
                    "ok".to_owned()
                }
                Some("off") => {
                    on = false;
                    if let Some(power) = &board {
                        let _ = std::fs::write(power, "off\n");
                    }
                    "ok".to_owned()
                }
                Some("status") => format!("ok {}", if on { "on" } else { "off" }),
                _ => "error unknown request".to_owned(),
            };
            seen.lock().unwrap().push(line);
            let _ = writeln!(stream, "{answer}");
        }
    });
    (address, requests)
}

#[test]
fn an_out_of_tree_plugin_builds_loads_and_reads_back_power_state() {
    let library = build_external_plugin();
    let dir = TestDir::new();
    let plugins = dir.mkdir("plugins");
    std::fs::copy(&library, plugins.join("libacme_pdu.so")).unwrap();

    let listing = Basalt::new(["plugins", "list", "--format", "json"])
        .env("BASALT_PLUGIN_PATH", &plugins)
        .run()
        .success();
    let acme = listing.json()["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "acme")
        .cloned()
        .unwrap_or_else(|| panic!("acme driver not listed:\n{listing}"));
    assert_eq!(acme["kind"], "power");
    assert_eq!(acme["version"], "1.2.0");
    assert_eq!(acme["library"], "acme-pdu");

    let (address, requests) = start_pdu();
    let device = dir.write(
        "device.yaml",
        format!("power:\n  driver: acme\n  address: {address}\n  outlet: 3\n"),
    );
    let state = |expected: &str| {
        let output = Basalt::new(["power", "state", "--device"])
            .arg(&device)
            .env("BASALT_PLUGIN_PATH", &plugins)
            .run()
            .success();
        assert_eq!(output.stdout.trim(), expected, "{output}");
    };
    state("off");
    Basalt::new(["power", "on", "--device"])
        .arg(&device)
        .env("BASALT_PLUGIN_PATH", &plugins)
        .run()
        .success();
    state("on");
    assert_eq!(
        *requests.lock().unwrap(),
        vec!["status 3", "on 3", "status 3"]
    );
}

/// The power state a driver reads back at the end of a job reaches the master's device
/// record, through the job process's result file and the slave's END.
#[test]
fn the_power_state_read_back_at_the_end_of_a_job_reaches_the_master() {
    let library = build_external_plugin();
    let mut cluster = basalt_e2e::cluster::Cluster::new();
    let plugins = cluster.dir.mkdir("plugins");
    std::fs::copy(&library, plugins.join("libacme_pdu.so")).unwrap();
    let (address, requests) = start_pdu_for(Some(cluster.board.state.join("power")));
    let _master = cluster.start_master();
    let dictionary = cluster.board_dictionary();
    let mut text = std::fs::read_to_string(&dictionary).unwrap();
    text.push_str(&format!(
        "{{% block device_extras %}}power:\n  driver: acme\n  address: '{address}'\n  outlet: 3\n{{% endblock %}}\n"
    ));
    std::fs::write(&dictionary, text).unwrap();
    cluster.register_board_with_dictionary(&dictionary);
    let _slave = cluster.start_slave_with(&["--plugin-dir", &plugins.display().to_string()]);
    let id = cluster.submit(&cluster.job("power", &["lava-test-case one --result pass"]));
    let job = cluster.wait_state(id, "finished", std::time::Duration::from_secs(90));
    assert_eq!(job["health"], "complete", "{job}");
    assert!(
        requests.lock().unwrap().iter().any(|r| r == "status 3"),
        "the driver read the outlet back: {:?}",
        requests.lock().unwrap()
    );
    let device = cluster
        .cli(&["devices", "show", "sim-01", "--format", "json"])
        .success()
        .json();
    assert_eq!(device["power_state"], "off", "{device}");
}
