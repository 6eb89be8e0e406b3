//! The LAVA overlay (and `overlays:`) put into file system images, as LAVA's e2fsprogs backend
//! does: `AppendOverlays` for an `ext4` image, `ApplyOverlayImage` and
//! `ApplyOverlaySparseImage` for fastboot's `apply-overlay: true`, and `ApplyOverlayGuest`,
//! the qemu guest disk that holds the overlay when the job's images do not.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::DeployContext;
use crate::dispatcher::failure::Failure;
use crate::dispatcher::fsimage::{self, partition, sparse, FileSystem, FsImageError, TarInjection};

/// The guest disk's file name, as LAVA names it.
pub const GUEST_FILE: &str = "lava-guest.qcow2";

/// A qemu guest disk holding the overlay, for the boot that attaches it.
#[derive(Debug, Clone)]
pub struct GuestDisk {
    /// The qcow2 file.
    pub file: PathBuf,
    /// Its file system's UUID, by which the board mounts it.
    pub uuid: String,
}

fn failure(key: &str, e: FsImageError) -> Failure {
    let message = format!("{key}: {e}");
    match e.is_job_error() {
        true => Failure::job(message),
        false => Failure::infrastructure(message),
    }
}

fn scratch(ctx: &DeployContext<'_>) -> Result<tempfile::TempDir, Failure> {
    tempfile::Builder::new()
        .prefix("fsimage-")
        .tempdir_in(ctx.output_dir)
        .map_err(|e| {
            Failure::infrastructure(format!(
                "cannot make a scratch directory in {}: {e}",
                ctx.output_dir.display()
            ))
        })
}

/// The file system an image's `partition:` (or `root_partition:`) names, or the whole image.
fn file_system(key: &str, image: &Path, partition: Option<u64>) -> Result<FileSystem, Failure> {
    let offset = match partition {
        None => 0,
        Some(index) => {
            let index = usize::try_from(index).unwrap_or(usize::MAX);
            partition::find(image, index)
                .map_err(|e| Failure::job(format!("{key}: {}: {e}", image.display())))?
                .start
        }
    };
    Ok(FileSystem {
        image: image.to_path_buf(),
        offset,
    })
}

/// A partition number as the job gives it (a number, or a number in a string).
pub fn partition_number(key: &str, field: &str, value: &Value) -> Result<u64, Failure> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| {
            Failure::job(format!(
                "{key}: {field} must be a partition number (0 for the first), not {value}"
            ))
        })
}

/// Runs `change` on the raw form of `image`: a sparse image is unpacked first and packed
/// again after, as LAVA's `simg2img`/`img2simg` round trip.
fn with_raw(
    ctx: &DeployContext<'_>,
    key: &str,
    image: &Path,
    is_sparse: bool,
    change: impl FnOnce(&Path) -> Result<(), Failure>,
) -> Result<(), Failure> {
    if !is_sparse {
        return change(image);
    }
    let log = ctx.log.plugin_log();
    let raw = image.with_extension("ext4");
    ctx.log.debug(&format!(
        "Calling simg2img on {:?}",
        image.display().to_string()
    ));
    sparse::unpack(image, &raw, ctx.deadline, &log).map_err(|e| failure(key, e))?;
    let packed = image.with_extension("sparse");
    let changed = change(&raw).and_then(|()| {
        ctx.log.debug(&format!(
            "Calling img2simg on {:?}",
            raw.display().to_string()
        ));
        sparse::pack(&raw, &packed, ctx.deadline, &log).map_err(|e| failure(key, e))?;
        std::fs::rename(&packed, image).map_err(|e| {
            Failure::infrastructure(format!("cannot replace {}: {e}", image.display()))
        })
    });
    // The raw form, and a sparse one img2simg left half-written, are scratch whatever
    // happened.
    let _ = std::fs::remove_file(&raw);
    let _ = std::fs::remove_file(&packed);
    changed
}

/// LAVA's `AppendOverlays` for `format: ext4`: each overlay (`lava`, the job's overlay, at
/// `/`; a `tar` unpacked at its `path`; a `file` copied to it) written into the image, or
/// into its `partition:`, through `simg2img`/`img2simg` when `sparse: true`. `fetch` downloads
/// an overlay by label and parameters.
pub fn append_to_ext4(
    ctx: &DeployContext<'_>,
    key: &str,
    params: &Value,
    image: &Path,
    overlays: &Map<String, Value>,
    fetch: &dyn Fn(&str, &Value) -> Result<PathBuf, Failure>,
) -> Result<(), Failure> {
    let is_sparse = params
        .get("sparse")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let partition = params
        .get("partition")
        .filter(|v| !v.is_null())
        .map(|v| partition_number(key, "partition", v))
        .transpose()?;
    ctx.log
        .info("Using e2fsprogs backend for overlay injection");
    ctx.log
        .info(&format!("Modifying {:?}", image.display().to_string()));
    with_raw(ctx, key, image, is_sparse, |raw| {
        let fs = file_system(key, raw, partition)?;
        let scratch = scratch(ctx)?;
        ctx.log.debug("Overlays:");
        for (name, overlay) in overlays {
            let label = format!("{key}.{name}");
            if name == "lava" {
                if overlay.as_bool() != Some(true) {
                    continue;
                }
                let Some(tarball) = ctx.take_overlay() else {
                    continue;
                };
                ctx.log.debug(&format!(
                    "- {label}: {:?} to '/'",
                    tarball.display().to_string()
                ));
                let what = TarInjection {
                    tarball: &tarball,
                    under: "/",
                    strip: None,
                };
                fsimage::inject_tar(&fs, &what, scratch.path(), ctx.deadline)
                    .map_err(|e| failure(key, e))?;
                continue;
            }
            let file = fetch(&label, overlay)?;
            let path = overlay.get("path").and_then(Value::as_str).unwrap_or("/");
            ctx.log.debug(&format!(
                "- {label}: {:?} to {path:?}",
                file.display().to_string()
            ));
            match overlay.get("format").and_then(Value::as_str) {
                Some("tar") => {
                    let what = TarInjection {
                        tarball: &file,
                        under: path,
                        strip: None,
                    };
                    fsimage::inject_tar(&fs, &what, scratch.path(), ctx.deadline)
                        .map(drop)
                        .map_err(|e| failure(&label, e))?;
                }
                _ => fsimage::inject_file(&fs, &file, path, scratch.path(), ctx.deadline)
                    .map_err(|e| failure(&label, e))?,
            }
        }
        Ok(())
    })
}

/// LAVA's `ApplyOverlayImage` and `ApplyOverlaySparseImage` (fastboot's `apply-overlay:
/// true`): the job's overlay unpacked at the root of the image's file system — of its
/// `root_partition` when given, of the unpacked sparse image when `sparse` (the default).
pub fn apply_overlay(
    ctx: &DeployContext<'_>,
    key: &str,
    params: &Value,
    image: &Path,
) -> Result<(), Failure> {
    let Some(tarball) = ctx.take_overlay() else {
        ctx.log.debug("No overlay to deploy");
        return Ok(());
    };
    ctx.log.debug(&format!("Overlay: {}", tarball.display()));
    ctx.log.debug(&format!("Image: {}", image.display()));
    let is_sparse = params
        .get("sparse")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    // LAVA uses the root partition only when `root_partition` is truthy, so `0` (like an
    // absent one) means the whole image, as there.
    let partition = match is_sparse {
        true => None,
        false => params
            .get("root_partition")
            .filter(|v| crate::data::truthy(v))
            .map(|v| partition_number(key, "root_partition", v))
            .transpose()?,
    };
    if is_sparse {
        let sparse_image = sparse::is_sparse(image)
            .map_err(|e| Failure::infrastructure(format!("{key}: {}: {e}", image.display())))?;
        if !sparse_image {
            return Err(Failure::job(format!(
                "Image is not an Android sparse image: {}",
                image.display()
            )));
        }
    }
    if let Some(partition) = partition {
        ctx.log.debug(&format!("root_partition: {partition}"));
    }
    with_raw(ctx, key, image, is_sparse, |raw| {
        let fs = file_system(key, raw, partition)?;
        let scratch = scratch(ctx)?;
        if is_sparse {
            ctx.log.debug("Copying overlay");
        }
        let what = TarInjection {
            tarball: &tarball,
            under: "/",
            strip: None,
        };
        fsimage::inject_tar(&fs, &what, scratch.path(), ctx.deadline)
            .map(drop)
            .map_err(|e| failure(key, e))
    })
}

/// The size of the guest disk the device gives (`actions.deploy.methods.image.parameters.
/// guest.size`, in MiB), if it gives one.
pub fn guest_size(device: &Value) -> Option<u64> {
    device
        .pointer("/actions/deploy/methods/image/parameters/guest/size")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()))
}

/// LAVA's `ApplyOverlayGuest`: an ext2 file system of `size` MiB (the device's guest size,
/// [`guest_size`]) holding what the overlay has below its directory (so the board mounts it
/// at `/lava-<job>`), converted to qcow2 with `qemu-img`. `None` when the overlay is already in an image.
pub fn guest_disk(
    ctx: &DeployContext<'_>,
    dir: &Path,
    size: u64,
) -> Result<Option<GuestDisk>, Failure> {
    let Some(overlay) = ctx.overlay else {
        return Ok(None);
    };
    if ctx.overlay_placed.get() {
        ctx.log.debug("Overlay already applied");
        return Ok(None);
    }
    ctx.log
        .debug(&format!("Overlay: {}", overlay.tarball.display()));
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::infrastructure(format!("cannot create {}: {e}", dir.display())))?;
    let file = dir.join(GUEST_FILE);
    let raw = dir.join(format!("{GUEST_FILE}.raw"));
    let key = "guest";
    let uuid = fsimage::create(&raw, size, "ext2", "LAVA").map_err(|e| failure(key, e))?;
    let scratch = scratch(ctx)?;
    let results_dir = overlay.settings.results_dir.trim_start_matches('/');
    let what = TarInjection {
        tarball: &overlay.tarball,
        under: "/",
        strip: Some(results_dir),
    };
    let injected = fsimage::inject_tar(
        &FileSystem {
            image: raw.clone(),
            offset: 0,
        },
        &what,
        scratch.path(),
        ctx.deadline,
    );
    let converted = injected.map_err(|e| failure(key, e)).and_then(|_| {
        let argv = [
            "qemu-img".to_owned(),
            "convert".into(),
            "-f".into(),
            "raw".into(),
            "-O".into(),
            "qcow2".into(),
            raw.display().to_string(),
            file.display().to_string(),
        ];
        basalt_plugin_api::process::run_program_output(
            "qemu-img",
            &argv,
            ctx.deadline,
            &ctx.log.plugin_log(),
        )
        .map(drop)
        .map_err(|e| {
            Failure::infrastructure(format!(
                "qemu-img convert failed (is qemu-utils installed?): {}",
                e.message()
            ))
        })
    });
    let _ = std::fs::remove_file(&raw);
    converted?;
    Ok(Some(GuestDisk { file, uuid }))
}

#[cfg(test)]
mod tests {
    use super::super::tests::context;
    use super::*;
    use crate::dispatcher::local_files::LocalFiles;
    use serde_json::json;
    use std::process::Command;
    use std::time::{Duration, Instant};

    fn cat(spec: &str, path: &str) -> String {
        let out = Command::new("debugfs")
            .args(["-R", &format!("cat {path}"), spec])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn available(tool: &str) -> bool {
        Command::new(tool).arg("--help").output().is_ok()
    }

    /// `format: ext4` with `overlays:`: the LAVA overlay at `/`, a tar at its path, a file at
    /// its own, in the downloaded image.
    #[test]
    fn an_ext4_rootfs_gets_the_lava_overlay_and_the_jobs_overlays() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir(&images).unwrap();
        fsimage::create(&images.join("rootfs.ext4"), 8, "ext4", "rootfs").unwrap();
        std::fs::write(images.join("motd"), "hello board\n").unwrap();
        let mut modules = tar::Builder::new(std::fs::File::create(images.join("m.tar")).unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o644);
        modules
            .append_data(&mut header, "6.1/extra.ko", &b"mod"[..])
            .unwrap();
        modules.finish().unwrap();
        drop(modules);
        let overlay = crate::dispatcher::overlay::tests::sample(&dir.path().join("overlay"));
        let url = |name: &str| format!("file://{}/{name}", images.display());
        let params = json!({"to": "tmpfs", "images": {"rootfs": {
            "url": url("rootfs.ext4"), "format": "ext4",
            "overlays": {
                "lava": true,
                "modules": {"url": url("m.tar"), "format": "tar", "path": "/lib/modules"},
                "motd": {"url": url("motd"), "format": "file", "path": "/etc/motd"},
            }
        }}});
        let params = params.as_object().cloned().unwrap();
        let device = json!({});
        let local = LocalFiles::new([images.clone()]);
        let (log, servers) = context::parts(dir.path());
        let mut ctx = context::new(&params, &device, dir.path(), &local, &log, &servers);
        ctx.overlay = Some(&overlay);
        let deployed = super::super::artifacts::fetch(
            &ctx,
            &dir.path().join("deploy"),
            super::super::artifacts::Layout::PerKey,
        )
        .unwrap();
        assert!(ctx.overlay_placed.get());
        let image = deployed["rootfs"].as_str().unwrap();
        assert!(cat(image, "/lava-7/bin/lava-test-runner").starts_with("#!"));
        assert_eq!(cat(image, "/lib/modules/6.1/extra.ko"), "mod");
        assert_eq!(cat(image, "/etc/motd"), "hello board\n");
        let fsck = Command::new("e2fsck")
            .arg("-fn")
            .arg(image)
            .output()
            .unwrap();
        assert!(
            fsck.status.success(),
            "{}",
            String::from_utf8_lossy(&fsck.stdout)
        );
    }

    /// fastboot's `apply-overlay: true`: into a sparse image (the default) through
    /// simg2img/img2simg, and into the `root_partition` of a raw disk image.
    #[test]
    fn fastboot_images_get_the_overlay_sparse_or_in_their_root_partition() {
        if !available("img2simg") || !available("simg2img") {
            assert!(
                std::env::var_os("CI").is_none(),
                "simg2img/img2simg are missing: install android-sdk-libsparse-utils"
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let overlay = crate::dispatcher::overlay::tests::sample(&dir.path().join("overlay"));
        let raw = dir.path().join("userdata.raw");
        fsimage::create(&raw, 8, "ext4", "userdata").unwrap();
        let image = dir.path().join("userdata.img");
        assert!(Command::new("img2simg")
            .arg(&raw)
            .arg(&image)
            .status()
            .unwrap()
            .success());
        let params = json!({"to": "fastboot"}).as_object().cloned().unwrap();
        let device = json!({});
        let local = LocalFiles::default();
        let (log, servers) = context::parts(dir.path());
        let mut ctx = context::new(&params, &device, dir.path(), &local, &log, &servers);
        ctx.overlay = Some(&overlay);
        ctx.deadline = Instant::now() + Duration::from_secs(60);
        apply_overlay(&ctx, "userdata", &json!({"apply-overlay": true}), &image).unwrap();
        assert!(sparse::is_sparse(&image).unwrap());
        let back = dir.path().join("back.raw");
        assert!(Command::new("simg2img")
            .arg(&image)
            .arg(&back)
            .status()
            .unwrap()
            .success());
        assert!(cat(back.to_str().unwrap(), "/lava-7/bin/lava-test-runner").starts_with("#!"));
        // A raw image that is not sparse is refused, as LAVA refuses it.
        let error =
            apply_overlay(&ctx, "userdata", &json!({"apply-overlay": true}), &raw).unwrap_err();
        assert!(
            error.message.contains("not an Android sparse image"),
            "{}",
            error.message
        );

        // A disk image with a boot partition, then the file system in its second one.
        let mut disk = vec![0u8; 1 << 20];
        disk[446 + 4] = 0x0C;
        disk[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
        disk[446 + 12..446 + 16].copy_from_slice(&2047u32.to_le_bytes());
        disk[462 + 4] = 0x83;
        disk[462 + 8..462 + 12].copy_from_slice(&2048u32.to_le_bytes());
        disk[462 + 12..462 + 16].copy_from_slice(&16384u32.to_le_bytes());
        disk[510] = 0x55;
        disk[511] = 0xAA;
        disk.extend(std::fs::read(&back).unwrap());
        let disk_image = dir.path().join("disk.img");
        std::fs::write(&disk_image, disk).unwrap();
        let params = json!({"apply-overlay": true, "sparse": false, "root_partition": 1});
        apply_overlay(&ctx, "system", &params, &disk_image).unwrap();
        let spec = format!("{}?offset={}", disk_image.display(), 1 << 20);
        assert!(cat(&spec, "/lava-7/bin/lava-test-runner").starts_with("#!"));
        let missing = json!({"apply-overlay": true, "sparse": false, "root_partition": 3});
        let error = apply_overlay(&ctx, "system", &missing, &disk_image).unwrap_err();
        assert!(
            error.message.contains("invalid partition number 3"),
            "{}",
            error.message
        );
        // `root_partition: 0` is falsy to LAVA: the whole image, here a file system.
        let whole = json!({"apply-overlay": true, "sparse": false, "root_partition": 0});
        apply_overlay(&ctx, "system", &whole, &back).unwrap();
    }

    /// LAVA's `apply-overlay-guest`: a qcow2 disk of the device's guest size whose root is
    /// the overlay's `/lava-7`.
    #[test]
    fn the_guest_disk_is_a_qcow2_image_of_the_overlays_directory() {
        if !available("qemu-img") {
            assert!(
                std::env::var_os("CI").is_none(),
                "qemu-img is missing: install qemu-utils"
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let overlay = crate::dispatcher::overlay::tests::sample(&dir.path().join("overlay"));
        let params = json!({"to": "tmpfs"}).as_object().cloned().unwrap();
        let device = json!({"actions": {"deploy": {"methods": {"image": {"parameters": {"guest": {"size": 16}}}}}}});
        assert_eq!(guest_size(&device), Some(16));
        let local = LocalFiles::default();
        let (log, servers) = context::parts(dir.path());
        let mut ctx = context::new(&params, &device, dir.path(), &local, &log, &servers);
        ctx.overlay = Some(&overlay);
        let guest = guest_disk(&ctx, &dir.path().join("guest"), 16)
            .unwrap()
            .unwrap();
        assert!(guest.file.ends_with(GUEST_FILE));
        let raw = dir.path().join("check.raw");
        let convert = Command::new("qemu-img")
            .args(["convert", "-f", "qcow2", "-O", "raw"])
            .arg(&guest.file)
            .arg(&raw)
            .status()
            .unwrap();
        assert!(convert.success());
        let superblock = fsimage::FileSystem {
            image: raw.clone(),
            offset: 0,
        }
        .superblock()
        .unwrap();
        assert_eq!(superblock.uuid, guest.uuid);
        assert!(cat(raw.to_str().unwrap(), "/bin/lava-test-runner").starts_with("#!"));
        // An overlay already in an image makes none.
        ctx.overlay_placed.set(true);
        assert!(guest_disk(&ctx, &dir.path().join("guest2"), 16)
            .unwrap()
            .is_none());
    }
}
