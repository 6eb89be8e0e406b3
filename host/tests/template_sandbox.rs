//! The template engine's sandbox, budget, error reporting and drop-in behaviour.

use std::path::Path;
use std::time::{Duration, Instant};

use basalt::template::{SearchPath, TemplateEngine, TemplateError};
use serde_json::json;

struct Dirs {
    _root: tempfile::TempDir,
    devices: std::path::PathBuf,
    admin: std::path::PathBuf,
    builtin: std::path::PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let make = |name: &str| {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    };
    Dirs {
        devices: make("devices"),
        admin: make("admin-device-types"),
        builtin: make("device-types"),
        _root: root,
    }
}

impl Dirs {
    fn engine(&self) -> TemplateEngine {
        TemplateEngine::new(SearchPath::new(vec![
            self.devices.clone(),
            self.admin.clone(),
            self.builtin.clone(),
        ]))
    }

    fn write(&self, dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn render(engine: &TemplateEngine, name: &str) -> Result<String, TemplateError> {
    engine.render_text(name, &json!({}))
}

#[test]
fn names_that_climb_out_are_refused() {
    let d = dirs();
    d.write(&d.devices, "a.jinja2", "{% extends '../../etc/passwd' %}");
    d.write(&d.devices, "b.jinja2", "{% extends '/etc/passwd' %}");
    d.write(&d.devices, "c.jinja2", "{% include 'x/../../secret' %}");
    let engine = d.engine();
    for (name, says) in [
        ("a.jinja2", "'..'"),
        ("b.jinja2", "absolute"),
        ("c.jinja2", "'..'"),
    ] {
        let error = render(&engine, name).unwrap_err();
        assert!(
            matches!(error, TemplateError::Escape { .. }),
            "{name}: {error}"
        );
        assert!(error.to_string().contains(says), "{name}: {error}");
    }
}

#[test]
fn symlinks_pointing_outside_are_refused() {
    let d = dirs();
    let outside = d._root.path().join("outside.jinja2");
    std::fs::write(&outside, "secret: 1\n").unwrap();
    std::os::unix::fs::symlink(&outside, d.builtin.join("sneaky.jinja2")).unwrap();
    d.write(&d.devices, "dev.jinja2", "{% extends 'sneaky.jinja2' %}");
    let error = render(&d.engine(), "dev.jinja2").unwrap_err();
    assert!(matches!(error, TemplateError::Escape { .. }), "{error}");
    assert!(error.to_string().contains("outside"), "{error}");
    // A link that stays inside the directory is fine.
    d.write(&d.builtin, "real.jinja2", "ok: 1\n");
    std::os::unix::fs::symlink(
        d.builtin.join("real.jinja2"),
        d.builtin.join("alias.jinja2"),
    )
    .unwrap();
    assert_eq!(render(&d.engine(), "alias.jinja2").unwrap(), "ok: 1");
}

#[test]
fn a_looping_template_runs_out_of_budget_quickly() {
    let d = dirs();
    d.write(
        &d.builtin,
        "loop.jinja2",
        "{% for a in range(10000) %}{% for b in range(10000) %}{{ a }}{% endfor %}{% endfor %}",
    );
    let started = Instant::now();
    let error = render(&d.engine(), "loop.jinja2").unwrap_err();
    assert!(matches!(error, TemplateError::OutOfFuel { .. }), "{error}");
    assert!(error.to_string().contains("loop.jinja2"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(30));

    d.write(&d.builtin, "self.jinja2", "{% include 'self.jinja2' %}");
    let error = render(&d.engine(), "self.jinja2").unwrap_err();
    assert!(error.to_string().contains("self.jinja2"), "{error}");
}

#[test]
fn a_missing_template_names_itself_and_the_directories() {
    let d = dirs();
    d.write(
        &d.devices,
        "dev.jinja2",
        "{% extends 'no-such-board.jinja2' %}",
    );
    let error = render(&d.engine(), "dev.jinja2").unwrap_err();
    let TemplateError::NotFound { name, searched } = &error else {
        panic!("expected NotFound, got {error}");
    };
    assert_eq!(name, "no-such-board.jinja2");
    assert_eq!(searched.len(), 3);
    assert!(error.to_string().contains("admin-device-types"), "{error}");
}

#[test]
fn a_syntax_error_gives_file_and_line() {
    let d = dirs();
    d.write(
        &d.builtin,
        "broken.jinja2",
        "a: 1\nb: 2\n{% if x %}\nc: 3\n{% endfor %}\n",
    );
    d.write(&d.devices, "dev.jinja2", "{% extends 'broken.jinja2' %}");
    let error = render(&d.engine(), "dev.jinja2").unwrap_err();
    let TemplateError::Syntax { template, line, .. } = &error else {
        panic!("expected a syntax error, got {error}");
    };
    assert_eq!(template, "broken.jinja2");
    assert_eq!(*line, 5);
    assert!(error.to_string().starts_with("broken.jinja2:5:"), "{error}");
}

#[test]
fn extending_an_undefined_name_is_a_clear_error() {
    let d = dirs();
    d.write(
        &d.devices,
        "dev.jinja2",
        "{% extends device_type_template %}",
    );
    let error = render(&d.engine(), "dev.jinja2").unwrap_err();
    let text = error.to_string();
    assert!(text.contains("dev.jinja2:1"), "{text}");
    assert!(
        text.to_lowercase().contains("undefined") || text.contains("string"),
        "{text}"
    );
}

#[test]
fn a_dropped_in_template_is_used_at_once_and_edits_are_seen() {
    let d = dirs();
    d.write(&d.devices, "dev.jinja2", "{% extends 'newboard.jinja2' %}");
    let engine = d.engine();
    assert!(matches!(
        render(&engine, "dev.jinja2"),
        Err(TemplateError::NotFound { .. })
    ));
    d.write(&d.builtin, "newboard.jinja2", "board: v1\n");
    assert_eq!(render(&engine, "dev.jinja2").unwrap(), "board: v1");
    // Rewrite with a different length so the change shows even within one mtime tick.
    d.write(&d.builtin, "newboard.jinja2", "board: version2\n");
    assert_eq!(render(&engine, "dev.jinja2").unwrap(), "board: version2");
    // An admin copy earlier on the path overrides the shipped one.
    d.write(&d.admin, "newboard.jinja2", "board: admin\n");
    assert_eq!(render(&engine, "dev.jinja2").unwrap(), "board: admin");
    std::fs::remove_file(d.admin.join("newboard.jinja2")).unwrap();
    assert_eq!(render(&engine, "dev.jinja2").unwrap(), "board: version2");
}

#[test]
fn a_broken_template_does_not_break_the_others() {
    let d = dirs();
    d.write(&d.builtin, "good.jinja2", "good: {{ 1 + 1 }}\n");
    d.write(&d.builtin, "bad.jinja2", "bad: {{ 1 + }}\n");
    d.write(&d.devices, "one.jinja2", "{% extends 'good.jinja2' %}");
    d.write(&d.devices, "two.jinja2", "{% extends 'bad.jinja2' %}");
    let engine = d.engine();
    assert!(render(&engine, "two.jinja2").is_err());
    assert_eq!(render(&engine, "one.jinja2").unwrap(), "good: 2");
    assert!(engine.check("good.jinja2").is_ok());
    assert!(matches!(
        engine.check("bad.jinja2"),
        Err(TemplateError::Syntax { line: 1, .. })
    ));
}

#[test]
fn rendered_text_that_is_not_yaml_says_where() {
    let d = dirs();
    d.write(&d.builtin, "t.jinja2", "a: 1\nb: [unclosed\nc: 3\n");
    let error = d.engine().render("t.jinja2", &json!({})).unwrap_err();
    assert!(matches!(error, TemplateError::Yaml { .. }), "{error}");
    assert!(error.to_string().contains("not valid YAML"), "{error}");
}

/// Expressions and blocks nested thousands deep (a dictionary is anyone's upload) are a
/// syntax error, not a stack overflow (parentheses are refused before minijinja's own guard).
#[test]
fn deeply_nested_expressions_and_blocks_are_refused() {
    let dirs = dirs();
    let engine = dirs.engine();
    // Deep, on lines short enough for the engine to number (see below).
    let parens = format!("{{{{ {}1{} }}}}", "(\n".repeat(20_000), ")".repeat(20_000));
    let ifs = format!(
        "{}x{}",
        "{% if true %}\n".repeat(5_000),
        "{% endif %}\n".repeat(5_000)
    );
    let lists = format!("{{{{ {}1{} }}}}", "[\n".repeat(20_000), "]".repeat(20_000));
    for source in [parens, ifs, lists] {
        let error = engine
            .render_source_text("deep.jinja2", &source, &json!({}))
            .unwrap_err();
        assert!(
            matches!(
                error,
                TemplateError::Syntax { .. } | TemplateError::TooDeep { .. }
            ),
            "{error}"
        );
    }
}

/// A template that doubles a string at every step stops at the output bound with a clear
/// error, long before memory runs out (the fuel alone bounds steps, not text).
#[test]
fn a_rendering_that_grows_without_bound_stops_at_the_output_limit() {
    let dirs = dirs();
    let engine = dirs.engine();
    let source = "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}\
                  {% set ns.s = ns.s ~ ns.s %}{{ ns.s }}{% endfor %}";
    let error = engine
        .render_source_text("grow.jinja2", source, &json!({}))
        .map(|text| text.len())
        .unwrap_err();
    assert!(matches!(error, TemplateError::TooLarge { .. }), "{error}");
    assert!(error.to_string().contains("bytes of output"), "{error}");
}

/// minijinja numbers lines and columns in 16 bits: a line of 65,535 bytes or more (found by
/// the fuzzer: an unterminated string on a 100 kB line) or that many lines is refused with
/// the line, for a dictionary given as text and for a template file alike, never a panic.
#[test]
fn sources_the_engine_cannot_number_are_refused_with_the_line() {
    let d = dirs();
    let long_line = format!("{{% set power_on_command = '{}", "x".repeat(70_000));
    let many_lines = "\n".repeat(70_000);
    let engine = d.engine();
    for source in [&long_line, &many_lines] {
        let error = engine
            .render_source_text("board.jinja2", source, &json!({}))
            .unwrap_err();
        assert!(
            matches!(error, TemplateError::Unnumberable { .. }),
            "{error}"
        );
        assert!(
            error.to_string().starts_with("board.jinja2: line "),
            "{error}"
        );
    }
    d.write(&d.builtin, "wide.jinja2", &long_line);
    let error = render(&engine, "wide.jinja2").unwrap_err();
    assert!(error.to_string().contains("line 1 is too long"), "{error}");
    let fits = format!("{{% set x = '{}' %}}ok", "x".repeat(60_000));
    assert_eq!(
        engine
            .render_source_text("board.jinja2", &fits, &json!({}))
            .unwrap(),
        "ok"
    );
}

/// Chains minijinja's parser recurses on without its depth guard (unary `-`/`not`, inline
/// `else`, `elif`, parentheses around a `set` target), thousands long, are refused with the
/// line instead of overflowing the stack: the fuzzer's `- - - …` dictionary aborted the
/// process. A template file on the search path is checked the same way.
#[test]
fn chains_the_parser_would_recurse_on_without_bound_are_refused() {
    let d = dirs();
    let engine = d.engine();
    let sources = [
        format!("{{% set x = {}1 %}}", "- ".repeat(20_000)),
        format!("{{{{ {}x }}}}", "not ".repeat(15_000)),
        format!("{{{{ 1 {}}}}}", "if x else 1 ".repeat(5_000)),
        format!("{{% if a %}}{}{{% endif %}}", "{% elif b %}".repeat(5_000)),
        format!(
            "{{% set {}a{} = 1 %}}",
            "(".repeat(20_000),
            ")".repeat(20_000)
        ),
    ];
    for source in &sources {
        let error = engine
            .render_source_text("chain.jinja2", source, &json!({}))
            .unwrap_err();
        assert!(matches!(error, TemplateError::TooDeep { .. }), "{error}");
        assert!(error.to_string().starts_with("chain.jinja2:1: "), "{error}");
    }
    d.write(&d.builtin, "chain.jinja2", &sources[0]);
    let error = render(&engine, "chain.jinja2").unwrap_err();
    assert!(error.to_string().contains("`-` or `not`"), "{error}");
}

/// A template that builds a huge value in a few steps without printing it (the fuel counts
/// steps, not bytes) ends only the isolated renderer, with an error naming its memory bound; the
/// process asking stays small, and ordinary renderings give what in-process rendering gives.
#[test]
fn an_isolated_rendering_that_grows_without_bound_is_stopped_at_its_memory_bound() {
    let d = dirs();
    d.write(
        &d.builtin,
        "base.jinja2",
        "x: {{ value }}\n{% block body %}{% endblock %}\n",
    );
    let isolation = basalt::template::Isolation {
        program: std::path::PathBuf::from(env!("CARGO_BIN_EXE_basalt")),
    };
    let engine = d.engine().isolated(isolation);
    let plain = d.engine();
    let dictionary = "{% extends 'base.jinja2' %}{% set value = 'v' %}";
    assert_eq!(
        engine
            .render_source_text("board.jinja2", dictionary, &json!({}))
            .unwrap(),
        plain
            .render_source_text("board.jinja2", dictionary, &json!({}))
            .unwrap()
    );
    let started = Instant::now();
    // 4,000 copies of a 1 MB string joined: 4 GB, in a handful of steps.
    let growing = format!(
        "{{% set a = 'x' * 1000000 %}}{{% set b = [{}a] %}}{{% set c = ({}b)|join %}}done",
        "a, ".repeat(399),
        "b + ".repeat(9)
    );
    let growing = growing.as_str();
    let error = engine
        .render_source_text("grow.jinja2", growing, &json!({}))
        .unwrap_err();
    assert!(
        error.to_string().contains("MiB a rendering may use"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let syntax = engine
        .render_source_text("bad.jinja2", "{% if %}", &json!({}))
        .unwrap_err();
    assert!(
        syntax.to_string().starts_with("bad.jinja2:1: syntax error"),
        "{syntax}"
    );
}
