//! The overlay's generated files: `environment`, and each definition's `run.sh`,
//! `install.sh`, `testdef.yaml`, `uuid` and `testdef_metadata`, laid out as LAVA writes them.

use std::path::Path;

use serde_json::{Map, Value};

use super::{Definition, Inputs, Settings};
use crate::dispatcher::shell::{is_variable_name, quote, single_quoted};

/// `environment`: `export NAME=value` for the device's `environment`, its `device_info`,
/// `static_info` and `storage_info` (flattened with LAVA's prefixes), the job's
/// `environment:`, the job's and worker's facts, then the worker's `env.dut.yaml`.
pub fn environment(inputs: &Inputs<'_>) -> String {
    let mut out = String::new();
    let device = inputs.device;
    export(&mut out, "", device.get("environment"));
    export(&mut out, "LAVA_DEVICE_INFO", device.get("device_info"));
    export(&mut out, "LAVA_STATIC_INFO", device.get("static_info"));
    export(&mut out, "LAVA_STORAGE_INFO", device.get("storage_info"));
    for (name, value) in &inputs.environment {
        if is_variable_name(name) {
            out.push_str(&format!("export {name}={}\n", quote(value)));
        }
    }
    let tags = crate::data::string_list(inputs.job.raw.get("tags")).join(",");
    out.push_str(&format!("export LAVA_JOB_TAGS={}\n", quote(&tags)));
    for (name, pointer) in [
        ("LAVA_DEVICE_HOSTNAME", "/hostname"),
        ("LAVA_DEVICE_TYPE", "/device_type"),
    ] {
        if let Some(value) = device.pointer(pointer).map(crate::data::text) {
            if !value.is_empty() {
                out.push_str(&format!("export {name}={}\n", quote(&value)));
            }
        }
    }
    out.push_str(&inputs.dut_env_lines);
    out
}

/// LAVA's flattening: mappings join keys with `_`, lists use their index, booleans are 1/0.
fn export(out: &mut String, prefix: &str, value: Option<&Value>) {
    let Some(value) = value else { return };
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}_{key}")
        }
    };
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                export(out, &join(key), Some(item));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                export(out, &join(&i.to_string()), Some(item));
            }
        }
        Value::Null => {}
        scalar if is_variable_name(prefix) => {
            let text = match scalar {
                Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
                other => quote(&crate::data::text(other)),
            };
            out.push_str(&format!("export {prefix}={text}\n"));
        }
        _ => {}
    }
}

/// The parameter block run.sh and install.sh start with: the definition's own `params` and
/// `parameters`, then the job's.
fn parameters(definition: &Definition) -> String {
    let mut out = String::from("###default parameters from test definition###\n");
    for key in ["params", "parameters"] {
        assign_all(&mut out, definition.testdef.get(key));
    }
    out.push_str("######\n###test parameters from job submission###\n");
    for key in ["parameters", "params"] {
        assign_all(&mut out, definition.params.get(key));
    }
    out.push_str("######\n");
    out
}

fn assign_all(out: &mut String, values: Option<&Value>) {
    let Some(values) = values.and_then(Value::as_object) else {
        return;
    };
    for (name, value) in values {
        if !is_variable_name(name) {
            continue;
        }
        let text = match value {
            Value::Null => String::new(),
            other => crate::data::text(other),
        };
        out.push_str(&format!("{name}={}\n", single_quoted(&text)));
    }
}

/// A step that hands its words to another command (`--cmd`, `--shell`) keeps `$1` for that
/// command: LAVA escapes positional references in such steps.
fn escape_positionals(step: &str) -> String {
    if !(step.contains("--cmd") || step.contains("--shell")) {
        return step.to_owned();
    }
    static POSITIONAL: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\$(\d+)\b").expect("valid positional regex")
    });
    POSITIONAL.replace_all(step, r"\$$${1}").into_owned()
}

fn steps(testdef: &Value, pointer: &str) -> Vec<String> {
    testdef
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(|steps| {
            steps
                .iter()
                .filter(|s| !s.is_null())
                .map(crate::data::text)
                .collect()
        })
        .unwrap_or_default()
}

/// `run.sh`, as LAVA writes it (no `#!`: lava-test-runner runs it with `$SHELL -e`).
pub fn run_sh(settings: &Settings, definition: &Definition, character_delay: f64) -> String {
    let dir = format!(
        "{}/tests/{}",
        settings.stage_dir(definition.stage),
        definition.suite
    );
    let kmsg = definition.params.get("lava-signal").and_then(Value::as_str) == Some("kmsg");
    let signal = |name: &str| {
        if kmsg {
            format!("echo \"<0><LAVA_SIGNAL_{name} $TESTRUN_ID $UUID>\" > /dev/kmsg\n")
        } else {
            format!("echo \"<LAVA_SIGNAL_{name} $TESTRUN_ID $UUID>\"\n")
        }
    };
    let mut out = parameters(definition);
    out.push_str("set -e\nset -x\n");
    out.push_str(&format!("export TESTRUN_ID={}\n", definition.suite));
    out.push_str(&format!("cd {dir}\n"));
    out.push_str("UUID=\"$(cat uuid)\"\nset +x\n");
    if character_delay > 0.0 {
        out.push_str(&format!("export CHARACTER_DELAY={character_delay}\n"));
        out.push_str(&format!("sleep {character_delay}\n"));
    }
    if kmsg {
        out.push_str("# USE_KMSG\nexport KMSG=true\n");
    }
    out.push_str(&signal("STARTRUN"));
    out.push_str("set -x\n");
    for step in steps(&definition.testdef, "/run/steps") {
        out.push_str(&escape_positionals(&step));
        out.push('\n');
    }
    out.push_str("set +x\n");
    if character_delay > 0.0 {
        out.push_str(&format!("sleep {character_delay}\n"));
    }
    if kmsg {
        out.push_str("unset KMSG\n");
    }
    out.push_str(&signal("ENDRUN"));
    out
}

/// The parts of `install:` a definition may skip.
const INSTALL_PARTS: [&str; 5] = ["keys", "sources", "deps", "steps", "git-repos"];

/// Which `install:` parts `skip_install` names (`all` is every one).
pub fn skipped_install_parts(params: &Map<String, Value>) -> Result<Vec<&'static str>, String> {
    let mut skipped = Vec::new();
    for value in crate::data::string_list(params.get("skip_install")) {
        if value == "all" {
            return Ok(INSTALL_PARTS.to_vec());
        }
        match INSTALL_PARTS.iter().find(|p| **p == value) {
            Some(part) => skipped.push(*part),
            None => return Err(format!("Unrecognised skip_install value {value:?}")),
        }
    }
    Ok(skipped)
}

/// `install.sh` from `install:` (keys, sources, deps with `deps-<distro>`, steps), or None
/// when the definition installs nothing there. `git-repos` are cloned on the worker.
pub fn install_sh(
    settings: &Settings,
    definition: &Definition,
    skipped: &[&str],
) -> Option<String> {
    let install = definition.testdef.get("install")?;
    let mut out = parameters(definition);
    let list = |key: &str| crate::data::string_list(install.get(key));
    if !skipped.contains(&"keys") {
        for key in list("keys") {
            out.push_str(&format!("lava-add-keys {key}\n"));
        }
    }
    if !skipped.contains(&"sources") {
        for source in list("sources") {
            out.push_str(&format!("lava-add-sources {source}\n"));
        }
    }
    if !skipped.contains(&"deps") {
        let mut deps = list("deps");
        if let Some(distro) = &settings.distro {
            deps.extend(list(&format!("deps-{distro}")));
        }
        if !deps.is_empty() {
            out.push_str("lava-install-packages ");
            for dep in deps {
                out.push_str(&format!("{dep} "));
            }
            out.push('\n');
        }
    }
    if !skipped.contains(&"steps") {
        let steps = steps(install, "/steps");
        if !steps.is_empty() {
            out.push_str(&format!(
                "cd {}/tests/{}\npwd\n",
                settings.stage_dir(definition.stage),
                definition.suite
            ));
            for step in steps {
                out.push_str(&step);
                out.push('\n');
            }
        }
    }
    Some(out)
}

/// LAVA's `test-overlay`: the definition's `testdef.yaml`, `uuid` and `testdef_metadata`.
pub fn write_testdef(definition: &Definition, dir: &Path) -> std::io::Result<()> {
    let write = |name: &str, text: &str| super::write_file(&dir.join(name), text.as_bytes(), 0o644);
    write(
        "testdef.yaml",
        &serde_yaml::to_string(&definition.testdef).unwrap_or_default(),
    )?;
    write("uuid", &definition.uuid)?;
    let from = definition
        .params
        .get("from")
        .map(crate::data::text)
        .unwrap_or_default();
    let metadata = |key: &str| {
        definition
            .testdef
            .pointer(&format!("/metadata/{key}"))
            .cloned()
            .unwrap_or(Value::from(""))
    };
    let mut testdef_metadata = Map::new();
    testdef_metadata.insert("os".into(), metadata("os"));
    testdef_metadata.insert("devices".into(), metadata("devices"));
    testdef_metadata.insert("environment".into(), metadata("environment"));
    testdef_metadata.insert("branch_vcs".into(), Value::from(from));
    testdef_metadata.insert("project_name".into(), metadata("name"));
    if let Some(commit) = &definition.commit_id {
        testdef_metadata.insert("commit_id".into(), Value::from(commit.clone()));
    }
    write(
        "testdef_metadata",
        &serde_yaml::to_string(&testdef_metadata).unwrap_or_default(),
    )
}

/// LAVA's `test-install-overlay`: `install.sh`, if the definition installs anything.
/// Whether it wrote one.
pub fn write_install(
    settings: &Settings,
    definition: &Definition,
    dir: &Path,
) -> std::io::Result<bool> {
    let skipped = skipped_install_parts(&definition.params).unwrap_or_default();
    match install_sh(settings, definition, &skipped) {
        Some(install) => {
            super::write_file(&dir.join("install.sh"), install.as_bytes(), 0o755)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// LAVA's `test-runscript-overlay`: `run.sh`, typed with the device's test character delay.
/// The file written.
pub fn write_run(
    inputs: &Inputs<'_>,
    settings: &Settings,
    definition: &Definition,
    dir: &Path,
) -> std::io::Result<std::path::PathBuf> {
    let delay = inputs
        .device
        .pointer("/character_delays/test")
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
        / 1000.0;
    let file = dir.join("run.sh");
    super::write_file(&file, run_sh(settings, definition, delay).as_bytes(), 0o755)?;
    Ok(file)
}
