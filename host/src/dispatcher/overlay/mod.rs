//! The LAVA overlay: the directory LAVA puts on a board before its tests run, built as LAVA
//! builds it, so that test definitions written for LAVA find what they expect.
//!
//! ```text
//! /lava-<job id>/
//!   bin/            every helper (`lava-test-case`, `lava-test-runner`, …)
//!   environment     `export NAME=value` lines the test shell sources
//!   tests/ results/
//!   <stage>/        one per test action with definitions (0, 1, …)
//!     lava-test-runner.conf        the definitions' directories, in order
//!     tests/<index>_<name>/        the definition's repository, testdef.yaml, uuid,
//!                                  testdef_metadata, run.sh and install.sh
//! ```
//!
//! The overlay is built once per job on the worker (definitions fetched there: git clones,
//! url tarballs, inline YAML), then packed as `overlay.tar.gz`. Deploys unpack that tarball
//! into the root file systems and ramdisks they prepare; where none took it, the test shell
//! sends it over the console. Index numbers run across the job's test actions (`0_a`, `1_b`
//! in stage 0, `2_c` in stage 1), as LAVA numbers them.

mod helpers;
mod scripts;
pub mod serve;
mod sources;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Map, Value};

use super::actions::{ActionResults, Place};
use super::failure::Failure;
use super::log::JobLogger;
use super::LocalFiles;
use crate::failure::FailureClass;
use crate::job::{ActionKind, JobDefinition};
use crate::pipeline::repo_action;

/// How the test shell looks on this board: where the overlay goes and which shell runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The overlay's directory on the board (`/lava-12`).
    pub results_dir: String,
    /// The shell scripts run with (`lava_test_sh_cmd`, `/bin/sh`).
    pub sh_cmd: String,
    /// The distribution named by the deploy's `os:` whose helpers are used.
    pub distro: Option<String>,
}

/// What LAVA's deployment data says for an `os:` value: distro, shell, results directory.
fn deployment_data(os: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match os {
        "android" => ("android", "/system/bin/sh", "/data/local/tmp/lava-%s"),
        "apertis" => ("apertis", "/bin/sh", "/var/lib/lava-%s"),
        "archlinux" | "centos" | "fedora" | "slackware" | "debian" => {
            let distro = match os {
                "archlinux" => "archlinux",
                "centos" => "centos",
                "fedora" => "fedora",
                "slackware" => "slackware",
                _ => "debian",
            };
            (distro, "/bin/bash", "/lava-%s")
        }
        "centos_installer" => ("centos", "/bin/bash", "/lava-%s"),
        "debian_installer" => ("debian", "/bin/bash", "/lava-%s"),
        "lede" => ("lede", "/bin/sh", "/tmp/lava-results-%s"),
        "oe" => ("oe", "/bin/sh", "/lava-%s"),
        "qnx" => ("qnx", "/bin/sh", "/lava-%s"),
        "ubuntu" => ("ubuntu", "/bin/sh", "/lava-%s"),
        _ => return None,
    })
}

impl Settings {
    /// LAVA's order: the job's `context:`, then the deploy's `os:`, then the device's
    /// `constants: posix:`, then `/bin/sh` and `/lava-%s`.
    pub fn of(job: &Value, device: &Value, job_id: &str) -> Result<Self, Failure> {
        let os = job
            .get("actions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.get("deploy"))
            .find_map(|d| d.get("os").and_then(Value::as_str));
        let data = os.and_then(deployment_data);
        let constant = |key: &str, from_os: Option<&'static str>, default: &str| -> String {
            job.pointer(&format!("/context/{key}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| from_os.map(str::to_owned))
                .or_else(|| {
                    device
                        .pointer(&format!("/constants/posix/{key}"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| default.to_owned())
        };
        let pattern = constant("lava_test_results_dir", data.map(|d| d.2), "/lava-%s");
        if !pattern.contains("%s") {
            return Err(Failure::job(
                "Invalid lava_test_results_dir, should include '%s'",
            ));
        }
        let results_dir = pattern.replace("%s", job_id);
        check_board_path(&results_dir)
            .map_err(|e| Failure::job(format!("lava_test_results_dir {results_dir:?}: {e}")))?;
        let sh_cmd = constant("lava_test_sh_cmd", data.map(|d| d.1), "/bin/sh");
        if !sh_cmd.starts_with('/') || check_board_path(&sh_cmd).is_err() {
            return Err(Failure::job(format!(
                "lava_test_sh_cmd {sh_cmd:?} is not an absolute path"
            )));
        }
        Ok(Self {
            results_dir,
            sh_cmd,
            distro: data.map(|d| d.0.to_owned()),
        })
    }

    /// A stage's directory on the board (`/lava-12/0`).
    pub fn stage_dir(&self, stage: usize) -> String {
        format!("{}/{stage}", self.results_dir)
    }
}

/// The results directory becomes archive member names: absolute, no `..`, no control
/// characters, so that unpacking it lands where the board expects and nowhere else.
fn check_board_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("must be an absolute path");
    }
    // Typed into the board's shell unquoted, as LAVA types it: letters, digits, `._-/` only.
    if !path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
    {
        return Err("holds characters a shell would interpret (only letters, digits, . _ - /)");
    }
    if path.split('/').any(|part| part == ".." || part == ".") {
        return Err("may not contain . or .. components");
    }
    if path.trim_matches('/').is_empty() {
        return Err("may not be the root directory");
    }
    Ok(())
}

/// One test definition as it is on the board.
#[derive(Debug, Clone)]
pub struct Definition {
    /// The stage (test action) it runs in.
    pub stage: usize,
    /// `<index>_<name>`: the suite its results are recorded under, and `TESTRUN_ID`.
    pub suite: String,
    /// What the job says about it (`from`, `repository`, `path`, `parameters`, …).
    pub params: Map<String, Value>,
    /// The test definition file as loaded.
    pub testdef: Value,
    /// `<job id>_<level>`: names this run of the definition in STARTRUN and ENDRUN.
    pub uuid: String,
    /// The commit a git definition was checked out at.
    pub commit_id: Option<String>,
}

impl Definition {
    /// The test cases the definition must report (the job's `expected:`, else the file's).
    pub fn expected(&self) -> Vec<String> {
        crate::data::string_list(
            self.params
                .get("expected")
                .or_else(|| self.testdef.get("expected")),
        )
    }
}

/// A built overlay: its tarball and what it holds.
#[derive(Debug)]
pub struct Overlay {
    /// Where it goes and how it runs.
    pub settings: Settings,
    /// `overlay.tar.gz`: members `lava-12/…`, relative to the board's root.
    pub tarball: PathBuf,
    /// Every definition, in job order.
    pub definitions: Vec<Definition>,
    /// For each job action index, the stage of that test action, if it has definitions.
    stages: Vec<Option<usize>>,
}

impl Overlay {
    /// The stage of the test action at job index `action`.
    pub fn stage_of(&self, action: usize) -> Option<usize> {
        self.stages.get(action).copied().flatten()
    }

    /// The definitions of one stage, in order.
    pub fn stage(&self, stage: usize) -> impl Iterator<Item = &Definition> {
        self.definitions.iter().filter(move |d| d.stage == stage)
    }
}

/// What building the overlay needs.
pub struct Inputs<'a> {
    /// The job.
    pub job: &'a JobDefinition,
    /// The rendered device configuration.
    pub device: &'a Value,
    /// The job's id (`/lava-<id>`).
    pub job_id: &'a str,
    /// The job's directory on the worker; the overlay is built in `overlay/` below it.
    pub workdir: &'a Path,
    /// The worker's directories local files and repositories may come from.
    pub local_files: &'a LocalFiles,
    /// `export` lines for the `environment` file beyond the device's and the job's.
    pub environment: Vec<(String, String)>,
    /// The worker's `env.dut.yaml` lines, added to `environment`.
    pub dut_env_lines: String,
    /// The job log.
    pub log: &'a JobLogger,
    /// When fetching definitions must be done.
    pub deadline: Instant,
}

/// Whether a job needs the overlay: one of its test actions runs definitions.
pub fn needed(job: &JobDefinition) -> bool {
    job.actions
        .iter()
        .any(|a| a.kind == ActionKind::Test && a.params.get("definitions").is_some())
}

/// Builds the overlay: fetches every definition, writes every file, packs the tarball.
pub fn build(inputs: &Inputs<'_>) -> Result<Overlay, Failure> {
    std::fs::create_dir_all(inputs.workdir)
        .map_err(|e| Failure::infrastructure(format!("{}: {e}", inputs.workdir.display())))?;
    let settings = Settings::of(&inputs.job.raw, inputs.device, inputs.job_id)?;
    let base = inputs.workdir.join("overlay");
    let _ = std::fs::remove_dir_all(&base);
    let tree = base.join("tree");
    let root = tree.join(settings.results_dir.trim_start_matches('/'));
    let io = |what: &str, e: std::io::Error| {
        Failure::infrastructure(format!("the LAVA overlay: {what}: {e}"))
    };
    for dir in ["bin", "tests", "results"] {
        std::fs::create_dir_all(root.join(dir)).map_err(|e| io("cannot create it", e))?;
    }
    for (name, body) in
        helpers::bin_files(&settings.sh_cmd, settings.distro.as_deref(), inputs.device)
    {
        write_file(&root.join("bin").join(name), body.as_bytes(), 0o755)
            .map_err(|e| io("bin", e))?;
    }
    let environment = scripts::environment(inputs);
    write_file(&root.join("environment"), environment.as_bytes(), 0o644)
        .map_err(|e| io("environment", e))?;

    let log = inputs.log;
    let deadline = inputs.deadline;
    let (definitions, stages) = log.action("test-definition", Place::Child, deadline, |_| {
        definitions_of(inputs, &settings, &root)
    })?;
    let tarball = base.join("overlay.tar.gz");
    let stage_count = stages.iter().flatten().count();
    log.action("compress-overlay", Place::Child, deadline, |_| {
        pack(&tree, &settings.results_dir, &tarball).map_err(|e| io("cannot pack it", e))
    })?;
    let size = std::fs::metadata(&tarball).map(|m| m.len()).unwrap_or(0);
    inputs.log.info(&format!(
        "the LAVA overlay for {} is {} ({size} bytes, {} definition(s) in {stage} stage(s))",
        settings.results_dir,
        tarball.display(),
        definitions.len(),
        stage = stage_count,
    ));
    Ok(Overlay {
        settings,
        tarball,
        definitions,
        stages,
    })
}

/// LAVA's `test-definition`: every test action's definitions, each fetched (its repository
/// action: `inline-repo-action`, `git-repo-action`, `url-repo-action`), then its
/// `test-overlay`, `test-install-overlay` and `test-runscript-overlay`, each recorded with
/// the results LAVA gives it. A definition's uuid is `<job id>_<level of its repository
/// action>`, as LAVA's. Returns the definitions and each job action's stage.
fn definitions_of(
    inputs: &Inputs<'_>,
    settings: &Settings,
    root: &Path,
) -> Result<(Vec<Definition>, Vec<Option<usize>>), Failure> {
    let io = |what: &str, e: std::io::Error| {
        Failure::infrastructure(format!("the LAVA overlay: {what}: {e}"))
    };
    let (log, deadline) = (inputs.log, inputs.deadline);
    let mut definitions = Vec::new();
    let mut stages = Vec::new();
    let mut stage = 0;
    let mut names: Vec<String> = Vec::new();
    for action in &inputs.job.actions {
        let listed = action
            .params
            .get("definitions")
            .filter(|_| action.kind == ActionKind::Test);
        let Some(listed) = listed else {
            stages.push(None);
            continue;
        };
        let Some(listed) = listed.as_array() else {
            return Err(Failure::job(
                "a test action's definitions must be a list of test definitions",
            ));
        };
        stages.push(Some(stage));
        let stage_dir = root.join(stage.to_string());
        let mut conf = String::new();
        for entry in listed {
            let params = entry.as_object().cloned().unwrap_or_default();
            let name = definition_name(&params, &names)?;
            let suite = format!("{}_{name}", names.len());
            names.push(name.clone());
            let dir = stage_dir.join("tests").join(&suite);
            let from = params
                .get("from")
                .map(crate::data::text)
                .unwrap_or_default();
            let path = params
                .get("path")
                .map(crate::data::text)
                .unwrap_or_default();
            let (uuid, fetched) =
                log.action(repo_action(&from), Place::Child, deadline, |results| {
                    let uuid = format!(
                        "{}_{}",
                        inputs.job_id,
                        log.current_level().unwrap_or_default()
                    );
                    let fetched = sources::fetch(inputs, &suite, &params, &dir)?;
                    if let Some(commit) = &fetched.commit_id {
                        results.insert("commit".into(), Value::from(commit.clone()));
                        results.insert(
                            "repository".into(),
                            params.get("repository").cloned().unwrap_or_default(),
                        );
                        results.insert("path".into(), Value::from(path.clone()));
                    }
                    Ok((uuid, fetched))
                })?;
            let definition = Definition {
                stage,
                suite: suite.clone(),
                params,
                testdef: fetched.testdef,
                uuid,
                commit_id: fetched.commit_id,
            };
            // What LAVA records of the definition on each of its overlay steps.
            let described = |results: &mut ActionResults| {
                results.insert("uuid".into(), Value::from(definition.uuid.clone()));
                results.insert("name".into(), Value::from(name.clone()));
                results.insert("path".into(), Value::from(path.clone()));
                results.insert("from".into(), Value::from(from.clone()));
                if from != "inline" {
                    if let Some(repository) = definition.params.get("repository") {
                        results.insert("repository".into(), repository.clone());
                    }
                }
            };
            log.action("test-overlay", Place::Child, deadline, |results| {
                described(results);
                scripts::write_testdef(&definition, &dir).map_err(|e| io(&suite, e))
            })?;
            // LAVA's install and run script steps record what its definition step does,
            // and more.
            log.action("test-install-overlay", Place::Child, deadline, |results| {
                described(results);
                let wrote = scripts::write_install(settings, &definition, &dir)
                    .map_err(|e| io(&suite, e))?;
                if !wrote {
                    results.insert(
                        "skipped test-install-overlay".into(),
                        Value::from(definition.uuid.clone()),
                    );
                }
                Ok(())
            })?;
            log.action(
                "test-runscript-overlay",
                Place::Child,
                deadline,
                |results| {
                    described(results);
                    let file = scripts::write_run(inputs, settings, &definition, &dir)
                        .map_err(|e| io(&suite, e))?;
                    results.insert("filename".into(), Value::from(file.display().to_string()));
                    Ok(())
                },
            )?;
            log.info(&format!(
                "{suite}: test definition {path} ready ({})",
                definition.uuid
            ));
            conf.push_str(&format!("{}/tests/{suite}\n", settings.stage_dir(stage)));
            definitions.push(definition);
        }
        write_file(
            &stage_dir.join("lava-test-runner.conf"),
            conf.as_bytes(),
            0o644,
        )
        .map_err(|e| io("lava-test-runner.conf", e))?;
        stage += 1;
    }
    Ok((definitions, stages))
}

/// A definition's `name:`, checked as LAVA checks it: word characters and `-`, unique in
/// the job, not `lava`.
fn definition_name(params: &Map<String, Value>, taken: &[String]) -> Result<String, Failure> {
    let name = params
        .get("name")
        .map(crate::data::text)
        .ok_or_else(|| Failure::job("a test definition has no name"))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Failure::job(format!(
            "test definition name {name:?} may only hold letters, digits, _ and -"
        )));
    }
    if name == "lava" {
        return Err(Failure::new(
            FailureClass::Test,
            "The \"lava\" test definition name is reserved.",
        ));
    }
    if taken.contains(&name) {
        return Err(Failure::job(format!(
            "Test definition names need to be unique: {name} is used twice"
        )));
    }
    Ok(name)
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // The submitter's repository may hold a symlink where a generated file goes (`run.sh ->
    // /etc/…`): whatever is there is removed, and the file is created, never followed.
    if std::fs::symlink_metadata(path).is_ok() {
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(path)?;
        } else {
            std::fs::remove_file(path)?;
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .mode(mode)
        .open(path)?;
    file.write_all(data)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

/// Packs the overlay's directory below `tree` as a gzip tarball, members relative to the
/// board's root (`lava-12/…`), owned by root (the board unpacks as root; the worker's user
/// ids mean nothing there), symlinks kept. Only the overlay's own directory is packed, not
/// its parents: unpacking must never reset `/tmp`'s or `/data`'s mode on the board.
fn pack(tree: &Path, results_dir: &str, tarball: &Path) -> std::io::Result<()> {
    let file = std::fs::File::create(tarball)?;
    let encoder = super::archive::Compression::Gz.encoder(std::io::BufWriter::new(file))?;
    let mut builder = tar::Builder::new(encoder);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Deterministic);
    let relative = results_dir.trim_start_matches('/');
    builder.append_dir_all(relative, tree.join(relative))?;
    let encoder = builder.into_inner()?;
    use std::io::Write;
    encoder.finish()?.flush()
}

#[cfg(test)]
pub(crate) mod tests;
