//! `tftp` and `nfs` deploys: the artifacts downloaded, an `nfsrootfs` unpacked into the
//! worker's NFS export directory (below its `prefix:`), `modules` unpacked into it and
//! appended to the ramdisk, the LAVA overlay put into the NFS root by preference, else into
//! the ramdisk (LAVA's `ApplyOverlayTftp`), the ramdisk rebuilt (`header: u-boot` cut off,
//! the device's `add_header: u-boot` put on), and, for `tftp`, every file published on the
//! TFTP root.

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::artifacts::{self, Artifact, Layout};
use super::ramdisk::{self, Addition};
use super::{check_artifacts, missing, DeployContext, Facilities};
use crate::dispatcher::archive::{tarball, uimage};
use crate::dispatcher::failure::Failure;
use crate::pipeline::deploy_artifact as artifact;

/// The name LAVA gives a rebuilt ramdisk (before its compression's suffix).
const RAMDISK_NAME: &str = "ramdisk.cpio";

/// LAVA's rule for `prefix:` (a directory inside the root file system: relative, ending in
/// `/`), and Basalt's: no `..`.
pub fn check_prefix(key: &str, prefix: &Value) -> Result<(), Failure> {
    let Some(prefix) = prefix.as_str() else {
        return Err(Failure::job(format!("{key}: prefix must be a string")));
    };
    if prefix.starts_with('/') {
        return Err(Failure::job(format!(
            "{key}: prefix must not be an absolute path"
        )));
    }
    if !prefix.ends_with('/') {
        return Err(Failure::job(format!(
            "{key}: prefix must be a directory and end with /"
        )));
    }
    if Path::new(prefix)
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(Failure::job(format!(
            "{key}: prefix {prefix:?} must stay inside the root file system (no '..')"
        )));
    }
    Ok(())
}

/// The architecture for the ramdisk's u-boot header, when the device asks for one
/// (`actions.deploy.parameters.add_header: u-boot` with `mkimage_arch`).
fn uboot_arch(device: &Value) -> Result<Option<u8>, Failure> {
    let parameters = device.pointer("/actions/deploy/parameters");
    let header = parameters
        .and_then(|p| p.get("add_header"))
        .and_then(Value::as_str);
    match header {
        None | Some("raw") => Ok(None),
        Some("u-boot") => {
            let Some(arch) = parameters
                .and_then(|p| p.get("mkimage_arch"))
                .and_then(Value::as_str)
            else {
                return Err(missing(
                    "Missing architecture for uboot mkimage support (mkimage_arch in deploy \
                     parameters)",
                ));
            };
            uimage::arch_code(arch).map(Some).ok_or_else(|| {
                missing(format!(
                    "mkimage_arch '{arch}' in the device's deploy parameters is not an \
                     architecture mkimage knows"
                ))
            })
        }
        Some(other) => Err(missing(format!(
            "ramdisk: add_header: unknown header type '{other}'"
        ))),
    }
}

fn check_common(
    params: &Map<String, Value>,
    device: &Value,
    facilities: &Facilities,
) -> Result<(), Failure> {
    check_artifacts(params, device, facilities)?;
    if artifact(params, "nfsrootfs").is_some() && !facilities.nfs_root {
        return Err(missing(
            "an nfsrootfs needs this worker's NFS export directory (basalt run --nfs-root DIR)",
        ));
    }
    if artifact(params, "modules").is_some()
        && artifact(params, "ramdisk").is_none()
        && artifact(params, "nfsrootfs").is_none()
    {
        return Err(Failure::job(
            "Unable to identify a location for the unpacked modules (a ramdisk or an nfsrootfs)",
        ));
    }
    if artifact(params, "ramdisk").is_some() {
        uboot_arch(device)?;
    }
    Ok(())
}

/// Checks a `tftp` deploy.
pub fn check_tftp(
    params: &Map<String, Value>,
    device: &Value,
    facilities: &Facilities,
) -> Result<(), Failure> {
    if !facilities.tftp_root {
        return Err(missing(
            "a tftp deploy needs this worker's TFTP root (basalt run --tftp-root DIR)",
        ));
    }
    super::fit::check(device, facilities)?;
    check_common(params, device, facilities)
}

/// Checks an `nfs` deploy.
pub fn check_nfs(
    params: &Map<String, Value>,
    device: &Value,
    facilities: &Facilities,
) -> Result<(), Failure> {
    if artifact(params, "nfsrootfs").is_none() {
        return Err(Failure::job("an nfs deploy needs an nfsrootfs"));
    }
    check_common(params, device, facilities)
}

/// Runs a `tftp` deploy.
pub fn run_tftp(ctx: &DeployContext<'_>) -> Result<Map<String, Value>, Failure> {
    let dir = ctx.deploy_dir();
    let mut deployed = prepare(ctx, &dir)?;
    super::fit::build(ctx, &mut deployed)?;
    ctx.servers
        .publish_tftp("tftp", &dir, &mut deployed, ctx.log)?;
    Ok(deployed)
}

/// Runs an `nfs` deploy.
pub fn run_nfs(ctx: &DeployContext<'_>) -> Result<Map<String, Value>, Failure> {
    prepare(ctx, &ctx.deploy_dir())
}

/// Downloads, then LAVA's `PrepareOverlayTftp`: the NFS root, modules, overlay, ramdisk.
fn prepare(ctx: &DeployContext<'_>, dir: &Path) -> Result<Map<String, Value>, Failure> {
    let mut deployed = artifacts::fetch(ctx, dir, Layout::PerKey)?;
    let file = |deployed: &Map<String, Value>, key: &str| {
        deployed.get(key).and_then(Value::as_str).map(PathBuf::from)
    };
    let modules = file(&deployed, "modules");
    let mut overlay_placed = false;
    if let (Some(tarball_path), Some(params)) = (
        file(&deployed, "nfsrootfs"),
        artifact(ctx.params, "nfsrootfs"),
    ) {
        let nfs = Artifact {
            key: "nfsrootfs",
            params,
        };
        let root = ctx.servers.nfs_dir()?;
        let entries = tarball::unpack(&tarball_path, &root)
            .map_err(|e| Failure::job(format!("nfsrootfs: {e}")))?;
        ctx.log.debug(&format!(
            "Extracted nfsroot to {} ({entries} entries)",
            root.display()
        ));
        let mut root = root;
        if let Some(prefix) = params.get("prefix") {
            check_prefix("nfsrootfs", prefix)?;
            let prefix = prefix.as_str().unwrap_or_default();
            ctx.log.warning(&format!(
                "Adding '{prefix}' prefix, any other content will not be visible."
            ));
            // The tarball's own symlinks could lead the prefix anywhere.
            root = crate::job::confine::resolve_inside(&root, Path::new(prefix))
                .map_err(|e| Failure::job(format!("nfsrootfs: prefix: {e}")))?;
        }
        if let Some(modules) = &modules {
            if nfs.flag("install_modules", true) {
                ctx.log.info(&format!(
                    "extracting modules file {} to {}",
                    modules.display(),
                    root.display()
                ));
                tarball::unpack(modules, &root)
                    .map_err(|e| Failure::job(format!("modules: {e}")))?;
            } else {
                ctx.log.info("Skipping applying overlay to NFS");
            }
        }
        if ctx.overlay.is_some() {
            if nfs.flag("install_overlay", true) {
                if let Some(tarball) = ctx.take_overlay() {
                    ctx.log.info("Applying overlay to NFS");
                    tarball::unpack(&tarball, &root)
                        .map_err(|e| Failure::job(format!("the LAVA overlay: {e}")))?;
                }
            } else {
                ctx.log.info("Skipping applying overlay to NFS");
            }
            overlay_placed = true;
        }
        deployed.insert("nfsrootfs".into(), Value::from(root.display().to_string()));
    }
    if let (Some(image), Some(params)) =
        (file(&deployed, "ramdisk"), artifact(ctx.params, "ramdisk"))
    {
        let ramdisk = Artifact {
            key: "ramdisk",
            params,
        };
        let with_modules = ramdisk.flag("install_modules", true);
        let with_overlay = ramdisk.flag("install_overlay", true);
        if !with_modules && !with_overlay {
            ctx.log.info("Not extracting ramdisk.");
        } else {
            let mut additions = Vec::new();
            match &modules {
                Some(modules) if with_modules => {
                    ctx.log.info(&format!(
                        "extracting modules file {} to the ramdisk",
                        modules.display()
                    ));
                    additions.push(Addition::Tar {
                        path: modules.clone(),
                        under: String::new(),
                    });
                }
                Some(_) => ctx.log.info("Not adding modules to the ramdisk."),
                None => {}
            }
            if !overlay_placed && with_overlay {
                if let Some(tarball) = ctx.take_overlay() {
                    ctx.log.info("Applying overlay to ramdisk");
                    additions.push(Addition::Tar {
                        path: tarball,
                        under: String::new(),
                    });
                }
            }
            let compression = ramdisk.compression()?;
            let arch = uboot_arch(ctx.device)?;
            let mut name = format!("{RAMDISK_NAME}{}", compression.extension());
            if arch.is_some() {
                name.push_str(".uboot");
            }
            let target = image.with_file_name(&name);
            let rebuilt = image.with_file_name(format!("{name}.new"));
            ctx.log.info(&format!(
                "Building ramdisk {} ({})",
                target.display(),
                if arch.is_some() {
                    "with a u-boot header"
                } else {
                    "no header"
                }
            ));
            let copied = ramdisk::rebuild(
                "ramdisk",
                &image,
                params.get("header").and_then(Value::as_str) == Some("u-boot"),
                &additions,
                &rebuilt,
                ramdisk::Output {
                    compression,
                    uboot_arch: arch,
                },
            )?;
            ctx.log
                .debug(&format!("ramdisk: {copied} entries of the original kept"));
            if image != target {
                let _ = std::fs::remove_file(&image);
            }
            std::fs::rename(&rebuilt, &target).map_err(|e| {
                Failure::infrastructure(format!("cannot rename to {}: {e}", target.display()))
            })?;
            deployed.insert("ramdisk".into(), Value::from(target.display().to_string()));
        }
    }
    // Modules went into the ramdisk or the root file system; the bootloader never loads them.
    deployed.remove("modules");
    Ok(deployed)
}

#[cfg(test)]
mod tests {
    use super::super::tests::context;
    use super::*;
    use crate::dispatcher::archive::ramdisk_names;
    use crate::dispatcher::archive::tarball::tests::tarball;
    use crate::dispatcher::archive::tests::ramdisk;
    use crate::dispatcher::archive::Compression;
    use crate::dispatcher::local_files::LocalFiles;
    use serde_json::json;

    /// Kernel CI's u-boot job: a gz ramdisk, an xz modules tarball, the device's u-boot
    /// header; the TFTP root gets `JOB/ramdisk/ramdisk.cpio.gz.uboot` with init, modules
    /// and the overlay's helpers.
    #[test]
    fn a_tftp_ramdisk_gets_modules_the_overlay_and_the_devices_header() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir(&images).unwrap();
        std::fs::write(
            images.join("rootfs.cpio.gz"),
            ramdisk(&[("init", b"x")], Compression::Gz),
        )
        .unwrap();
        std::fs::write(
            images.join("modules.tar.xz"),
            tarball(&[("./lib/modules/6.1/kernel/a.ko", "ko")], Compression::Xz),
        )
        .unwrap();
        std::fs::write(images.join("zImage"), "kernel").unwrap();
        let url = |name: &str| format!("file://{}/{name}", images.display());
        let params = json!({
            "to": "tftp",
            "kernel": {"url": url("zImage"), "type": "zimage"},
            "ramdisk": {"url": url("rootfs.cpio.gz"), "compression": "gz"},
            "modules": {"url": url("modules.tar.xz"), "compression": "xz"},
        });
        let params = params.as_object().unwrap();
        let device = json!({"actions": {"deploy": {"parameters": {"add_header": "u-boot", "mkimage_arch": "arm"}}}});
        let local = LocalFiles::new([images.clone()]);
        let (log, servers) = context::parts(dir.path());
        let overlay = crate::dispatcher::overlay::tests::sample(&dir.path().join("job"));
        let mut ctx = context::new(params, &device, dir.path(), &local, &log, &servers);
        ctx.overlay = Some(&overlay);
        let facilities = Facilities {
            tftp_root: true,
            ..Facilities::default()
        };
        check_tftp(params, &device, &facilities).unwrap();
        let deployed = run_tftp(&ctx).unwrap();
        assert_eq!(deployed["ramdisk"], "7/ramdisk/ramdisk.cpio.gz.uboot");
        assert_eq!(deployed["kernel"], "7/kernel/zImage");
        assert!(!deployed.contains_key("modules"));
        let published = dir.path().join("tftp/7/ramdisk/ramdisk.cpio.gz.uboot");
        let names = ramdisk_names(&published, true).unwrap();
        assert_eq!(names[0], "init");
        assert!(
            names.contains(&"lib/modules/6.1/kernel/a.ko".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"lava-7/bin/lava-test-case".to_owned()),
            "{names:?}"
        );
        let image = std::fs::read(&published).unwrap();
        assert_eq!(image[29], 2, "IH_ARCH_ARM");
    }

    /// An nfsrootfs lands in the NFS export below its prefix, with the modules and the
    /// overlay; a prefix that climbs out, or that a symlink leads out, is refused.
    #[test]
    fn an_nfsrootfs_is_unpacked_below_its_prefix_with_modules_and_overlay() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir(&images).unwrap();
        std::fs::write(
            images.join("rootfs.tar.xz"),
            tarball(
                &[
                    ("./debian/", ""),
                    ("./debian/etc/hostname", "nfs\n"),
                    ("./escape", &format!("->{}", dir.path().display())),
                ],
                Compression::Xz,
            ),
        )
        .unwrap();
        std::fs::write(
            images.join("modules.tar"),
            tarball(&[("lib/modules/6.1/b.ko", "b")], Compression::None),
        )
        .unwrap();
        let url = |name: &str| format!("file://{}/{name}", images.display());
        let local = LocalFiles::new([images.clone()]);
        let device = json!({});
        let (log, servers) = context::parts(dir.path());
        let params = json!({
            "to": "nfs",
            "nfsrootfs": {"url": url("rootfs.tar.xz"), "compression": "xz", "prefix": "debian/"},
            "modules": {"url": url("modules.tar")},
        });
        let params = params.as_object().unwrap();
        let overlay = crate::dispatcher::overlay::tests::sample(&dir.path().join("job"));
        let mut ctx = context::new(params, &device, dir.path(), &local, &log, &servers);
        ctx.overlay = Some(&overlay);
        let deployed = run_nfs(&ctx).unwrap();
        assert!(ctx.overlay_placed.get());
        let root = PathBuf::from(deployed["nfsrootfs"].as_str().unwrap());
        assert!(root.ends_with("nfs/7/debian"), "{}", root.display());
        assert_eq!(
            std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
            "nfs\n"
        );
        assert!(root.join("lib/modules/6.1/b.ko").exists());
        assert!(root.join("lava-7/bin/lava-test-case").exists());
        let escape = json!({
            "to": "nfs",
            "nfsrootfs": {"url": url("rootfs.tar.xz"), "compression": "xz", "prefix": "escape/"},
        });
        let escape = escape.as_object().unwrap();
        let ctx = context::new(escape, &device, dir.path(), &local, &log, &servers);
        let error = run_nfs(&ctx).unwrap_err();
        assert!(error.message.contains("prefix"), "{}", error.message);
        for (prefix, expected) in [
            ("/abs/", "absolute"),
            ("debian", "end with /"),
            ("../x/", "no '..'"),
        ] {
            let error = check_prefix("nfsrootfs", &json!(prefix)).unwrap_err();
            assert!(error.message.contains(expected), "{}", error.message);
        }
    }

    #[test]
    fn what_a_worker_or_device_lacks_is_a_configuration_error_before_the_board_is_touched() {
        let params = json!({"to": "tftp", "ramdisk": {"url": "http://x/r.gz", "compression": "gz"}, "nfsrootfs": {"url": "http://x/n.tar"}});
        let params = params.as_object().unwrap();
        let device = json!({"actions": {"deploy": {"parameters": {"add_header": "u-boot"}}}});
        let none = Facilities::default();
        let error = check_tftp(params, &device, &none).unwrap_err();
        assert!(error.message.contains("--tftp-root"), "{}", error.message);
        let tftp = Facilities {
            tftp_root: true,
            ..Facilities::default()
        };
        let error = check_tftp(params, &device, &tftp).unwrap_err();
        assert!(error.message.contains("--nfs-root"), "{}", error.message);
        let both = Facilities {
            tftp_root: true,
            nfs_root: true,
            ..Facilities::default()
        };
        let error = check_tftp(params, &device, &both).unwrap_err();
        assert!(error.message.contains("mkimage_arch"), "{}", error.message);
        let modules = json!({"to": "tftp", "modules": {"url": "http://x/m.tar"}});
        let error = check_tftp(modules.as_object().unwrap(), &Value::Null, &both).unwrap_err();
        assert!(
            error.message.contains("unpacked modules"),
            "{}",
            error.message
        );
    }
}
