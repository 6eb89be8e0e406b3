//! The device configuration: what a rendered device dictionary says about one board.
//!
//! [`DeviceConfig`] is the typed view (unknown keys kept in `extra`, so nothing a template
//! renders is lost); [`validate`] checks the raw data first and reports every problem by
//! path, so an admin sees all that is wrong with a dictionary at once.

mod config;
mod render;
mod validate;

pub use config::{
    ActionSection, Actions, Commands, ConnectionEntry, DeviceConfig, Timeout, Timeouts, UserCommand,
};
pub use render::{device_context, render_device, DeviceName};
pub use validate::{validate, Problem, Severity};
