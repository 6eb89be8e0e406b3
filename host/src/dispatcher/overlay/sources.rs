//! Where test definitions come from: a git repository (cloned on the worker), a tarball at a
//! URL (unpacked), or the job itself (`from: inline`). Every one lands in the definition's
//! directory of the overlay; `path:` is then read inside it, and never outside.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::{Map, Value};

use super::Inputs;
use crate::dispatcher::archive::Compression;
use crate::dispatcher::download::{download, Checksums, Limits};
use crate::dispatcher::failure::Failure;
use crate::job::confine;

/// A fetched definition.
pub struct Fetched {
    /// The definition file, parsed.
    pub testdef: Value,
    /// The commit a git repository was checked out at.
    pub commit_id: Option<String>,
}

/// Puts the definition's repository into `dir` and reads its `path:`.
pub fn fetch(
    inputs: &Inputs<'_>,
    suite: &str,
    params: &Map<String, Value>,
    dir: &Path,
) -> Result<Fetched, Failure> {
    let from = params.get("from").and_then(Value::as_str).unwrap_or("");
    let path = params.get("path").and_then(Value::as_str).unwrap_or("");
    let relative = confine::relative_path(path, "the repository")
        .map_err(|e| Failure::job(format!("{suite}: path: {e}")))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::infrastructure(format!("{suite}: {}: {e}", dir.display())))?;
    let mut commit_id = None;
    match from {
        "inline" => {
            let repository = params
                .get("repository")
                .filter(|r| r.is_object())
                .ok_or_else(|| {
                    Failure::job(format!(
                        "{suite}: an inline definition needs repository: <the test definition>"
                    ))
                })?;
            let file = dir.join(relative);
            let text = serde_yaml::to_string(repository).unwrap_or_default();
            super::write_file(&file, text.as_bytes(), 0o644)
                .map_err(|e| Failure::infrastructure(format!("{suite}: {e}")))?;
        }
        "git" => {
            let repo = params
                .get("repository")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Failure::job(format!(
                        "{suite}: a git definition needs repository: <url or path>"
                    ))
                })?;
            commit_id = Some(clone(inputs, suite, repo, params, dir)?);
        }
        "url" => {
            let url = params
                .get("repository")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Failure::job(format!("{suite}: a url definition needs repository: <url>"))
                })?;
            fetch_tarball(inputs, suite, url, params, dir)?;
        }
        other => {
            return Err(Failure::job(format!(
                "{suite}: unknown definition source '{other}'"
            )))
        }
    }
    // The repository is the submitter's: a symlink in it may point anywhere.
    let file = confine::resolve_inside(dir, relative)
        .map_err(|e| Failure::job(format!("{suite}: test definition {path}: {e}")))?;
    let testdef = read_definition(&file, suite, path)?;
    if let Some(repos) = testdef.pointer("/install/git-repos") {
        let skipped = super::scripts::skipped_install_parts(params)
            .map_err(|e| Failure::job(format!("{suite}: {e}")))?;
        if !skipped.contains(&"git-repos") {
            clone_install_repos(inputs, suite, repos, params, &testdef, dir)?;
        }
    } else {
        super::scripts::skipped_install_parts(params)
            .map_err(|e| Failure::job(format!("{suite}: {e}")))?;
    }
    Ok(Fetched { testdef, commit_id })
}

fn read_definition(file: &Path, suite: &str, path: &str) -> Result<Value, Failure> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        Failure::job(format!(
            "{suite}: Unable to open test definition '{path}': {e}"
        ))
    })?;
    let testdef = crate::yaml11::from_str(&text)
        .map_err(|e| Failure::job(format!("{suite}: {path} is not valid YAML: {e}")))?;
    if !testdef.is_object() {
        return Err(Failure::job(format!(
            "{suite}: {path} is not a test definition (a mapping with metadata and run)"
        )));
    }
    Ok(testdef)
}

/// Clones a definition's repository into `dir` as LAVA does: shallow unless a revision is
/// asked for, `history: false` drops `.git`. Returns the commit checked out.
fn clone(
    inputs: &Inputs<'_>,
    suite: &str,
    repo: &str,
    params: &Map<String, Value>,
    dir: &Path,
) -> Result<String, Failure> {
    let local = git_source(inputs, suite, repo)?;
    let revision = params.get("revision").map(crate::data::text);
    let mut clone = git_command(local);
    clone.args(["clone", "--quiet"]);
    if revision.is_none() {
        clone.arg("--depth=1");
    }
    if let Some(branch) = params.get("branch").map(crate::data::text) {
        if branch.starts_with('-') {
            return Err(Failure::job(format!(
                "{suite}: branch {branch:?} is not a branch"
            )));
        }
        clone.args(["--branch", &branch]);
    }
    if params.get("recursive").and_then(Value::as_bool) == Some(true) {
        clone.arg("--recurse-submodules");
    }
    // An empty directory is what git clones into.
    let _ = std::fs::remove_dir(dir);
    clone.arg("--").arg(repo).arg(dir);
    run_git(
        clone,
        inputs.deadline,
        &format!("{suite}: git clone {repo}"),
    )?;
    if let Some(revision) = &revision {
        if revision.starts_with('-') {
            return Err(Failure::job(format!(
                "{suite}: revision {revision:?} is not a revision"
            )));
        }
        let mut checkout = git_command(local);
        checkout
            .arg("-C")
            .arg(dir)
            .args(["checkout", "--quiet", revision, "--"]);
        run_git(
            checkout,
            inputs.deadline,
            &format!("{suite}: git checkout {revision}"),
        )?;
    }
    let mut head = git_command(local);
    head.arg("-C").arg(dir).args(["rev-parse", "HEAD"]);
    let commit = git_output(head, inputs.deadline, &format!("{suite}: git rev-parse"))?;
    inputs
        .log
        .info(&format!("{suite}: cloned {repo} at {commit}"));
    if params.get("history").and_then(Value::as_bool) == Some(false) {
        let _ = std::fs::remove_dir_all(dir.join(".git"));
    }
    Ok(commit)
}

/// `install: git-repos:` cloned into the definition's directory: a URL (into its base name)
/// or `{url, branch, destination}`, each value replaceable by a parameter of the same name.
fn clone_install_repos(
    inputs: &Inputs<'_>,
    suite: &str,
    repos: &Value,
    params: &Map<String, Value>,
    testdef: &Value,
    dir: &Path,
) -> Result<(), Failure> {
    let parameter = |name: &str, default: Option<String>| -> Option<String> {
        for source in [params.get("parameters"), testdef.get("params")] {
            if let Some(value) = source.and_then(|p| p.get(name)) {
                return Some(crate::data::text(value));
            }
        }
        default
    };
    for entry in repos.as_array().into_iter().flatten() {
        let (url, branch, destination) = match entry {
            Value::String(url) => (url.clone(), None, None),
            Value::Object(map) => {
                let field = |k: &str| map.get(k).map(crate::data::text);
                let url = field("url").ok_or_else(|| {
                    Failure::job(format!("{suite}: a git-repos entry has no url"))
                })?;
                (
                    parameter("url", Some(url)).unwrap_or_default(),
                    parameter("branch", field("branch")),
                    parameter("destination", field("destination")),
                )
            }
            _ => continue,
        };
        let name = match destination {
            Some(destination) => destination,
            None => url
                .trim_end_matches('/')
                .trim_end_matches(".git")
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned(),
        };
        confine::file_name(&name).map_err(|e| {
            Failure::job(format!(
                "{suite}: Destination path is unacceptable {name:?}: {e}"
            ))
        })?;
        let target = dir.join(&name);
        // The definition's repository is the submitter's: a symlink there named like the
        // destination would take the clone outside the job.
        if std::fs::symlink_metadata(&target).is_ok() {
            return Err(Failure::job(format!(
                "{suite}: Destination path is unacceptable {name:?}: it exists in the repository"
            )));
        }
        let local = git_source(inputs, suite, &url)?;
        let mut clone = git_command(local);
        clone.args(["clone", "--quiet", "--depth=1"]);
        if let Some(branch) = branch.filter(|b| !b.starts_with('-')) {
            clone.args(["--branch", &branch]);
        }
        clone.arg("--").arg(&url).arg(&target);
        run_git(clone, inputs.deadline, &format!("{suite}: git clone {url}"))?;
    }
    Ok(())
}

/// A url definition: a tarball of tests, unpacked (confined) with `strip-components`.
fn fetch_tarball(
    inputs: &Inputs<'_>,
    suite: &str,
    url: &str,
    params: &Map<String, Value>,
    dir: &Path,
) -> Result<(), Failure> {
    let downloads = inputs.workdir.join("overlay").join("downloads");
    std::fs::create_dir_all(&downloads)
        .map_err(|e| Failure::infrastructure(format!("{suite}: {e}")))?;
    let target = downloads.join(format!("{suite}.tar"));
    let compression = Compression::parse(params.get("compression").and_then(Value::as_str))
        .unwrap_or(Compression::None);
    download(
        url,
        compression,
        &target,
        Limits::within(inputs.deadline.saturating_duration_since(Instant::now())),
        inputs.local_files,
        Checksums::default(),
        &|line| inputs.log.debug(line),
    )
    .map_err(|e| Failure::infrastructure(format!("{suite}: {e}")))?;
    let strip = params
        .get("strip-components")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    let unpacked = downloads.join(format!("{suite}.d"));
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::create_dir_all(&unpacked)
        .map_err(|e| Failure::infrastructure(format!("{suite}: {e}")))?;
    inputs.log.info(&format!(
        "Untar tests from file {} to directory {}, stripping {strip} components",
        target.display(),
        dir.display()
    ));
    crate::dispatcher::archive::tarball::unpack(&target, &unpacked)
        .map_err(|e| Failure::job(format!("{suite}: {url}: {e}")))?;
    move_stripped(&unpacked, dir, strip)
        .map_err(|e| Failure::infrastructure(format!("{suite}: {e}")))
}

/// Moves what is `strip` levels below `from` into `to`, as tar's `--strip-components` does.
fn move_stripped(from: &Path, to: &Path, strip: usize) -> std::io::Result<()> {
    if strip == 0 {
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            std::fs::rename(entry.path(), to.join(entry.file_name()))?;
        }
        return Ok(());
    }
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            move_stripped(&entry.path(), to, strip - 1)?;
        }
    }
    Ok(())
}

/// Whether `repo` is a repository on this worker (a path, `file://`), checked against the
/// allowed directories; network repositories (`https://`, `git://`, `ssh://`,
/// `user@host:path`) are `false`.
fn git_source(inputs: &Inputs<'_>, suite: &str, repo: &str) -> Result<bool, Failure> {
    if repo.starts_with('-') {
        return Err(Failure::job(format!(
            "{suite}: repository {repo:?} is not a repository"
        )));
    }
    let remote = ["http://", "https://", "git://", "ssh://"]
        .iter()
        .any(|scheme| repo.starts_with(scheme))
        || is_scp_like(repo);
    if remote {
        return Ok(false);
    }
    let path = repo.strip_prefix("file://").unwrap_or(repo);
    inputs
        .local_files
        .check(Path::new(path))
        .map_err(|e| Failure::job(format!("{suite}: repository: {e}")))?;
    Ok(true)
}

/// git's scp-like syntax, `[user@]host:path`: a colon before any slash.
fn is_scp_like(repo: &str) -> bool {
    match (repo.find(':'), repo.find('/')) {
        (Some(colon), Some(slash)) => colon < slash && colon > 0,
        (Some(colon), None) => colon > 0,
        _ => false,
    }
}

/// `git` with the transports a job may use: http(s), git and ssh always, local ones (`file`)
/// only for a repository the worker allows; never `ext` (it runs commands).
fn git_command(local: bool) -> Command {
    let mut git = Command::new("git");
    let allowed = if local {
        "http:https:git:ssh:file"
    } else {
        "http:https:git:ssh"
    };
    // Never a prompt, never the worker user's stored credentials for the submitter's URLs.
    git.env("GIT_ALLOW_PROTOCOL", allowed)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env("SSH_ASKPASS", "/bin/false")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        .args(["-c", "protocol.ext.allow=never", "-c", "credential.helper="])
        .stdin(std::process::Stdio::null());
    git
}

fn run_git(command: Command, deadline: Instant, what: &str) -> Result<(), Failure> {
    git_output(command, deadline, what).map(|_| ())
}

/// Runs git until it ends or `deadline` passes (then it is killed with its process group):
/// a stalled remote never holds the job past its timeout.
fn git_output(mut command: Command, deadline: Instant, what: &str) -> Result<String, Failure> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    if deadline.saturating_duration_since(Instant::now()).is_zero() {
        return Err(Failure::job(format!("{what}: no time left")));
    }
    let cannot =
        |e: std::io::Error| Failure::infrastructure(format!("{what}: cannot run git: {e}"));
    // Output goes to files, so a chatty git never blocks on a full pipe while we wait.
    let stdout = tempfile::tempfile().map_err(cannot)?;
    let stderr = tempfile::tempfile().map_err(cannot)?;
    let mut child = command
        .stdout(stdout.try_clone().map_err(cannot)?)
        .stderr(stderr.try_clone().map_err(cannot)?)
        .process_group(0)
        .spawn()
        .map_err(cannot)?;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(cannot)? {
            break status;
        }
        if Instant::now() >= deadline {
            basalt_plugin_api::process::kill_group(&mut child);
            return Err(Failure::job(format!(
                "{what} did not finish within the action's timeout and was stopped"
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let read = |mut file: std::fs::File| {
        use std::io::Seek;
        let mut text = String::new();
        let _ = file.rewind();
        let _ = file.take(64 * 1024).read_to_string(&mut text);
        text
    };
    if status.success() {
        return Ok(read(stdout).trim().to_owned());
    }
    Err(Failure::job(format!(
        "{what} failed: {}",
        read(stderr).trim()
    )))
}
