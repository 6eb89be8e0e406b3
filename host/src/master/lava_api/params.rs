//! Reading a method's positional arguments, with Python's defaults for missing ones.

use super::Fault;
use crate::xmlrpc::Value;

/// A method's arguments.
pub struct Params {
    method: String,
    values: Vec<Value>,
}

impl Params {
    /// The arguments `values` of `method`.
    pub fn new(method: &str, values: Vec<Value>) -> Self {
        Self {
            method: method.to_owned(),
            values,
        }
    }

    /// All arguments (for `system.multicall`).
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    fn wrong(&self, index: usize, name: &str, wanted: &str, got: &Value) -> Fault {
        Fault::invalid_params(format!(
            "{}: argument {} ({name}) must be {wanted}, not {}",
            self.method,
            index + 1,
            got.kind()
        ))
    }

    /// Fails when more than `max` arguments were given.
    pub fn at_most(&self, max: usize) -> Result<(), Fault> {
        if self.values.len() > max {
            return Err(Fault::invalid_params(format!(
                "{} takes at most {max} arguments ({} given)",
                self.method,
                self.values.len()
            )));
        }
        Ok(())
    }

    /// A required string (or UTF-8 base64).
    pub fn string(&self, index: usize, name: &str) -> Result<String, Fault> {
        match self.values.get(index) {
            None => Err(Fault::invalid_params(format!(
                "{}: argument {} ({name}) is missing",
                self.method,
                index + 1
            ))),
            Some(value) => value
                .as_text()
                .map(str::to_owned)
                .ok_or_else(|| self.wrong(index, name, "a string", value)),
        }
    }

    /// An optional string: absent and nil are `None`.
    pub fn opt_string(&self, index: usize, name: &str) -> Result<Option<String>, Fault> {
        match self.values.get(index) {
            None | Some(Value::Nil) => Ok(None),
            Some(value) => value
                .as_text()
                .map(|t| Some(t.to_owned()))
                .ok_or_else(|| self.wrong(index, name, "a string", value)),
        }
    }

    /// A boolean with a default (Python's truthiness for ints, as LAVA's server has it).
    pub fn bool_or(&self, index: usize, name: &str, default: bool) -> Result<bool, Fault> {
        match self.values.get(index) {
            None | Some(Value::Nil) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::Int(n)) => Ok(*n != 0),
            Some(value) => Err(self.wrong(index, name, "a boolean", value)),
        }
    }

    /// A required job id (an int, or a string of digits as some scripts send).
    pub fn id(&self, index: usize, name: &str) -> Result<u64, Fault> {
        match self.values.get(index) {
            None => Err(Fault::invalid_params(format!(
                "{}: argument {} ({name}) is missing",
                self.method,
                index + 1
            ))),
            Some(value) => self
                .opt_int(index, name)?
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| self.wrong(index, name, "a job id", value)),
        }
    }

    /// An optional integer: absent and nil are `None`.
    pub fn opt_int(&self, index: usize, name: &str) -> Result<Option<i64>, Fault> {
        match self.values.get(index) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::Int(n)) => Ok(Some(*n)),
            Some(value @ Value::String(text)) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.wrong(index, name, "an integer", value)),
            Some(value) => Err(self.wrong(index, name, "an integer", value)),
        }
    }
}
