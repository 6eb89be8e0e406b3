//! The fastboot client as LAVA runs it, shared by the fastboot deploy (host) and the fastboot
//! boot (plugin):
//!
//! - [`Client`]: `fastboot -s SERIAL <command…> <fastboot_options…>`, on the worker or, where
//!   the job's action says `docker:`, inside a container of that image as LAVA's
//!   `DockerDriver` runs it (the image inspected when `local: true`, else pulled; per command
//!   a container started detached with `sleep infinity`, the files the command names bind
//!   mounted at their own paths, `docker exec` of the command, `docker stop`), with the
//!   device's `actions.test.methods.docker` options (`global_options` before `run`,
//!   `options` after it) and the job's `devices:`.
//! - [`detect`]: finding a board by `fastboot devices`, for devices whose dictionary leaves
//!   the fastboot serial unset (`0000000000`) and sets `fastboot_auto_detection: true`, as
//!   LAVA's `DetectFastbootDevice` does: after the board was put into fastboot mode, wait 3 s,
//!   then ask up to 10 times, 3 s apart, until exactly one device is in fastboot mode.
//! - [`RebootIntoFastboot`]: LAVA's `EnterFastbootAction`, how a board with neither u-boot's
//!   `fastboot` command nor a hard reset (a phone) gets into fastboot mode: `adb -s
//!   ADB_SERIAL reboot-bootloader` when the adb server lists the board as an Android device,
//!   else `fastboot reboot-bootloader` when `fastboot devices` lists it in fastboot mode.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::string_list;
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

/// The one board in fastboot mode (asked through `client`, whose serial is not used); more
/// than one is the job's error (LAVA: "More then one fastboot devices found"), none after
/// every try an infrastructure error (LAVA's `FastbootDeviceNotFound`).
pub fn detect(client: &Client, deadline: Instant, log: &Log) -> Result<String, PluginError> {
    for attempt in 1..=TRIES {
        sleep_until(deadline, PAUSE)?;
        let output = client.run_argv(
            &["fastboot".to_owned(), "devices".to_owned()],
            &[],
            deadline,
            log,
        )?;
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

/// The fastboot client of one action: the device's serial and options, and the job's
/// container if it names one.
#[derive(Debug, Clone)]
pub struct Client {
    /// `fastboot_serial_number` (empty until an auto-detected board is found).
    pub serial: String,
    /// `fastboot_options`, after every command.
    pub options: Vec<String>,
    /// The action's `docker:`, if any.
    pub docker: Option<Docker>,
}

impl Client {
    /// Runs `fastboot -s SERIAL <words…> <options…>`; `files` are the paths among the words
    /// (bind mounted into the container). Returns what it printed.
    pub fn run(
        &self,
        words: &[&str],
        files: &[&str],
        deadline: Instant,
        log: &Log,
    ) -> Result<String, PluginError> {
        self.run_argv(&self.argv(words), files, deadline, log)
    }

    /// LAVA's command line: `fastboot -s SERIAL <words…> <options…>`, the device's options
    /// after the command.
    pub fn argv(&self, words: &[&str]) -> Vec<String> {
        let mut argv = vec!["fastboot".to_owned(), "-s".to_owned(), self.serial.clone()];
        argv.extend(words.iter().map(|w| (*w).to_owned()));
        argv.extend(self.options.iter().cloned());
        argv
    }

    /// Runs a program (`argv[0]`: `fastboot`, `adb`) where this client runs its commands: on
    /// the worker or in the action's container.
    pub fn run_argv(
        &self,
        argv: &[String],
        files: &[&str],
        deadline: Instant,
        log: &Log,
    ) -> Result<String, PluginError> {
        match &self.docker {
            None => run_program_output(
                argv.first().map_or("fastboot", String::as_str),
                argv,
                deadline,
                log,
            ),
            Some(docker) => docker.run(argv, files, deadline, log),
        }
    }
}

/// LAVA's `EnterFastbootAction`: the device's `adb_serial_number`, checked as LAVA's
/// validation checks it (set, and not `0000000000`), for the boards that enter fastboot mode by
/// being asked to.
#[derive(Debug, Clone)]
pub struct RebootIntoFastboot {
    adb_serial: String,
}

impl RebootIntoFastboot {
    /// From the device's `adb_serial_number` (LAVA: "device adb serial number missing" /
    /// "unset" when it is not usable).
    pub fn new(adb_serial: Option<&Value>) -> Result<Self, PluginError> {
        let adb_serial = match adb_serial {
            None | Some(Value::Null) => {
                return Err(PluginError::invalid_config(
                    "device adb serial number missing",
                ))
            }
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        if adb_serial.is_empty() || adb_serial == UNSET_SERIAL {
            return Err(PluginError::invalid_config(
                "device adb serial number unset",
            ));
        }
        Ok(Self { adb_serial })
    }

    /// `adb -s ADB_SERIAL <words…>`.
    fn adb(&self, words: &[&str]) -> Vec<String> {
        let mut argv = vec!["adb".to_owned(), "-s".to_owned(), self.adb_serial.clone()];
        argv.extend(words.iter().map(|w| (*w).to_owned()));
        argv
    }

    /// Asks the board into fastboot mode, as LAVA does: the adb server is started (a failure
    /// is only logged: one may be running already) and asked for its devices; a board it
    /// lists is rebooted into the bootloader with adb (a failure is the infrastructure's).
    /// Otherwise a board `fastboot devices` lists gets `fastboot reboot-bootloader`, whose
    /// answer must say OKAY. A board listed by neither is taken to be in fastboot mode (a
    /// `tcp:` one never is listed), and the flashing that follows finds out.
    pub fn enter(&self, client: &Client, deadline: Instant, log: &Log) -> Result<(), PluginError> {
        let allow_fail = |argv: Vec<String>| {
            client
                .run_argv(&argv, &[], deadline, log)
                .unwrap_or_else(|e| e.message().to_owned())
        };
        let started = allow_fail(self.adb(&["start-server"]));
        if started.contains("successfully") {
            log.info(&format!("adb daemon started: {}", started.trim()));
        }
        let devices = allow_fail(self.adb(&["devices"]));
        if adb_listed(&devices).contains(&self.adb_serial) {
            log.info(&format!("Device is in adb: {}", devices.trim()));
            client
                .run_argv(&self.adb(&["reboot-bootloader"]), &[], deadline, log)
                .map_err(|e| PluginError::infrastructure(e.message()))?;
            return Ok(());
        }
        let listed = client.run(&["devices"], &[], deadline, log)?;
        if listed.contains(&client.serial) {
            log.info(&format!("Device is in fastboot: {}", listed.trim()));
            let output = client.run(&["reboot-bootloader"], &[], deadline, log)?;
            if !output.to_lowercase().contains("okay") {
                return Err(PluginError::infrastructure(format!(
                    "Unable to enter fastboot: {}",
                    output.trim()
                )));
            }
        }
        Ok(())
    }
}

/// The serials `adb devices` lists as online Android devices (`R58M12345\tdevice`), not its
/// header, offline or unauthorized ones.
fn adb_listed(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            (words.len() == 2 && words[1] == "device").then(|| words[0].to_owned())
        })
        .collect()
}

/// A job's `docker:` for the fastboot client, with the device's docker options.
#[derive(Debug, Clone)]
pub struct Docker {
    image: String,
    local: bool,
    devices: Vec<String>,
    global_options: Vec<String>,
    run_options: Vec<String>,
    /// `lava-<job id>`: the start of each container's name.
    prefix: String,
}

impl Docker {
    /// From the action's `docker:` (`image`, `local`, `devices`), the device's
    /// `actions.test.methods.docker` and the job's id; `None` without `docker:`.
    pub fn from_action(
        action: &Value,
        device_methods: Option<&Value>,
        job_id: &str,
    ) -> Result<Option<Self>, PluginError> {
        let Some(params) = action.get("docker") else {
            return Ok(None);
        };
        let image = params
            .get("image")
            .and_then(Value::as_str)
            .filter(|i| !i.is_empty())
            .ok_or_else(|| PluginError::job("docker: needs an image"))?;
        // LAVA drops the None a template renders for an unset option.
        let options = |key: &str| {
            let mut all = Vec::new();
            for item in device_methods
                .and_then(|m| m.get(key))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                all.extend(
                    string_list(Some(item))
                        .into_iter()
                        .filter(|o| !o.is_empty()),
                );
            }
            all
        };
        Ok(Some(Self {
            image: image.to_owned(),
            local: params
                .get("local")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            devices: string_list(params.get("devices")),
            global_options: options("global_options"),
            run_options: options("options"),
            prefix: format!("lava-{job_id}"),
        }))
    }

    /// `docker <global options> <words…>`.
    fn docker(&self, words: &[&str]) -> Vec<String> {
        let mut argv = vec!["docker".to_owned()];
        argv.extend(self.global_options.iter().cloned());
        argv.extend(words.iter().map(|w| (*w).to_owned()));
        argv
    }

    /// LAVA's `prepare`: a local image is inspected (and pulled if that fails), any other
    /// pulled.
    pub fn prepare(&self, deadline: Instant, log: &Log) -> Result<(), PluginError> {
        if self.local {
            let format = format!("Image {} exists locally", self.image);
            let inspect = self.docker(&["image", "inspect", "--format", &format, &self.image]);
            match run_program_output("docker", &inspect, deadline, log) {
                Ok(_) => return Ok(()),
                Err(_) => log.info(&format!(
                    "Unable to inspect docker image '{}'; pulling it",
                    self.image
                )),
            }
        }
        run_program_output(
            "docker",
            &self.docker(&["pull", &self.image]),
            deadline,
            log,
        )
        .map(drop)
        .map_err(|e| {
            PluginError::infrastructure(format!("docker pull {}: {}", self.image, e.message()))
        })
    }

    /// One command in a fresh container, as LAVA's `DockerContainer` runs it.
    fn run(
        &self,
        argv: &[String],
        files: &[&str],
        deadline: Instant,
        log: &Log,
    ) -> Result<String, PluginError> {
        let name = container_name(&self.prefix);
        let mut start = self.docker(&["run"]);
        start.extend(self.run_options.iter().cloned());
        start.extend([
            "--detach".to_owned(),
            "--rm".to_owned(),
            "--init".to_owned(),
        ]);
        start.push(format!("--name={name}"));
        start.extend(self.devices.iter().map(|d| format!("--device={d}")));
        for file in files {
            start.push(format!(
                "--mount=type=bind,source={file},destination={file}"
            ));
        }
        start.extend([
            self.image.clone(),
            "sleep".to_owned(),
            "infinity".to_owned(),
        ]);
        run_program_output("docker", &start, deadline, log)?;
        let result = self.wait(&name, deadline).and_then(|()| {
            let mut exec = self.docker(&["exec", &name]);
            exec.extend(argv.iter().cloned());
            run_program_output("docker", &exec, deadline, log)
        });
        let stop = run_program_output("docker", &self.docker(&["stop", &name]), deadline, log);
        let output = result?;
        stop?;
        Ok(output)
    }

    /// Waits for the container to exist (`docker inspect`), backing off as LAVA does, but
    /// for at most 30 s: a container whose `sleep infinity` could not start is gone at once.
    fn wait(&self, name: &str, deadline: Instant) -> Result<(), PluginError> {
        let mut delay = Duration::from_millis(250);
        let deadline = deadline.min(Instant::now() + Duration::from_secs(30));
        loop {
            let inspect = std::process::Command::new("docker")
                .args(&self.global_options)
                .args(["inspect", "--format=.", name])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            if inspect.is_ok_and(|s| s.success()) {
                return Ok(());
            }
            if Instant::now() + delay > deadline {
                return Err(PluginError::infrastructure(format!(
                    "the docker container {name} did not start, or exited at once (does its \
                     image have `sleep`?)"
                )));
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

/// A container name no other command of this or another job uses.
fn container_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-fastboot-{}-{}-{nanos:08x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
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

    #[test]
    fn adb_lists_online_devices_only() {
        let output = "* daemon started successfully\nList of devices attached\n127.0.0.1:5555\tdevice\nR58M\toffline\nX1\tunauthorized\n\n";
        assert_eq!(adb_listed(output), ["127.0.0.1:5555"]);
    }

    #[test]
    fn an_adb_serial_must_be_set_as_lavas_validation_says() {
        let message =
            |v: Option<&Value>| RebootIntoFastboot::new(v).unwrap_err().message().to_owned();
        assert_eq!(message(None), "device adb serial number missing");
        assert_eq!(
            message(Some(&Value::from("0000000000"))),
            "device adb serial number unset"
        );
        assert!(RebootIntoFastboot::new(Some(&Value::from("127.0.0.1:5555"))).is_ok());
    }
}
