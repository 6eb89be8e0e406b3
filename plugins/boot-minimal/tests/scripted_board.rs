//! The minimal boot driver against a scripted host: a board whose console answers each line
//! sent with the next piece of output. (End-to-end runs against a real console process live
//! in the workspace's tests/ crate.)

use std::collections::VecDeque;
use std::time::Duration;

use basalt_boot_minimal::new_minimal_boot;
use basalt_plugin_api::{
    BootHost, BootSession, ErrorKind, ExpectMatch, Log, LogLevel, PluginError, PowerAction,
};

/// A host whose console prints `output` up front and one more reply per line sent.
#[derive(Default)]
struct ScriptedBoard {
    output: String,
    replies: VecDeque<String>,
    sent: Vec<String>,
    power: Vec<PowerAction>,
}

impl BootHost for ScriptedBoard {
    fn send(&mut self, text: &str) -> Result<(), PluginError> {
        self.sent.push(text.to_owned());
        if let Some(reply) = self.replies.pop_front() {
            self.output.push_str(&reply);
        }
        Ok(())
    }

    fn expect(&mut self, patterns: &[String], _: Duration) -> Result<ExpectMatch, PluginError> {
        for (index, pattern) in patterns.iter().enumerate() {
            if let Some(start) = self.output.find(pattern.as_str()) {
                let end = start + pattern.len();
                let before = self.output[..start].to_owned();
                let matched = self.output[start..end].to_owned();
                self.output.drain(..end);
                return Ok(ExpectMatch {
                    index,
                    before,
                    matched,
                });
            }
        }
        Err(PluginError::timeout(format!(
            "no {patterns:?} in {:?}",
            self.output
        )))
    }

    fn power(&mut self, action: PowerAction, _: Duration) -> Result<(), PluginError> {
        self.power.push(action);
        Ok(())
    }

    fn log(&self, _: LogLevel, _: &str) {}
}

fn boot(board: &mut ScriptedBoard, action: serde_json::Value) -> Result<(), PluginError> {
    // Go through the ABI exactly as the host does.
    let driver = basalt_plugin_api::boot_driver_box(new_minimal_boot("null", Log::discard())?);
    driver
        .boot(
            BootSession::abi(board),
            action.to_string().as_str().into(),
            10_000,
        )
        .into()
}

#[test]
fn resets_logs_in_and_runs_login_commands() {
    let mut board = ScriptedBoard {
        output: "Linux version 6.1\nboard login: ".into(),
        replies: VecDeque::from([
            "Password: ".to_owned(),
            "Welcome\nuser@board:~$ ".to_owned(),
            "root@board:~# ".to_owned(),
        ]),
        ..Default::default()
    };
    boot(
        &mut board,
        serde_json::json!({
            "method": "minimal",
            "auto_login": {
                "login_prompt": "login: ",
                "username": "user",
                "password_prompt": "Password: ",
                "password": "secret",
                "login_commands": ["sudo su"],
            },
            "prompts": ["user@board:~$ ", "root@board:~# "],
        }),
    )
    .unwrap();
    assert_eq!(board.power, vec![PowerAction::Reboot]);
    assert_eq!(board.sent, vec!["user\n", "secret\n", "sudo su\n"]);
}

#[test]
fn reset_false_leaves_power_alone() {
    let mut board = ScriptedBoard {
        output: "root@board:~# ".into(),
        ..Default::default()
    };
    boot(
        &mut board,
        serde_json::json!({"reset": false, "prompts": ["root@board:~# "]}),
    )
    .unwrap();
    assert!(board.power.is_empty());
}

#[test]
fn a_missing_prompt_says_what_was_awaited() {
    let mut board = ScriptedBoard {
        output: "Kernel panic - not syncing".into(),
        ..Default::default()
    };
    let error = boot(&mut board, serde_json::json!({"prompts": ["# "]})).unwrap_err();
    assert_eq!(error.kind, ErrorKind::TIMEOUT);
    assert!(
        error.message().contains("waiting for the shell prompt"),
        "{error}"
    );
    assert!(error.message().contains("Kernel panic"), "{error}");
}

/// As in LAVA: a boot without prompts waits for no shell (the board may have none), logging
/// in needs the prompt to wait for, and prompts are a list.
#[test]
fn an_action_without_prompts_boots_without_waiting_and_cannot_log_in() {
    let mut board = ScriptedBoard::default();
    boot(&mut board, serde_json::json!({"method": "minimal"})).unwrap();
    let error = boot(
        &mut board,
        serde_json::json!({"auto_login": {"login_prompt": "login:", "username": "root"}}),
    )
    .unwrap_err();
    assert_eq!(error.kind, ErrorKind::JOB);
    assert!(
        error.message().contains("auto_login needs prompts"),
        "{error}"
    );
    let error = boot(&mut board, serde_json::json!({"prompts": "# "})).unwrap_err();
    assert_eq!(error.kind, ErrorKind::JOB);
}
