//! Boot drivers `grub` and `grub-efi`: LAVA's GRUB boot methods.
//!
//! `grub`, as LAVA's `GrubMainAction`: resets the board, waits for GRUB's menu
//! (`constants.grub.interrupt-prompt`, "for a command-line"), presses `c` for the command
//! line, sends the command set the job names (`ramdisk`, `nfs`, `debian-installer`, … of
//! `actions.boot.methods.grub`, or the job's own list) with `{SERVER_IP}`, `{KERNEL}`,
//! `{RAMDISK}`, `{DTB}`, `{NFSROOTFS}`, … filled in, each after the `grub>` prompt, with GRUB's
//! error messages watched. Then it logs in; a boot without prompts that names
//! `boot_finished` (an installer) waits for that text and powers the board off, as LAVA's
//! `InstallerWait` does.
//!
//! `grub-efi` is the same dialogue reached through the board's UEFI firmware menu first:
//! after the reset (unless the device's section says `reset_device: false`) it stops the
//! firmware's countdown with the `uefi-menu` parameters' `interrupt_string`, waits for the
//! menu's prompt and picks the items of the `uefi-menu` sequence its
//! `menu_options` names (the "LAVA PXE Grub" entry), as LAVA's `UEFIMenuInterrupt` and
//! `GrubMenuSelector` do; GRUB's own interrupt and commands follow (`constants.grub-efi`).
//!
//! A device whose grub section has a `sequence` boots as LAVA's `GrubSequenceAction`: no
//! reset and no commands; each step of the sequence runs in order (`wait-fastboot-interrupt`
//! waits for the fastboot deploy's `interrupt_prompt` and sends its `interrupt_string`, as
//! HiKey boards leave fastboot for GRUB; `auto-login`, `shell-session` and `export-env` are
//! the login every boot ends with).

use std::time::Duration;

use basalt_plugin_api::bootloader::{self, Method, Prepared};
use basalt_plugin_api::login::{time_left, waiting_for};
use basalt_plugin_api::menu::{self, Dialogue, Selector};
use basalt_plugin_api::{
    export_plugin, string_list, BootDriver, BootSession, Log, PluginError, PowerAction,
};
use serde_json::Value;

const DRIVER: &str = "boot grub";
const DRIVER_EFI: &str = "boot grub-efi";

/// The steps LAVA's `GrubSequenceAction` knows.
const SEQUENCE_STEPS: &[&str] = &[
    "wait-fastboot-interrupt",
    "auto-login",
    "shell-session",
    "export-env",
];

/// How this device's GRUB is reached.
enum Route {
    /// GRUB's menu comes up by itself after a reset.
    Direct,
    /// The UEFI firmware's menu comes first.
    Uefi(Box<UefiMenu>),
    /// LAVA's grub sequence: the board is left in fastboot mode, no commands are sent.
    Sequence(Vec<String>),
}

/// The firmware menu in front of GRUB, from the device's `uefi-menu` section.
struct UefiMenu {
    interrupt_prompt: String,
    interrupt_string: String,
    prompt: String,
    selector: Selector,
    items: Value,
    line_separator: String,
}

/// The driver, built from the device's grub (or grub-efi) section.
pub struct GrubBoot {
    method: Method,
    route: Route,
    _log: Log,
}

/// Builds the `grub` driver from the device's `actions.boot.methods.grub` (JSON).
pub fn new_grub_boot(config: &str, log: Log) -> Result<GrubBoot, PluginError> {
    // A sequence sends no commands, so it needs no bootloader prompt (LAVA checks none).
    let method = Method::from_config(DRIVER, "grub", config)?;
    let route = match method.section().get("sequence") {
        Some(sequence) => Route::Sequence(sequence_steps(&method, sequence)?),
        None => {
            Method::for_driver(DRIVER, "grub", config)?;
            Route::Direct
        }
    };
    Ok(GrubBoot {
        method,
        route,
        _log: log,
    })
}

/// Builds the `grub-efi` driver from the device's `actions.boot.methods.grub-efi` (JSON),
/// with its `uefi-menu` section as the host adds it (`_uefi_menu`).
pub fn new_grub_efi_boot(config: &str, log: Log) -> Result<GrubBoot, PluginError> {
    let method = Method::for_driver(DRIVER_EFI, "grub-efi", config)?;
    let route = Route::Uefi(Box::new(uefi_menu(&method)?));
    Ok(GrubBoot {
        method,
        route,
        _log: log,
    })
}

/// The steps of a grub `sequence`, checked as LAVA's validate checks them.
fn sequence_steps(method: &Method, sequence: &Value) -> Result<Vec<String>, PluginError> {
    let steps = string_list(Some(sequence));
    if let Some(unknown) = steps.iter().find(|s| !SEQUENCE_STEPS.contains(&s.as_str())) {
        return Err(PluginError::invalid_config(format!(
            "{DRIVER}: unknown boot sequence '{unknown}' (known: {})",
            SEQUENCE_STEPS.join(", ")
        )));
    }
    if steps.iter().any(|s| s == "wait-fastboot-interrupt") {
        fastboot_interrupt(method)?;
    }
    Ok(steps)
}

/// The fastboot deploy's `interrupt_prompt` and `interrupt_string`, which LAVA's
/// `WaitFastBootInterrupt` reads from `actions.deploy.methods.fastboot`.
fn fastboot_interrupt(method: &Method) -> Result<(String, String), PluginError> {
    let deploy = method.section().get("_fastboot_deploy");
    let text = |key: &str| {
        deploy
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    match (text("interrupt_prompt"), text("interrupt_string")) {
        (Some(prompt), Some(string)) => Ok((prompt, string)),
        _ => Err(PluginError::invalid_config(format!(
            "{DRIVER}: the device's grub sequence waits for fastboot's interrupt, but \
             actions.deploy.methods.fastboot has no interrupt_prompt and interrupt_string \
             (LAVA's 'Missing interrupt configuration for device.')"
        ))),
    }
}

/// The firmware menu of a grub-efi device, checked as LAVA's `UEFIMenuInterrupt` and
/// `GrubMenuSelector` validate it.
fn uefi_menu(method: &Method) -> Result<UefiMenu, PluginError> {
    let Some(section) = method.section().get("_uefi_menu").filter(|s| s.is_object()) else {
        return Err(PluginError::invalid_config(format!(
            "{DRIVER_EFI}: no uefi-menu in the device's boot methods"
        )));
    };
    // LAVA's GrubMenuSelector reads menu_options from the uefi-menu section.
    let Some(options) = section.get("menu_options").and_then(Value::as_str) else {
        return Err(PluginError::invalid_config(format!(
            "{DRIVER_EFI}: missing entry for menu item to use for uefi-menu (menu_options)"
        )));
    };
    let parameters = section.get("parameters").cloned().unwrap_or(Value::Null);
    let text = |key: &str| {
        parameters
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                PluginError::invalid_config(format!(
                    "{DRIVER_EFI}: the device's uefi-menu parameters have no {key}"
                ))
            })
    };
    let items = section.get(options).cloned().ok_or_else(|| {
        PluginError::invalid_config(format!(
            "{DRIVER_EFI}: no boot configuration called '{options}' for boot method 'uefi-menu'"
        ))
    })?;
    menu::check_sequence(DRIVER_EFI, options, &items)?;
    let line_separator = match section.get("line_separator").and_then(Value::as_str) {
        None | Some("dos") => "\r\n",
        Some("unix") => "\n",
        Some(other) => {
            return Err(PluginError::invalid_config(format!(
                "{DRIVER_EFI}: unrecognised line separator configuration '{other}' (dos or unix)"
            )))
        }
    };
    Ok(UefiMenu {
        interrupt_prompt: text("interrupt_prompt")?,
        interrupt_string: text("interrupt_string")?,
        prompt: text("bootloader_prompt")?,
        selector: Selector::from_parameters(DRIVER_EFI, &parameters)?,
        items,
        line_separator: line_separator.to_owned(),
    })
}

impl GrubBoot {
    /// UEFI's part of a grub-efi boot: the countdown stopped, the GRUB entry picked.
    fn through_uefi(
        &self,
        uefi: &UefiMenu,
        boot: &Prepared,
        session: &mut BootSession<'_>,
    ) -> Result<(), PluginError> {
        let driver = self.method.driver();
        let reset_device = self
            .method
            .section()
            .get("reset_device")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        if reset_device {
            bootloader::reset(&self.method, session, &boot.action, boot.deadline)?;
        }
        session
            .expect(&[&uefi.interrupt_prompt], time_left(boot.deadline))
            .map_err(|e| waiting_for(driver, "the UEFI menu's interrupt prompt", e))?;
        session.send(&uefi.interrupt_string)?;
        session.info(&format!("{driver}: looking for {}", uefi.prompt));
        let menu = session
            .expect(&[&uefi.prompt], time_left(boot.deadline))
            .map_err(|e| waiting_for(driver, "the UEFI menu", e))?;
        let line_separator = match boot.action.get("line_separator").and_then(Value::as_str) {
            Some("unix") => "\n",
            Some(_) => "\r\n",
            None => uefi.line_separator.as_str(),
        };
        Dialogue {
            driver,
            selector: &uefi.selector,
            line_separator,
            delay: self.method.character_delay(),
            deadline: boot.deadline,
        }
        .run(session, &uefi.items, menu.before)
    }

    /// LAVA's grub sequence: each step in order, on a board the deploy left running.
    fn sequence(
        &self,
        steps: &[String],
        boot: &Prepared,
        session: &mut BootSession<'_>,
    ) -> Result<(), PluginError> {
        for step in steps {
            if step == "wait-fastboot-interrupt" {
                let (prompt, string) = fastboot_interrupt(&self.method)?;
                session.info(&format!("{DRIVER}: changing prompt to '{prompt}'"));
                session
                    .expect(&[&prompt], time_left(boot.deadline))
                    .map_err(|e| waiting_for(DRIVER, "fastboot's interrupt prompt", e))?;
                session.info(&format!(
                    "{DRIVER}: sending '{string}' to interrupt fastboot"
                ));
                session.send_line(&string)?;
            }
        }
        Ok(())
    }
}

impl BootDriver for GrubBoot {
    fn boot(
        &self,
        session: &mut BootSession<'_>,
        action: &str,
        timeout: Duration,
    ) -> Result<(), PluginError> {
        let method = &self.method;
        let boot = match &self.route {
            Route::Sequence(steps) => {
                let (login, action) =
                    basalt_plugin_api::login::read_boot_action(method.driver(), action)?;
                let deadline = std::time::Instant::now() + timeout;
                let boot = Prepared {
                    deadline,
                    login,
                    action,
                    subs: Default::default(),
                    listed: Vec::new(),
                    commands: Vec::new(),
                };
                self.sequence(steps, &boot, session)?;
                boot
            }
            Route::Direct => {
                let boot = Prepared::new(method, session, action, timeout, |_, _| {})?;
                boot.run(method, session)?;
                boot
            }
            Route::Uefi(uefi) => {
                let boot = Prepared::new(method, session, action, timeout, |_, _| {})?;
                if boot.commands.is_empty() {
                    return Err(PluginError::job(format!(
                        "{DRIVER_EFI}: no bootloader commands are left to send"
                    )));
                }
                bootloader::log_commands(session, &boot.subs, &boot.commands);
                self.through_uefi(uefi, &boot, session)?;
                let interrupted = bootloader::interrupt(method, session, boot.deadline)?;
                bootloader::commands_to_kernel(
                    method,
                    session,
                    &boot.action,
                    interrupted,
                    &boot.commands,
                    boot.deadline,
                )?;
                boot
            }
        };
        // `boot_finished`: the text an installer prints when it is done.
        let finished = string_list(boot.action.get("boot_finished"));
        if boot.login.prompts.is_empty() && !finished.is_empty() {
            session.info(&format!(
                "{}: not expecting a shell, so waiting for boot_finished: {}",
                method.driver(),
                finished.join(", ")
            ));
            session
                .expect(&finished, time_left(boot.deadline))
                .map_err(|e| waiting_for(method.driver(), "boot_finished", e))?;
            return session.power(PowerAction::Off, time_left(boot.deadline));
        }
        boot.log_in(method, session)
    }
}

export_plugin! {
    name: "boot-grub",
    drivers: [
        boot "grub": "Interrupts GRUB for its command line, sends the device's GRUB commands with the deployed files, boots to a shell" => new_grub_boot,
        boot "grub-efi": "Picks GRUB in the board's UEFI menu, interrupts it for its command line, sends the device's GRUB commands with the deployed files, boots to a shell" => new_grub_efi_boot,
    ],
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error_of(result: Result<GrubBoot, PluginError>) -> String {
        match result {
            Ok(_) => panic!("the device section was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_sequence_needs_known_steps_and_the_fastboot_deploys_interrupt() {
        let log = || Log::discard();
        let unknown = json!({"sequence": ["wait-fastboot-interrupt", "reboot-twice"]});
        assert!(error_of(new_grub_boot(&unknown.to_string(), log()))
            .contains("unknown boot sequence 'reboot-twice'"));
        let no_interrupt = json!({"sequence": ["wait-fastboot-interrupt"]});
        assert!(error_of(new_grub_boot(&no_interrupt.to_string(), log()))
            .contains("Missing interrupt configuration"));
        let hikey = json!({
            "sequence": ["wait-fastboot-interrupt"],
            "_fastboot_deploy": {"interrupt_prompt": "Android Fastboot mode", "interrupt_string": " "},
        });
        assert!(new_grub_boot(&hikey.to_string(), log()).is_ok());
    }

    #[test]
    fn grub_efi_needs_the_uefi_menu_its_options_name() {
        let log = || Log::discard();
        let grub_efi = |uefi: Value| {
            json!({"parameters": {"bootloader_prompt": "grub>"}, "_uefi_menu": uefi}).to_string()
        };
        assert!(error_of(new_grub_efi_boot(&grub_efi(Value::Null), log())).contains("no uefi-menu"));
        let parameters = json!({
            "interrupt_prompt": "The default boot selection will start in",
            "interrupt_string": " ", "item_markup": ["[", "]"], "item_class": "0-9",
            "separator": " ", "bootloader_prompt": "Start:",
        });
        let menu = json!({"menu_options": "pxe-grub", "parameters": parameters});
        assert!(error_of(new_grub_efi_boot(&grub_efi(menu), log()))
            .contains("no boot configuration called 'pxe-grub'"));
        let menu = json!({"menu_options": "pxe-grub", "parameters": parameters,
                          "pxe-grub": [{"select": {"items": ["LAVA PXE Grub"]}}]});
        assert!(new_grub_efi_boot(&grub_efi(menu), log()).is_ok());
    }
}
