//! The real lavacli (`pip install lavacli`) against a running master over `/RPC2` (issue 6's
//! acceptance): identities, system, workers, device types with templates, devices with
//! dictionaries, jobs submitted, followed, shown, listed, cancelled; and credentials that
//! are missing, wrong or not enough change nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use basalt_e2e::cluster::{wait_for, Cluster};
use basalt_e2e::{tool_available, Basalt, Output};

const LONG: Duration = Duration::from_secs(120);

/// lavacli with its own configuration directory (`XDG_CONFIG_HOME`), so identities written
/// by a test stay in the test.
struct Lavacli {
    config: PathBuf,
}

impl Lavacli {
    fn new(cluster: &Cluster) -> Self {
        Self {
            config: cluster.dir.mkdir("lavacli-config"),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Basalt::program("lavacli", args)
            .env("XDG_CONFIG_HOME", &self.config)
            .env("NO_COLOR", "1")
            .timeout(LONG)
            .run()
    }

    /// `lavacli -i basalt ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let mut full = vec!["-i", "basalt"];
        full.extend_from_slice(args);
        self.run(&full).success().stdout
    }
}

fn admin_token(cluster: &Cluster) -> String {
    std::fs::read_to_string(cluster.data_dir().join("admin-token"))
        .expect("the master wrote its admin token")
        .trim()
        .to_owned()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn lavacli_manages_the_lab_and_runs_jobs_unchanged() {
    if !tool_available("lavacli") {
        return;
    }
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    let lavacli = Lavacli::new(&cluster);
    lavacli
        .run(&[
            "identities",
            "add",
            "basalt",
            "--uri",
            &format!("{}/RPC2", cluster.url()),
            "--username",
            "admin",
            "--token",
            &admin_token(&cluster),
        ])
        .success();

    assert!(lavacli.ok(&["system", "version"]).starts_with("20"));
    assert_eq!(lavacli.ok(&["system", "whoami"]).trim(), "admin");

    // Workers.
    lavacli.ok(&["workers", "add", "w1", "--description", "the test slave"]);
    assert!(lavacli.ok(&["workers", "list"]).contains("* w1"));
    let shown = lavacli.ok(&["workers", "show", "w1"]);
    assert!(shown.contains("description : the test slave"), "{shown}");

    // Device types and their templates.
    lavacli.ok(&["device-types", "add", "beaglebone-black"]);
    assert!(lavacli
        .ok(&["device-types", "list"])
        .contains("* beaglebone-black (0)"));
    let builtin = lavacli.ok(&["device-types", "template", "get", "beaglebone-black"]);
    assert!(builtin.contains("extends 'base-uboot.jinja2'"), "{builtin}");
    let edited = format!("{{# tuned for this lab #}}\n{}", builtin.trim_end());
    let template = cluster.dir.write("bbb.jinja2", format!("{edited}\n"));
    lavacli.ok(&[
        "device-types",
        "template",
        "set",
        "beaglebone-black",
        &path(&template),
    ]);
    assert_eq!(
        lavacli
            .ok(&["device-types", "template", "get", "beaglebone-black"])
            .trim_end(),
        edited
    );
    let junk = cluster.dir.write("junk.jinja2", "{% if %}");
    let refused = lavacli
        .run(&[
            "-i",
            "basalt",
            "device-types",
            "template",
            "set",
            "beaglebone-black",
            &path(&junk),
        ])
        .failure();
    assert!(refused.stderr.contains("Fault 400"), "{refused}");

    // Devices and their dictionaries.
    lavacli.ok(&[
        "devices",
        "add",
        "--type",
        "beaglebone-black",
        "--worker",
        "w1",
        "sim-01",
    ]);
    let dictionary = cluster.board_dictionary();
    lavacli.ok(&["devices", "dict", "set", "sim-01", &path(&dictionary)]);
    assert_eq!(
        lavacli.ok(&["devices", "dict", "get", "sim-01"]).trim_end(),
        std::fs::read_to_string(&dictionary).unwrap().trim_end()
    );
    assert!(lavacli
        .ok(&["devices", "list"])
        .contains("* sim-01 (beaglebone-black): Idle,Unknown"));
    let shown = lavacli.ok(&["devices", "show", "sim-01"]);
    assert!(shown.contains("device-dict : True"), "{shown}");
    assert!(shown.contains("worker      : w1"), "{shown}");

    // A job: submitted, followed to its end, shown, listed, its definition and results.
    let _slave = cluster.start_slave();
    let job = cluster.job(
        "via-lavacli",
        &[
            "lava-test-case greet --shell echo hello-from-lavacli",
            "lava-test-case speed --result pass --measurement 42 --units mb/s",
        ],
    );
    let id = lavacli
        .ok(&["jobs", "submit", &path(&job)])
        .trim()
        .to_owned();
    assert!(id.parse::<u64>().is_ok(), "jobs submit printed {id:?}");
    let log = lavacli.ok(&["jobs", "logs", "--polling", "1", &id]);
    assert!(log.contains("hello-from-lavacli"), "{log}");
    let shown = lavacli.ok(&["jobs", "show", &id]);
    assert!(shown.contains("state       : Finished"), "{shown}");
    assert!(shown.contains("Health      : Complete"), "{shown}");
    assert!(shown.contains("submitter   : admin"), "{shown}");
    assert_eq!(
        lavacli.ok(&["jobs", "definition", &id]).trim_end(),
        std::fs::read_to_string(&job).unwrap().trim_end()
    );
    let listed = lavacli.ok(&["jobs", "list"]);
    assert!(
        listed.contains(&format!("* {id}: Finished,Complete [admin] (via-lavacli)")),
        "{listed}"
    );
    let results = lavacli.ok(&["results", "--yaml", &id]);
    assert!(
        results.contains("speed") && results.contains("42"),
        "{results}"
    );

    // Cancelling a running job.
    let slow = cluster.job("to-cancel", &["sleep 120"]);
    let slow_id = lavacli
        .ok(&["jobs", "submit", &path(&slow)])
        .trim()
        .to_owned();
    let numeric: u64 = slow_id.parse().expect("a job id");
    cluster.wait_state(numeric, "running", LONG);
    lavacli.ok(&["jobs", "cancel", &slow_id]);
    wait_for("the job to be canceled", LONG, || {
        lavacli
            .ok(&["jobs", "show", &slow_id])
            .contains("Health      : Canceled")
            .then_some(())
    });
}

#[test]
fn missing_wrong_or_insufficient_credentials_change_nothing() {
    if !tool_available("lavacli") {
        return;
    }
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    let lavacli = Lavacli::new(&cluster);
    let rpc = |user: &str, token: &str| {
        if user.is_empty() {
            format!("{}/RPC2", cluster.url())
        } else {
            format!(
                "{}/RPC2",
                cluster.url().replace("://", &format!("://{user}:{token}@"))
            )
        }
    };

    // No credentials: reading works, changing is LAVA's fault 401.
    assert!(lavacli
        .run(&["--uri", &rpc("", ""), "workers", "list"])
        .success()
        .stdout
        .contains("Workers"));
    let refused = lavacli
        .run(&["--uri", &rpc("", ""), "workers", "add", "intruder"])
        .failure();
    assert!(refused.stderr.contains("Fault 401"), "{refused}");

    // A wrong token, or a right token under another name: HTTP 401, as LAVA answers.
    let token = admin_token(&cluster);
    for (user, token) in [("admin", "guess"), ("someone", token.as_str())] {
        let refused = lavacli
            .run(&["--uri", &rpc(user, token), "workers", "add", "intruder"])
            .failure();
        assert!(refused.stderr.contains("401"), "{refused}");
    }

    // A user who is not a superuser submits jobs but does not change the lab.
    let made = cluster
        .cli(&["user", "add", "bob", "--with-token"])
        .success();
    let bob = made.stdout.trim().to_owned();
    assert_eq!(bob.len(), 64, "{made}");
    let refused = lavacli
        .run(&["--uri", &rpc("bob", &bob), "workers", "add", "intruder"])
        .failure();
    assert!(refused.stderr.contains("Fault 403"), "{refused}");
    assert_eq!(
        lavacli
            .run(&["--uri", &rpc("bob", &bob), "system", "whoami"])
            .success()
            .stdout
            .trim(),
        "bob"
    );

    let workers = cluster
        .cli(&["workers", "list", "--format", "json"])
        .success()
        .json();
    assert_eq!(workers, serde_json::json!([]), "nothing was added");
}
