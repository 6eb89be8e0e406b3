//! The overlay built for sample jobs: layout, scripts, settings and refusals as LAVA has them.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::json;

use super::*;

/// Builds the overlay of `job_yaml` for job 7 in `dir`.
pub(crate) fn build_for(dir: &Path, job_yaml: &str, device: &Value) -> Result<Overlay, Failure> {
    let job = JobDefinition::from_value(crate::yaml11::from_str(job_yaml).unwrap());
    std::fs::create_dir_all(dir).unwrap();
    let log = JobLogger::create(dir, false, Vec::new()).unwrap();
    let local = LocalFiles::new([dir.parent().unwrap_or(dir).to_path_buf()]);
    // As the runner builds it: in the first deploy's `lava-overlay`.
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    let deploy = crate::dispatcher::actions::Place::Top {
        level: "1",
        namespace: "common",
    };
    let child = crate::dispatcher::actions::Place::Child;
    log.action("deployimages", deploy, deadline, |_| {
        log.action("lava-overlay", child, deadline, |_| {
            build(&Inputs {
                job: &job,
                device,
                job_id: "7",
                workdir: dir,
                local_files: &local,
                environment: vec![("LAVA_JOB_ID".into(), "7".into())],
                dut_env_lines: "export FROM_WORKER='yes'\n".into(),
                log: &log,
                deadline,
            })
        })
    })
}

/// An overlay with one inline definition, for deploy tests.
pub(crate) fn sample(dir: &Path) -> Overlay {
    build_for(dir, SAMPLE_JOB, &json!({})).unwrap()
}

const SAMPLE_JOB: &str = "
job_name: overlay
actions:
- deploy: {to: tmpfs, os: debian}
- test:
    definitions:
    - from: inline
      name: smoke
      path: inline/smoke.yaml
      parameters: {MODE: quick}
      repository:
        metadata: {format: Lava-Test Test Definition 1.0, name: smoke}
        params: {MODE: full, 'NOT A NAME': x}
        install:
          deps: [curl]
          deps-debian: [procps]
          steps: [make -C tools]
        run:
          steps:
          - lava-test-case one --result pass
          - lava-test-case two --shell echo $1 $3
    - from: inline
      name: second
      path: second.yaml
      repository:
        metadata: {format: Lava-Test Test Definition 1.0, name: second}
        run: {steps: [true]}
- boot: {method: minimal}
- test:
    definitions:
    - from: inline
      name: third
      path: third.yaml
      repository:
        metadata: {format: Lava-Test Test Definition 1.0, name: third}
        run: {steps: [true]}
";

/// Every member of a gzip tarball: name → (mode, content).
fn members(tarball: &Path) -> BTreeMap<String, (u32, String)> {
    let file = std::fs::File::open(tarball).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mode = entry.header().mode().unwrap();
        assert_eq!(entry.header().uid().unwrap(), 0, "{name} owned by root");
        let mut text = String::new();
        let _ = entry.read_to_string(&mut text);
        out.insert(name, (mode, text));
    }
    out
}

#[test]
fn the_overlay_is_laid_out_as_lava_lays_it_out() {
    let dir = tempfile::tempdir().unwrap();
    let overlay = sample(dir.path());
    assert_eq!(overlay.settings.results_dir, "/lava-7");
    assert_eq!(overlay.settings.sh_cmd, "/bin/bash", "os: debian");
    assert_eq!(overlay.stage_of(1), Some(0));
    assert_eq!(overlay.stage_of(3), Some(1));
    assert_eq!(overlay.stage_of(2), None);
    let suites: Vec<&str> = overlay
        .definitions
        .iter()
        .map(|d| d.suite.as_str())
        .collect();
    assert_eq!(
        suites,
        ["0_smoke", "1_second", "2_third"],
        "indexes run across stages"
    );
    assert_eq!(overlay.definitions[0].uuid, "7_1.1.1.1");
    let files = members(&overlay.tarball);
    for name in helpers::names() {
        let (mode, body) = &files[&format!("lava-7/bin/{name}")];
        assert_eq!(mode & 0o777, 0o755, "{name}");
        assert!(body.starts_with("#!/bin/bash\n\n"), "{name}");
    }
    assert_eq!(
        files["lava-7/0/lava-test-runner.conf"].1,
        "/lava-7/0/tests/0_smoke\n/lava-7/0/tests/1_second\n"
    );
    assert_eq!(
        files["lava-7/1/lava-test-runner.conf"].1,
        "/lava-7/1/tests/2_third\n"
    );
    let smoke = "lava-7/0/tests/0_smoke";
    assert_eq!(files[&format!("{smoke}/uuid")].1, "7_1.1.1.1");
    assert!(files.contains_key(&format!("{smoke}/inline/smoke.yaml")));
    assert!(files[&format!("{smoke}/testdef.yaml")]
        .1
        .contains("lava-test-case one"));
    assert!(files[&format!("{smoke}/testdef_metadata")]
        .1
        .contains("branch_vcs: inline"));
    let run = &files[&format!("{smoke}/run.sh")].1;
    let expected_run = "###default parameters from test definition###\n\
         MODE='full'\n\
         ######\n\
         ###test parameters from job submission###\n\
         MODE='quick'\n\
         ######\n\
         set -e\nset -x\n\
         export TESTRUN_ID=0_smoke\n\
         cd /lava-7/0/tests/0_smoke\n\
         UUID=\"$(cat uuid)\"\n\
         set +x\n\
         echo \"<LAVA_SIGNAL_STARTRUN $TESTRUN_ID $UUID>\"\n\
         set -x\n\
         lava-test-case one --result pass\n\
         lava-test-case two --shell echo \\$1 \\$3\n\
         set +x\n\
         echo \"<LAVA_SIGNAL_ENDRUN $TESTRUN_ID $UUID>\"\n";
    assert_eq!(run, expected_run);
    let install = &files[&format!("{smoke}/install.sh")].1;
    assert!(
        install.ends_with(
            "lava-install-packages curl procps \ncd /lava-7/0/tests/0_smoke\npwd\nmake -C tools\n"
        ),
        "{install}"
    );
    assert!(!files.contains_key("lava-7/0/tests/1_second/install.sh"));
    let environment = &files["lava-7/environment"].1;
    assert!(
        environment.contains("export LAVA_JOB_ID=7\n"),
        "{environment}"
    );
    assert!(
        environment.ends_with("export FROM_WORKER='yes'\n"),
        "{environment}"
    );
}

#[test]
fn the_device_and_the_job_choose_the_shell_and_the_directory_as_in_lava() {
    let device = json!({"constants": {"posix": {"lava_test_results_dir": "/var/lava-%s", "lava_test_sh_cmd": "/bin/ash"}}});
    let job = json!({"actions": [{"deploy": {"to": "tmpfs"}}]});
    let settings = Settings::of(&job, &device, "12").unwrap();
    assert_eq!(settings.results_dir, "/var/lava-12");
    assert_eq!(settings.sh_cmd, "/bin/ash");
    assert_eq!(settings.distro, None);
    let android = json!({"actions": [{"deploy": {"to": "fastboot", "os": "android"}}]});
    let settings = Settings::of(&android, &device, "12").unwrap();
    assert_eq!(settings.results_dir, "/data/local/tmp/lava-12");
    let context = json!({"context": {"lava_test_results_dir": "/srv/t-%s"}, "actions": []});
    assert_eq!(
        Settings::of(&context, &device, "3").unwrap().results_dir,
        "/srv/t-3"
    );
    for (dir, expected) in [
        ("/lava", "should include '%s'"),
        ("lava-%s", "absolute"),
        ("/../etc/%s", ".."),
        ("/tmp/$(reboot)-%s", "interpret"),
    ] {
        let job = json!({"context": {"lava_test_results_dir": dir}});
        let error = Settings::of(&job, &json!({}), "1").unwrap_err();
        assert!(error.message.contains(expected), "{dir}: {}", error.message);
    }
}

#[test]
fn definition_names_are_checked_as_lava_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    for (name, expected) in [
        ("lava", "reserved"),
        ("two words", "may only hold"),
        ("../x", "may only hold"),
    ] {
        let job = format!(
            "actions:\n- test:\n    definitions:\n    - {{from: inline, name: '{name}', path: a.yaml, repository: {{run: {{steps: [true]}}}}}}\n"
        );
        let error = build_for(dir.path(), &job, &json!({})).unwrap_err();
        assert!(
            error.message.contains(expected),
            "{name}: {}",
            error.message
        );
    }
    let twice = "actions:\n- test:\n    definitions:\n    - {from: inline, name: a, path: a.yaml, repository: {run: {steps: [true]}}}\n    - {from: inline, name: a, path: b.yaml, repository: {run: {steps: [true]}}}\n";
    let error = build_for(dir.path(), twice, &json!({})).unwrap_err();
    assert!(error.message.contains("unique"), "{}", error.message);
    let skip = "actions:\n- test:\n    definitions:\n    - {from: inline, name: a, path: a.yaml, skip_install: [everything], repository: {run: {steps: [true]}}}\n";
    let error = build_for(dir.path(), skip, &json!({})).unwrap_err();
    assert!(
        error.message.contains("Unrecognised skip_install"),
        "{}",
        error.message
    );
}

#[test]
fn skip_install_leaves_out_what_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let job = "actions:\n- test:\n    definitions:\n    - from: inline\n      name: a\n      path: a.yaml\n      skip_install: [deps]\n      repository:\n        install: {deps: [curl], steps: [echo hi]}\n        run: {steps: [true]}\n";
    let overlay = build_for(dir.path(), job, &json!({})).unwrap();
    let files = members(&overlay.tarball);
    let install = &files["lava-7/0/tests/0_a/install.sh"].1;
    assert!(!install.contains("lava-install-packages"), "{install}");
    assert!(install.contains("echo hi"), "{install}");
}

#[test]
fn a_url_definition_is_a_tarball_unpacked_with_its_strip_components() {
    let dir = tempfile::tempdir().unwrap();
    let tarball = dir.path().join("tests.tar.gz");
    std::fs::write(
        &tarball,
        crate::dispatcher::archive::tarball::tests::tarball(
            &[(
                "top/suite/smoke.yaml",
                "run: {steps: [lava-test-case a --result pass]}\n",
            )],
            crate::dispatcher::archive::Compression::Gz,
        ),
    )
    .unwrap();
    let job = format!(
        "actions:\n- test:\n    definitions:\n    - {{from: url, name: a, path: suite/smoke.yaml, compression: gz, strip-components: 1, repository: 'file://{}'}}\n",
        tarball.display()
    );
    let overlay = build_for(dir.path(), &job, &json!({})).unwrap();
    assert!(overlay.definitions[0]
        .testdef
        .pointer("/run/steps")
        .is_some());
    let files = members(&overlay.tarball);
    assert!(
        files.contains_key("lava-7/0/tests/0_a/suite/smoke.yaml"),
        "{:?}",
        files.keys()
    );
}

#[test]
fn a_repository_symlink_where_a_generated_file_goes_is_replaced_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "worker file\n").unwrap();
    let tarball = dir.path().join("tests.tar");
    std::fs::write(
        &tarball,
        crate::dispatcher::archive::tarball::tests::tarball(
            &[
                ("smoke.yaml", "run: {steps: [echo pwned]}\n"),
                ("run.sh", &format!("->{}", victim.display())),
                ("uuid", "->/etc/hostname"),
            ],
            crate::dispatcher::archive::Compression::None,
        ),
    )
    .unwrap();
    let job = format!(
        "actions:\n- test:\n    definitions:\n    - {{from: url, name: a, path: smoke.yaml, repository: 'file://{}'}}\n",
        tarball.display()
    );
    let overlay = build_for(&dir.path().join("job"), &job, &json!({})).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "worker file\n");
    let files = members(&overlay.tarball);
    assert!(files["lava-7/0/tests/0_a/run.sh"].1.contains("echo pwned"));
    assert_eq!(files["lava-7/0/tests/0_a/uuid"].1, "7_1.1.1.1");
}
