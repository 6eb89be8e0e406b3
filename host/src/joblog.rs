//! Job log lines in LAVA's format.
//!
//! LAVA writes one YAML list item per entry: `- {"dt": "...", "lvl": "...", "msg": ...}`,
//! where the mapping is JSON (which is valid YAML), so logs can be read line by line and
//! concatenated. Drivers write through [`basalt_plugin_api::Log`]; this is the sink behind it.

use std::io::Write;
use std::sync::Mutex;
use std::time::SystemTime;

use basalt_plugin_api::{LogLevel, LogSink};

/// Formats one log entry as LAVA does (PyYAML's double-quoted flow style, ASCII only),
/// without the trailing newline.
pub fn format_entry(at: SystemTime, level: LogLevel, message: &str) -> String {
    let dt = timestamp(at);
    format!(
        "- {{{}: {}, {}: {}, {}: {}}}",
        yaml_quote("dt"),
        yaml_quote(&dt),
        yaml_quote("lvl"),
        yaml_quote(level.name()),
        yaml_quote("msg"),
        yaml_quote(message)
    )
}

/// A log entry's `dt`: UTC with microseconds and an explicit offset, as LAVA writes it.
pub fn timestamp(at: SystemTime) -> String {
    let dt = humantime::format_rfc3339_micros(at).to_string();
    format!("{}+00:00", dt.trim_end_matches('Z'))
}

/// Quotes a string as PyYAML's double-quoted style does with `allow_unicode=False`: printable
/// ASCII as is, everything else escaped (`\e` for ESC, `\xNN`, `\uNNNN`).
pub fn yaml_quote(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\0' => "\\0",
            '\u{7}' => "\\a",
            '\u{8}' => "\\b",
            '\t' => "\\t",
            '\n' => "\\n",
            '\u{b}' => "\\v",
            '\u{c}' => "\\f",
            '\r' => "\\r",
            '\u{1b}' => "\\e",
            '\u{85}' => "\\N",
            '\u{a0}' => "\\_",
            '\u{2028}' => "\\L",
            '\u{2029}' => "\\P",
            ' '..='~' => {
                out.push(c);
                continue;
            }
            c => {
                let code = u32::from(c);
                let _ = if code <= 0xff {
                    write!(out, "\\x{code:02X}")
                } else if code <= 0xffff {
                    write!(out, "\\u{code:04X}")
                } else {
                    write!(out, "\\U{code:08X}")
                };
                continue;
            }
        };
        out.push_str(escape);
    }
    out.push('"');
    out
}

/// A [`LogSink`] writing LAVA-format lines to any writer (a file, stdout).
pub struct LavaLogWriter<W: Write + Send + 'static> {
    out: Mutex<W>,
}

impl<W: Write + Send + 'static> LavaLogWriter<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out: Mutex::new(out),
        }
    }
}

impl<W: Write + Send + 'static> LogSink for LavaLogWriter<W> {
    fn log(&self, level: LogLevel, message: &str) {
        let line = format_entry(SystemTime::now(), level, message);
        if let Ok(mut out) = self.out.lock() {
            // A log that cannot be written must not fail the operation being logged.
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn entries_are_lava_yaml_list_items_with_json_mappings() {
        let at = UNIX_EPOCH + Duration::from_micros(1_553_161_192_105_394);
        let line = format_entry(at, LogLevel::TARGET, "login: \"root\"");
        assert_eq!(
            line,
            r#"- {"dt": "2019-03-21T09:39:52.105394+00:00", "lvl": "target", "msg": "login: \"root\""}"#
        );
        let parsed: Vec<serde_json::Value> = serde_yaml::from_str(&line).unwrap();
        assert_eq!(parsed[0]["lvl"], "target");
        assert_eq!(parsed[0]["msg"], "login: \"root\"");
    }

    #[test]
    fn non_ascii_and_control_characters_are_escaped_as_pyyaml_does() {
        assert_eq!(
            yaml_quote("U-Boot \u{1b}[0m caf\u{e9}"),
            r#""U-Boot \e[0m caf\xE9""#
        );
        assert_eq!(yaml_quote("a\tb\r\n\u{2603}"), r#""a\tb\r\n\u2603""#);
        let parsed: String =
            serde_yaml::from_str(&yaml_quote("x\u{1b}y\u{e9}\u{1F600}\\")).unwrap();
        assert_eq!(parsed, "x\u{1b}y\u{e9}\u{1F600}\\");
    }
}
