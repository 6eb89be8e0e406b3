//! What can go wrong rendering a device dictionary, each saying where.

use std::path::PathBuf;

/// A template or device dictionary problem.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template does not exist on the search path.
    #[error("template '{name}' not found (searched: {})", searched_list(searched))]
    NotFound {
        /// The name looked for.
        name: String,
        /// The directories searched.
        searched: Vec<PathBuf>,
    },
    /// A name or link that would leave the template directories.
    #[error("template '{name}' refused: {reason}")]
    Escape {
        /// The name asked for.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// A template does not parse.
    #[error("{template}:{line}: syntax error: {message}")]
    Syntax {
        /// The template.
        template: String,
        /// The line.
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// A template parses but fails while rendering.
    #[error("{}: {message}", location(template, *line))]
    Render {
        /// The template, when known.
        template: Option<String>,
        /// The line, when known.
        line: Option<usize>,
        /// What went wrong.
        message: String,
    },
    /// Rendering used up its budget: the template loops or is absurdly large.
    #[error(
        "{}: rendering stopped after exhausting its budget of {fuel} steps (a loop that does not \
         end, or a template far larger than any device needs)",
        location(template, *line)
    )]
    OutOfFuel {
        /// The template, when known.
        template: Option<String>,
        /// The line, when known.
        line: Option<usize>,
        /// The budget.
        fuel: u64,
    },
    /// Rendering produced more text than any device configuration has.
    #[error(
        "{template}: rendering stopped after {limit} bytes of output (LAVA's largest device \
         configurations are a few tens of kilobytes)"
    )]
    TooLarge {
        /// The template.
        template: String,
        /// The bound.
        limit: usize,
    },
    /// A source whose lines or line count the template engine cannot number (its positions
    /// are 16-bit).
    #[error(
        "{template}: line {line} {what}; templates and dictionaries keep to {limit} lines of \
         at most {limit} bytes"
    )]
    Unnumberable {
        /// The template.
        template: String,
        /// The first line at fault.
        line: usize,
        /// What is wrong with it.
        what: &'static str,
        /// The bound.
        limit: usize,
    },
    /// A chain the template engine would parse one stack frame per link, longer than any
    /// template needs.
    #[error(
        "{template}:{line}: more than {limit} {what}; the template engine parses each one a \
         level deeper, and no template needs that many"
    )]
    TooDeep {
        /// The template.
        template: String,
        /// The line where the chain passes the limit.
        line: usize,
        /// What is chained.
        what: &'static str,
        /// The bound.
        limit: usize,
    },
    /// What the isolated renderer ([`super::Isolation`]) reported, as it said it.
    #[error("{0}")]
    Isolated(String),
    /// The rendered text is not valid YAML.
    #[error(
        "{template}: the rendered configuration is not valid YAML at line {line}, column \
         {column}: {message} (rendered line: {text:?})"
    )]
    Yaml {
        /// The dictionary rendered.
        template: String,
        /// Line in the rendered text.
        line: usize,
        /// Column in the rendered text.
        column: usize,
        /// What the parser said.
        message: String,
        /// The offending rendered line.
        text: String,
    },
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn searched_list(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "no directories".into();
    }
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn location(template: &Option<String>, line: Option<usize>) -> String {
    match (template, line) {
        (Some(t), Some(l)) => format!("{t}:{l}"),
        (Some(t), None) => t.clone(),
        (None, _) => "template".into(),
    }
}
