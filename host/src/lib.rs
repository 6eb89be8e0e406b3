//! Basalt's runtime: everything behind the `basalt` binary.
//!
//! See `ARCHITECTURE.md` at the repository root for the map. The binary (`main.rs`) only
//! parses flags and calls [`cli::run`]; everything it does is reachable from here so tests
//! and tools can use it as a library.

#![deny(missing_docs)]

pub mod cli;
pub mod console;
pub mod data;
pub mod device;
pub mod device_drivers;
pub mod dispatcher;
pub mod failure;
pub mod job;
pub mod job_processes;
pub mod joblog;
pub mod master;
pub mod pipeline;
pub mod plugins;
pub mod private_file;
pub mod scheduler;
pub mod slave;
pub mod store;
pub mod template;
pub mod transport;
pub mod xmlrpc;
pub mod yaml11;
