//! LAVA's firmware menus (`SelectorMenu` and `SelectorMenuAction`): a menu lists numbered
//! items (`[2] LAVA PXE Grub`), and a device's menu sequence says which items to pick by
//! their label, what to type at a question, and which text to wait for in between. UEFI
//! firmware menus are driven this way before GRUB (`grub-efi`) and by `uefi-menu` boots.
//!
//! The device's `uefi-menu` parameters give the item's shape: `item_markup` (the text around
//! the number, `[` and `]`), `item_class` (the number's characters, `0-9`), `separator`
//! (between number and label) and `label_class` (the label's characters; LAVA's default when
//! absent). As in LAVA, the last menu on screen wins: lines are searched from the end.

use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;

use crate::bootloader::send_line_slowly;
use crate::login::{time_left, waiting_for};
use crate::{BootSession, PluginError};

/// LAVA's label characters when the device gives none (`DEFAULT_UEFI_LABEL_CLASS`).
pub const DEFAULT_LABEL_CLASS: &str = r"a-zA-Z0-9\s\:";

/// The keys a menu sequence's `select` may have (others are refused, as LAVA refuses them).
const KEYS: &[&str] = &["items", "prompt", "enter", "escape", "wait", "fallback"];

/// How a device's menu numbers its items.
#[derive(Debug, Clone)]
pub struct Selector {
    pattern: Regex,
}

impl Selector {
    /// The selector the `uefi-menu` parameters describe; `driver` names the boot driver in
    /// errors.
    pub fn from_parameters(driver: &str, parameters: &Value) -> Result<Self, PluginError> {
        let text = |key: &str| parameters.get(key).and_then(Value::as_str);
        let markup: Vec<&str> = parameters
            .get("item_markup")
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let (Some(open), Some(close), Some(class), Some(separator)) = (
            markup.first(),
            markup.get(1),
            text("item_class"),
            text("separator"),
        ) else {
            return Err(PluginError::invalid_config(format!(
                "{driver}: the device's uefi-menu parameters need item_markup (two strings), \
                 item_class and separator (LAVA's 'Missing device parameters for UEFI menu \
                 operations')"
            )));
        };
        let label = text("label_class").unwrap_or(DEFAULT_LABEL_CLASS);
        let pattern = format!(
            "{}([{class}]+){}{separator}([{label}]*)",
            regex::escape(open),
            regex::escape(close),
        );
        let pattern = Regex::new(&pattern).map_err(|e| {
            PluginError::invalid_config(format!(
                "{driver}: the uefi-menu parameters make no regular expression ({pattern}): {e}"
            ))
        })?;
        Ok(Self { pattern })
    }

    /// The selector of the item labelled `label` in `output`, from its last menu.
    pub fn select(&self, output: &str, label: &str) -> Option<String> {
        output.split('\n').rev().find_map(|line| {
            let found = self.pattern.captures(line.trim())?;
            (found.get(2).map(|m| m.as_str()) == Some(label))
                .then(|| found.get(1).map(|m| m.as_str().to_owned()))
                .flatten()
        })
    }
}

/// Checks a menu sequence as LAVA's `SelectorMenuAction.validate` does: a list of
/// `{select: {...}}` blocks with known keys.
pub fn check_sequence(driver: &str, name: &str, sequence: &Value) -> Result<(), PluginError> {
    let Some(blocks) = sequence.as_array() else {
        return Err(PluginError::invalid_config(format!(
            "{driver}: the menu sequence {name} must be a list"
        )));
    };
    for block in blocks {
        let Some(select) = block.get("select").and_then(Value::as_object) else {
            return Err(PluginError::invalid_config(format!(
                "{driver}: unable to recognise selection {block} in the menu sequence {name}"
            )));
        };
        if let Some(key) = select.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(PluginError::invalid_config(format!(
                "{driver}: unable to recognise item {key} in the menu sequence {name}"
            )));
        }
    }
    Ok(())
}

/// One menu dialogue: where it starts and how it types.
pub struct Dialogue<'a> {
    /// The boot driver, for messages.
    pub driver: &'a str,
    /// How the menu numbers its items.
    pub selector: &'a Selector,
    /// What ends a typed line (`\r\n` for LAVA's `dos` menus, `\n` for `unix`).
    pub line_separator: &'a str,
    /// The device's typing delay per character.
    pub delay: Duration,
    /// When the boot's timeout ends.
    pub deadline: Instant,
}

impl Dialogue<'_> {
    /// Runs a menu sequence as LAVA's `SelectorMenuAction.run` does. `menu` is the console
    /// output before the prompt the caller last waited for (the menu on screen). For each
    /// block: a `wait` becomes the text to wait for after each thing sent; each of `items` is
    /// picked by its label (or `fallback`'s) and its number typed; `escape` sends Escape;
    /// `enter` types its text and Ctrl-M.
    pub fn run(
        &self,
        session: &mut BootSession<'_>,
        sequence: &Value,
        mut menu: String,
    ) -> Result<(), PluginError> {
        let driver = self.driver;
        for block in sequence.as_array().into_iter().flatten() {
            let Some(select) = block.get("select") else {
                return Err(PluginError::job(format!(
                    "{driver}: unable to recognise selection {block}"
                )));
            };
            let wait = select.get("wait").and_then(Value::as_str);
            for label in crate::config::string_list(select.get("items")) {
                let choice = self.selector.select(&menu, &label).or_else(|| {
                    select
                        .get("fallback")
                        .and_then(Value::as_str)
                        .and_then(|fallback| self.selector.select(&menu, fallback))
                });
                let Some(choice) = choice else {
                    return Err(PluginError::job(format!(
                        "{driver}: no selection was made: the menu has no item '{label}'"
                    )));
                };
                session.info(&format!("Selecting option {choice} ({label})"));
                self.type_line(session, &choice, self.line_separator)?;
                self.settle(session, wait, &mut menu)?;
            }
            if select.get("escape").is_some() {
                session.info("Sending escape");
                session.send("\u{1b}")?;
                self.settle(session, wait, &mut menu)?;
            }
            if let Some(enter) = select.get("enter") {
                let text = match enter {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                session.info(&format!("Sending {text} Ctrl-M"));
                self.type_line(session, &text, "\r")?;
                self.settle(session, wait, &mut menu)?;
            }
        }
        Ok(())
    }

    /// After something was sent: waits for the block's `wait` text, and keeps what came
    /// before it as the menu on screen.
    fn settle(
        &self,
        session: &mut BootSession<'_>,
        wait: Option<&str>,
        menu: &mut String,
    ) -> Result<(), PluginError> {
        if let Some(wait) = wait {
            session.info(&format!("Changing menu prompt to '{wait}'"));
            let found = session
                .expect(&[wait], time_left(self.deadline))
                .map_err(|e| waiting_for(self.driver, &format!("the menu's '{wait}'"), e))?;
            *menu = found.before;
        }
        Ok(())
    }

    /// Types `text` at the device's speed, then `end`.
    fn type_line(
        &self,
        session: &mut BootSession<'_>,
        text: &str,
        end: &str,
    ) -> Result<(), PluginError> {
        if end == "\n" {
            return send_line_slowly(session, text, self.delay);
        }
        let mut buffer = [0u8; 4];
        for c in text.chars() {
            session.send(c.encode_utf8(&mut buffer))?;
            if !self.delay.is_zero() {
                std::thread::sleep(self.delay);
            }
        }
        session.send(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mustang() -> Selector {
        Selector::from_parameters(
            "test",
            &json!({"item_markup": ["[", "]"], "item_class": "0-9", "separator": " ",
                    "label_class": "a-zA-Z0-9\\s\\:"}),
        )
        .unwrap()
    }

    #[test]
    fn an_item_is_found_by_its_label_in_the_last_menu_on_screen() {
        let screen = "[1] Old entry\r\n[2] LAVA PXE Grub\r\nStart:\n\
                      [1] LAVA PXE Grub\r\n[2] Shell\r\n[3] Boot Manager\r\n";
        let selector = mustang();
        assert_eq!(
            selector.select(screen, "LAVA PXE Grub").as_deref(),
            Some("1")
        );
        assert_eq!(
            selector.select(screen, "Boot Manager").as_deref(),
            Some("3")
        );
        assert_eq!(selector.select(screen, "Shel"), None);
        assert_eq!(selector.select(screen, "Reboot"), None);
    }

    #[test]
    fn the_markup_is_text_and_the_default_label_class_is_lavas() {
        let selector = Selector::from_parameters(
            "test",
            &json!({"item_markup": ["(", ")"], "item_class": "a-z", "separator": ": "}),
        )
        .unwrap();
        assert_eq!(
            selector
                .select(
                    "(b): TFTP on MAC Address: 00:01:73:69:5A:EF",
                    "TFTP on MAC Address: 00:01:73:69:5A:EF"
                )
                .as_deref(),
            Some("b")
        );
        assert!(Selector::from_parameters("test", &json!({"item_markup": ["["]})).is_err());
    }

    #[test]
    fn sequences_with_unknown_keys_or_blocks_are_refused() {
        assert!(check_sequence(
            "t",
            "pxe-grub",
            &json!([{"select": {"items": ["x"], "wait": "y"}}])
        )
        .is_ok());
        assert!(check_sequence("t", "pxe-grub", &json!([{"select": {"pick": "x"}}])).is_err());
        assert!(check_sequence("t", "pxe-grub", &json!([{"choose": {}}])).is_err());
        assert!(check_sequence("t", "pxe-grub", &json!({"select": {}})).is_err());
    }
}
