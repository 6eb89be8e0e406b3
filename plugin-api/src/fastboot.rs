//! Finding a board by `fastboot devices`, for devices whose dictionary leaves the fastboot
//! serial unset (`0000000000`) and sets `fastboot_auto_detection: true`, as LAVA's
//! `DetectFastbootDevice` does: after the board was put into fastboot mode, wait 3 s, then
//! ask up to 10 times, 3 s apart, until exactly one device is in fastboot mode. Shared by the
//! fastboot deploy (host) and the fastboot boot (plugin), which both need the serial.

use std::time::{Duration, Instant};

use crate::process::run_program_output;
use crate::{Log, PluginError};

/// What an unset serial is in LAVA's device types.
pub const UNSET_SERIAL: &str = "0000000000";

/// How long LAVA waits before it first asks, and between tries.
const PAUSE: Duration = Duration::from_secs(3);

/// How many times LAVA asks.
const TRIES: u32 = 10;

/// The serials `fastboot devices` lists in fastboot mode (`a2c22e48\tfastboot`).
pub fn listed(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            (words.len() >= 2 && words.last() == Some(&"fastboot")).then(|| words[0].to_owned())
        })
        .collect()
}

/// The one board in fastboot mode; more than one is the job's error (LAVA: "More then one
/// fastboot devices found"), none after every try an infrastructure error (LAVA's
/// `FastbootDeviceNotFound`).
pub fn detect(deadline: Instant, log: &Log) -> Result<String, PluginError> {
    for attempt in 1..=TRIES {
        sleep_until(deadline, PAUSE)?;
        let output = run_program_output("fastboot", &["fastboot", "devices"], deadline, log)?;
        let devices = listed(&output);
        match devices.as_slice() {
            [one] => {
                log.info(&format!("Detected fastboot serial number: {one}"));
                return Ok(one.clone());
            }
            [] => log.info(&format!(
                "Fastboot device not found (try {attempt} of {TRIES})"
            )),
            many => {
                return Err(PluginError::job(format!(
                    "More then one fastboot devices found: {many:?}"
                )))
            }
        }
    }
    Err(PluginError::infrastructure(format!(
        "FastbootDeviceNotFound: fastboot device not found ({TRIES} tries of `fastboot devices`)"
    )))
}

fn sleep_until(deadline: Instant, pause: Duration) -> Result<(), PluginError> {
    if Instant::now() + pause > deadline {
        return Err(PluginError::timeout(
            "no time left to look for the fastboot device",
        ));
    }
    std::thread::sleep(pause);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_devices_in_fastboot_mode_are_listed() {
        let output = "a2c22e48\tfastboot\n0123456789ABCDEF\tfastbootd\n\nR58M12345\tdevice\nusb:1-2 fastboot\n";
        assert_eq!(listed(output), ["a2c22e48", "usb:1-2"]);
        assert!(listed("").is_empty());
    }
}
