//! A job stays in its directories and reads only the worker files the admin allows (issue
//! 14, items 1 and 2): refused at submission where the definition shows it, at run time
//! otherwise, with an error naming the key or the setting.

use std::path::{Path, PathBuf};
use std::time::Duration;

use basalt_e2e::cluster::Cluster;
use basalt_e2e::simlab::SimBoard;
use basalt_e2e::{test_program, Basalt, TestDir};

/// A job for the simulated board with `deploy` as its deploy action's body and, if given,
/// `definitions` as its test definitions (YAML, indented for `definitions:`).
fn job(dir: &TestDir, deploy: &str, definitions: Option<&str>) -> PathBuf {
    let test = match definitions {
        Some(definitions) => format!(
            "- boot:
    method: minimal
    auto_login: {{login_prompt: 'login: ', username: root}}
    prompts: ['root@simboard:~# ']
- test:
    definitions:
{definitions}"
        ),
        None => String::new(),
    };
    dir.write(
        "job.yaml",
        format!(
            "job_name: confinement
device_type: beaglebone-black
timeouts:
  job: {{minutes: 3}}
  action: {{minutes: 1}}
visibility: public
priority: medium
actions:
- deploy:
{deploy}
{test}"
        ),
    )
}

/// `basalt run` of `job` on a fresh simulated board, reading local files only from
/// `allowed`; returns its output and the job's log.
fn run(dir: &TestDir, job: &Path, allowed: &[&Path]) -> (basalt_e2e::Output, String) {
    let board = SimBoard::write(dir.path(), "sim-01", &test_program("simboard"), "").unwrap();
    let out = dir.path().join("out");
    let mut run = Basalt::new(["run", "--quiet", "--device"])
        .arg(&board.dictionary)
        .arg("--output-dir")
        .arg(&out)
        .arg("--tftp-root")
        .arg(dir.mkdir("tftp"))
        .arg("--nfs-root")
        .arg(dir.mkdir("nfs"));
    for dir in allowed {
        run = run.arg("--local-file-dir").arg(dir);
    }
    let output = run.arg(job).timeout(Duration::from_secs(120)).run();
    let log = std::fs::read_to_string(out.join("output.yaml")).unwrap_or_default();
    (output, log)
}

/// Every file under `dir`, relative.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path.clone());
            }
            found.push(path.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    found.sort();
    found
}

#[test]
fn a_submission_naming_files_outside_the_job_is_refused_with_each_key() {
    let mut cluster = Cluster::new();
    let _master = cluster.start_master();
    cluster.register_board();
    let token = cluster
        .cli(&["user", "add", "bob", "--with-token"])
        .success()
        .stdout
        .trim()
        .to_owned();
    let evil = job(
        &cluster.dir,
        "    to: tmpfs
    images:
      ../../../../../../tmp/x/evil: {url: 'file:///etc/hostname'}
      rootfs: {url: 'http://127.0.0.1:9/images/..', sha256sum: 0000}",
        Some(
            "    - {from: git, name: abs, path: /etc/passwd, repository: 'https://example.org/t.git'}
    - {from: git, name: climb, path: ../../x.yaml, repository: '--upload-pack=touch /tmp/p'}",
        ),
    );
    let refused = Basalt::new(["jobs", "submit", &evil.display().to_string()])
        .env("BASALT_URL", cluster.url())
        .env("BASALT_TOKEN", &token)
        .run()
        .failure();
    for expected in [
        "actions[0].deploy.images.../../../../../../tmp/x/evil: cannot be an artifact key",
        "actions[0].deploy.images.rootfs.url",
        "is a directory reference",
        "actions[0].deploy.images.rootfs.sha256sum: must be a string, found the number 0: quote it",
        "actions[2].test.definitions[0].path: \"/etc/passwd\" must be a relative path",
        "actions[2].test.definitions[1].path: \"../../x.yaml\" must be a relative path",
        "actions[2].test.definitions[1].repository: may not start with '-'",
    ] {
        assert!(refused.stderr.contains(expected), "{expected}\n{refused}");
    }
    let jobs = cluster
        .cli(&["jobs", "list", "--format", "json"])
        .success()
        .json();
    assert_eq!(jobs.as_array().map(Vec::len), Some(0), "{jobs}");
}

#[test]
fn worker_files_outside_the_allowed_directories_are_never_read() {
    let dir = TestDir::new();
    let images = dir.mkdir("images");
    std::fs::write(images.join("zImage"), "a kernel").unwrap();
    // An artifact from /etc: refused, and the error names the setting that allows it.
    let shadow = job(
        &dir,
        "    to: tmpfs\n    kernel: {url: 'file:///etc/hostname'}",
        None,
    );
    let (output, log) = run(&dir, &shadow, &[&images]);
    assert_ne!(output.status.code(), Some(0), "{output}");
    assert!(log.contains("local_file_dirs"), "{log}");
    assert!(!dir.path().join("out/deploy/kernel/hostname").exists());

    // A url test definition from /etc, a local repository outside the allowed directory,
    // and a symlink inside an allowed repository that leads out of it.
    let repo = images.join("tests.git");
    std::fs::create_dir(&repo).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", repo.join("smoke.yaml")).unwrap();
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.org")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.org")
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "--quiet"]);
    git(&["add", "smoke.yaml"]);
    git(&[
        "commit",
        "--quiet",
        "-m",
        "a definition that is /etc/passwd",
    ]);
    let outside = dir.mkdir("elsewhere");
    let deploy = format!(
        "    to: tmpfs\n    kernel: {{url: 'file://{}/zImage'}}",
        images.display()
    );
    for (definition, expected) in [
        (
            "    - {from: url, name: remote, path: x.yaml, repository: 'file:///etc/passwd'}"
                .to_owned(),
            "local_file_dirs",
        ),
        (
            format!(
                "    - {{from: git, name: outside, path: smoke.yaml, repository: '{}'}}",
                outside.display()
            ),
            "local_file_dirs",
        ),
        (
            format!(
                "    - {{from: git, name: link, path: smoke.yaml, repository: '{}'}}",
                repo.display()
            ),
            "leads outside",
        ),
    ] {
        let job = job(&dir, &deploy, Some(&definition));
        let (output, log) = run(&dir, &job, &[&images]);
        assert_ne!(output.status.code(), Some(0), "{definition}\n{output}");
        assert!(log.contains(expected), "{definition}: {expected}\n{log}");
        assert!(
            !log.contains("root:x:0:0"),
            "/etc/passwd reached the log:\n{log}"
        );
    }
}

/// An NFS root tarball whose members climb out (`..`, an absolute name), or reach out
/// through a symlink or a hard link, writes nothing outside the job's export directory.
#[test]
fn a_root_filesystem_archive_cannot_write_outside_its_directory() {
    let dir = TestDir::new();
    let images = dir.mkdir("images");
    let outside = dir.mkdir("outside");
    std::fs::write(outside.join("target"), "untouched").unwrap();
    std::fs::write(images.join("zImage"), "a kernel").unwrap();
    let tarball = images.join("rootfs.tar.gz");
    let script = r#"
import io, sys, tarfile
tarball, outside, mode = sys.argv[1:4]
def data(name, text):
    info = tarfile.TarInfo(name)
    info.size = len(text)
    return info, io.BytesIO(text)
with tarfile.open(tarball, "w:gz", format=tarfile.GNU_FORMAT) as tar:
    tar.addfile(*data("etc-issue", b"fine\n"))
    if mode == "dotdot":
        tar.addfile(*data("../dotdot-escape", b"x"))
    if mode == "absolute":
        tar.addfile(*data(outside + "/absolute-escape", b"x"))
    if mode == "symlink":
        link = tarfile.TarInfo("link"); link.type = tarfile.SYMTYPE; link.linkname = outside
        tar.addfile(link)
        tar.addfile(*data("link/through-symlink", b"x"))
    if mode == "hardlink":
        hard = tarfile.TarInfo("hard"); hard.type = tarfile.LNKTYPE; hard.linkname = outside + "/target"
        tar.addfile(hard)
        tar.addfile(*data("hard", b"overwritten through a hard link"))
"#;
    for (mode, says) in [
        ("dotdot", "climbs out with '..'"),
        ("absolute", "has an absolute name"),
        ("symlink", "trying to unpack outside of destination"),
        ("hardlink", "trying to unpack outside of destination"),
    ] {
        let status = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&tarball)
            .arg(&outside)
            .arg(mode)
            .status()
            .unwrap();
        assert!(status.success());
        let deploy = format!(
            "    to: tftp\n    kernel: {{url: 'file://{i}/zImage', type: zimage}}\n    nfsrootfs: {{url: 'file://{i}/rootfs.tar.gz'}}",
            i = images.display()
        );
        let job = job(&dir, &deploy, None);
        let (output, log) = run(&dir, &job, &[&images]);
        assert_eq!(
            files_under(&outside),
            ["target"],
            "{mode}: the archive wrote outside:\n{output}\n{log}"
        );
        assert_eq!(
            std::fs::read_to_string(outside.join("target")).unwrap(),
            "untouched",
            "{mode}"
        );
        assert!(!dir.path().join("nfs/dotdot-escape").exists());
        assert!(!dir.path().join("dotdot-escape").exists());
        assert_ne!(output.status.code(), Some(0), "{mode}: {output}\n{log}");
        assert!(log.contains(says), "{mode}: {log}");
    }
}
