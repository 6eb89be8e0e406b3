//! The pipeline as text, for `basalt jobs describe` and the job's `description.yaml`.

use std::time::Duration;

use super::{Pipeline, PipelineAction};

/// Formats a duration as LAVA prints them (`00:05:00`).
pub fn hms(duration: Duration) -> String {
    let s = duration.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// One line per action, indented by depth.
pub fn describe(pipeline: &Pipeline) -> String {
    let mut out = format!("job timeout {}\n", hms(pipeline.job_timeout));
    fn walk(action: &PipelineAction, depth: usize, out: &mut String) {
        out.push_str(&format!(
            "{:indent$}{:<8} {:<28} timeout {} ({})  {}\n",
            "",
            action.level,
            action.name,
            hms(action.timeout),
            action.timeout_source.describe(),
            action.description,
            indent = depth * 2
        ));
        for child in &action.children {
            walk(child, depth + 1, out);
        }
    }
    for stage in &pipeline.stages {
        walk(&stage.action, 0, &mut out);
        if stage.attempts > 1 {
            let how = if stage.repeat {
                "repeated"
            } else {
                "retried up to"
            };
            out.push_str(&format!("         ({how} {} times)\n", stage.attempts));
        }
    }
    out
}
