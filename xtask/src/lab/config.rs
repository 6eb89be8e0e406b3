//! The lab's generated files: ser2net's and pdudaemon's configuration, the PDU's outlet
//! script, the slave's configuration, the two device dictionaries and the worker's
//! dispatcher configuration. Each says what it is, for whoever opens it.

use anyhow::Context;
use std::path::Path;

use super::layout::*;

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// ser2net exports boards B's, C's and G's serial ports (the host ends of their cables) as telnet.
pub fn ser2net(lab: &Layout) -> anyhow::Result<()> {
    let mut text = String::from("%YAML 1.1\n---\n");
    for board in SERIAL_BOARDS {
        text.push_str(&format!(
            "# Board {name}'s console: the host end of its serial cable, as telnet on 127.0.0.1.
connection: &{id}
    accepter: telnet,tcp,127.0.0.1,{port}
    enable: on
    options:
      kickolduser: true
    connector: serialdev,{tty},115200n81,local
",
            name = board.name,
            id = board.name.replace('-', ""),
            port = board.console_port,
            tty = lab.serial_host_end(board.name).display(),
        ));
    }
    write(&lab.etc().join("ser2net.yaml"), &text)
}

/// A path quoted for sh (single quotes; a quote inside becomes '"'"').
fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r#"'"'"'"#))
}

/// pdudaemon with one PDU whose outlets are the lab's power script.
pub fn pdudaemon(lab: &Layout) -> anyhow::Result<()> {
    let script = sh_quote(&lab.dir.join("boards/power.sh"));
    let config = serde_json::json!({
        "daemon": {
            "hostname": "127.0.0.1",
            "port": PDU_PORT,
            "logging_level": "INFO",
            "listener": "http",
        },
        "pdus": {
            "lab-pdu": {
                "driver": "localcmdline",
                "cmd_on": format!("{script} on %s"),
                "cmd_off": format!("{script} off %s"),
            }
        }
    });
    write(
        &lab.etc().join("pdudaemon.conf"),
        &format!("{}\n", serde_json::to_string_pretty(&config)?),
    )
}

/// The PDU's outlets: outlet 1 powers board B, a qemu running u-boot from its firmware;
/// outlet 2 board C, a qemu PC that boots from its NIC's iPXE ROM; outlet 6 board G, a qemu
/// PC whose iPXE ROM network-boots GRUB. Each has its serial port on the board end of its
/// cable and a network whose TFTP server is the worker's TFTP root.
pub fn power_script(lab: &Layout) -> anyhow::Result<()> {
    let path = lab.dir.join("boards/power.sh");
    let tftp = sh_quote(&lab.tftp_root());
    write(
        &path,
        &format!(
            r#"#!/bin/sh
# The lab PDU's outlets, run by pdudaemon's localcmdline driver: power.sh on|off OUTLET.
# Outlet {BOARD_B_OUTLET} is board {BOARD_B}, outlet {BOARD_C_OUTLET} board {BOARD_C}: "on" starts
# its machine, "off" pulls the plug. Outlets {BOARD_D_OUTLET} and {BOARD_E_OUTLET} are the simulated
# boards {BOARD_D} and {BOARD_E}, whose power is a file their simulator watches; outlet
# {BOARD_F_OUTLET} the simulated fastboot board {BOARD_F}, outlet {BOARD_G_OUTLET} board {BOARD_G}.
set -u
action=$1
outlet=$2
bootfile=
case "$outlet" in
    {BOARD_B_OUTLET}) board={board_b}
       machine="-bios /usr/lib/u-boot/qemu-x86/u-boot.rom -display none" ;;
    {BOARD_C_OUTLET}) board={board_c}
       machine="-nographic -boot n" ;;
    {BOARD_G_OUTLET}) board={board_g}
       # The DHCP answer names GRUB's PXE image. The cable is on the second UART: iPXE's
       # console owns the first and, polled during GRUB's PXE calls, would eat its input.
       machine="-nographic -boot n -serial null"
       bootfile=",bootfile={GRUB_DIR}/core.0" ;;
{simulated}    {BOARD_F_OUTLET}) # Powered or reset, board F waits in fastboot mode, its console silent;
       # its fastboot device powers the console on when told to boot.
       echo off > {board_f_power}
       echo "$(date +%T.%N) outlet $outlet $action" >> {board_f}/power.log
       exit 0 ;;
    *) echo "no board on outlet $outlet" >&2; exit 1 ;;
esac
pidfile=$board/qemu.pid
off() {{
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    # A qemu that exited on its own leaves its pid behind; never signal a reused one.
    if ! tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "$board/ttyS0-board"; then
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "-$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "-$pid" 2>/dev/null
    rm -f "$pidfile"
}}
echo "$(date +%T.%N) outlet $outlet $action" >> "$board/power.log"
case "$action" in
    on)
        off
        # $machine is word-split on purpose: it is this script's own option list.
        setsid qemu-system-x86_64 $machine -m 512 -monitor none \
            -netdev user,id=n0,tftp={tftp}$bootfile -device e1000,netdev=n0 \
            -chardev serial,id=s0,path="$board/ttyS0-board" -serial chardev:s0 \
            >> "$board/qemu.log" 2>&1 < /dev/null &
        echo $! > "$pidfile"
        ;;
    off) off ;;
    *) echo "unknown action $action" >&2; exit 1 ;;
esac
"#,
            board_b = sh_quote(&lab.board(BOARD_B)),
            board_c = sh_quote(&lab.board(BOARD_C)),
            board_g = sh_quote(&lab.board(BOARD_G)),
            simulated = simulated_outlets(lab),
            board_f = sh_quote(&lab.board(BOARD_F)),
            board_f_power = sh_quote(&lab.simulator_state(BOARD_F).join("power")),
        ),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// The power script's cases for the simulated boards: "on" writes a new power-on token into
/// the simulator's power file, "off" switches it off.
fn simulated_outlets(lab: &Layout) -> String {
    SIMULATED_BOARDS
        .iter()
        .map(|board| {
            let power = sh_quote(&lab.simulator_state(board.name).join("power"));
            format!(
                r#"    {outlet}) case "$action" in
           on) echo "on $(date +%s%N)" > {power} ;;
           off) echo off > {power} ;;
           *) echo "unknown action $action" >&2; exit 1 ;;
       esac
       echo "$(date +%T.%N) outlet $outlet $action" >> {dir}/power.log
       exit 0 ;;
"#,
                outlet = board.outlet,
                dir = sh_quote(&lab.board(board.name)),
            )
        })
        .collect()
}

/// Where the lab's CURVE certificates are: `master/`, `WORKER/` (each pair) and `slaves/`
/// (the public certificates the master admits).
pub fn certs_dir(lab: &Layout) -> std::path::PathBuf {
    lab.etc().join("certs")
}

/// New key pairs for the master and the slave, made by `basalt certs generate` at every
/// `lab up`, and the slave's public certificate where the master admits it.
pub fn certificates(lab: &Layout) -> anyhow::Result<()> {
    let certs = certs_dir(lab);
    if certs.exists() {
        std::fs::remove_dir_all(&certs)
            .with_context(|| format!("cannot remove {}", certs.display()))?;
    }
    for name in ["master", WORKER] {
        let status = std::process::Command::new(lab.basalt())
            .args(["certs", "generate", name, "--dir"])
            .arg(certs.join(name))
            .stdout(std::process::Stdio::null())
            .status()
            .context("cannot run basalt certs generate")?;
        anyhow::ensure!(status.success(), "basalt certs generate {name} failed");
    }
    let slaves = certs.join("slaves");
    std::fs::create_dir_all(&slaves)?;
    std::fs::copy(
        certs.join(WORKER).join(format!("{WORKER}.key")),
        slaves.join(format!("{WORKER}.key")),
    )?;
    Ok(())
}

/// The slave's configuration: its TFTP root is the one board B's network serves, and the
/// link is encrypted.
pub fn slave(lab: &Layout) -> anyhow::Result<()> {
    let certs = certs_dir(lab);
    write(
        &lab.etc().join("slave.toml"),
        &format!(
            "# The lab's slave.
master = \"127.0.0.1\"
control_port = {CONTROL_PORT}
log_port = {LOG_PORT}
name = \"{WORKER}\"
state_dir = \"{state}\"
encrypt = true
master_cert = \"{master_cert}\"
slave_cert = \"{slave_cert}\"

[run]
tftp_root = \"{tftp}\"
nfs_root = \"{nfs}\"
",
            state = lab.slave_state().display(),
            tftp = lab.tftp_root().display(),
            nfs = lab.nfs_root().display(),
            master_cert = certs.join("master/master.key").display(),
            slave_cert = certs
                .join(WORKER)
                .join(format!("{WORKER}.key_secret"))
                .display(),
        ),
    )
}

/// The worker's dispatcher configuration on the master: the boards' bootloaders reach the
/// TFTP server at qemu's user-network host address.
pub fn dispatcher(lab: &Layout) -> anyhow::Result<()> {
    write(
        &lab.master_data()
            .join("dispatcher.d")
            .join(WORKER)
            .join("dispatcher.yaml"),
        "# {SERVER_IP} as boards B and C see the TFTP server (qemu's user network).\ndispatcher_ip: 10.0.2.2\n",
    )
}

/// Board A's dictionary: x86_64 qemu without KVM.
pub fn board_a_dictionary(lab: &Layout) -> anyhow::Result<std::path::PathBuf> {
    let path = lab.etc().join(format!("{BOARD_A}.jinja2"));
    write(
        &path,
        "{% extends 'qemu.jinja2' %}
{# No KVM on this machine: qemu emulates (TCG). #}
{% set no_kvm = True %}
{% set memory = 512 %}
",
    )?;
    Ok(path)
}

/// Board B's dictionary: console through ser2net, power through pdudaemon.
pub fn board_b_dictionary(lab: &Layout) -> anyhow::Result<std::path::PathBuf> {
    wired_dictionary(
        lab,
        BOARD_B,
        "qemu-x86-uboot",
        CONSOLE_PORT,
        BOARD_B_OUTLET,
        "{# The kernel needs no network of its own: the initramfs is the whole system. #}
{% set base_ip_args = '' %}
{# Rebuilt ramdisks get a u-boot header, which u-boot's iminfo checks before zboot. #}
{% set uboot_ramdisk_format = 'u-boot' %}
",
    )
}

/// A dictionary for a board wired like board B: console through ser2net's telnet port,
/// power an outlet of the lab's PDU; `settings` are the board's own lines.
fn wired_dictionary(
    lab: &Layout,
    board: &str,
    device_type: &str,
    console_port: u16,
    outlet: u32,
    settings: &str,
) -> anyhow::Result<std::path::PathBuf> {
    let path = lab.etc().join(format!("{board}.jinja2"));
    write(
        &path,
        &format!(
            "{{% extends '{device_type}.jinja2' %}}
{{% set connection_command = 'telnet 127.0.0.1 {console_port}' %}}
{{% set pdu_hostname = 'lab-pdu' %}}
{{% set pdu_port = {outlet} %}}
{{% set pdu_daemon_url = 'http://127.0.0.1:{PDU_PORT}' %}}
{settings}"
        ),
    )?;
    Ok(path)
}

/// Board C's dictionary: LAVA's x86 type booting with iPXE; console through ser2net, power
/// through pdudaemon.
pub fn board_c_dictionary(lab: &Layout) -> anyhow::Result<std::path::PathBuf> {
    wired_dictionary(
        lab,
        BOARD_C,
        "x86",
        CONSOLE_PORT_C,
        BOARD_C_OUTLET,
        "{# qemu's default MAC: iPXE's commands pass it as lava_mac= (without one, LAVA drops the
line that also sets the console). #}
{% set lava_mac = '52:54:00:12:34:56' %}
{% set base_ip_args = '' %}
{# iPXE under qemu's emulation drops characters typed at full speed when the machine is busy
(seen with four jobs on two cores: `${console}` arrived as `console}`); LAVA's x86 type
types at 500 ms per character, this board needs far less. #}
{% set boot_character_delay = 50 %}
",
    )
}

/// Board G's dictionary: LAVA's d2500cc type (PXE GRUB); console through ser2net on the
/// board's second UART, power through pdudaemon.
pub fn board_g_dictionary(lab: &Layout) -> anyhow::Result<std::path::PathBuf> {
    wired_dictionary(
        lab,
        BOARD_G,
        "d2500cc",
        CONSOLE_PORT_G,
        BOARD_G_OUTLET,
        "{# The serial cable is on COM2, where d2500cc's early console already writes. #}
{% set console_device = 'ttyS1' %}
{% set base_ip_args = '' %}
",
    )
}

/// A simulated board's dictionary: its device type, its console the simulated board
/// fetching from the worker's TFTP server, its power a PDU outlet.
pub fn simulated_dictionary(
    lab: &Layout,
    board: &SimulatedBoard,
) -> anyhow::Result<std::path::PathBuf> {
    let path = lab.etc().join(format!("{}.jinja2", board.name));
    write(
        &path,
        &format!(
            "{{% extends '{device_type}.jinja2' %}}
{{% set connection_command = '{simboard} --state {state} --bootloader {bootloader} --tftp-server 127.0.0.1:{TFTP_PORT}' %}}
{{% set pdu_hostname = 'lab-pdu' %}}
{{% set pdu_port = {outlet} %}}
{{% set pdu_daemon_url = 'http://127.0.0.1:{PDU_PORT}' %}}
{{# The simulated board's shell runs on this machine: its tests go below the board's
directory, where it copies what the NFS root holds there. #}}
{{% set lava_test_results_dir = '{dir}/lava-%s' %}}
",
            device_type = board.device_type,
            simboard = lab.bin_dir().join("simboard").display(),
            state = lab.simulator_state(board.name).display(),
            bootloader = board.bootloader,
            outlet = board.outlet,
            dir = lab.board(board.name).display(),
        ),
    )?;
    Ok(path)
}

/// Board F's dictionary: our hi6220-hikey type, its fastboot serial the simulated fastboot
/// device on 127.0.0.1, its console the simulated board, its power a PDU outlet.
pub fn board_f_dictionary(lab: &Layout) -> anyhow::Result<std::path::PathBuf> {
    let path = lab.etc().join(format!("{BOARD_F}.jinja2"));
    write(
        &path,
        &format!(
            "{{% extends 'hi6220-hikey.jinja2' %}}
{{% set fastboot_serial_number = 'tcp:127.0.0.1:{FASTBOOT_PORT}' %}}
{{% set connection_command = '{simboard} --state {state} --hostname hikey' %}}
{{% set pdu_hostname = 'lab-pdu' %}}
{{% set pdu_port = {BOARD_F_OUTLET} %}}
{{% set pdu_daemon_url = 'http://127.0.0.1:{PDU_PORT}' %}}
{{# The simulated board's shell runs on this machine: its tests go below its directory. #}}
{{% set lava_test_results_dir = '{dir}/lava-%s' %}}
",
            simboard = lab.bin_dir().join("simboard").display(),
            state = lab.simulator_state(BOARD_F).display(),
            dir = lab.board(BOARD_F).display(),
        ),
    )?;
    Ok(path)
}
