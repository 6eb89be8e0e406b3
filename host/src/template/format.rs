//! How values are printed into templates.
//!
//! minijinja already prints like Python (`True`, `None`, `['a']`, `{'k': 1}`). One difference
//! is left: an undefined variable inside a list or dict literal prints as `Undefined` in
//! Jinja2 and `undefined` in minijinja, and LAVA templates do this (for example
//! `[{'board_id': fastboot_serial_number}]` with no serial number set). Such values are
//! printed with the undefined parts replaced by the text `Undefined`, so the configuration
//! reads the same as LAVA's.

use minijinja::value::ValueKind;
use minijinja::{escape_formatter, Error, Output, State, Value};

/// How deep literals are searched; device templates nest two or three levels.
const MAX_DEPTH: usize = 32;

/// The formatter installed in the environment.
pub fn lava_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if matches!(value.kind(), ValueKind::Seq | ValueKind::Map) && contains_undefined(value, 0) {
        return escape_formatter(out, state, &replace_undefined(value, 0));
    }
    escape_formatter(out, state, value)
}

fn contains_undefined(value: &Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match value.kind() {
        ValueKind::Undefined => true,
        ValueKind::Seq => value
            .try_iter()
            .is_ok_and(|mut items| items.any(|v| contains_undefined(&v, depth + 1))),
        ValueKind::Map => value.try_iter().is_ok_and(|mut keys| {
            keys.any(|k| {
                value
                    .get_item(&k)
                    .is_ok_and(|v| contains_undefined(&v, depth + 1))
            })
        }),
        _ => false,
    }
}

fn replace_undefined(value: &Value, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return value.clone();
    }
    match value.kind() {
        ValueKind::Undefined => Value::from("Undefined"),
        ValueKind::Seq => match value.try_iter() {
            Ok(items) => Value::from(
                items
                    .map(|v| replace_undefined(&v, depth + 1))
                    .collect::<Vec<_>>(),
            ),
            Err(_) => value.clone(),
        },
        ValueKind::Map => match value.try_iter() {
            Ok(keys) => Value::from_pairs(keys.map(|k| {
                let v = value.get_item(&k).unwrap_or_default();
                (k, replace_undefined(&v, depth + 1))
            })),
            Err(_) => value.clone(),
        },
        _ => value.clone(),
    }
}
