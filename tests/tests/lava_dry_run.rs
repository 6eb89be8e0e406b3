//! `basalt run --validate` against LAVA's sample jobs: every job whose deploy and boot methods
//! Basalt has is accepted on a dictionary of its device type (LAVA's own templates), and every
//! other one is refused with the reason; the test prints both lists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use basalt_e2e::{lava_fixtures, Basalt, TestDir};
use serde_json::Value;

/// The boot methods of the plugins shipped with Basalt.
const BOOT_METHODS: &[&str] = &[
    "minimal",
    "u-boot",
    "qemu",
    "grub",
    "grub-efi",
    "ipxe",
    "barebox",
    "depthcharge",
    "fastboot",
];

/// Jobs whose methods Basalt has, refused for another reason that is a real gap, with it.
const KNOWN_GAPS: &[(&str, &str)] = &[];

/// Jobs LAVA itself refuses on the device type they name (its unit tests run them on
/// another type), with the reason.
const REFUSED_AS_BY_LAVA: &[(&str, &str)] = &[
    // base-uboot's grub-efi section comes without the uefi-menu that GrubMenuSelector reads
    // (LAVA: "No uefi-menu in device boot methods"); mustang-grub-efi has both.
    ("docs__mustang-grub-efi.yaml", NO_UEFI_MENU),
    ("lava_dispatcher__mustang-grub-efi-nfs.yaml", NO_UEFI_MENU),
    // hi960-hikey leaves the serial at 0000000000 for the dictionary to set, and LAVA's
    // tests have no dictionary of that type.
    (
        "lava_dispatcher__hikey960-oe.yaml",
        "device fastboot serial number unset",
    ),
];

/// Why a grub-efi boot is refused on a device without a UEFI menu.
const NO_UEFI_MENU: &str = "no uefi-menu in the device's boot methods";

/// A dictionary for each device type: one of LAVA's test devices where one extends it,
/// else a bare `{% extends %}`.
fn dictionaries(lava: &Path, dir: &TestDir) -> impl Fn(&str) -> PathBuf {
    let mut known = BTreeMap::new();
    for entry in std::fs::read_dir(lava.join("devices")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if let Some(rest) = text.split("{% extends '").nth(1) {
            if let Some(device_type) = rest.split(".jinja2'").next() {
                known.entry(device_type.to_owned()).or_insert(path.clone());
            }
        }
    }
    let scratch = dir.mkdir("dictionaries");
    move |device_type: &str| {
        known.get(device_type).cloned().unwrap_or_else(|| {
            let path = scratch.join(format!("{device_type}-01.jinja2"));
            std::fs::write(&path, format!("{{% extends '{device_type}.jinja2' %}}\n")).unwrap();
            path
        })
    }
}

fn methods(job: &Value) -> (Vec<String>, Vec<String>) {
    let mut deploys = Vec::new();
    let mut boots = Vec::new();
    for action in job["actions"].as_array().into_iter().flatten() {
        if let Some(to) = action.pointer("/deploy/to").and_then(Value::as_str) {
            deploys.push(to.to_owned());
        }
        if let Some(method) = action.pointer("/boot/method").and_then(Value::as_str) {
            boots.push(method.to_owned());
        }
        // A test action on a device with no boot (docker, LXC) is a method of its own.
        if action.get("test").is_some() && boots.is_empty() {
            boots.push("<test without boot>".into());
        }
    }
    (deploys, boots)
}

#[test]
fn every_sample_job_whose_methods_basalt_has_passes_the_dry_run() {
    let Some(lava) = lava_fixtures() else {
        return;
    };
    let dir = TestDir::new();
    // `postprocess: docker` needs the docker CLI on the worker; the dry run only looks for it.
    let bin = dir.mkdir("bin");
    let docker = dir.write("bin/docker", "#!/bin/sh\nexit 1\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let tftp = dir.mkdir("tftp");
    let nfs = dir.mkdir("nfs");
    let dictionary = dictionaries(&lava, &dir);
    let deploy_methods: Vec<&str> = basalt::dispatcher::DEPLOY_METHODS
        .iter()
        .map(|m| m.name)
        .collect();
    let verdicts: Value =
        serde_json::from_str(&std::fs::read_to_string(lava.join("jobs.json")).unwrap()).unwrap();
    let (mut accepted, mut refused, mut wrong) = (Vec::new(), Vec::new(), Vec::new());
    for (file, verdict) in verdicts.as_object().unwrap() {
        if verdict["valid"] != true {
            continue;
        }
        let job_path = lava.join("jobs").join(file);
        let job = basalt::yaml11::from_str(&std::fs::read_to_string(&job_path).unwrap()).unwrap();
        let Some(device_type) = job["device_type"].as_str() else {
            refused.push(format!(
                "{file}: multinode (a master splits it into sub-jobs)"
            ));
            continue;
        };
        if !lava
            .join("device-types")
            .join(format!("{device_type}.jinja2"))
            .is_file()
        {
            refused.push(format!(
                "{file}: LAVA has no template for device type {device_type}"
            ));
            continue;
        }
        let (deploys, boots) = methods(&job);
        let missing: Vec<&String> = deploys
            .iter()
            .filter(|m| !deploy_methods.contains(&m.as_str()))
            .chain(boots.iter().filter(|m| !BOOT_METHODS.contains(&m.as_str())))
            .collect();
        let output = Basalt::new(["run", "--validate"])
            .arg(&job_path)
            .arg("--device")
            .arg(dictionary(device_type))
            .arg("--device-types")
            .arg(lava.join("device-types"))
            .arg("--tftp-root")
            .arg(&tftp)
            .arg("--nfs-root")
            .arg(&nfs)
            .env("PATH", &path)
            .run();
        let said = format!("{}{}", output.stdout, output.stderr);
        let reason = said.lines().last().unwrap_or_default().to_owned();
        let mut gap = KNOWN_GAPS
            .iter()
            .chain(REFUSED_AS_BY_LAVA)
            .find(|(name, _)| name == file)
            .map(|(_, why)| why.to_string());
        // LAVA's unit tests run some samples on another device than the type they name; on
        // their own type the method is missing from LAVA's template as well.
        let template = std::fs::read_to_string(
            lava.join("device-types")
                .join(format!("{device_type}.jinja2")),
        )
        .unwrap();
        if let Some(method) = boots.iter().find(|m| {
            !template.contains(&format!("{m}:"))
                && said.contains(&format!(
                    "boot method '{m}' is not supported by this device"
                ))
        }) {
            gap = Some(format!(
                "boot method '{method}' is not supported by this device"
            ));
        }
        match (output.status.success(), missing.is_empty(), gap.as_deref()) {
            (true, true, None) => accepted.push(file.clone()),
            (false, true, Some(why)) if said.contains(why) => {
                refused.push(format!("{file}: {reason}"))
            }
            (false, false, _) => refused.push(format!("{file}: {reason}")),
            (true, false, _) => {
                wrong.push(format!("{file}: accepted, but Basalt has no {missing:?}"))
            }
            (false, true, _) => wrong.push(format!("{file}: refused: {said}")),
            (true, true, Some(_)) => {
                wrong.push(format!("{file}: now accepted: remove it from KNOWN_GAPS"))
            }
        }
    }
    eprintln!(
        "accepted ({}):\n  {}\nrefused ({}):\n  {}",
        accepted.len(),
        accepted.join("\n  "),
        refused.len(),
        refused.join("\n  ")
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // A floor: fewer means a method that worked stopped working.
    assert!(accepted.len() >= 66, "{} accepted", accepted.len());
}
