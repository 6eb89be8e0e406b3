//! LAVA's qemu guest disk on a real qemu board: a job whose images do not take the overlay
//! gets it on `lava-guest.qcow2` (`apply-overlay-guest`), which qemu attaches and the test
//! shell mounts at `/lava-<job>` by its UUID before the runner starts, as lava-run does.

use std::time::Duration;

use basalt_e2e::{lava_fixtures, tool_available, Basalt, TestDir};

const JOB: &str = "job_name: guest disk
device_type: qemu
visibility: public
context:
  arch: amd64
timeouts:
  job: {minutes: 8}
  action: {minutes: 4}
actions:
- deploy:
    to: tmpfs
    images:
      kernel:
        image_arg: -kernel {kernel} -append \"console=ttyS0,115200 rdinit=/init\"
        url: file://KERNEL
      ramdisk:
        image_arg: -initrd {ramdisk}
        url: file://RAMDISK
        compression: gz
        format: cpio.newc
- boot:
    method: qemu
    media: tmpfs
    prompts: ['PROMPT']
- test:
    definitions:
    - from: inline
      name: guest
      path: inline/guest.yaml
      repository:
        metadata: {format: Lava-Test Test Definition 1.0, name: guest}
        run:
          steps:
          - lava-test-case mounted --shell grep -q /lava-7 /proc/mounts
          - lava-test-case runner-there --shell test -x /lava-7/bin/lava-test-runner
";

#[test]
fn the_overlay_reaches_a_qemu_board_on_the_guest_disk_and_is_mounted_by_uuid() {
    let Some(lava) = lava_fixtures() else {
        return;
    };
    if !tool_available("qemu-system-x86_64") || !tool_available("qemu-img") {
        assert!(
            std::env::var_os("CI").is_none(),
            "qemu-system-x86 and qemu-utils are needed"
        );
        return;
    }
    let dir = TestDir::new();
    let kernel = dir.path().join("vmlinuz");
    std::fs::copy(basalt_e2e::board::newest_kernel().unwrap(), &kernel).unwrap();
    let ramdisk = dir.path().join("initramfs.cpio.gz");
    basalt_e2e::board::busybox_initramfs_with_disks(&ramdisk).unwrap();
    let job = dir.write(
        "job.yaml",
        JOB.replace("KERNEL", &kernel.display().to_string())
            .replace("RAMDISK", &ramdisk.display().to_string())
            .replace("PROMPT", basalt_e2e::board::PROMPT),
    );
    let dictionary = dir.write(
        "qemu-01.jinja2",
        "{% extends 'qemu.jinja2' %}\n{% set no_kvm = True %}\n{% set memory = 512 %}\n\
         {% set guestfs_size = 64 %}\n",
    );
    let out = dir.path().join("out");
    let output = Basalt::new(["run", "--quiet", "--job-id", "7", "--device"])
        .arg(&dictionary)
        .arg("--device-types")
        .arg(lava.join("device-types"))
        .arg("--output-dir")
        .arg(&out)
        .arg("--local-file-dir")
        .arg(dir.path())
        .arg(&job)
        .timeout(Duration::from_secs(300))
        .run();
    let log = std::fs::read_to_string(out.join("output.yaml")).unwrap_or_default();
    assert_eq!(output.stdout.trim(), "Complete", "{output}\n{log}");
    let guest = out.join("deploy/guest/lava-guest.qcow2");
    assert!(guest.is_file(), "{log}");
    // The drive, as LAVA's CallQemuAction adds it for an x86 guest.
    assert!(
        log.contains("Extending command line for qcow2 test overlay"),
        "{log}"
    );
    let drive = format!(
        "-drive format=qcow2,file={},media=disk,if=ide,id=lavatest",
        std::fs::canonicalize(&guest).unwrap().display()
    );
    assert!(log.contains(&drive), "{log}");
    // The pre-command list, with the UUID apply-overlay-guest recorded.
    let uuid = log
        .lines()
        .find(|l| l.contains("\"case\": \"apply-overlay-guest\""))
        .and_then(|l| l.split("\"success\": \"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no apply-overlay-guest record: {log}"));
    assert_eq!(uuid.len(), 36, "{uuid}");
    assert!(
        log.contains(&format!("mount /dev/disk/by-uuid/{uuid} -t ext2 /lava-7")),
        "{log}"
    );
    // Not sent over the console as well.
    assert!(
        !log.contains("Sending the LAVA overlay over the console"),
        "{log}"
    );
    let results = basalt_e2e::results(&out);
    for name in ["mounted", "runner-there"] {
        assert_eq!(
            basalt_e2e::case(&results, "0_guest", name)["result"],
            "pass",
            "{name}"
        );
    }
    assert_eq!(
        basalt_e2e::case(&results, "lava", "apply-overlay-guest")["result"],
        "pass"
    );
}
