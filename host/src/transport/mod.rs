//! The master/slave wire: LAVA's ZMQ control protocol (version 3) and the sockets that
//! carry it.
//!
//! [`protocol`] is the message layer, which needs no socket: [`ControlMessage`] is every
//! control message frame for frame, with [`ControlMessage::decode`] turning received frames
//! into it (or a [`FrameError`] saying what was wrong, so a daemon logs and drops the message
//! instead of crashing) and [`ControlMessage::encode`] producing exactly what LAVA's 2019-era
//! peers send. [`sockets`], [`curve`] (certificates, the allow-list, the ZAP handler) and [`events`] (the
//! event stream's PUB socket) own libzmq: they are the only code in Basalt that imports `zmq`.

pub mod curve;
mod events;
mod protocol;
mod sockets;

pub use curve::{AllowList, Certificate, CurveError, Sender};
pub use events::EventPublisher;
pub use protocol::{ControlMessage, FrameError, JobFiles, FEATURE_ACKED_LOGS, PROTOCOL_VERSION};
pub use sockets::{
    ClientCurve, Incoming, LogPusher, MasterCurve, MasterSockets, SlaveSocket, TransportError,
    Waker,
};
