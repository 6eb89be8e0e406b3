//! The environment a worker gives its boards' test shells, from LAVA's `env.dut.yaml`
//! (`overrides:` variables to set, `removes:` variables to unset), so labs can give every
//! test a proxy, a locale or a mirror without touching the jobs.

use serde_json::Value;

/// Variables to set and to unset in every test script on the board.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DutEnvironment {
    /// `NAME=value` pairs, in the file's order.
    pub set: Vec<(String, String)>,
    /// Names to unset.
    pub unset: Vec<String>,
}

/// Why an `env.dut.yaml` is not usable.
#[derive(Debug, thiserror::Error)]
pub enum DutEnvError {
    /// Not YAML.
    #[error("not valid YAML: {0}")]
    Yaml(String),
    /// YAML of the wrong shape.
    #[error("{0}")]
    Shape(String),
}

impl DutEnvironment {
    /// Reads LAVA's format; empty text is an empty environment.
    pub fn parse(text: &str) -> Result<Self, DutEnvError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let value = crate::yaml11::from_str(text).map_err(|e| DutEnvError::Yaml(e.to_string()))?;
        let mut env = Self::default();
        match value.get("overrides") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    if !super::shell::is_variable_name(name) {
                        return Err(DutEnvError::Shape(format!(
                            "overrides: {name:?} is not a variable name"
                        )));
                    }
                    let value = match value {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    env.set.push((name.clone(), value));
                }
            }
            Some(other) => {
                return Err(DutEnvError::Shape(format!(
                    "overrides must be a mapping of variables to values, not {other}"
                )))
            }
        }
        match value.get("removes") {
            None | Some(Value::Null) => {}
            Some(Value::Array(names)) => {
                for name in names {
                    match name.as_str() {
                        Some(name) if super::shell::is_variable_name(name) => {
                            env.unset.push(name.to_owned())
                        }
                        _ => {
                            return Err(DutEnvError::Shape(format!(
                                "removes: {name} is not a variable name"
                            )))
                        }
                    }
                }
            }
            Some(other) => {
                return Err(DutEnvError::Shape(format!(
                    "removes must be a list of variable names, not {other}"
                )))
            }
        }
        Ok(env)
    }

    /// The shell lines that apply it (values single-quoted, so nothing is expanded).
    pub fn script_lines(&self) -> String {
        let mut out = String::new();
        for name in &self.unset {
            out.push_str(&format!("unset {name}\n"));
        }
        for (name, value) in &self.set {
            out.push_str(&format!(
                "export {name}={}\n",
                super::shell::single_quoted(value)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lavas_format_becomes_exports_and_unsets() {
        let env = DutEnvironment::parse(
            "overrides:\n  LC_ALL: C.UTF-8\n  http_proxy: http://proxy:3128\n  QUOTE: \"it's\"\nremoves: [DEBUGINFOD_URLS]\n",
        )
        .unwrap();
        assert_eq!(
            env.script_lines(),
            "unset DEBUGINFOD_URLS\nexport LC_ALL='C.UTF-8'\nexport http_proxy='http://proxy:3128'\nexport QUOTE='it'\"'\"'s'\n"
        );
        assert_eq!(
            DutEnvironment::parse("").unwrap(),
            DutEnvironment::default()
        );
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        for (text, expected) in [
            ("overrides: [a]", "overrides must be a mapping"),
            ("overrides: {'a b': 1}", "is not a variable name"),
            ("removes: {a: 1}", "removes must be a list"),
            ("removes: ['$(reboot)']", "is not a variable name"),
            ("overrides: [", "not valid YAML"),
        ] {
            let error = DutEnvironment::parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
