//! The template engine: LAVA device-type templates and device dictionaries, on minijinja.
//!
//! Configured to render exactly as LAVA's Jinja2 does (trim_blocks, no autoescape, lenient
//! undefined, insertion-ordered dict literals, Python-style `.get()`/`.items()`, LAVA's three
//! filters, no `debug` global) and sandboxed: templates load only from the configured
//! directories, and rendering runs on a fuel budget so a looping template fails instead of
//! hanging the master; the master renders in a child process whose memory is bounded
//! ([`isolated`]). Only this module imports minijinja; it returns plain text, JSON values
//! or [`TemplateError`]s that name the template and line.

mod engine;
mod error;
mod filters;
mod format;
mod isolated;
mod search;
mod source;

pub use engine::{extends_target, Rendered, TemplateEngine, DEFAULT_FUEL};
pub use error::TemplateError;
pub use isolated::{serve as serve_isolated, this_program, Isolation};
pub use search::{SearchPath, TemplateFile};
