//! Repository rules, checked as ordinary tests.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources(dirs: &[&str]) -> Vec<PathBuf> {
    let root = super::project_root();
    let mut files = Vec::new();
    for dir in dirs {
        rust_files(&root.join(dir), &mut files);
    }
    files
}

#[test]
fn every_module_starts_with_a_doc_comment() {
    let missing: Vec<_> = sources(&["host", "plugin-api", "plugins", "tests", "xtask"])
        .into_iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a //! doc comment: {missing:#?}"
    );
}

#[test]
fn the_core_never_names_a_plugin_crate() {
    let offenders: Vec<_> = sources(&["host/src", "plugin-api/src"])
        .into_iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            ["basalt_power_", "basalt_connection_", "basalt_boot_"]
                .iter()
                .any(|name| text.contains(name))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "core files naming a plugin crate: {offenders:#?}"
    );
}

#[test]
fn plugins_depend_on_no_basalt_crate_but_plugin_api() {
    let root = super::project_root();
    for entry in std::fs::read_dir(root.join("plugins")).unwrap().flatten() {
        let manifest = std::fs::read_to_string(entry.path().join("Cargo.toml")).unwrap();
        let deps = manifest.split("[dependencies]").nth(1).unwrap_or("");
        let deps = deps.split("\n[").next().unwrap_or("");
        for line in deps.lines() {
            let name = line.split(['=', '.']).next().unwrap_or("").trim();
            assert!(
                !name.starts_with("basalt") || name == "basalt-plugin-api",
                "{} depends on {name}; plugins may only use basalt-plugin-api",
                entry.path().display()
            );
        }
    }
}

#[test]
fn no_machine_specific_paths_in_the_repository() {
    let root = super::project_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    for doc in ["README.md", "ARCHITECTURE.md", "docs/writing-a-plugin.md"] {
        files.push(root.join(doc));
    }
    let forbidden = ["/work/", "/root/", "/home/"];
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for needle in forbidden {
            assert!(
                !text.contains(needle) || path.ends_with("tidy.rs"),
                "{} names a machine path ({needle})",
                path.display()
            );
        }
    }
}

/// Each third-party engine stays behind the one module that owns it.
#[test]
fn engines_stay_behind_their_modules() {
    let root = super::project_root();
    let rules: &[(&str, &str)] = &[
        ("minijinja", "host/src/template"),
        ("abi_stable", "host/src/plugins"),
        ("libyaml_safer", "host/src/yaml11.rs"),
        ("zmq", "host/src/transport"),
        ("rusqlite", "host/src/store"),
        ("axum", "host/src/master/http"),
        ("quick_xml", "host/src/xmlrpc"),
    ];
    for path in sources(&["host/src"]) {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for (crate_name, owner) in rules {
            let uses = text.contains(&format!("use {crate_name}"))
                || text.contains(&format!("{crate_name}::"));
            assert!(
                !uses || path.starts_with(root.join(owner)),
                "{} uses {crate_name}, which only {owner} may use",
                path.display()
            );
        }
    }
}

/// The `(METHOD, path)` pairs a Rust router file declares with `.route("path", get(..).post(..))`.
fn declared_routes(text: &str) -> std::collections::BTreeSet<(String, String)> {
    let mut routes = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find(".route(") {
        rest = &rest[start + ".route(".len()..];
        // The call's arguments end at the parenthesis that balances the opening one.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let call = &rest[..end];
        let path = call.split('"').nth(1).unwrap_or_default().to_owned();
        for method in ["get", "post", "put", "delete", "patch"] {
            let named = call.contains(&format!(" {method}("))
                || call.contains(&format!("\t{method}("))
                || call.contains(&format!("\n{method}("))
                || call.contains(&format!(".{method}("))
                || call.contains(&format!(",{method}("))
                || call.contains(&format!(":{method}("));
            if named {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
        rest = &rest[end..];
    }
    routes
}

/// docs/openapi.yaml describes exactly the REST routes the master serves.
#[test]
fn the_openapi_document_matches_the_rest_routes() {
    let root = super::project_root();
    let rest = std::fs::read_to_string(root.join("host/src/master/http/rest.rs"))
        .expect("the REST module");
    let served = declared_routes(&rest);
    assert!(served.len() > 10, "no routes found in rest.rs: {served:?}");
    let document: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("docs/openapi.yaml")).expect("docs/openapi.yaml"),
    )
    .expect("openapi.yaml is YAML");
    let mut described = std::collections::BTreeSet::new();
    for (path, item) in document["paths"].as_mapping().expect("paths") {
        let path = path.as_str().unwrap_or_default().to_owned();
        for method in item.as_mapping().expect("a path item").keys() {
            let method = method.as_str().unwrap_or_default();
            if ["get", "post", "put", "delete", "patch"].contains(&method) {
                described.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let undocumented: Vec<_> = served.difference(&described).collect();
    let unserved: Vec<_> = described.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in docs/openapi.yaml: {undocumented:?}\n\
         in docs/openapi.yaml but not served: {unserved:?}"
    );
}
