//! Building the pipeline from a job and a device configuration.

use std::time::Duration;

use serde_json::Value;

use super::{Pipeline, PipelineAction, Stage, TimeoutSource};
use crate::job::{timeout_of, ActionKind, JobAction, JobDefinition};

/// The job timeout when a job gives none (validation requires one; this guards the model).
const FALLBACK_JOB_TIMEOUT: Duration = Duration::from_secs(3600);

/// Why a job cannot run on a device. These are LAVA's `JobError`s found at validation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PipelineError {
    /// A deploy or boot method the device configuration does not list.
    #[error(
        "actions[{index}]: {kind} method '{method}' is not supported by this device (it supports: \
         {supported})"
    )]
    UnsupportedMethod {
        /// Index of the job action.
        index: usize,
        /// `deploy` or `boot`.
        kind: &'static str,
        /// The method asked for.
        method: String,
        /// What the device offers.
        supported: String,
    },
    /// A `command:` naming no user command of the device.
    #[error(
        "actions[{index}]: command '{name}' is not one of this device's user commands ({known})"
    )]
    UnknownCommand {
        /// Index of the job action.
        index: usize,
        /// The name asked for.
        name: String,
        /// The device's commands.
        known: String,
    },
    /// A test action before any boot: there is no shell to run it in.
    #[error("actions[{index}]: a test action needs a boot action before it")]
    TestBeforeBoot {
        /// Index of the job action.
        index: usize,
    },
}

struct Builder<'a> {
    job: &'a JobDefinition,
    device: &'a Value,
    job_timeout: Duration,
}

impl Builder<'_> {
    /// Resolves a timeout: the action's own, then `timeouts.actions.<name>` of the job, then
    /// of the device, then the job's default action timeout, never longer than the job.
    fn timeout(&self, own: Option<Duration>, name: &str) -> (Duration, TimeoutSource) {
        let device_named = self
            .device
            .pointer(&format!("/timeouts/actions/{name}"))
            .and_then(timeout_of);
        let (timeout, source) = if let Some(t) = own {
            (t, TimeoutSource::Action)
        } else if let Some(t) = self.job.named_timeout("actions", name) {
            (t, TimeoutSource::JobNamed)
        } else if let Some(t) = device_named {
            (t, TimeoutSource::DeviceNamed)
        } else if let Some(t) = self.job.timeout("action") {
            (t, TimeoutSource::JobDefault)
        } else {
            (self.job_timeout, TimeoutSource::Job)
        };
        (timeout.min(self.job_timeout), source)
    }

    fn node(
        &self,
        level: String,
        name: &str,
        description: String,
        own: Option<Duration>,
        children: Vec<PipelineAction>,
    ) -> PipelineAction {
        let (timeout, timeout_source) = self.timeout(own, name);
        PipelineAction {
            level,
            name: name.to_owned(),
            description,
            timeout,
            timeout_source,
            // A sub-action never has longer than its parent.
            children: children
                .into_iter()
                .map(|child| clamp(child, timeout))
                .collect(),
        }
    }

    fn device_methods(&self, kind: &str) -> Vec<String> {
        self.device
            .pointer(&format!("/actions/{kind}/methods"))
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn check_method(
        &self,
        action: &JobAction,
        kind: &'static str,
    ) -> Result<String, PipelineError> {
        let method = action.method().unwrap_or_default().to_owned();
        let supported = self.device_methods(kind);
        // Some deploys need nothing from the device (the registry says which: `downloads`,
        // `tmpfs`, ...), and `new_connection` only opens another of the device's consoles.
        let implicit = (kind == "deploy"
            && crate::dispatcher::deploy_method(&method)
                .is_some_and(|m| m.offered == crate::dispatcher::Offered::Everywhere))
            || (kind == "boot" && method == "new_connection");
        if supported.contains(&method) || implicit {
            return Ok(method);
        }
        Err(PipelineError::UnsupportedMethod {
            index: action.index,
            kind,
            method,
            supported: supported.join(", "),
        })
    }

    fn deploy(
        &self,
        level: &str,
        action: &JobAction,
        overlay: bool,
    ) -> Result<PipelineAction, PipelineError> {
        let method = self.check_method(action, "deploy")?;
        let mut children = Vec::new();
        let next = |children: &Vec<PipelineAction>| format!("{level}.{}", children.len() + 1);
        if overlay {
            children.push(self.overlay(&next(&children)));
        }
        for (key, artifact) in deploy_artifacts(&action.params) {
            let level = next(&children);
            let url = artifact.get("url").and_then(Value::as_str).unwrap_or("");
            let mut steps = vec![self.node(
                format!("{level}.1"),
                download_action(url),
                format!("download {key}"),
                None,
                Vec::new(),
            )];
            if artifact.get("overlays").is_some() {
                steps.push(self.node(
                    format!("{level}.2"),
                    "append-overlays",
                    format!("add the overlays to {key}"),
                    None,
                    Vec::new(),
                ));
            }
            children.push(self.node(
                level,
                "download-retry",
                format!("download {key}"),
                None,
                steps,
            ));
            // fastboot's `apply-overlay: true`: the overlay into the flashed image.
            if method == "fastboot"
                && artifact.get("apply-overlay").and_then(Value::as_bool) == Some(true)
                && crate::dispatcher::overlay_needed(self.job)
            {
                let sparse = artifact.get("sparse").and_then(Value::as_bool) != Some(false);
                children.push(self.node(
                    next(&children),
                    match sparse {
                        true => "apply-overlay-sparse-image",
                        false => "apply-overlay-image",
                    },
                    format!("put the overlay into {key}"),
                    None,
                    Vec::new(),
                ));
            }
        }
        // qemu's guest disk, for a job whose images do not take the overlay.
        if method == "tmpfs"
            && crate::dispatcher::overlay_needed(self.job)
            && crate::dispatcher::guest_size(self.device).is_some()
        {
            children.push(self.node(
                next(&children),
                "apply-overlay-guest",
                "build a guest filesystem with the overlay".into(),
                None,
                Vec::new(),
            ));
        }
        Ok(self.node(
            level.to_owned(),
            &deploy_action(&method),
            format!("deploy to {method}"),
            action.own_timeout(),
            children,
        ))
    }

    /// LAVA's `lava-overlay`, as the first deploy (or the first test, with no deploy before
    /// it) builds it.
    fn overlay(&self, level: &str) -> PipelineAction {
        let mut steps = Vec::new();
        for action in self
            .job
            .actions
            .iter()
            .filter(|a| a.kind == ActionKind::Test)
        {
            for definition in action
                .params
                .get("definitions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let from = definition.get("from").and_then(Value::as_str).unwrap_or("");
                let path = definition.get("path").and_then(Value::as_str).unwrap_or("");
                let repo = repo_action(from);
                for (name, what) in [
                    (repo, format!("fetch {from} test definition {path}")),
                    ("test-overlay", "write the test definition".into()),
                    ("test-install-overlay", "write its install script".into()),
                    ("test-runscript-overlay", "write its run script".into()),
                ] {
                    steps.push(self.node(
                        format!("{level}.1.{}", steps.len() + 1),
                        name,
                        what,
                        None,
                        Vec::new(),
                    ));
                }
            }
        }
        let children = vec![
            self.node(
                format!("{level}.1"),
                "test-definition",
                "load the test definitions into the overlay".into(),
                None,
                steps,
            ),
            self.node(
                format!("{level}.2"),
                "compress-overlay",
                "pack the overlay".into(),
                None,
                Vec::new(),
            ),
        ];
        self.node(
            level.to_owned(),
            "lava-overlay",
            "the lava-test helpers and test scripts".into(),
            None,
            children,
        )
    }

    /// A boot and the actions its plugin logs: qemu's start, a bootloader's reset,
    /// interrupt and commands, a reset, then the login where the boot waits for a prompt.
    fn boot(&self, level: &str, action: &JobAction) -> Result<PipelineAction, PipelineError> {
        let method = self.check_method(action, "boot")?;
        let resets = action.params.get("reset").and_then(Value::as_bool) != Some(false);
        let grub_sequence = self
            .device
            .pointer(&format!("/actions/boot/methods/{method}/sequence"))
            .is_some();
        // (name, what, its own children's names)
        let mut steps: Vec<(&str, &str, &[&str])> = Vec::new();
        let reset = ("reset-device", "power-cycle the board", &["pdu-reboot"][..]);
        match method.as_str() {
            "qemu" => steps.push(("boot-qemu-image", "start qemu", &["execute-qemu"])),
            "minimal" if resets => steps.push(reset),
            "depthcharge" => {
                if resets {
                    steps.push(reset);
                }
                steps.push(("depthcharge-start", "wait for depthcharge", &[]));
                steps.push(("bootloader-commands", "send the commands", &[]));
            }
            "u-boot" | "ipxe" | "barebox" | "grub-efi" | "grub" if !grub_sequence => {
                if resets {
                    steps.push(reset);
                }
                steps.push(("bootloader-interrupt", "stop the bootloader", &[]));
                steps.push(("bootloader-commands", "send the commands", &[]));
            }
            _ => {}
        }
        let prompts = action
            .params
            .get("prompts")
            .and_then(Value::as_array)
            .is_some_and(|p| !p.is_empty());
        if prompts {
            steps.push((
                "auto-login-action",
                "log in and wait for the shell",
                &["login-action"],
            ));
        }
        let children = steps
            .iter()
            .enumerate()
            .map(|(i, (name, what, inner))| {
                let at = format!("{level}.{}", i + 1);
                let inner = inner
                    .iter()
                    .enumerate()
                    .map(|(j, name)| {
                        self.node(
                            format!("{at}.{}", j + 1),
                            name,
                            (*what).into(),
                            None,
                            Vec::new(),
                        )
                    })
                    .collect();
                self.node(at, name, (*what).into(), None, inner)
            })
            .collect();
        let mut boot = self.node(
            level.to_owned(),
            &boot_action(&method, grub_sequence),
            format!("boot with the '{method}' boot plugin"),
            action.own_timeout(),
            children,
        );
        // The plugin runs its steps within the boot's time: they have no timeouts of their
        // own to show.
        fn inherit(action: &mut PipelineAction, timeout: Duration, source: &TimeoutSource) {
            for child in &mut action.children {
                child.timeout = timeout;
                child.timeout_source = source.clone();
                inherit(child, timeout, source);
            }
        }
        let (timeout, source) = (boot.timeout, boot.timeout_source.clone());
        inherit(&mut boot, timeout, &source);
        Ok(boot)
    }

    fn test(&self, level: &str, action: &JobAction, overlay: bool) -> PipelineAction {
        let definitions: Vec<String> = action
            .params
            .get("definitions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|d| {
                d.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("test")
                    .to_owned()
            })
            .collect();
        let (retry, runner, what) = if action.params.contains_key("interactive") {
            (
                "lava-test-interactive-retry",
                "lava-test-interactive",
                "interactive tests".to_owned(),
            )
        } else if action.params.contains_key("monitors") && definitions.is_empty() {
            (
                "lava-test-monitor-retry",
                "lava-test-monitor",
                "watch the console".to_owned(),
            )
        } else {
            (
                "lava-test-retry",
                "lava-test-shell",
                format!("run {} on the board's shell", definitions.join(", ")),
            )
        };
        let mut children = Vec::new();
        if overlay {
            children.push(self.overlay(&format!("{level}.1")));
        }
        children.push(self.node(
            format!("{level}.{}", children.len() + 1),
            runner,
            what,
            None,
            Vec::new(),
        ));
        // Named timeouts of the action that runs the tests (`timeouts.actions.lava-test-shell`,
        // the one jobs and device types set) bound the test action too.
        let mut node = self.node(
            level.to_owned(),
            retry,
            "run tests on the board".into(),
            action.own_timeout(),
            children,
        );
        let (timeout, source) = self.timeout(action.own_timeout(), runner);
        if matches!(
            node.timeout_source,
            TimeoutSource::JobDefault | TimeoutSource::Job
        ) && matches!(source, TimeoutSource::JobNamed | TimeoutSource::DeviceNamed)
        {
            node.timeout = timeout;
            node.timeout_source = source;
            node = clamp(node, timeout);
        }
        node
    }

    fn command(&self, level: &str, action: &JobAction) -> Result<PipelineAction, PipelineError> {
        let name = action.method().unwrap_or_default().to_owned();
        let users = self
            .device
            .pointer("/commands/users")
            .and_then(Value::as_object);
        if !users.is_some_and(|u| u.contains_key(&name)) {
            return Err(PipelineError::UnknownCommand {
                index: action.index,
                name,
                known: users
                    .map(|u| u.keys().cloned().collect::<Vec<_>>().join(", "))
                    .filter(|k| !k.is_empty())
                    .unwrap_or_else(|| "none".into()),
            });
        }
        Ok(self.node(
            level.to_owned(),
            "user-command",
            format!("run the device's '{name}' command"),
            action.own_timeout(),
            Vec::new(),
        ))
    }
}

fn clamp(mut action: PipelineAction, limit: Duration) -> PipelineAction {
    action.timeout = action.timeout.min(limit);
    action.children = action
        .children
        .into_iter()
        .map(|child| clamp(child, limit))
        .collect();
    action
}

/// LAVA's name for a deploy method's action.
fn deploy_action(method: &str) -> String {
    match method {
        "tmpfs" => "deployimages".into(),
        "downloads" => "downloads".into(),
        "download" => "download-deploy".into(),
        "flasher" => "deploy-flasher-retry".into(),
        "overlay" => "lava-overlay".into(),
        other => format!("{other}-deploy"),
    }
}

/// LAVA's name for a boot method's action (GRUB's differs on a device whose grub section is
/// a fastboot-style `sequence`).
fn boot_action(method: &str, grub_sequence: bool) -> String {
    match method {
        "qemu" => "boot-image-retry".into(),
        "u-boot" => "uboot-action".into(),
        "minimal" => "minimal-boot".into(),
        "depthcharge" => "depthcharge-action".into(),
        "fastboot" => "fastboot-boot".into(),
        "grub" | "grub-efi" if grub_sequence => "grub-sequence-action".into(),
        "grub" | "grub-efi" => "grub-main-action".into(),
        "ipxe" => "bootloader-action".into(),
        "barebox" => "barebox-action".into(),
        "new_connection" => "secondary-shell-action".into(),
        other => format!("boot-{other}"),
    }
}

/// LAVA's name for the action that fetches a test definition `from` there.
pub fn repo_action(from: &str) -> &'static str {
    match from {
        "git" => "git-repo-action",
        "url" => "url-repo-action",
        _ => "inline-repo-action",
    }
}

/// LAVA's name for the action that downloads `url`, by its scheme.
pub fn download_action(url: &str) -> &'static str {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("http" | "https") => "http-download",
        Some("scp") => "scp-download",
        Some("downloads") => "pre-downloaded",
        _ => "file-download",
    }
}

/// The top-level artifact keys of LAVA's older deploy form (`tftp`, `nfs`, ...).
const TOP_LEVEL_ARTIFACTS: &[&str] = &[
    "kernel",
    "ramdisk",
    "dtb",
    "rootfs",
    "nfsrootfs",
    "modules",
    "image",
    "tee",
];

/// The artifacts a deploy action downloads: `images:` entries, or LAVA's older top-level
/// `kernel:`/`ramdisk:`/`dtb:`/`rootfs:`/`nfsrootfs:`/`modules:` keys, each with a `url`.
pub fn deploy_artifacts(params: &serde_json::Map<String, Value>) -> Vec<(String, Value)> {
    let mut artifacts = Vec::new();
    if let Some(images) = params.get("images").and_then(Value::as_object) {
        for (key, image) in images {
            if image.get("url").is_some() {
                artifacts.push((key.clone(), image.clone()));
            }
        }
    }
    for key in TOP_LEVEL_ARTIFACTS {
        if let Some(image) = params.get(*key) {
            if image.get("url").is_some() {
                artifacts.push(((*key).to_owned(), image.clone()));
            }
        }
    }
    artifacts
}

/// The artifact `key` of a deploy action, looked up as [`deploy_artifacts`] lists them
/// (`images:` first).
pub fn deploy_artifact<'a>(
    params: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Option<&'a Value> {
    let image = params.get("images").and_then(|images| images.get(key));
    let top = TOP_LEVEL_ARTIFACTS
        .contains(&key)
        .then(|| params.get(key))
        .flatten();
    image
        .into_iter()
        .chain(top)
        .find(|artifact| artifact.get("url").is_some())
}

/// Builds the pipeline, checking the job against what the device offers.
pub fn build_pipeline(job: &JobDefinition, device: &Value) -> Result<Pipeline, PipelineError> {
    let job_timeout = job.timeout("job").unwrap_or(FALLBACK_JOB_TIMEOUT);
    let builder = Builder {
        job,
        device,
        job_timeout,
    };
    let mut stages = Vec::new();
    let mut booted = false;
    // The overlay is built once, by the first deploy or test (`Job::ensure_overlay`).
    let mut overlay = crate::dispatcher::overlay_needed(job);
    for (i, action) in job.actions.iter().enumerate() {
        let level = (i + 1).to_string();
        let node = match action.kind {
            ActionKind::Deploy => builder.deploy(&level, action, std::mem::take(&mut overlay))?,
            ActionKind::Boot => {
                booted = true;
                builder.boot(&level, action)?
            }
            ActionKind::Test => {
                if !booted {
                    return Err(PipelineError::TestBeforeBoot {
                        index: action.index,
                    });
                }
                builder.test(&level, action, std::mem::take(&mut overlay))
            }
            ActionKind::Command => builder.command(&level, action)?,
        };
        stages.push(Stage {
            kind: action.kind,
            job_index: action.index,
            attempts: action.attempts(),
            repeat: action.repeats(),
            action: node,
        });
    }
    Ok(Pipeline {
        job_timeout,
        stages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(actions: Value, timeouts: Value) -> JobDefinition {
        JobDefinition::from_value(json!({
            "job_name": "t", "visibility": "public", "timeouts": timeouts, "actions": actions
        }))
    }

    fn device() -> Value {
        json!({
            "actions": {"deploy": {"methods": {"tftp": null}}, "boot": {"methods": {"minimal": null}}},
            "timeouts": {"actions": {"pdu-reboot": {"seconds": 30}, "minimal-boot": {"minutes": 3}}},
        })
    }

    #[test]
    fn timeouts_resolve_from_the_narrowest_setting_and_never_exceed_the_parent() {
        let job = job(
            json!([
                {"deploy": {"to": "tftp", "timeout": {"minutes": 2}, "kernel": {"url": "file:///k"}}},
                {"boot": {"method": "minimal", "prompts": ["# "]}},
                {"test": {"definitions": [{"from": "inline", "name": "a", "path": "a.yaml", "repository": {}}],
                          "interactive": [{"name": "b", "script": []}]}},
            ]),
            json!({"job": {"minutes": 10}, "action": {"minutes": 5}, "actions": {"download-retry": {"minutes": 9}}}),
        );
        let pipeline = build_pipeline(&job, &device()).unwrap();
        let deploy = &pipeline.stages[0].action;
        assert_eq!(deploy.timeout, Duration::from_secs(120));
        assert_eq!(deploy.timeout_source, TimeoutSource::Action);
        // The first deploy builds the overlay, then downloads: the job says 9 minutes for
        // downloads, but the deploy only has 2.
        assert_eq!(deploy.children[0].name, "lava-overlay");
        assert_eq!(deploy.children[1].name, "download-retry");
        assert_eq!(deploy.children[1].children[0].name, "file-download");
        assert_eq!(deploy.children[1].timeout, Duration::from_secs(120));
        let boot = &pipeline.stages[1].action;
        assert_eq!(boot.timeout, Duration::from_secs(180));
        assert_eq!(boot.timeout_source, TimeoutSource::DeviceNamed);
        let test = &pipeline.stages[2].action;
        assert_eq!(test.timeout_source, TimeoutSource::JobDefault);
        assert_eq!(test.name, "lava-test-interactive-retry");
        let names: Vec<&str> = test.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["lava-test-interactive"]);
    }

    #[test]
    fn methods_and_commands_the_device_lacks_are_job_errors() {
        let unsupported = job(
            json!([{"boot": {"method": "u-boot"}}]),
            json!({"job": {"minutes": 1}}),
        );
        assert!(matches!(
            build_pipeline(&unsupported, &device()),
            Err(PipelineError::UnsupportedMethod { .. })
        ));
        let command = job(
            json!([{"command": {"name": "relay"}}]),
            json!({"job": {"minutes": 1}}),
        );
        assert!(matches!(
            build_pipeline(&command, &device()),
            Err(PipelineError::UnknownCommand { .. })
        ));
        let early = job(
            json!([{"test": {"definitions": []}}]),
            json!({"job": {"minutes": 1}}),
        );
        assert_eq!(
            build_pipeline(&early, &device()).unwrap_err(),
            PipelineError::TestBeforeBoot { index: 0 }
        );
    }
}
