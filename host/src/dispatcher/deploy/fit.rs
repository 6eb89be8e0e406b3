//! The FIT image depthcharge boots (LAVA's `PrepareFITAction`): where the device boots with
//! depthcharge and its deploy parameters name an `mkimage_arch`, a tftp deploy packs the
//! kernel, the dtb and the (rebuilt) ramdisk into `kernel/image.itb` with Debian's mkimage,
//! exactly as LAVA calls it (`mkimage -D "-I dts -O dtb -p 2048" -f auto -A ARCH -O linux -T
//! kernel -C COMP -d KERNEL -a LOAD [-b DTB] [-i RAMDISK] image.itb`). On arm64 the kernel is
//! first compressed with LZMA (`kernel.lzma`, `-C lzma`), as LAVA's `lzma --keep` does.
//! mkimage is used rather than a Rust FIT writer because its `-f auto` layout (node names,
//! hashes, configuration) is what depthcharge builds are tested against.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{missing, run_on_worker, DeployContext, Facilities};
use crate::dispatcher::failure::Failure;
use crate::dispatcher::shell;

/// The FIT image's name, next to the kernel.
pub const FIT_NAME: &str = "image.itb";

/// The architecture to build a FIT image for, when the device wants one: its boot methods
/// have depthcharge (and not u-boot, which LAVA prepares kernels for instead) and its deploy
/// parameters an `mkimage_arch`.
pub fn wanted(device: &Value) -> Option<&str> {
    let methods = device.pointer("/actions/boot/methods")?.as_object()?;
    if methods.contains_key("u-boot") || !methods.contains_key("depthcharge") {
        return None;
    }
    device
        .pointer("/actions/deploy/parameters/mkimage_arch")
        .and_then(Value::as_str)
        .filter(|arch| !arch.is_empty())
}

/// Checks what building the image needs: the device's `load_address` and mkimage.
pub fn check(device: &Value, facilities: &Facilities) -> Result<(), Failure> {
    if wanted(device).is_none() {
        return Ok(());
    }
    if device.pointer("/parameters/load_address").is_none() {
        return Err(missing(
            "Missing load_address from device parameters (needed for depthcharge's FIT image)",
        ));
    }
    if facilities.mkimage.is_none() {
        return Err(missing(
            "depthcharge's FIT image is built with mkimage, which this worker lacks (Debian's u-boot-tools)",
        ));
    }
    Ok(())
}

/// Builds `image.itb` next to the deployed kernel and adds it to `deployed` as `fit`.
pub fn build(ctx: &DeployContext<'_>, deployed: &mut Map<String, Value>) -> Result<(), Failure> {
    let Some(arch) = wanted(ctx.device) else {
        ctx.log.info("No mkimage arch provided, not using FIT.");
        return Ok(());
    };
    let file = |key: &str| deployed.get(key).and_then(Value::as_str).map(PathBuf::from);
    let Some(kernel) = file("kernel") else {
        return Ok(());
    };
    let load = ctx
        .device
        .pointer("/parameters/load_address")
        .map(crate::data::text)
        .unwrap_or_default();
    let (kernel, compression) = if arch == "arm64" {
        (compress_lzma(&kernel)?, "lzma")
    } else {
        (kernel, "none")
    };
    let fit = kernel.with_file_name(FIT_NAME);
    let mut words: Vec<String> = [
        "mkimage",
        "-D",
        "\"-I dts -O dtb -p 2048\"",
        "-f",
        "auto",
        "-A",
        arch,
        "-O",
        "linux",
        "-T",
        "kernel",
        "-C",
        compression,
        "-d",
    ]
    .map(String::from)
    .to_vec();
    words.push(kernel.display().to_string());
    words.extend(["-a".to_owned(), load]);
    if let Some(dtb) = file("dtb") {
        words.extend(["-b".to_owned(), dtb.display().to_string()]);
    }
    if let Some(ramdisk) = file("ramdisk") {
        words.extend(["-i".to_owned(), ramdisk.display().to_string()]);
    }
    words.push(fit.display().to_string());
    // mkimage hands -D to dtc through a shell, where the quotes LAVA puts around it group the
    // options; the rest is quoted word by word.
    let line = words
        .iter()
        .enumerate()
        .map(|(i, w)| if i == 2 { w.clone() } else { shell::quote(w) })
        .collect::<Vec<_>>()
        .join(" ");
    ctx.log
        .info(&format!("Building FIT image {}", fit.display()));
    run_on_worker(ctx, "mkimage", &line, "FIT image creation failed")?;
    deployed.insert("fit".into(), Value::from(fit.display().to_string()));
    Ok(())
}

/// `lzma --keep KERNEL`: `KERNEL.lzma` in LZMA-alone format, the original kept.
fn compress_lzma(kernel: &Path) -> Result<PathBuf, Failure> {
    let mut name = kernel.as_os_str().to_owned();
    name.push(".lzma");
    let target = PathBuf::from(name);
    let failed = |e: std::io::Error| {
        Failure::infrastructure(format!(
            "cannot compress {} with LZMA: {e}",
            kernel.display()
        ))
    };
    let options = liblzma::stream::LzmaOptions::new_preset(6)
        .map_err(|e| failed(std::io::Error::other(e)))?;
    let stream = liblzma::stream::Stream::new_lzma_encoder(&options)
        .map_err(|e| failed(std::io::Error::other(e)))?;
    let mut input = std::fs::File::open(kernel).map_err(failed)?;
    let output = std::fs::File::create(&target).map_err(failed)?;
    let mut encoder = liblzma::write::XzEncoder::new_stream(output, stream);
    std::io::copy(&mut input, &mut encoder).map_err(failed)?;
    encoder.finish().map_err(failed)?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_depthcharge_devices_with_an_mkimage_arch_get_a_fit_image() {
        let device = |methods: Value, arch: Value| json!({"actions": {"boot": {"methods": methods}, "deploy": {"parameters": {"mkimage_arch": arch}}}, "parameters": {"load_address": "0"}});
        assert_eq!(
            wanted(&device(json!({"depthcharge": {}}), json!("arm"))),
            Some("arm")
        );
        assert_eq!(
            wanted(&device(
                json!({"depthcharge": {}, "u-boot": {}}),
                json!("arm")
            )),
            None
        );
        assert_eq!(
            wanted(&device(json!({"depthcharge": {}}), Value::Null)),
            None
        );
        assert_eq!(wanted(&device(json!({"grub": {}}), json!("arm"))), None);
        let without_mkimage = Facilities {
            tftp_root: true,
            ..Facilities::default()
        };
        let error = check(
            &device(json!({"depthcharge": {}}), json!("arm")),
            &without_mkimage,
        )
        .unwrap_err();
        assert!(error.message.contains("u-boot-tools"), "{}", error.message);
        let no_load = json!({"actions": {"boot": {"methods": {"depthcharge": {}}}, "deploy": {"parameters": {"mkimage_arch": "arm"}}}});
        let error = check(&no_load, &without_mkimage).unwrap_err();
        assert!(error.message.contains("load_address"), "{}", error.message);
    }

    #[test]
    fn an_arm64_kernel_is_lzma_compressed_beside_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("Image");
        std::fs::write(&kernel, vec![7u8; 100_000]).unwrap();
        let packed = compress_lzma(&kernel).unwrap();
        assert_eq!(packed, dir.path().join("Image.lzma"));
        assert!(kernel.exists());
        let bytes = std::fs::read(&packed).unwrap();
        // LZMA-alone: properties byte 0x5d (lc=3, lp=0, pb=2), then the dictionary size.
        assert_eq!(bytes[0], 0x5d);
        assert!(bytes.len() < 100_000);
        let mut decoded = Vec::new();
        let stream = liblzma::stream::Stream::new_lzma_decoder(u64::MAX).unwrap();
        std::io::Read::read_to_end(
            &mut liblzma::read::XzDecoder::new_stream(&bytes[..], stream),
            &mut decoded,
        )
        .unwrap();
        assert_eq!(decoded, vec![7u8; 100_000]);
    }
}
