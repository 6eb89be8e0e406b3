//! `basalt jobs validate`: every problem with its path and line; legacy JSON refused.

use basalt_e2e::{Basalt, TestDir};

const GOOD: &str = "job_name: smoke
device_type: beaglebone-black
timeouts:
  job: {minutes: 10}
visibility: public
priority: medium
actions:
  - boot:
      method: minimal
      prompts: ['root@board:~#']
  - test:
      definitions:
        - from: inline
          name: smoke
          path: inline/smoke.yaml
          repository:
            metadata: {format: Lava-Test Test Definition 1.0, name: smoke}
            run:
              steps: [lava-test-case true --shell true]
";

#[test]
fn valid_and_invalid_jobs_are_told_apart_with_lines() {
    let dir = TestDir::new();
    let good = dir.write("good.yaml", GOOD);
    let bad = dir.write(
        "bad.yaml",
        "job_name: t\ntimeouts:\n  job: {minuts: 5}\nvisibility: public\nactions:\n  - deploy:\n      to: floppy\n",
    );
    let legacy = dir.write(
        "legacy.json",
        r#"{"job_name": "old", "timeout": 900, "actions": [{"command": "deploy_linaro_image"}]}"#,
    );
    Basalt::new(["jobs", "validate"]).arg(&good).run().success();
    let output = Basalt::new(["jobs", "validate"])
        .arg(&good)
        .arg(&bad)
        .arg(&legacy)
        .run()
        .failure();
    assert!(output.stdout.contains("good.yaml: valid"), "{output}");
    assert!(
        output
            .stdout
            .contains("line 3, column 17: timeouts.job.minuts: is not a timeout unit"),
        "{output}"
    );
    assert!(
        output
            .stdout
            .contains("line 7, column 11: actions[0].deploy.to: unknown deploy method 'floppy'"),
        "{output}"
    );
    assert!(
        output
            .stdout
            .contains("legacy.json: invalid: this is a JSON job definition; only LAVA pipeline"),
        "{output}"
    );
    assert!(
        output.stderr.contains("2 of 3 job definition(s) invalid"),
        "{output}"
    );
}
