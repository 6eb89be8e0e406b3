//! XML-RPC, the wire format of LAVA's API (`/RPC2`), which lavacli and years of lab scripts
//! speak: method calls in, responses and faults out.
//!
//! [`parse_call`] reads a `<methodCall>` into a [`MethodCall`] of [`Value`]s; [`response`] and
//! [`fault`] write the answers. Input is untrusted: sizes are bounded by the HTTP layer,
//! nesting here ([`MAX_DEPTH`]), and every malformed document is an [`XmlRpcError`] that
//! says where, never a panic. The types follow the specification plus the `<nil/>` and
//! `<i8>` extensions Python's client and server use (LAVA marshals with `allow_none`).

mod parse;
mod write;

pub use parse::parse_call;
pub use write::{fault, response};

/// How deeply arrays and structs may nest in a request.
pub const MAX_DEPTH: usize = 64;

/// An XML-RPC value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `<int>`, `<i4>` or `<i8>`.
    Int(i64),
    /// `<boolean>`.
    Bool(bool),
    /// `<string>`, or a bare `<value>` text.
    String(String),
    /// `<double>`.
    Double(f64),
    /// `<dateTime.iso8601>`, kept as its text (`20261125T10:00:00`).
    DateTime(String),
    /// `<base64>`: files (logs, dictionaries, templates) travel this way.
    Base64(Vec<u8>),
    /// `<array>`.
    Array(Vec<Value>),
    /// `<struct>`, members in order.
    Struct(Vec<(String, Value)>),
    /// `<nil/>`: Python's `None`.
    Nil,
}

impl Value {
    /// A struct from `(name, value)` pairs.
    pub fn structure<K: Into<String>>(members: impl IntoIterator<Item = (K, Value)>) -> Self {
        Self::Struct(members.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A string, or nil for `None`.
    pub fn opt_string(text: Option<impl Into<String>>) -> Self {
        text.map_or(Self::Nil, |t| Self::String(t.into()))
    }

    /// The text of a string, or of base64 bytes that are UTF-8 (clients send files either way).
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::String(text) => Some(text),
            Self::Base64(bytes) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }

    /// The member `name` of a struct.
    pub fn member(&self, name: &str) -> Option<&Value> {
        match self {
            Self::Struct(members) => members.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Int(_) => "int",
            Self::Bool(_) => "boolean",
            Self::String(_) => "string",
            Self::Double(_) => "double",
            Self::DateTime(_) => "dateTime.iso8601",
            Self::Base64(_) => "base64",
            Self::Array(_) => "array",
            Self::Struct(_) => "struct",
            Self::Nil => "nil",
        }
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Self::String(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Self::String(text)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<u64> for Value {
    fn from(value: u64) -> Self {
        Self::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

/// A parsed `<methodCall>`.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    /// `<methodName>`, e.g. `scheduler.jobs.submit`.
    pub name: String,
    /// The `<params>`, in order.
    pub params: Vec<Value>,
}

/// Why a request is not a valid method call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum XmlRpcError {
    /// Not well-formed XML.
    #[error("not well-formed XML at byte {position}: {message}")]
    Xml {
        /// Byte offset in the request body.
        position: u64,
        /// The parser's complaint.
        message: String,
    },
    /// Well-formed XML that is not a method call.
    #[error("not an XML-RPC method call: {0}")]
    Shape(String),
}

#[cfg(test)]
mod tests;
