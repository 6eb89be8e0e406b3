//! A job's `secrets:`, kept out of everything shown to people who may not see them.
//!
//! LAVA accepts secrets in public jobs (tokens for artifact servers, passwords for test
//! services) and hands them to the job; they must still never be published. Masking works on
//! the parsed job, not on its text: a value written as a block (`|`), folded (`>`), escaped
//! (`"\x72"`) or octal scalar is not the same text as the value it stands for, so replacing
//! the value's text would leave it readable. Definitions are masked by blanking each secret
//! scalar where the parser found it, whatever its style; log lines by the values themselves.

use serde_json::Value;

/// What a secret becomes in a shown definition.
pub const MASK: &str = "********";

/// Lines of a multi-line secret shorter than this are not masked on their own in logs (a
/// line like `}` or `--` would blank half a log).
const MIN_LINE: usize = 4;

/// The values of the job's secrets (numbers and booleans as their text), longest first so
/// that a secret containing another is masked whole; each line of a multi-line value counts
/// too, since a board echoes it a line at a time.
pub fn values(job: &Value) -> Vec<String> {
    let mut values: Vec<String> = Vec::new();
    let Some(secrets) = job.get("secrets").and_then(Value::as_object) else {
        return values;
    };
    for value in secrets.values() {
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        if text.contains('\n') {
            values.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|line| line.len() >= MIN_LINE)
                    .map(str::to_owned),
            );
        }
        if !text.is_empty() {
            values.push(text);
        }
    }
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values.dedup();
    values
}

/// `text` with every occurrence of each value replaced by `mask`.
pub fn mask_text(text: &str, values: &[String], mask: &str) -> String {
    let mut masked = text.to_owned();
    for value in values {
        masked = masked.replace(value.as_str(), mask);
    }
    masked
}

/// A `notify:` callback's `token:` (a literal one is the CI system's secret; a token's name
/// is masked too, as the two cannot be told apart here).
fn is_callback_token(pointer: &str) -> bool {
    pointer == "/notify/callback/token"
        || pointer
            .strip_prefix("/notify/callbacks/")
            .and_then(|rest| rest.strip_suffix("/token"))
            .is_some_and(|index| index.bytes().all(|b| b.is_ascii_digit()))
}

/// The definition `text` as someone who may not see its secrets gets it: each scalar under
/// `secrets:`, and each callback's `token:`, replaced by `'********'` (the YAML stays valid
/// and keeps its keys), and the secrets' values wherever else they appear. A definition that
/// does not parse is not shown at all.
pub fn mask_definition(text: &str) -> String {
    let Ok((job, spans)) = crate::yaml11::scalar_spans(text) else {
        return "# the definition cannot be shown: it does not parse\n".to_owned();
    };
    let mut ranges: Vec<std::ops::Range<usize>> = spans
        .iter()
        .filter(|(pointer, _)| pointer.starts_with("/secrets/") || is_callback_token(pointer))
        .map(|(_, range)| range.clone())
        .filter(|range| range.end <= text.len() && text.is_char_boundary(range.start))
        .collect();
    ranges.sort_by_key(|range| std::cmp::Reverse(range.start));
    let mut masked = text.to_owned();
    for range in ranges {
        if !masked.is_char_boundary(range.end) {
            continue;
        }
        let replacement = if masked[range.clone()].ends_with('\n') {
            format!("'{MASK}'\n")
        } else {
            format!("'{MASK}'")
        };
        masked.replace_range(range, &replacement);
    }
    mask_text(&masked, &values(&job), MASK)
}

#[cfg(test)]
mod callback_token_tests {
    use super::*;

    #[test]
    fn callback_tokens_are_masked() {
        let text = "job_name: n\nnotify:\n  criteria: {status: finished}\n  callback:\n    url: http://ci/x\n    token: literal-ci-secret\n  callbacks:\n  - {url: 'http://ci/y', token: other-ci-secret}\n";
        let masked = mask_definition(text);
        assert!(!masked.contains("literal-ci-secret"), "{masked}");
        assert!(!masked.contains("other-ci-secret"), "{masked}");
        assert!(masked.contains("url: http://ci/x"), "{masked}");
        assert!(crate::yaml11::from_str(&masked).is_ok(), "{masked}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = "job_name: secretive
secrets:
  PLAIN: hunter2-plain
  QUOTED: \"\\x72oot-escaped\"
  BLOCK: |
    first-block-line
    second-block-line
  FOLDED: >
    folded-one
    folded-two
  OCTAL: 0o755
  NUMBER: 0755
visibility: public
actions:
- test:
    definitions:
    - {from: inline, name: t, path: t.yaml, repository: {run: {steps: ['echo hunter2-plain']}}}
";

    #[test]
    fn every_scalar_style_is_blanked_and_the_yaml_stays_readable() {
        let masked = mask_definition(JOB);
        for leak in [
            "hunter2-plain",
            "x72oot",
            "root-escaped",
            "first-block-line",
            "second-block-line",
            "folded-one",
            "folded-two",
            "0o755",
            "0755",
        ] {
            assert!(!masked.contains(leak), "{leak} in\n{masked}");
        }
        let value = crate::yaml11::from_str(&masked).unwrap();
        assert_eq!(value["secrets"]["BLOCK"], MASK, "{masked}");
        assert_eq!(value["secrets"]["NUMBER"], MASK, "{masked}");
        assert_eq!(value["visibility"], "public", "{masked}");
        assert_eq!(value["job_name"], "secretive");
    }

    #[test]
    fn log_masking_uses_the_values_and_each_line_of_a_multi_line_one() {
        let job = crate::yaml11::from_str(JOB).unwrap();
        let values = values(&job);
        let line = "echo root-escaped; cat <<EOF\nsecond-block-line\n";
        let masked = mask_text(line, &values, "[MASKED]");
        assert!(!masked.contains("root-escaped"), "{masked}");
        assert!(!masked.contains("second-block-line"), "{masked}");
        // 0755 is octal to YAML 1.1: its value is 493.
        assert!(values.contains(&"493".to_owned()), "{values:?}");
    }

    #[test]
    fn a_job_without_secrets_is_shown_as_it_is() {
        let text = "job_name: x\nvisibility: public\n";
        assert_eq!(mask_definition(text), text);
    }
}
