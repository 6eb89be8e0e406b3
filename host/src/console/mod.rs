//! Driving a board's console: waiting for patterns in its output and sending input.
//!
//! Pattern matching lives here, in the host, so every boot plugin gets the same matcher and
//! the same logging of board output.

mod boot_host;
mod expect;

pub use boot_host::{BootActions, ConsoleBootHost, TftpDir};
pub use expect::{ExpectError, Expecter};
