//! The filters LAVA adds to Jinja2 for device-type templates.

use minijinja::Value;

/// Python's `shlex.quote`: safe strings unchanged, others single-quoted for a POSIX shell.
pub fn shlex_quote(text: String) -> String {
    if text.is_empty() {
        return "''".into();
    }
    let safe = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
    if safe {
        return text;
    }
    format!("'{}'", text.replace('\'', r#"'"'"'"#))
}

/// A value as one double-quoted YAML scalar (strings) or one-line YAML flow (the rest).
pub fn yaml_quote(value: Value) -> String {
    match value.as_str() {
        Some(text) => crate::joblog::yaml_quote(text),
        None => serde_json::to_string(&value).unwrap_or_else(|_| "null".into()),
    }
}

/// The disk interface qemu should give a guest: the override if set, else `ide` for x86
/// guests and `virtio` for the rest.
pub fn qemu_guest_fs_interface(arch: Value, override_interface: Option<Value>) -> Value {
    if let Some(chosen) = override_interface.filter(|v| v.is_true()) {
        return chosen;
    }
    match arch.as_str() {
        Some("amd64" | "x86_64" | "i386") => Value::from("ide"),
        _ => Value::from("virtio"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shlex_quote_matches_python() {
        assert_eq!(shlex_quote("".into()), "''");
        assert_eq!(shlex_quote("ttyS0,115200".into()), "ttyS0,115200");
        assert_eq!(shlex_quote("a b".into()), "'a b'");
        assert_eq!(shlex_quote("it's".into()), r#"'it'"'"'s'"#);
    }

    #[test]
    fn qemu_interface_defaults_by_arch() {
        assert_eq!(
            qemu_guest_fs_interface(Value::from("x86_64"), None),
            Value::from("ide")
        );
        assert_eq!(
            qemu_guest_fs_interface(Value::from("arm64"), Some(Value::from(""))),
            Value::from("virtio")
        );
        assert_eq!(
            qemu_guest_fs_interface(Value::from("arm64"), Some(Value::from("scsi"))),
            Value::from("scsi")
        );
    }

    #[test]
    fn yaml_quote_double_quotes_strings() {
        assert_eq!(yaml_quote(Value::from("a: b")), r#""a: b""#);
        assert_eq!(yaml_quote(Value::from(3)), "3");
    }
}
