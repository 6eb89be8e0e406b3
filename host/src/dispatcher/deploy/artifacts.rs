//! Fetching a deploy's artifacts (kernel, ramdisk, dtb, rootfs, images, ...) as LAVA's
//! `DownloaderAction` does: each into `DIR/KEY/NAME` (or `DIR/NAME` without uniquify, as
//! `downloads` does), NAME from the URL without the suffix of a compression undone on the
//! way, the checksums compared, `archive: tar` unpacked, and `overlays:` appended to a cpio
//! image. A ramdisk stays compressed (LAVA decompresses it only to change it).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Map, Value};

use super::ramdisk::{self, Addition};
use super::DeployContext;
use crate::dispatcher::actions::Place;
use crate::dispatcher::archive::{tarball, Compression};
use crate::dispatcher::download::{download, saved_name, Checksums, Downloaded, Limits};
use crate::dispatcher::failure::Failure;
use crate::job::confine;
use crate::pipeline::deploy_artifacts;

/// One artifact of a deploy, read from the job.
pub struct Artifact<'a> {
    /// Its key (`kernel`, `rootfs`, ...).
    pub key: &'a str,
    /// Its parameters (`url`, `compression`, checksums, ...).
    pub params: &'a Value,
}

impl Artifact<'_> {
    /// The job's `compression:`, checked.
    pub fn compression(&self) -> Result<Compression, Failure> {
        let named = self.params.get("compression").and_then(Value::as_str);
        Compression::parse(named).ok_or_else(|| {
            Failure::job(format!(
                "{}: compression '{}' is not supported: use {}",
                self.key,
                named.unwrap_or_default(),
                Compression::NAMES
            ))
        })
    }

    /// What is undone while downloading: nothing for a ramdisk, which LAVA keeps as it came.
    pub fn applied_compression(&self) -> Result<Compression, Failure> {
        match self.key {
            "ramdisk" => Ok(Compression::None),
            _ => self.compression(),
        }
    }

    /// A yes/no parameter (`download`, `install_modules`, ...), `default` when absent.
    pub fn flag(&self, name: &str, default: bool) -> bool {
        self.params
            .get(name)
            .and_then(Value::as_bool)
            .unwrap_or(default)
    }

    /// Whether LAVA downloads it at all (`download: false` hands the URL to the flasher).
    pub fn downloads(&self) -> bool {
        self.flag("download", true)
    }
}

/// Where downloads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `DIR/KEY/NAME`, LAVA's `uniquify` (the default for every method but `downloads`).
    PerKey,
    /// `DIR/NAME`.
    Flat,
}

/// Downloads every artifact of the deploy into `dir`, returning key → file (a directory for
/// `archive: tar`).
pub fn fetch(
    ctx: &DeployContext<'_>,
    dir: &Path,
    layout: Layout,
) -> Result<Map<String, Value>, Failure> {
    fetch_then(ctx, dir, layout, &|_, _, _| Ok(()))
}

/// [`fetch`], running `then` on each artifact (key, parameters, file) right after its
/// download, as LAVA runs the actions a method puts after each `download-retry`.
pub fn fetch_then(
    ctx: &DeployContext<'_>,
    dir: &Path,
    layout: Layout,
    then: &dyn Fn(&str, &Value, &Path) -> Result<(), Failure>,
) -> Result<Map<String, Value>, Failure> {
    create(dir)?;
    let mut deployed = Map::new();
    for (key, params) in deploy_artifacts(ctx.params) {
        let artifact = Artifact {
            key: &key,
            params: &params,
        };
        if !artifact.downloads() {
            continue;
        }
        // LAVA's `download-retry` around the download of its URL's scheme, then what is
        // done to the file (unpacking, overlays appended).
        let file = ctx
            .log
            .action("download-retry", Place::Child, ctx.deadline, |_| {
                let file = download_action(ctx, &artifact, dir, layout)?;
                let file = match params.get("archive").and_then(Value::as_str) {
                    None => file,
                    Some("tar") => {
                        let target = file.parent().unwrap_or(dir).join(&key);
                        ctx.log
                            .debug(&format!("Extracting tar archive in {}", target.display()));
                        tarball::unpack(&file, &target)
                            .map_err(|e| Failure::job(format!("{key}: {e}")))?;
                        target
                    }
                    Some(other) => {
                        return Err(Failure::job(format!(
                            "{key}: unknown archive format '{other}' (LAVA knows tar)"
                        )))
                    }
                };
                if let Some(overlays) = params.get("overlays").and_then(Value::as_object) {
                    ctx.log
                        .action("append-overlays", Place::Child, ctx.deadline, |_| {
                            append_overlays(ctx, &artifact, &file, overlays, dir, layout)
                        })?;
                }
                Ok(file)
            })?;
        then(&key, &params, &file)?;
        deployed.insert(key.clone(), Value::from(file.display().to_string()));
    }
    Ok(deployed)
}

fn create(dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::infrastructure(format!("cannot create {}: {e}", dir.display())))
}

/// LAVA's download action of the artifact's URL scheme (`http-download`, `file-download`,
/// …), recorded with what LAVA records of a download: its label, size and checksums.
fn download_action(
    ctx: &DeployContext<'_>,
    artifact: &Artifact<'_>,
    dir: &Path,
    layout: Layout,
) -> Result<PathBuf, Failure> {
    let url = artifact
        .params
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default();
    ctx.log.action(
        crate::pipeline::download_action(url),
        Place::Child,
        ctx.deadline,
        |results| {
            let (file, got) = fetch_one(ctx, artifact, dir, layout)?;
            results.insert("label".into(), Value::from(artifact.key));
            results.insert("size".into(), Value::from(got.downloaded));
            // sha256 always, as LAVA; md5 and sha512 only when the job gives them (each is a
            // pass over every byte, which LAVA makes for every download).
            if let Some(md5) = got.md5 {
                results.insert("md5sum".into(), Value::from(md5));
            }
            results.insert("sha256sum".into(), Value::from(got.sha256));
            if let Some(sha512) = got.sha512 {
                results.insert("sha512sum".into(), Value::from(sha512));
            }
            Ok(file)
        },
    )
}

/// Downloads one artifact, checks its checksums, and logs what LAVA logs: the file and what
/// came down.
pub fn fetch_one(
    ctx: &DeployContext<'_>,
    artifact: &Artifact<'_>,
    dir: &Path,
    layout: Layout,
) -> Result<(PathBuf, Downloaded), Failure> {
    let key = artifact.key;
    let url = artifact
        .params
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::job(format!("{key}: no url")))?;
    let compression = artifact.compression()?;
    let applied = artifact.applied_compression()?;
    confine::file_name(key).map_err(|e| Failure::job(format!("artifact key {key:?}: {e}")))?;
    let name = match confine::url_file_name(url) {
        Some(name) => name.map_err(|e| Failure::job(format!("{key}: url {url}: {e}")))?,
        None => key,
    };
    let dir = match layout {
        Layout::PerKey => dir.join(key),
        Layout::Flat => dir.to_path_buf(),
    };
    create(&dir)?;
    let target = dir.join(saved_name(name, applied));
    if target.is_dir() {
        return Err(Failure::job(format!(
            "{key}: download '{}' is a directory, not a file",
            target.display()
        )));
    }
    let remaining = ctx.deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(Failure::infrastructure(format!(
            "deploy timed out before downloading {key}"
        )));
    }
    ctx.log.info(&format!("downloading {url}"));
    ctx.log.debug(&format!("saving as {}", target.display()));
    if key == "ramdisk" && compression != Compression::None {
        ctx.log
            .debug("Not decompressing ramdisk as can be used compressed.");
    } else if applied.decompresses_on_download() {
        ctx.log.info(&format!(
            "Decompressing {} while downloading",
            applied.name()
        ));
    } else if compression == Compression::Zip {
        ctx.log
            .info("Compression zip specified but not decompressing during download");
    } else {
        ctx.log.debug("No compression specified");
    }
    let started = Instant::now();
    let got = download(
        url,
        applied,
        &target,
        Limits::within(remaining),
        ctx.local,
        Checksums::asked_by(artifact.params),
        &|line| ctx.log.debug(line),
    )
    .map_err(|e| match e.is_job_error() {
        true => Failure::job(format!("{key}: {e}")),
        false => Failure::infrastructure(format!("{key}: {e}")),
    })?;
    let seconds = started.elapsed().as_secs_f64().max(0.001);
    let mb = got.downloaded as f64 / (1024.0 * 1024.0);
    ctx.log.info(&format!(
        "{} MB downloaded in {seconds:.2} s ({:.2} MB/s){}",
        mb as u64,
        mb / seconds,
        match applied.decompresses_on_download() {
            true => format!(", {} bytes decompressed", got.written),
            false => String::new(),
        }
    ));
    verify(key, artifact.params, &got)?;
    Ok((target, got))
}

/// Checks the `md5sum`/`sha256sum`/`sha512sum` an artifact gives, if any, against the
/// bytes as downloaded (compressed), as LAVA does.
fn verify(key: &str, artifact: &Value, got: &Downloaded) -> Result<(), Failure> {
    for (field, actual) in [
        ("md5sum", got.md5.as_deref()),
        ("sha256sum", Some(got.sha256.as_str())),
        ("sha512sum", got.sha512.as_deref()),
    ] {
        // Compared as text whatever YAML made of it: `sha256sum: 0000` is a number to YAML
        // and must fail to match, never be skipped.
        let expected = match artifact.get(field) {
            None | Some(Value::Null) => continue,
            Some(value) => crate::data::text(value),
        };
        // Computed for every checksum the job gives (`Checksums::asked_by`).
        let actual = actual.unwrap_or_default();
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            return Err(Failure::job(format!(
                "{key}: {field} mismatch: the job says {expected}, the download is {actual}"
            )));
        }
    }
    Ok(())
}

/// The image formats `overlays:` can be appended to.
pub const OVERLAY_IMAGE_FORMATS: &[&str] = &["cpio.newc", "ext4"];
/// The formats of one overlay.
const OVERLAY_FORMATS: &[&str] = &["file", "tar"];

/// Checks an image's `overlays:` as LAVA's `AppendOverlays` does: a mapping, each entry
/// `lava: true` or with a `format` (`file`, `tar`) and an absolute `path` without `..`, on an
/// image of a format Basalt can change.
pub fn check_overlays(key: &str, image: &Value) -> Result<(), String> {
    let Some(overlays) = image.get("overlays") else {
        return Ok(());
    };
    let Some(overlays) = overlays.as_object() else {
        return Err(format!("{key}: 'overlays' is not a dictionary"));
    };
    for (name, overlay) in overlays {
        if name == "lava" {
            continue;
        }
        let format = overlay.get("format").and_then(Value::as_str).unwrap_or("");
        if !OVERLAY_FORMATS.contains(&format) {
            return Err(format!(
                "{key}: invalid 'format' ({format:?}) for 'overlays.{name}' (use file or tar)"
            ));
        }
        let Some(path) = overlay.get("path").and_then(Value::as_str) else {
            return Err(format!("{key}: missing 'path' for 'overlays.{name}'"));
        };
        if !path.starts_with('/') || path.contains("..") {
            return Err(format!(
                "{key}: invalid 'path' {path:?} for 'overlays.{name}'"
            ));
        }
    }
    let format = image.get("format").and_then(Value::as_str).unwrap_or("");
    if !OVERLAY_IMAGE_FORMATS.contains(&format) {
        return Err(format!(
            "{key}: overlays on an image of format {format:?} are not supported by this \
             dispatcher (it changes: {})",
            OVERLAY_IMAGE_FORMATS.join(", ")
        ));
    }
    if image.get("sparse").and_then(Value::as_bool) == Some(true) && format != "ext4" {
        return Err(format!(
            "{key}: sparse=True is only available for ext4 images"
        ));
    }
    Ok(())
}

/// LAVA's `AppendOverlays`: each overlay downloaded (as `KEY.NAME`), then the image rebuilt
/// with them appended and compressed as it came.
fn append_overlays(
    ctx: &DeployContext<'_>,
    artifact: &Artifact<'_>,
    image: &Path,
    overlays: &Map<String, Value>,
    dir: &Path,
    layout: Layout,
) -> Result<(), Failure> {
    let key = artifact.key;
    check_overlays(key, artifact.params).map_err(Failure::job)?;
    if artifact.params.get("format").and_then(Value::as_str) == Some("ext4") {
        let fetch = |label: &str, overlay: &Value| {
            let overlay_artifact = Artifact {
                key: label,
                params: overlay,
            };
            fetch_one(ctx, &overlay_artifact, dir, layout).map(|(file, _)| file)
        };
        return super::images::append_to_ext4(ctx, key, artifact.params, image, overlays, &fetch);
    }
    ctx.log
        .info(&format!("Modifying {:?}", image.display().to_string()));
    let mut additions = Vec::new();
    for (name, overlay) in overlays {
        if name == "lava" {
            if overlay.as_bool() == Some(true) {
                if let Some(tarball) = ctx.take_overlay() {
                    ctx.log
                        .debug(&format!("- {key}.lava: the LAVA overlay to '/'"));
                    additions.push(Addition::Tar {
                        path: tarball,
                        under: String::new(),
                    });
                }
            }
            continue;
        }
        let label = format!("{key}.{name}");
        let overlay_artifact = Artifact {
            key: &label,
            params: overlay,
        };
        let (file, _) = fetch_one(ctx, &overlay_artifact, dir, layout)?;
        let path = overlay
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("/")
            .trim_matches('/')
            .to_owned();
        match overlay.get("format").and_then(Value::as_str) {
            Some("tar") => {
                ctx.log.debug(&format!(
                    "- {label}: untar {:?} to '/{path}'",
                    file.display().to_string()
                ));
                additions.push(Addition::Tar {
                    path: file,
                    under: path,
                });
            }
            _ => {
                ctx.log.debug(&format!(
                    "- {label}: cp {:?} to '/{path}'",
                    file.display().to_string()
                ));
                additions.push(Addition::File {
                    path: file,
                    name: path,
                });
            }
        }
    }
    let compression = artifact.compression()?;
    // What was decompressed on download is written back plain; what was kept compressed is
    // compressed again as it came.
    let output = ramdisk::Output {
        compression: match artifact.applied_compression()? {
            Compression::None => compression,
            _ => Compression::None,
        },
        uboot_arch: None,
    };
    let rebuilt = image.with_extension("rebuilt");
    ramdisk::rebuild(key, image, false, &additions, &rebuilt, output)?;
    std::fs::rename(&rebuilt, image)
        .map_err(|e| Failure::infrastructure(format!("cannot replace {}: {e}", image.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::context;
    use super::*;
    use crate::dispatcher::local_files::LocalFiles;
    use serde_json::json;

    fn run_fetch(
        params: Value,
        dir: &Path,
        local: &LocalFiles,
    ) -> Result<Map<String, Value>, Failure> {
        let params = params.as_object().cloned().unwrap();
        let device = json!({});
        let (log, servers) = context::parts(dir);
        let ctx = context::new(&params, &device, dir, local, &log, &servers);
        fetch(&ctx, &dir.join("deploy"), Layout::PerKey)
    }

    /// What a job that never passed a master's validation could ask for (`basalt run` by
    /// hand, an old queue): refused before anything is written.
    #[test]
    fn keys_and_url_names_that_leave_the_directory_are_refused_at_run_time() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir(&images).unwrap();
        std::fs::write(images.join("zImage"), "k").unwrap();
        let local = LocalFiles::new([images.clone()]);
        let url = format!("file://{}/zImage", images.display());
        let escape = run_fetch(
            json!({"to": "tmpfs", "images": {"../../evil": {"url": url}}}),
            dir.path(),
            &local,
        )
        .unwrap_err();
        assert!(
            escape.message.contains("artifact key \"../../evil\""),
            "{}",
            escape.message
        );
        let dotdot = run_fetch(
            json!({"to": "tmpfs", "kernel": {"url": "http://127.0.0.1:9/a/.."}}),
            dir.path(),
            &local,
        )
        .unwrap_err();
        assert!(
            dotdot.message.contains("directory reference"),
            "{}",
            dotdot.message
        );
        assert!(!dir.path().join("evil").exists());
        let deployed = run_fetch(
            json!({"to": "tmpfs", "kernel": {"url": url}}),
            dir.path(),
            &local,
        )
        .unwrap();
        assert!(deployed["kernel"]
            .as_str()
            .unwrap()
            .ends_with("deploy/kernel/zImage"));
    }

    #[test]
    fn local_files_outside_the_allowed_directories_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let refused = run_fetch(
            json!({"to": "tmpfs", "kernel": {"url": "file:///etc/hostname"}}),
            dir.path(),
            &LocalFiles::default(),
        )
        .unwrap_err();
        assert!(
            refused.message.contains("local_file_dirs"),
            "{}",
            refused.message
        );
        assert!(!dir.path().join("deploy/kernel/hostname").exists());
    }

    /// `sha256sum: 0000` is a number to YAML: compared as text, it fails; never skipped.
    #[test]
    fn a_checksum_yaml_read_as_a_number_is_compared_and_fails() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("zImage"), "k").unwrap();
        let local = LocalFiles::new([dir.path().to_path_buf()]);
        let url = format!("file://{}/zImage", dir.path().display());
        let mismatch = run_fetch(
            json!({"to": "tmpfs", "kernel": {"url": url, "sha256sum": 0}}),
            dir.path(),
            &local,
        )
        .unwrap_err();
        assert!(
            mismatch.message.contains("sha256sum mismatch"),
            "{}",
            mismatch.message
        );
    }

    #[test]
    fn overlays_are_checked_as_lava_checks_them() {
        let ok = json!({"format": "cpio.newc", "overlays": {"lava": true, "modules": {"url": "http://x/m.tar", "format": "tar", "path": "/"}}});
        assert_eq!(check_overlays("ramdisk", &ok), Ok(()));
        for (image, expected) in [
            (
                json!({"format": "cpio.newc", "overlays": []}),
                "not a dictionary",
            ),
            (
                json!({"format": "cpio.newc", "overlays": {"m": {"format": "zip", "path": "/"}}}),
                "invalid 'format'",
            ),
            (
                json!({"format": "cpio.newc", "overlays": {"m": {"format": "tar"}}}),
                "missing 'path'",
            ),
            (
                json!({"format": "cpio.newc", "overlays": {"m": {"format": "tar", "path": "/../x"}}}),
                "invalid 'path'",
            ),
            (
                json!({"format": "tar", "overlays": {"lava": true}}),
                "not supported",
            ),
            (
                json!({"format": "cpio.newc", "sparse": true, "overlays": {"lava": true}}),
                "only available for ext4",
            ),
        ] {
            let error = check_overlays("rootfs", &image).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }
}
