//! `to: downloads`: the images into `downloads/NAMESPACE/` (no per-key directories, unless
//! the job sets `uniquify: true`), then, with `postprocess: docker:`, the job's steps run in a
//! container on the worker with that directory mounted at `/lava-downloads`, through the
//! docker CLI with the options LAVA passes (`docker run --rm --init ... --workdir=...
//! --mount=type=bind,... IMAGE /lava-downloads/postprocess.sh`), after pulling the image
//! (`local: true`: used as it is when it exists).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::artifacts::{self, Layout};
use super::{check_artifacts, missing, run_on_worker, DeployContext, Facilities};
use crate::dispatcher::failure::Failure;
use crate::dispatcher::shell;

/// Where the downloads are inside the container.
const LAVA_DOWNLOADS: &str = "/lava-downloads";

/// The program `name` on this worker's `PATH` (the docker CLI, mkimage), if there is one.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn docker_parameters(params: &Map<String, Value>) -> Option<&Value> {
    params.get("postprocess").and_then(|p| p.get("docker"))
}

/// Checks a downloads deploy and its postprocessing.
pub fn check(
    params: &Map<String, Value>,
    device: &Value,
    facilities: &Facilities,
) -> Result<(), Failure> {
    check_artifacts(params, device, facilities)?;
    let Some(postprocess) = params.get("postprocess") else {
        return Ok(());
    };
    let Some(docker) = postprocess.get("docker") else {
        return Err(Failure::job(
            "postprocess: only docker postprocessing exists (postprocess: docker: {image, steps})",
        ));
    };
    if docker.get("image").and_then(Value::as_str).is_none() {
        return Err(Failure::job("postprocess.docker needs an image"));
    }
    if docker
        .get("steps")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        return Err(Failure::job("postprocessing steps missing"));
    }
    if facilities.docker.is_none() {
        return Err(missing(
            "postprocess: docker needs the docker CLI on this worker (install docker.io or \
             podman-docker)",
        ));
    }
    Ok(())
}

/// Runs a downloads deploy.
pub fn run_downloads(ctx: &DeployContext<'_>) -> Result<Map<String, Value>, Failure> {
    let namespace = ctx
        .params
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("common");
    crate::job::confine::file_name(namespace)
        .map_err(|e| Failure::job(format!("namespace: {e}")))?;
    let dir = ctx.output_dir.join("downloads").join(namespace);
    let layout = match ctx.params.get("uniquify").and_then(Value::as_bool) {
        Some(true) => Layout::PerKey,
        _ => Layout::Flat,
    };
    let deployed = artifacts::fetch(ctx, &dir, layout)?;
    if let Some(docker) = docker_parameters(ctx.params) {
        postprocess(ctx, docker, &dir)?;
    }
    Ok(deployed)
}

/// The script LAVA writes: its environment exported, then the job's steps.
fn script(ctx: &DeployContext<'_>, steps: &[String]) -> String {
    let mut lines = vec!["#!/bin/sh".to_owned(), "exec 2>&1".into(), "set -ex".into()];
    for (key, value) in &ctx.environment {
        lines.push(format!(
            "export {}={}",
            shell::quote(key),
            shell::quote(value)
        ));
    }
    lines.extend(steps.iter().cloned());
    lines.join("\n") + "\n"
}

fn strings(value: Option<&Value>) -> Vec<String> {
    // Device options may nest lists and hold nulls (templated YAML), as LAVA flattens them.
    fn flatten(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Null => {}
            Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
            scalar => out.push(crate::data::text(scalar)),
        }
    }
    let mut out = Vec::new();
    if let Some(value) = value {
        flatten(value, &mut out);
    }
    out
}

/// The `docker run` words, in LAVA's order, `cli` (the docker CLI) first; also the global
/// options, which every docker command of the job takes.
pub fn run_words(
    cli: &str,
    docker: &Value,
    device: &Value,
    job_id: &str,
    downloads: &Path,
    kvm: bool,
) -> (Vec<String>, Vec<String>) {
    let method = device.pointer("/actions/test/methods/docker");
    let global = strings(method.and_then(|m| m.get("global_options")));
    let mut words = vec![cli.to_owned()];
    words.extend(global.iter().cloned());
    words.push("run".into());
    words.extend(strings(method.and_then(|m| m.get("options"))));
    words.push("--rm".into());
    words.push("--init".into());
    let suffix = format!("-lava-{job_id}");
    if let Some(name) = docker.get("container_name").and_then(Value::as_str) {
        words.push(format!("--name={name}{suffix}"));
    }
    if let Some(network) = docker.get("network_from").and_then(Value::as_str) {
        words.push(format!("--network=container:{network}{suffix}"));
    }
    words.push(format!("--workdir={LAVA_DOWNLOADS}"));
    let mut devices = strings(docker.get("devices"));
    if kvm {
        devices.push("/dev/kvm".into());
    }
    for device in devices.iter().filter(|d| !d.contains(':')) {
        words.push(format!("--device={device}"));
    }
    words.push(format!(
        "--mount=type=bind,source={},destination={LAVA_DOWNLOADS}",
        downloads.display()
    ));
    words.push(
        docker
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    );
    words.push(format!("{LAVA_DOWNLOADS}/postprocess.sh"));
    (words, global)
}

fn postprocess(ctx: &DeployContext<'_>, docker: &Value, dir: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    let steps = strings(docker.get("steps"));
    let image = docker
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let script_path = dir.join("postprocess.sh");
    std::fs::write(&script_path, script(ctx, &steps))
        .and_then(|()| {
            std::fs::set_permissions(&script_path, std::fs::Permissions::from_mode(0o755))
        })
        .map_err(|e| {
            Failure::infrastructure(format!("cannot write {}: {e}", script_path.display()))
        })?;
    let Some(cli) = &ctx.docker else {
        return Err(missing(
            "postprocess: docker needs the docker CLI on this worker",
        ));
    };
    let cli = cli.display().to_string();
    let job_id = &ctx.servers.job_id;
    let (words, global) = run_words(
        &cli,
        docker,
        ctx.device,
        job_id,
        dir,
        Path::new("/dev/kvm").exists(),
    );
    let run = |words: &[String], failing: &str| {
        run_on_worker(ctx, "docker", &shell::join(words), failing)
    };
    let docker_words = |rest: &[&str]| {
        let mut words = vec![cli.clone()];
        words.extend(global.iter().cloned());
        words.extend(rest.iter().map(|w| (*w).to_owned()));
        words
    };
    let mut pull = true;
    if docker.get("local").and_then(Value::as_bool) == Some(true) {
        let format = format!("Image {image} exists locally");
        let inspect = docker_words(&["image", "inspect", "--format", &format, image]);
        match run(&inspect, "docker image inspect failed") {
            Ok(()) => pull = false,
            Err(_) => ctx
                .log
                .warning(&format!("Unable to inspect docker image '{image}'")),
        }
    }
    if pull {
        run(&docker_words(&["pull", image]), "docker pull failed")?;
    }
    run(&words, "Post-processing of downloads failed")
}

#[cfg(test)]
mod tests {
    use super::super::tests::context;
    use super::*;
    use crate::dispatcher::local_files::LocalFiles;
    use serde_json::json;

    /// LAVA's words for a downloads postprocess, device options included.
    #[test]
    fn the_docker_command_is_lavas() {
        let docker = json!({"image": "debian:bookworm", "container_name": "pp", "devices": ["/dev/ttyUSB0", "a:b"]});
        let device = json!({"actions": {"test": {"methods": {"docker": {"global_options": ["--host", "unix:///d.sock"], "options": [null, ["--cpus", "2"]]}}}}});
        let (words, global) = run_words(
            "docker",
            &docker,
            &device,
            "42",
            Path::new("/jobs/42/downloads/common"),
            false,
        );
        assert_eq!(global, ["--host", "unix:///d.sock"]);
        assert_eq!(
            shell::join(&words),
            "docker --host unix:///d.sock run --cpus 2 --rm --init --name=pp-lava-42 \
             --workdir=/lava-downloads --device=/dev/ttyUSB0 \
             --mount=type=bind,source=/jobs/42/downloads/common,destination=/lava-downloads \
             debian:bookworm /lava-downloads/postprocess.sh"
        );
    }

    /// With a stand-in `docker` (none of CI's machines runs a docker daemon):
    /// the image is pulled, then run with the downloads mounted, and the script exports the
    /// job's environment before the steps.
    #[test]
    fn downloads_are_postprocessed_through_the_docker_cli() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir(&images).unwrap();
        std::fs::write(images.join("Image.gz"), b"kernel").unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let calls = dir.path().join("calls");
        let stand_in = bin.join("docker");
        std::fs::write(
            &stand_in,
            format!("#!/bin/sh\necho \"$*\" >> {}\n", calls.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
        let params = json!({
            "to": "downloads",
            "images": {"kernel": {"url": format!("file://{}/Image.gz", images.display())}},
            "postprocess": {"docker": {"image": "debian", "steps": ["ls", "gzip -d Image.gz"]}},
        });
        let params = params.as_object().unwrap();
        let device = json!({});
        let local = LocalFiles::new([images.clone()]);
        let (log, servers) = context::parts(dir.path());
        let facilities = Facilities {
            docker: Some(stand_in.clone()),
            ..Facilities::default()
        };
        check(params, &device, &facilities).unwrap();
        assert!(check(params, &device, &Facilities::default())
            .unwrap_err()
            .message
            .contains("docker CLI"));
        let mut ctx = context::new(params, &device, dir.path(), &local, &log, &servers);
        ctx.docker = Some(stand_in.clone());
        ctx.environment.push(("WHERE".into(), "it's here".into()));
        let downloads = dir.path().join("downloads/common");
        let deployed = run_downloads(&ctx).unwrap();
        assert_eq!(
            deployed["kernel"],
            downloads.join("Image.gz").display().to_string()
        );
        let calls = std::fs::read_to_string(&calls).unwrap();
        let lines: Vec<&str> = calls.lines().collect();
        assert_eq!(lines[0], "pull debian");
        assert!(
            lines[1].starts_with("run --rm --init --workdir=/lava-downloads"),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with(&format!("--mount=type=bind,source={},destination=/lava-downloads debian /lava-downloads/postprocess.sh", downloads.display())), "{}", lines[1]);
        assert_eq!(
            std::fs::read_to_string(downloads.join("postprocess.sh")).unwrap(),
            "#!/bin/sh\nexec 2>&1\nset -ex\nexport LAVA_JOB_ID=7\nexport WHERE='it'\"'\"'s here'\nls\ngzip -d Image.gz\n"
        );
    }
}
