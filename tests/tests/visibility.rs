//! LAVA's `visibility:` on every read path, and `secrets:` masked whatever their YAML style
//! (issue 14, item 5): REST, XML-RPC and the web pages, for anonymous readers, other users,
//! group members, the submitter and superusers.

use basalt_e2e::cluster::Cluster;
use basalt_e2e::Basalt;
use serde_json::Value;

/// A job named `name` with `visibility` (YAML) and a block-scalar secret.
fn job(cluster: &Cluster, name: &str, visibility: &str) -> std::path::PathBuf {
    cluster.dir.write(
        &format!("{name}.yaml"),
        format!(
            "job_name: {name}
device_type: beaglebone-black
visibility: {visibility}
priority: medium
secrets:
  KEY: |
    first-secret-line-{name}
    second-secret-line-{name}
timeouts:
  job: {{minutes: 2}}
actions:
- deploy:
    to: tmpfs
    kernel: {{url: 'http://127.0.0.1:9/zImage'}}
"
        ),
    )
}

struct Reader<'c> {
    cluster: &'c Cluster,
    token: Option<String>,
}

impl Reader<'_> {
    fn get(&self, path: &str) -> Result<String, u16> {
        let mut request = ureq::get(&format!("{}{path}", self.cluster.url()));
        if let Some(token) = &self.token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        match request.call() {
            Ok(response) => Ok(response.into_string().unwrap()),
            Err(ureq::Error::Status(code, _)) => Err(code),
            Err(e) => panic!("{path}: {e}"),
        }
    }

    fn listed(&self) -> Vec<String> {
        let jobs: Value = serde_json::from_str(&self.get("/api/v1/jobs").unwrap()).unwrap();
        let mut names: Vec<String> = jobs
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    fn rpc(&self, method: &str, id: u64) -> String {
        let mut request = ureq::post(&format!("{}/RPC2", self.cluster.url()));
        if let Some(token) = &self.token {
            request = request.set("Authorization", &format!("Bearer {token}"));
        }
        request
            .send_string(&format!(
                "<?xml version='1.0'?><methodCall><methodName>{method}</methodName><params>\
                 <param><value><int>{id}</int></value></param></params></methodCall>"
            ))
            .unwrap()
            .into_string()
            .unwrap()
    }

    /// Whether every read path shows job `id` (its page, definition, logs, results, and
    /// XML-RPC's show and definition); they must all agree.
    fn sees(&self, id: u64) -> bool {
        let paths = [
            format!("/api/v1/jobs/{id}"),
            format!("/api/v1/jobs/{id}/definition"),
            format!("/api/v1/jobs/{id}/logs"),
            format!("/api/v1/jobs/{id}/results"),
        ];
        let answers: Vec<bool> = paths
            .iter()
            .map(|p| match self.get(p) {
                Ok(_) => true,
                Err(404) => false,
                Err(code) => panic!("{p}: {code}"),
            })
            .chain(
                ["scheduler.jobs.show", "scheduler.jobs.definition"]
                    .map(|m| !self.rpc(m, id).contains("<name>faultCode</name>")),
            )
            .collect();
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "read paths disagree on job {id}: {answers:?}"
        );
        answers[0]
    }
}

#[test]
fn each_job_is_seen_only_by_whom_its_visibility_names_and_its_secrets_by_none_else() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let token = |name: &str, groups: &[&str]| {
        let mut args = vec!["user", "add", name, "--with-token"];
        for group in groups {
            args.extend(["--group", group]);
        }
        cluster.cli(&args).success().stdout.trim().to_owned()
    };
    let alice = token("alice", &["kernel"]);
    let bob = token("bob", &["gpu"]);
    let carol = token("carol", &[]);
    let submit = |file: std::path::PathBuf| -> u64 {
        let out = Basalt::new(["jobs", "submit", &file.display().to_string()])
            .env("BASALT_URL", cluster.url())
            .env("BASALT_TOKEN", &alice)
            .run()
            .success();
        out.stdout
            .trim()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let public = submit(job(&cluster, "open", "public"));
    let personal = submit(job(&cluster, "mine", "personal"));
    let group = submit(job(&cluster, "team", "{group: [gpu]}"));

    let admin_token = std::fs::read_to_string(cluster.data_dir().join("admin-token")).unwrap();
    let reader = |token: Option<&str>| Reader {
        cluster: &cluster,
        token: token.map(|t| t.trim().to_owned()),
    };
    let cases = [
        ("anonymous", reader(None), vec!["open"]),
        ("carol", reader(Some(&carol)), vec!["open"]),
        ("bob (gpu)", reader(Some(&bob)), vec!["open", "team"]),
        (
            "alice (submitter)",
            reader(Some(&alice)),
            vec!["mine", "open", "team"],
        ),
        (
            "admin",
            reader(Some(&admin_token)),
            vec!["mine", "open", "team"],
        ),
    ];
    for (who, reader, expected) in &cases {
        assert_eq!(&reader.listed(), expected, "{who}'s job list");
        for (id, name) in [(public, "open"), (personal, "mine"), (group, "team")] {
            assert_eq!(
                reader.sees(id),
                expected.contains(&name),
                "{who} and job {name}"
            );
        }
    }

    // Secrets: masked for all but the submitter and superusers, whatever the style.
    let definition = |reader: &Reader| {
        reader
            .get(&format!("/api/v1/jobs/{public}/definition"))
            .unwrap()
    };
    for (who, reader, _) in &cases[..3] {
        let shown = definition(reader);
        assert!(
            !shown.contains("secret-line"),
            "{who} sees the secret:\n{shown}"
        );
        assert!(shown.contains("KEY: '********'"), "{who}:\n{shown}");
        let rpc = reader.rpc("scheduler.jobs.definition", public);
        assert!(!rpc.contains("secret-line"), "{who} over XML-RPC:\n{rpc}");
    }
    for (_, reader, _) in &cases[3..] {
        assert!(definition(reader).contains("second-secret-line-open"));
    }

    // The anonymous web pages: the public job only, its secret masked.
    let web = reader(None);
    let jobs_page = web.get("/jobs").unwrap();
    assert!(
        jobs_page.contains("open") && !jobs_page.contains("mine"),
        "{jobs_page}"
    );
    assert!(!jobs_page.contains("team"), "{jobs_page}");
    assert_eq!(web.get(&format!("/jobs/{personal}")).unwrap_err(), 404);
    let page = web.get(&format!("/jobs/{public}")).unwrap();
    assert!(!page.contains("secret-line"), "{page}");
}
