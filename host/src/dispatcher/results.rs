//! Test results: suites, cases, measurements; written as YAML and as JUnit XML.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

/// One test case result.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CaseResult {
    /// The suite (`lava`, `0_smoke`, ...).
    pub suite: String,
    /// The case name.
    pub name: String,
    /// `pass`, `fail`, `skip` or `unknown`.
    pub result: String,
    /// A measurement, if the case reported one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measurement: Option<f64>,
    /// The measurement's units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
    /// Extra detail (the error of a failed job, a test set name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The other fields LAVA records with it (`set`, `starttc`, `endtc`, `duration`, `level`,
    /// `namespace`, `extra`, `uuid`, `reference`, …), as logged.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl CaseResult {
    /// A result from the fields of its results record (`definition`, `case`, `result`,
    /// `measurement`, `units`, and the rest as they are).
    pub fn from_fields(fields: &[(&str, serde_json::Value)]) -> Self {
        let mut case = Self::default();
        for (key, value) in fields {
            let text = || crate::data::text(value);
            match *key {
                "definition" => case.suite = text(),
                "case" => case.name = text(),
                "result" => case.result = text(),
                "measurement" => case.measurement = value.as_f64(),
                "units" => case.units = Some(text()),
                "set" => {
                    case.detail = Some(text());
                    case.fields.insert((*key).to_owned(), value.clone());
                }
                other => {
                    case.fields.insert(other.to_owned(), value.clone());
                }
            }
        }
        case
    }
}

/// Every result of a job, in order.
#[derive(Debug, Default, Clone)]
pub struct Results {
    cases: Vec<CaseResult>,
}

fn xml_escape(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .fold(String::new(), |mut out, c| {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&apos;"),
                c => out.push(c),
            }
            out
        })
}

impl Results {
    /// Records a case.
    pub fn add(&mut self, case: CaseResult) {
        self.cases.push(case);
    }

    /// Every case.
    pub fn cases(&self) -> &[CaseResult] {
        &self.cases
    }

    /// Writes `results.yaml` (a list of cases) and `results.xml` (JUnit) into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        // JSON, which is YAML too, with every string quoted: its readers use YAML 1.1, where
        // a plain `41_3.1` (a definition's uuid) is the number 413.1.
        let yaml = serde_json::to_string_pretty(&self.cases).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("results.yaml"), yaml + "\n")?;
        std::fs::write(dir.join("results.xml"), self.junit())
    }

    /// The results as JUnit XML: one `testsuite` per suite.
    pub fn junit(&self) -> String {
        let mut suites: Vec<&str> = Vec::new();
        for case in &self.cases {
            if !suites.contains(&case.suite.as_str()) {
                suites.push(&case.suite);
            }
        }
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
        for suite in suites {
            let cases: Vec<&CaseResult> = self.cases.iter().filter(|c| c.suite == suite).collect();
            let failures = cases.iter().filter(|c| c.result == "fail").count();
            let skipped = cases
                .iter()
                .filter(|c| c.result == "skip" || c.result == "unknown")
                .count();
            let _ = writeln!(
                xml,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
                xml_escape(suite),
                cases.len()
            );
            for case in cases {
                let _ = write!(
                    xml,
                    "    <testcase classname=\"{}\" name=\"{}\"",
                    xml_escape(suite),
                    xml_escape(&case.name)
                );
                let detail = case.detail.as_deref().unwrap_or("");
                match case.result.as_str() {
                    "fail" => {
                        let _ = writeln!(
                            xml,
                            ">\n      <failure message=\"{}\"/>\n    </testcase>",
                            xml_escape(if detail.is_empty() { "failed" } else { detail })
                        );
                    }
                    "skip" | "unknown" => {
                        let _ = writeln!(xml, ">\n      <skipped/>\n    </testcase>");
                    }
                    _ => {
                        let _ = writeln!(xml, "/>");
                    }
                }
            }
            xml.push_str("  </testsuite>\n");
        }
        xml.push_str("</testsuites>\n");
        xml
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(suite: &str, name: &str, result: &str) -> CaseResult {
        CaseResult {
            suite: suite.into(),
            name: name.into(),
            result: result.into(),
            ..CaseResult::default()
        }
    }

    #[test]
    fn junit_groups_cases_by_suite_and_escapes() {
        let mut results = Results::default();
        results.add(case("0_smoke", "uname", "pass"));
        results.add(case("0_smoke", "a<b", "fail"));
        results.add(case("lava", "job", "pass"));
        let xml = results.junit();
        assert!(xml.contains("<testsuite name=\"0_smoke\" tests=\"2\" failures=\"1\""));
        assert!(xml.contains("name=\"a&lt;b\""));
        assert!(xml.contains("<testsuite name=\"lava\" tests=\"1\" failures=\"0\""));
    }
}
