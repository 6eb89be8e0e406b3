//! `basalt plugins list` and the ways a plugin directory can be broken.

use basalt_e2e::{library, Basalt, TestDir};
use serde_json::Value;

/// Lists plugins with `plugin_dir` searched first (the shipped plugins still load after it).
fn list_json(plugin_dir: &std::path::Path) -> basalt_e2e::Output {
    Basalt::new(["plugins", "list", "--format", "json", "--plugin-dir"])
        .arg(plugin_dir)
        .run()
}

fn errors(output: &basalt_e2e::Output) -> Vec<Value> {
    output.json()["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn the_shipped_plugins_provide_the_five_drivers() {
    let output = Basalt::new(["plugins", "list", "--format", "json"])
        .run()
        .success();
    let json = output.json();
    let drivers: Vec<(String, String)> = json["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("power", "command"),
        ("power", "pdudaemon"),
        ("connection", "command"),
        ("connection", "serial"),
        ("boot", "minimal"),
    ] {
        assert!(
            drivers.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "missing {expected:?}:\n{output}"
        );
    }
    for driver in json["drivers"].as_array().unwrap() {
        assert_eq!(driver["version"], "0.1.0", "{output}");
        assert!(
            driver["file"].as_str().unwrap().ends_with(".so"),
            "{output}"
        );
    }
    assert!(errors(&output).is_empty(), "{output}");

    let text = Basalt::new(["plugins", "list"]).run().success();
    assert!(text.stdout.starts_with("KIND"), "{text}");
    assert!(text.stdout.contains("pdudaemon"), "{text}");
}

#[test]
fn a_garbage_file_is_reported_and_the_rest_still_load() {
    let dir = TestDir::new();
    let plugins = dir.mkdir("plugins");
    std::fs::write(plugins.join("libgarbage.so"), b"\x7fELF but not really").unwrap();
    let output = list_json(&plugins).failure();
    let errors = errors(&output);
    assert_eq!(errors.len(), 1, "{output}");
    assert_eq!(errors[0]["reason"], "not-a-library", "{output}");
    assert!(
        output
            .stderr
            .contains("libgarbage.so: not a loadable shared library"),
        "{output}"
    );
    assert!(
        output.json()["drivers"].as_array().unwrap().len() >= 5,
        "{output}"
    );
}

#[test]
fn a_truncated_plugin_is_refused_before_it_is_mapped() {
    let dir = TestDir::new();
    let plugins = dir.mkdir("plugins");
    let whole = std::fs::read(library("basalt_power_pdudaemon")).unwrap();
    std::fs::write(plugins.join("libtruncated.so"), &whole[..whole.len() / 3]).unwrap();
    let output = list_json(&plugins).failure();
    let errors = errors(&output);
    assert_eq!(errors[0]["reason"], "not-a-library", "{output}");
    assert!(
        errors[0]["message"].as_str().unwrap().contains("truncated"),
        "{output}"
    );
}

#[test]
fn a_shared_library_that_is_not_a_plugin_is_named_as_such() {
    let dir = TestDir::new();
    let plugins = dir.mkdir("plugins");
    std::fs::copy(
        library("fixture_not_a_plugin"),
        plugins.join("libfixture_not_a_plugin.so"),
    )
    .unwrap();
    let output = list_json(&plugins).failure();
    let errors = errors(&output);
    assert_eq!(errors.len(), 1, "{output}");
    assert_eq!(errors[0]["reason"], "not-a-plugin", "{output}");
    assert!(output.stderr.contains("not a Basalt plugin"), "{output}");
}

#[test]
fn a_plugin_built_against_an_old_plugin_api_names_both_versions() {
    let dir = TestDir::new();
    let plugins = dir.mkdir("plugins");
    std::fs::copy(
        library("fixture_stale_plugin_api"),
        plugins.join("libstale.so"),
    )
    .unwrap();
    let output = list_json(&plugins).failure();
    let errors = errors(&output);
    assert_eq!(errors[0]["reason"], "incompatible-api", "{output}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.contains("0.0.1") && message.contains(basalt_plugin_api_version()),
        "{output}"
    );
    assert!(message.contains("rebuild"), "{output}");
}

#[test]
fn a_duplicate_driver_name_keeps_the_first_and_names_both_files() {
    let dir = TestDir::new();
    let first = dir.mkdir("first");
    let second = dir.mkdir("second");
    std::fs::copy(
        library("basalt_power_command"),
        first.join("libpower_command.so"),
    )
    .unwrap();
    std::fs::copy(
        library("fixture_duplicate_driver"),
        second.join("libduplicate.so"),
    )
    .unwrap();
    let output = Basalt::new(["plugins", "list", "--format", "json"])
        .env(
            "BASALT_PLUGIN_PATH",
            format!("{}:{}", first.display(), second.display()),
        )
        .run()
        .failure();
    let errors = errors(&output);
    let duplicate: Vec<_> = errors
        .iter()
        .filter(|e| e["reason"] == "duplicate-driver")
        .collect();
    assert!(!duplicate.is_empty(), "{output}");
    let message = duplicate[0]["message"].as_str().unwrap();
    assert!(message.contains("libduplicate.so"), "{output}");
    assert!(message.contains("libpower_command.so"), "{output}");
    let command = output.json()["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "power" && d["name"] == "command")
        .cloned()
        .unwrap();
    assert!(
        command["file"]
            .as_str()
            .unwrap()
            .ends_with("first/libpower_command.so"),
        "{output}"
    );
}

/// The plugin-api version this workspace builds, as the host reports it.
fn basalt_plugin_api_version() -> &'static str {
    const MANIFEST: &str = include_str!("../../plugin-api/Cargo.toml");
    MANIFEST
        .lines()
        .find_map(|line| line.strip_prefix("version = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("plugin-api/Cargo.toml has a version")
}
