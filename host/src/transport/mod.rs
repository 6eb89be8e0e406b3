//! The master/slave wire protocol: LAVA's ZMQ control protocol, version 3.
//!
//! This module will own the ZMQ sockets (issue 5); what is here now is the message layer,
//! which needs none: [`ControlMessage`] is every control message frame for frame, with
//! [`ControlMessage::decode`] turning received frames into it (or a [`FrameError`] saying
//! what was wrong, so a daemon logs and drops the message instead of crashing) and
//! [`ControlMessage::encode`] producing exactly what LAVA's 2019-era peers send.

mod protocol;

pub use protocol::{ControlMessage, FrameError, JobFiles, PROTOCOL_VERSION};
