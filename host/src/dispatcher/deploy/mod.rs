//! Deploy methods, in one registry ([`METHODS`]): each names what a device must offer for it
//! and how it runs, so a method is added here and nowhere else — the pipeline builder, the
//! dry run (`basalt run --validate`), `basalt jobs describe` and the runner all read it.
//!
//! `artifacts` downloads (LAVA's `DownloaderAction`), `ramdisk` rebuilds cpio images,
//! `servers` publishes to TFTP/NFS, `flasher` and `postprocess` are the methods that run
//! the device's or the job's own commands.

mod artifacts;
mod fastboot;
mod fit;
mod flasher;
mod images;
mod nfs;
mod postprocess;
mod ramdisk;
mod servers;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Map, Value};

pub use images::{guest_size, GuestDisk};
use postprocess::find_program;
pub use servers::ServerDirs;

use super::archive::Compression;
use super::failure::Failure;
use super::local_files::LocalFiles;
use super::log::JobLogger;
use super::overlay::Overlay;
use crate::failure::FailureClass;
use crate::pipeline::deploy_artifacts;
use artifacts::{Artifact, Layout};

/// Whether a device offers a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// On every device (LAVA accepts `downloads` anywhere; `tmpfs` needs only a place for
    /// files).
    Everywhere,
    /// Where the device configuration lists it under `actions.deploy.methods`.
    WhereListed,
}

/// What the worker running a job has, for the checks a method makes before it starts.
#[derive(Debug, Clone, Default)]
pub struct Facilities {
    /// A TFTP root (`--tftp-root`).
    pub tftp_root: bool,
    /// An NFS export directory (`--nfs-root`).
    pub nfs_root: bool,
    /// The docker CLI that `postprocess: docker` runs, if found.
    pub docker: Option<PathBuf>,
    /// mkimage (Debian's u-boot-tools), which depthcharge's FIT images are built with.
    pub mkimage: Option<PathBuf>,
    /// The fastboot client (Debian's fastboot), which fastboot deploys flash with.
    pub fastboot: Option<PathBuf>,
}

/// A method's checks: the deploy action, the device configuration, the worker.
pub type Check = fn(&Map<String, Value>, &Value, &Facilities) -> Result<(), Failure>;

impl Facilities {
    /// A worker with (or without) a TFTP root and an NFS export directory, and the docker
    /// CLI its `PATH` has.
    pub fn new(tftp_root: bool, nfs_root: bool) -> Self {
        Self {
            tftp_root,
            nfs_root,
            docker: find_program("docker"),
            mkimage: find_program("mkimage"),
            fastboot: find_program("fastboot"),
        }
    }
}

/// One deploy method.
pub struct DeployMethod {
    /// `deploy: to:`.
    pub name: &'static str,
    /// Whether a device must list it.
    pub offered: Offered,
    /// Everything that can be checked before the board is touched; the message says what
    /// is missing and how to provide it.
    pub check: Check,
    /// Carries it out, returning artifact key → file (or the name the bootloader uses).
    pub run: fn(&DeployContext<'_>) -> Result<Map<String, Value>, Failure>,
    /// Whether it talks to the board's console on this device (the console is opened for
    /// it first): a fastboot deploy that enters fastboot mode through u-boot.
    pub console: fn(&Value) -> bool,
}

/// For deploys that never use the console.
fn no_console(_: &Value) -> bool {
    false
}

/// Every deploy method this dispatcher carries out.
pub static METHODS: &[DeployMethod] = &[
    DeployMethod {
        name: "tmpfs",
        offered: Offered::Everywhere,
        check: check_artifacts,
        run: run_tmpfs,
        console: no_console,
    },
    DeployMethod {
        name: "overlay",
        offered: Offered::Everywhere,
        check: check_artifacts,
        run: run_local,
        console: no_console,
    },
    DeployMethod {
        name: "download",
        offered: Offered::Everywhere,
        check: check_artifacts,
        run: run_local,
        console: no_console,
    },
    DeployMethod {
        name: "downloads",
        offered: Offered::Everywhere,
        check: postprocess::check,
        run: postprocess::run_downloads,
        console: no_console,
    },
    DeployMethod {
        name: "tftp",
        offered: Offered::WhereListed,
        check: nfs::check_tftp,
        run: nfs::run_tftp,
        console: no_console,
    },
    DeployMethod {
        name: "nfs",
        offered: Offered::WhereListed,
        check: nfs::check_nfs,
        run: nfs::run_nfs,
        console: no_console,
    },
    DeployMethod {
        name: "fastboot",
        offered: Offered::WhereListed,
        check: fastboot::check,
        run: fastboot::run,
        console: fastboot::uses_console,
    },
    DeployMethod {
        name: "flasher",
        offered: Offered::WhereListed,
        check: flasher::check,
        run: flasher::run,
        console: no_console,
    },
];

/// The method named `name`, if this dispatcher has it.
pub fn method(name: &str) -> Option<&'static DeployMethod> {
    METHODS.iter().find(|m| m.name == name)
}

/// The names of every method, for messages.
pub fn method_names() -> String {
    METHODS
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a method runs with.
pub struct DeployContext<'a> {
    /// The deploy action's parameters.
    pub params: &'a Map<String, Value>,
    /// The rendered device configuration.
    pub device: &'a Value,
    /// The job's output directory; downloads go below it.
    pub output_dir: &'a Path,
    /// When the deploy's timeout ends.
    pub deadline: Instant,
    /// The worker's directories local files may come from.
    pub local: &'a LocalFiles,
    /// The worker's TFTP and NFS directories.
    pub servers: &'a ServerDirs,
    /// The job log.
    pub log: &'a JobLogger,
    /// The LAVA overlay, when the job's tests need one: deploys that prepare a root file
    /// system or ramdisk put it there and say so through [`DeployContext::overlay_placed`].
    pub overlay: Option<&'a Overlay>,
    /// Set once the overlay is in what this deploy prepared.
    pub overlay_placed: std::cell::Cell<bool>,
    /// The job's `environment:` and the worker's address, for postprocessing steps.
    pub environment: Vec<(String, String)>,
    /// The docker CLI, for `postprocess: docker` ([`Facilities::docker`]).
    pub docker: Option<PathBuf>,
    /// The device's power driver, for deploys that reset the board (fastboot's hard reset).
    pub power: Option<&'a crate::plugins::PowerDriver>,
    /// The board's console, open for deploys whose [`DeployMethod::console`] says so.
    pub console: Option<&'a std::cell::RefCell<&'a mut crate::console::Expecter>>,
    /// The qemu guest disk this deploy built with the overlay (`tmpfs`), for the boot.
    pub guest: std::cell::RefCell<Option<GuestDisk>>,
}

impl DeployContext<'_> {
    /// The LAVA overlay's tarball (members relative to the board's root), if the job has one;
    /// taking it marks the overlay as placed.
    pub fn take_overlay(&self) -> Option<PathBuf> {
        let overlay = self.overlay?;
        self.overlay_placed.set(true);
        Some(overlay.tarball.clone())
    }

    fn deploy_dir(&self) -> PathBuf {
        self.output_dir.join("deploy")
    }
}

/// The checks every method makes of its artifacts: compression names, archive and image
/// formats, overlays, headers, `prefix:`, install flags.
pub fn check_artifacts(
    params: &Map<String, Value>,
    _device: &Value,
    _facilities: &Facilities,
) -> Result<(), Failure> {
    for (key, image) in deploy_artifacts(params) {
        let artifact = Artifact {
            key: &key,
            params: &image,
        };
        let compression = artifact.compression()?;
        if let Some(archive) = image.get("archive").and_then(Value::as_str) {
            if archive != "tar" {
                return Err(Failure::job(format!(
                    "{key}: unknown archive format '{archive}' (LAVA knows tar)"
                )));
            }
        }
        artifacts::check_overlays(&key, &image).map_err(Failure::job)?;
        if let Some(overlays) = image.get("overlays").and_then(Value::as_object) {
            for (name, overlay) in overlays.iter().filter(|(name, _)| *name != "lava") {
                Artifact {
                    key: &format!("{key}.{name}"),
                    params: overlay,
                }
                .compression()?;
            }
        }
        if let Some(header) = image.get("header").and_then(Value::as_str) {
            if header != "u-boot" {
                return Err(Failure::job(format!(
                    "{key}: unknown header '{header}' (LAVA knows u-boot)"
                )));
            }
        }
        if key == "ramdisk" && compression == Compression::Zip {
            return Err(Failure::job(
                "ramdisk: a zip file cannot be a ramdisk (use gz, xz, bz2 or zstd)",
            ));
        }
        if let Some(prefix) = image.get("prefix") {
            nfs::check_prefix(&key, prefix)?;
        }
    }
    Ok(())
}

/// `overlay` and `download`: the artifacts into the job's directory, where a later action
/// takes them from.
fn run_local(ctx: &DeployContext<'_>) -> Result<Map<String, Value>, Failure> {
    artifacts::fetch(ctx, &ctx.deploy_dir(), Layout::PerKey)
}

/// `tmpfs`: the artifacts into the job's directory for qemu to boot, then, when the job's
/// tests need the overlay and no image took it, LAVA's `apply-overlay-guest` (a qcow2 disk
/// holding it, which the qemu boot attaches and the test shell mounts).
fn run_tmpfs(ctx: &DeployContext<'_>) -> Result<Map<String, Value>, Failure> {
    let deployed = artifacts::fetch(ctx, &ctx.deploy_dir(), Layout::PerKey)?;
    // Basalt offers tmpfs on every device; only a device with a guest size (qemu's) gets
    // the disk.
    if let (Some(_), Some(size)) = (ctx.overlay, guest_size(ctx.device)) {
        let dir = ctx.deploy_dir().join("guest");
        let guest = ctx.log.action(
            "apply-overlay-guest",
            crate::dispatcher::actions::Place::Child,
            ctx.deadline,
            |results| {
                let guest = images::guest_disk(ctx, &dir, size)?;
                if let Some(guest) = &guest {
                    results.insert("success".into(), Value::from(guest.uuid.clone()));
                }
                Ok(guest)
            },
        )?;
        *ctx.guest.borrow_mut() = guest;
    }
    Ok(deployed)
}

/// The method's runner after its checks, or why it cannot run.
pub fn find(name: &str) -> Result<&'static DeployMethod, Failure> {
    method(name).ok_or_else(|| {
        Failure::job(format!(
            "deploy method '{name}' is not supported by this dispatcher (it supports: {})",
            method_names()
        ))
    })
}

/// Runs a command line on the worker under the deploy's deadline, its output in the job log.
/// A failure of any kind (exit status, timeout) is an infrastructure error, with LAVA's words
/// for it (`failing`) in front.
fn run_on_worker(
    ctx: &DeployContext<'_>,
    what: &str,
    line: &str,
    failing: &str,
) -> Result<(), Failure> {
    basalt_plugin_api::process::run_command(what, line, ctx.deadline, &ctx.log.plugin_log())
        .map_err(|e| Failure::infrastructure(format!("{failing}: {}", e.message())))
}

/// A configuration failure: the worker lacks what the method needs.
fn missing(message: impl Into<String>) -> Failure {
    Failure::new(FailureClass::Configuration, message.into())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A deploy context over a temporary directory, for the methods' unit tests.
    pub(crate) mod context {
        use super::*;

        pub(crate) fn parts(dir: &Path) -> (JobLogger, ServerDirs) {
            let log = JobLogger::create(dir, false, Vec::new()).unwrap();
            let servers = ServerDirs {
                tftp_root: Some(dir.join("tftp")),
                nfs_root: Some(dir.join("nfs")),
                job_id: "7".into(),
            };
            (log, servers)
        }

        pub(crate) fn new<'a>(
            params: &'a Map<String, Value>,
            device: &'a Value,
            dir: &'a Path,
            local: &'a LocalFiles,
            log: &'a JobLogger,
            servers: &'a ServerDirs,
        ) -> DeployContext<'a> {
            DeployContext {
                params,
                device,
                output_dir: dir,
                deadline: Instant::now() + std::time::Duration::from_secs(60),
                local,
                servers,
                log,
                overlay: None,
                overlay_placed: Default::default(),
                environment: vec![("LAVA_JOB_ID".into(), "7".into())],
                docker: None,
                power: None,
                console: None,
                guest: Default::default(),
            }
        }
    }

    #[test]
    fn every_method_is_named_once_and_found() {
        for (i, m) in METHODS.iter().enumerate() {
            assert!(METHODS[..i].iter().all(|other| other.name != m.name));
            assert_eq!(method(m.name).map(|f| f.name), Some(m.name));
        }
        let refused = find("vemsd").err().unwrap();
        assert!(refused.message.contains("flasher"), "{}", refused.message);
    }

    #[test]
    fn artifact_checks_name_the_key() {
        let facilities = Facilities::default();
        let device = Value::Null;
        for (params, expected) in [
            (
                serde_json::json!({"images": {"rootfs": {"url": "http://x/r", "compression": "lz4"}}}),
                "rootfs: compression 'lz4'",
            ),
            (
                serde_json::json!({"kernel": {"url": "http://x/k", "archive": "cpio"}}),
                "kernel: unknown archive",
            ),
            (
                serde_json::json!({"ramdisk": {"url": "http://x/r", "header": "barebox"}}),
                "ramdisk: unknown header",
            ),
            (
                serde_json::json!({"nfsrootfs": {"url": "http://x/r", "prefix": "/abs/"}}),
                "prefix",
            ),
        ] {
            let error =
                check_artifacts(params.as_object().unwrap(), &device, &facilities).unwrap_err();
            assert!(error.message.contains(expected), "{}", error.message);
        }
    }
}
