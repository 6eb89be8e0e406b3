//! Reading YAML as LAVA does: PyYAML's `safe_load`, YAML 1.1 rules.
//!
//! LAVA renders device configurations and writes job logs for PyYAML, whose YAML 1.1 resolver
//! reads plain `yes`/`on`/`off` as booleans, `0755` as octal, `1:30` as base 60 and `1e5` (no
//! dot) as a string, where YAML 1.2 parsers differ. This module parses with libyaml's event
//! parser (libyaml-safer, a Rust port; PyYAML accepts what libyaml accepts, such as quoted
//! scalars continued at column 0, which stricter parsers refuse), keeps each scalar's style,
//! and resolves plain scalars with PyYAML's rules, producing JSON values. Mapping keys that are not strings become `"!int:115200"`-style
//! strings, the convention of the fixtures LAVA's own output was converted with.

use std::collections::HashMap;
use std::sync::LazyLock;

use libyaml_safer::{EventData, Mark, Parser, ScalarStyle};
use regex::Regex;
use serde_json::{Map, Number, Value};

/// A YAML document that could not be read, with where.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("line {line}, column {column}: {message}")]
pub struct YamlError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl YamlError {
    fn at(mark: Mark, message: String) -> Self {
        Self {
            line: usize::try_from(mark.line)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
            column: usize::try_from(mark.column)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
            message,
        }
    }
}

/// Where each node of a document starts: JSON pointer (`/actions/0/deploy/to`) → 1-based
/// (line, column). Lets validators point at the line of the file an admin has to change.
pub type Positions = std::collections::HashMap<String, (usize, usize)>;

/// Parses the first YAML document of `text` (an empty stream is `null`).
pub fn from_str(text: &str) -> Result<Value, YamlError> {
    parse(text, None)
}

/// Parses the first YAML document of `text`, recording where every node starts.
pub fn from_str_with_positions(text: &str) -> Result<(Value, Positions), YamlError> {
    let mut positions = Positions::new();
    let value = parse(text, Some(&mut positions))?;
    Ok((value, positions))
}

/// The bytes of `text` each scalar value spans: JSON pointer → byte range, quotes and block
/// indicators included (`'a'`, `|\n  line\n`). What masking needs to blank a value whatever
/// its style (plain, quoted with escapes, block, folded).
pub type ScalarSpans = HashMap<String, std::ops::Range<usize>>;

/// Parses `text` (as [`from_str`]) and returns where each scalar value is in it.
pub fn scalar_spans(text: &str) -> Result<(Value, ScalarSpans), YamlError> {
    let mut spans = ScalarSpans::new();
    let value = parse_with(text, None, Some(&mut spans))?;
    Ok((value, spans))
}

fn parse(text: &str, positions: Option<&mut Positions>) -> Result<Value, YamlError> {
    parse_with(text, positions, None)
}

fn parse_with(
    text: &str,
    positions: Option<&mut Positions>,
    spans: Option<&mut ScalarSpans>,
) -> Result<Value, YamlError> {
    // libyaml-safer panics on some truncated documents (a quoted scalar cut off by the end
    // of the input, found by `cargo xtask fuzz job`) instead of returning an error; the
    // parser holds no shared state, so its panic is turned into the error it should be.
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        parse_events(text, positions, spans)
    }));
    parsed.unwrap_or_else(|_| {
        let lines = text.lines().count().max(1);
        Err(YamlError {
            line: lines,
            column: text.lines().last().map_or(1, |l| l.chars().count() + 1),
            message: "the document ends in the middle of a value (an unclosed quote?)".into(),
        })
    })
}

fn parse_events(
    text: &str,
    positions: Option<&mut Positions>,
    spans: Option<&mut ScalarSpans>,
) -> Result<Value, YamlError> {
    let mut input = text.as_bytes();
    let mut parser = Parser::new();
    parser.set_input_string(&mut input);
    let mut builder = Builder {
        positions,
        spans,
        ..Builder::default()
    };
    loop {
        let event = parser.parse().map_err(|e| {
            let mark = e.problem_mark().or(e.context_mark()).unwrap_or_default();
            YamlError::at(mark, e.problem().to_owned())
        })?;
        match event.data {
            EventData::StreamEnd | EventData::DocumentEnd { .. } => break,
            data => builder.on_event(data, event.start_mark, event.end_mark)?,
        }
    }
    Ok(builder.document.unwrap_or(Value::Null))
}

enum Frame {
    /// Items, anchor, JSON pointer, whether it is a Python `OrderedDict` (its tag).
    Sequence(Vec<Value>, Option<String>, String, bool),
    /// Entries, pending key, anchor, JSON pointer.
    Mapping(Map<String, Value>, Option<String>, Option<String>, String),
}

/// How deep collections may nest. LAVA's own documents (jobs, device configurations, logs)
/// stay under ten levels; without a bound, thousands of `[` in a few kilobytes of an anonymous
/// request make every recursive walk over the value (validation, drop) overflow its stack.
pub const MAX_DEPTH: usize = 256;

/// How many nodes aliases may copy in one document: PyYAML shares aliased nodes, a copy-based
/// reader must bound them, or ten lines of nested aliases ("billion laughs") fill memory.
const ALIAS_NODE_BUDGET: usize = 1_000_000;

fn node_count(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(node_count).sum::<usize>(),
        _ => 1,
    }
}

#[derive(Default)]
struct Builder<'p> {
    stack: Vec<Frame>,
    /// Nodes copied through aliases so far.
    aliased: usize,
    anchors: HashMap<String, Value>,
    document: Option<Value>,
    positions: Option<&'p mut Positions>,
    spans: Option<&'p mut ScalarSpans>,
}

/// Escapes a key for a JSON pointer.
fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

impl Builder<'_> {
    /// The JSON pointer of the node that starts now, or `None` when it is a mapping key.
    fn next_pointer(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Sequence(items, _, pointer, _)) => {
                Some(format!("{pointer}/{}", items.len()))
            }
            Some(Frame::Mapping(_, Some(key), _, pointer)) => {
                Some(format!("{pointer}/{}", pointer_token(key)))
            }
            Some(Frame::Mapping(_, None, _, _)) => None,
        }
    }

    /// Records where the node starting now begins, and returns its pointer.
    fn start_node(&mut self, mark: Mark) -> String {
        let pointer = self.next_pointer();
        if let (Some(positions), Some(pointer)) = (self.positions.as_deref_mut(), &pointer) {
            let at = YamlError::at(mark, String::new());
            positions.insert(pointer.clone(), (at.line, at.column));
        }
        pointer.unwrap_or_default()
    }

    /// Adds a finished node to its parent (or makes it the document).
    fn push(&mut self, value: Value, anchor: Option<String>, mark: Mark) -> Result<(), YamlError> {
        if let Some(anchor) = anchor {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.document = Some(value),
            Some(Frame::Sequence(items, _, _, _)) => items.push(value),
            Some(Frame::Mapping(map, key, _, _)) => match key.take() {
                None => match key_string(&value) {
                    Some(k) => *key = Some(k),
                    None => {
                        return Err(YamlError::at(
                            mark,
                            "a mapping or sequence cannot be a key".into(),
                        ))
                    }
                },
                Some(k) if k == "<<" => merge(map, value),
                Some(k) => {
                    map.insert(k, value);
                }
            },
        }
        Ok(())
    }

    /// Refuses a collection that would nest deeper than [`MAX_DEPTH`].
    fn check_depth(&self, mark: Mark) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlError::at(
                mark,
                format!("collections nest deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn on_event(&mut self, event: EventData, mark: Mark, end: Mark) -> Result<(), YamlError> {
        match event {
            EventData::Scalar {
                anchor,
                tag,
                value,
                style,
                ..
            } => {
                let pointer = self.spans.is_some().then(|| self.next_pointer()).flatten();
                if let (Some(spans), Some(pointer)) = (self.spans.as_deref_mut(), pointer) {
                    let byte = |m: Mark| usize::try_from(m.index).unwrap_or(usize::MAX);
                    spans.insert(pointer, byte(mark)..byte(end));
                }
                self.start_node(mark);
                let value = scalar(value, style, tag.as_deref());
                self.push(value, anchor, mark)
            }
            EventData::SequenceStart { anchor, tag, .. } => {
                self.check_depth(mark)?;
                let pointer = self.start_node(mark);
                let ordered_dict = tag.as_deref() == Some(ORDERED_DICT_TAG);
                self.stack
                    .push(Frame::Sequence(Vec::new(), anchor, pointer, ordered_dict));
                Ok(())
            }
            EventData::MappingStart { anchor, .. } => {
                self.check_depth(mark)?;
                let pointer = self.start_node(mark);
                self.stack
                    .push(Frame::Mapping(Map::new(), None, anchor, pointer));
                Ok(())
            }
            EventData::SequenceEnd | EventData::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Sequence(items, anchor, _, true)) => (ordered_dict(items), anchor),
                    Some(Frame::Sequence(items, anchor, _, false)) => (Value::Array(items), anchor),
                    Some(Frame::Mapping(map, _, anchor, _)) => (Value::Object(map), anchor),
                    None => return Ok(()),
                };
                self.push(value, anchor, mark)
            }
            EventData::Alias { anchor } => match self.anchors.get(&anchor) {
                Some(value) => {
                    self.aliased += node_count(value);
                    if self.aliased > ALIAS_NODE_BUDGET {
                        return Err(YamlError::at(
                            mark,
                            format!(
                                "aliases expand to more than {ALIAS_NODE_BUDGET} nodes: \
                                 refusing a document that would fill memory"
                            ),
                        ));
                    }
                    let value = value.clone();
                    self.start_node(mark);
                    self.push(value, None, mark)
                }
                None => Err(YamlError::at(
                    mark,
                    format!("alias *{anchor} has no anchor"),
                )),
            },
            _ => Ok(()),
        }
    }
}

/// How PyYAML's full dumper (LAVA 2019's lava-run, for result details) writes an
/// `OrderedDict`: this tag on a sequence holding one argument, the list of `[key, value]`.
const ORDERED_DICT_TAG: &str = "tag:yaml.org,2002:python/object/apply:collections.OrderedDict";

/// The mapping an `OrderedDict`'s constructor arguments describe, in their order; anything
/// else is kept as the sequence it is.
fn ordered_dict(items: Vec<Value>) -> Value {
    let pairs = match items.as_slice() {
        [Value::Array(pairs)] => pairs,
        [] => return Value::Object(Map::new()),
        _ => return Value::Array(items),
    };
    let mut map = Map::new();
    for pair in pairs {
        match pair.as_array().map(Vec::as_slice) {
            Some([key, value]) => match key_string(key) {
                Some(key) => {
                    map.insert(key, value.clone());
                }
                None => return Value::Array(items),
            },
            _ => return Value::Array(items),
        }
    }
    Value::Object(map)
}

/// PyYAML's merge key: copy keys the mapping does not have yet.
fn merge(map: &mut Map<String, Value>, value: Value) {
    let sources = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    for source in sources {
        if let Value::Object(source) = source {
            for (k, v) in source {
                map.entry(k).or_insert(v);
            }
        }
    }
}

/// Mapping keys as strings: strings stay, other scalars are tagged with their type.
fn key_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_f64() => Some(format!("!float:{n}")),
        Value::Number(n) => Some(format!("!int:{n}")),
        Value::Bool(b) => Some(format!("!bool:{}", if *b { "True" } else { "False" })),
        Value::Null => Some("!null:None".into()),
        _ => None,
    }
}

/// The standard tag a scalar carries, if any (`!!int` → `int`).
fn standard_tag(tag: Option<&str>) -> Option<&str> {
    tag?.strip_prefix("tag:yaml.org,2002:")
}

fn scalar(text: String, style: ScalarStyle, tag: Option<&str>) -> Value {
    // `! "3"` (the non-specific tag) asks for implicit resolution even when quoted.
    let non_specific = tag == Some("!");
    match standard_tag(tag) {
        Some("str") => return Value::String(text),
        Some("int") => return int(&text).unwrap_or(Value::String(text)),
        Some("float") => return float(&text).unwrap_or(Value::String(text)),
        Some("bool") => {
            return boolean(&text)
                .map(Value::Bool)
                .unwrap_or(Value::String(text))
        }
        Some("null") => return Value::Null,
        _ => {}
    }
    if style == ScalarStyle::Plain || non_specific {
        resolve_plain(text)
    } else {
        Value::String(text)
    }
}

static INT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
    )
    .expect("valid regex")
});

static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    )
    .expect("valid regex")
});

/// PyYAML's implicit resolution of a plain scalar.
pub fn resolve_plain(text: String) -> Value {
    if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
        return Value::Null;
    }
    if let Some(b) = boolean(&text) {
        return Value::Bool(b);
    }
    // Numbers start with a digit, a sign or a dot; most plain scalars are words.
    if !text.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.')) {
        return Value::String(text);
    }
    if INT.is_match(&text) {
        if let Some(v) = int(&text) {
            return v;
        }
    }
    if FLOAT.is_match(&text) {
        if let Some(v) = float(&text) {
            return v;
        }
    }
    Value::String(text)
}

fn boolean(text: &str) -> Option<bool> {
    match text {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

fn int(text: &str) -> Option<Value> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    let (negative, digits) = match cleaned.as_bytes().first() {
        Some(b'-') => (true, &cleaned[1..]),
        Some(b'+') => (false, &cleaned[1..]),
        _ => (false, cleaned.as_str()),
    };
    let magnitude: i128 = if let Some(bin) = digits.strip_prefix("0b") {
        i128::from_str_radix(bin, 2).ok()?
    } else if let Some(hex) = digits.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if digits.contains(':') {
        digits.split(':').try_fold(0i128, |acc, part| {
            Some(acc * 60 + part.parse::<i128>().ok()?)
        })?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i128::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse().ok()?
    };
    let value = if negative { -magnitude } else { magnitude };
    if let Ok(v) = i64::try_from(value) {
        Some(Value::Number(v.into()))
    } else if let Ok(v) = u64::try_from(value) {
        Some(Value::Number(v.into()))
    } else {
        Number::from_f64(value as f64).map(Value::Number)
    }
}

fn float(text: &str) -> Option<Value> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    let lower = cleaned.to_ascii_lowercase();
    let value = if lower.ends_with(".inf") || lower.ends_with(".nan") {
        // JSON has no infinities or NaN; keep the text.
        return Some(Value::String(text.to_owned()));
    } else if cleaned.contains(':') {
        let (negative, body) = match cleaned.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, cleaned.trim_start_matches('+')),
        };
        let v = body.split(':').try_fold(0f64, |acc, part| {
            Some(acc * 60.0 + part.parse::<f64>().ok()?)
        })?;
        if negative {
            -v
        } else {
            v
        }
    } else {
        cleaned.parse::<f64>().ok()?
    };
    Number::from_f64(value).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_scalars_resolve_as_pyyaml_does() {
        let doc = from_str(
            "a: yes\nb: off\nc: 0755\nd: 1:30\ne: 1e5\nf: 1.5e+3\ng: None\nh: ~\ni: 0x1F\n\
             j: '0755'\nk: True\nl: 3.\nm: 1_000\nn: -7\no: .5\np:\n",
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"a": true, "b": false, "c": 493, "d": 90, "e": "1e5", "f": 1500.0,
                   "g": "None", "h": null, "i": 31, "j": "0755", "k": true, "l": 3.0,
                   "m": 1000, "n": -7, "o": 0.5, "p": null})
        );
    }

    #[test]
    fn non_string_keys_are_tagged_and_order_is_kept() {
        let doc = from_str("{console: ttyS0, 115200: null, z: 1, a: 2}").unwrap();
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"console":"ttyS0","!int:115200":null,"z":1,"a":2}"#
        );
    }

    #[test]
    fn a_python_ordered_dict_is_a_mapping_in_its_order() {
        // As PyYAML's yaml.dump writes OrderedDict([('case', 'boot'), ('result', 'pass')]).
        let text = "msg: !!python/object/apply:collections.OrderedDict\n- - [case, boot]\n  - [result, pass]\n  - [extra, !!python/object/apply:collections.OrderedDict [[[a, 1]]]]\n";
        let value = from_str(text).unwrap();
        assert_eq!(
            value["msg"],
            serde_json::json!({"case": "boot", "result": "pass", "extra": {"a": 1}})
        );
        let keys: Vec<&String> = value["msg"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["case", "result", "extra"]);
        // Not the shape an OrderedDict has: kept as written.
        let odd = from_str("!!python/object/apply:collections.OrderedDict [1, 2]").unwrap();
        assert_eq!(odd, serde_json::json!([1, 2]));
    }

    #[test]
    fn tags_anchors_and_merges() {
        let doc = from_str(
            "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\ns: !!str 12\nt: ! \"3\"\nu: [*b]\n",
        )
        .unwrap();
        assert_eq!(doc["derived"], json!({"y": 3, "x": 1}));
        assert_eq!(doc["s"], json!("12"));
        assert_eq!(doc["t"], json!(3));
        assert_eq!(doc["u"][0]["x"], json!(1));
    }

    #[test]
    fn quoted_scalars_continued_at_column_zero_fold_as_pyyaml_does() {
        let doc = from_str("c:\n  k: '\n'\n  x: 1\n").unwrap();
        assert_eq!(doc, json!({"c": {"k": " ", "x": 1}}));
    }

    #[test]
    fn positions_point_at_each_node() {
        let (doc, positions) =
            from_str_with_positions("job_name: x\nactions:\n  - deploy:\n      to: tftp\n")
                .unwrap();
        assert_eq!(doc["actions"][0]["deploy"]["to"], json!("tftp"));
        assert_eq!(positions["/job_name"], (1, 11));
        assert_eq!(positions["/actions"], (3, 3));
        assert_eq!(positions["/actions/0/deploy/to"], (4, 11));
    }

    #[test]
    fn syntax_errors_say_where() {
        let error = from_str("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(error.line >= 1, "{error}");
        assert!(!error.message.is_empty());
        assert_eq!(from_str("").unwrap(), Value::Null);
    }
}

#[cfg(test)]
mod alias_budget_tests {
    #[test]
    fn an_alias_bomb_is_refused_not_expanded() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let error = super::from_str(&text).unwrap_err().to_string();
        assert!(error.contains("aliases expand to more than"), "{error}");
        // Ordinary aliases still work.
        let value = super::from_str("base: &b {x: 1}\nuse: *b\n").unwrap();
        assert_eq!(value["use"]["x"], 1);
    }
}

#[cfg(test)]
mod truncation_tests {
    /// Found by the fuzzer: libyaml-safer panicked where the input ends inside a quoted
    /// scalar; every parse of outside input must return an error instead.
    #[test]
    fn a_document_cut_off_inside_a_quoted_scalar_is_an_error() {
        for text in [
            "timeouts:\n  rclone_config: |\n    commands: x\n    - '=>",
            "a: |\n  b\n  - '=>",
            // Found by `cargo xtask fuzz rest` (through POST /api/v1/jobs): a tag in a flow
            // mapping left open.
            // Found by `cargo xtask fuzz dictionary` (a rendered dictionary): a double-quoted
            // scalar ending in a backslash at the end of the input.
            "0x7fff\u{fffd}f': \"/sys/devices/pci00ff\\",
            "- deploy:\n    protocols:\n          message:\n    parameters:\n    - {from: git, name: !singlenode-intermediate, path: x.yaml,\n",
            "prompts:\n- '=>",
            "a: \"x",
        ] {
            let result = std::panic::catch_unwind(|| super::from_str(text));
            let parsed = result.unwrap_or_else(|_| panic!("{text:?} panicked"));
            assert!(parsed.is_err(), "{text:?} parsed: {parsed:?}");
        }
    }
}

#[cfg(test)]
mod depth_tests {
    use super::{from_str, MAX_DEPTH};

    fn flow(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    fn block_mappings(depth: usize) -> String {
        (0..depth)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect::<String>()
            + &" ".repeat(depth)
            + "leaf\n"
    }

    #[test]
    fn nesting_up_to_the_limit_is_read_and_beyond_it_refused_with_where() {
        assert!(from_str(&flow(MAX_DEPTH)).is_ok());
        let error = from_str(&flow(MAX_DEPTH + 1)).unwrap_err();
        assert!(error.message.contains("deeper than 256"), "{error}");
        assert_eq!((error.line, error.column), (1, MAX_DEPTH + 1));
        // Mappings count as well (the leaf is a scalar, not a level).
        assert!(from_str(&block_mappings(MAX_DEPTH)).is_ok());
        assert!(from_str(&block_mappings(MAX_DEPTH + 1)).is_err());
    }

    /// What crashed the master from an anonymous request: 15,000 `[` in 30 KB.
    #[test]
    fn a_document_nested_thousands_deep_is_an_error_not_a_stack_overflow() {
        for text in [flow(15_000), "{a: ".repeat(8_000), "- ".repeat(20_000)] {
            let error = from_str(&text).unwrap_err();
            assert!(error.message.contains("deeper than"), "{error}");
        }
    }
}
