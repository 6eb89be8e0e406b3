//! LAVA compatibility: each of LAVA's 149 sample jobs is accepted or refused as LAVA's own
//! submission schema decides (`../shared/lava/jobs.json`), and every refusal says why.

mod common;

use basalt::job::{parse_job, JobError};
use serde_json::Value;

#[test]
fn lava_sample_jobs_are_accepted_and_refused_as_lava_does() {
    let Some(lava) = common::lava_fixtures() else {
        return;
    };
    let verdicts: Value =
        serde_json::from_str(&std::fs::read_to_string(lava.join("jobs.json")).unwrap()).unwrap();
    let verdicts = verdicts.as_object().unwrap();
    assert_eq!(verdicts.len(), 149);
    let mut wrong = Vec::new();
    for (file, verdict) in verdicts {
        let text = std::fs::read_to_string(lava.join("jobs").join(file)).unwrap();
        let lava_valid = verdict["valid"].as_bool().unwrap();
        match (parse_job(&text), lava_valid) {
            (Ok(_), true) => {}
            (Err(JobError::Invalid(problems)), false) => {
                for problem in &problems {
                    assert!(problem.line.is_some(), "{file}: {problem} has no line");
                    assert!(!problem.message.is_empty());
                }
            }
            (Ok(_), false) => wrong.push(format!(
                "{file}: accepted, LAVA refuses it: {}",
                verdict["lava_error"]
            )),
            (Err(error), _) => wrong.push(format!("{file}: refused, LAVA accepts it: {error}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of 149 disagree:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// `notify:` is checked as LAVA's schema checks it, each problem at its path.
#[test]
fn notify_blocks_are_checked_where_they_are_wrong() {
    let job = |notify: &str| {
        format!(
            "job_name: n\ndevice_type: qemu\nvisibility: public\ntimeouts:\n  job: {{minutes: 5}}\n\
             actions:\n- boot: {{method: qemu, media: tmpfs}}\nnotify:\n{notify}"
        )
    };
    let good = job(
        "  criteria: {status: finished}\n  callbacks:\n  - {url: 'https://ci.example/x', method: POST, \
         dataset: all, content-type: json, token: t, header: X-Token}\n  recipients:\n  - to: \
         {method: email, email: a@example.com}\n",
    );
    assert!(parse_job(&good).is_ok(), "{:?}", parse_job(&good).err());
    let cases = [
        ("  criteria: {status: finished}\n  callback: {method: POST}\n", "notify.callback.url"),
        (
            "  criteria: {status: finished}\n  callback: {url: 'https://x/', dataset: everything}\n",
            "notify.callback.dataset",
        ),
        (
            "  criteria: {status: finished}\n  callbacks:\n  - {url: 'file:///etc/passwd'}\n",
            "notify.callbacks[0].url",
        ),
        (
            "  criteria: {status: finished}\n  recipients:\n  - to: {method: irc}\n",
            "No valid user or IRC handle specified.",
        ),
        (
            "  criteria: {status: finished}\n  recipients:\n  - to: {method: email}\n",
            "No valid user or email address specified.",
        ),
    ];
    for (notify, expected) in cases {
        let text = job(notify);
        let Err(JobError::Invalid(problems)) = parse_job(&text) else {
            panic!("accepted: {text}");
        };
        let all = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(all.contains(expected), "{expected:?} not in:\n{all}");
    }
}

/// `repeat` and `failure_retry` on one action are refused as LAVA refuses them; `repeat`
/// alone gives the stage that many runs, all of them.
#[test]
fn repeat_and_failure_retry_together_are_refused_and_repeat_alone_repeats() {
    let job = |retry: &str| {
        format!(
            "job_name: repeat\ndevice_type: qemu\nvisibility: public\n\
             timeouts: {{job: {{minutes: 5}}}}\n\
             actions:\n- boot:\n    method: minimal\n{retry}"
        )
    };
    let Err(JobError::Invalid(problems)) = parse_job(&job("    repeat: 2\n    failure_retry: 3\n"))
    else {
        panic!("accepted repeat with failure_retry");
    };
    assert!(
        problems.iter().any(|p| p
            .to_string()
            .contains("Unable to use repeat and failure_retry")),
        "{problems:?}"
    );
    let runs = |retry: &str| {
        let parsed = parse_job(&job(retry)).unwrap();
        let action = &basalt::job::JobDefinition::from_value(parsed.value).actions[0];
        (action.attempts(), action.repeats())
    };
    assert_eq!(runs("    repeat: 3\n"), (3, true));
    assert_eq!(runs("    failure_retry: 2\n"), (2, false));
}
