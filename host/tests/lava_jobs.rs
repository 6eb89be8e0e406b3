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
