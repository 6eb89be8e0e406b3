//! The configured minijinja environment and the render entry points.

use std::sync::LazyLock;

use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, ErrorKind, TemplateSource, UndefinedBehavior};
use regex::Regex;

use super::filters::{qemu_guest_fs_interface, shlex_quote, yaml_quote};
use super::format::lava_formatter;
use super::{source, SearchPath, TemplateError};

/// The rendering budget (minijinja fuel). The largest LAVA device configuration uses about
/// 30 000; this leaves two orders of magnitude of headroom and still stops a runaway loop
/// within a fraction of a second.
pub const DEFAULT_FUEL: u64 = 5_000_000;

/// Marks loader errors that come from the sandbox, to map them back to
/// [`TemplateError::Escape`].
const SANDBOX_MARK: &str = "sandbox: ";

/// A rendered device configuration: the text and the parsed data.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The YAML text the templates produced.
    pub text: String,
    /// That text read with PyYAML's rules.
    pub config: serde_json::Value,
}

/// Renders device dictionaries and device-type templates from a search path.
///
/// Templates are cached after first use and re-read when their file changes or when a file
/// earlier on the search path starts shadowing them, so dropping a template into a directory
/// takes effect at the next render, without a restart.
pub struct TemplateEngine {
    env: Environment<'static>,
    search: SearchPath,
    /// minijinja's syntax as configured, which [`source::check`] tokenises with.
    syntax: SyntaxConfig,
    fuel: u64,
    /// Render dictionaries in a bounded child process (the master's engines).
    isolation: Option<super::Isolation>,
}

static EXTENDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"\{%-?\s*extends\s+['"]([^'"]+)['"]\s*-?%\}"#).expect("valid regex")
});

/// The template a device dictionary extends (`beaglebone-black.jinja2`), read without
/// rendering, as LAVA's `get_extends` does.
pub fn extends_target(source: &str) -> Option<String> {
    EXTENDS
        .captures(source)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_owned())
}

impl TemplateEngine {
    /// An engine loading templates from `search` (dictionary directories first, then
    /// device-type directories, admin ones before the built-in one).
    pub fn new(search: SearchPath) -> Self {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .build()
            .expect("the default delimiters are valid");
        env.set_syntax(syntax.clone());
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(lava_formatter);
        // Jinja2 has no `debug` global; templates use `debug|default(...)`.
        env.remove_global("debug");
        env.add_filter("shlex_quote", shlex_quote);
        env.add_filter("yaml_quote", yaml_quote);
        env.add_filter("qemu_guest_fs_interface", qemu_guest_fs_interface);
        env.set_fuel(Some(DEFAULT_FUEL));
        let loader_path = search.clone();
        let loader_syntax = syntax.clone();
        env.set_loader(move |name| {
            let file = loader_path.resolve(name).map_err(|e| {
                minijinja::Error::new(ErrorKind::InvalidOperation, format!("{SANDBOX_MARK}{e}"))
            })?;
            let Some(file) = file else {
                return Ok(None);
            };
            let source = std::fs::read_to_string(&file.path).map_err(|e| {
                minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("cannot read {}: {e}", file.path.display()),
                )
            })?;
            source::check(name, &source, &loader_syntax).map_err(|e| {
                minijinja::Error::new(ErrorKind::InvalidOperation, format!("{SANDBOX_MARK}{e}"))
            })?;
            let recheck = loader_path.clone();
            let name = name.to_owned();
            Ok(Some(TemplateSource::new(source).with_uptodate_check(
                move || matches!(recheck.resolve(&name), Ok(Some(now)) if now.same_version(&file)),
            )))
        });
        Self {
            env,
            search,
            syntax,
            fuel: DEFAULT_FUEL,
            isolation: None,
        }
    }

    /// Renders dictionaries given as text in a child of `isolation`'s program, whose memory
    /// is bounded (see [`super::isolated`]).
    pub fn isolated(mut self, isolation: super::Isolation) -> Self {
        self.isolation = Some(isolation);
        self
    }

    /// Sets the rendering budget.
    pub fn with_fuel(mut self, fuel: u64) -> Self {
        self.env.set_fuel(Some(fuel));
        self.fuel = fuel;
        self
    }

    /// The search path.
    pub fn search_path(&self) -> &SearchPath {
        &self.search
    }

    /// Renders a template found on the search path.
    pub fn render_text(
        &self,
        name: &str,
        context: &serde_json::Value,
    ) -> Result<String, TemplateError> {
        let template = self.env.get_template(name).map_err(|e| self.convert(e))?;
        self.bounded_render(name, &template, context)
    }

    /// Renders into a buffer that refuses to grow past [`MAX_OUTPUT`]: the fuel bounds the
    /// steps, this the text (a loop of `~` can double a string at every step).
    fn bounded_render(
        &self,
        name: &str,
        template: &minijinja::Template<'_, '_>,
        context: &serde_json::Value,
    ) -> Result<String, TemplateError> {
        let mut out = BoundedBuffer::default();
        let rendered = template
            .render_captured_to(
                minijinja::Value::from(minijinja::value::Serde(context)),
                &mut out,
            )
            .map(drop);
        if out.overflowed {
            return Err(TemplateError::TooLarge {
                template: name.to_owned(),
                limit: MAX_OUTPUT,
            });
        }
        rendered.map_err(|e| self.convert(e))?;
        String::from_utf8(out.bytes).map_err(|_| TemplateError::TooLarge {
            template: name.to_owned(),
            limit: MAX_OUTPUT,
        })
    }

    /// Renders a dictionary given as text (as the master holds them), named `name` in errors.
    pub fn render_source_text(
        &self,
        name: &str,
        source: &str,
        context: &serde_json::Value,
    ) -> Result<String, TemplateError> {
        source::check(name, source, &self.syntax)?;
        if let Some(isolation) = &self.isolation {
            if let Some(rendered) =
                super::isolated::render(isolation, &self.search, name, source, context, self.fuel)
            {
                return rendered;
            }
        }
        let template = self
            .env
            .template_from_named_str(name, source)
            .map_err(|e| self.convert(e))?;
        self.bounded_render(name, &template, context)
    }

    /// Renders a template on the search path and parses the result as a configuration.
    pub fn render(
        &self,
        name: &str,
        context: &serde_json::Value,
    ) -> Result<Rendered, TemplateError> {
        let text = self.render_text(name, context)?;
        parse_rendered(name, text)
    }

    /// Renders a dictionary given as text and parses the result.
    pub fn render_source(
        &self,
        name: &str,
        source: &str,
        context: &serde_json::Value,
    ) -> Result<Rendered, TemplateError> {
        let text = self.render_source_text(name, source, context)?;
        parse_rendered(name, text)
    }

    /// Parses a template (and everything it extends or includes) without rendering it.
    pub fn check(&self, name: &str) -> Result<(), TemplateError> {
        self.env
            .get_template(name)
            .map(|_| ())
            .map_err(|e| self.convert(e))
    }

    /// Parses template text given directly (an upload through the API) without rendering it.
    pub fn check_source(&self, name: &str, source: &str) -> Result<(), TemplateError> {
        source::check(name, source, &self.syntax)?;
        self.env
            .template_from_named_str(name, source)
            .map(|_| ())
            .map_err(|e| self.convert(e))
    }

    fn convert(&self, error: minijinja::Error) -> TemplateError {
        let template = error.name().map(str::to_owned);
        let line = error.line();
        let mut chain: Vec<String> = Vec::new();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(e) = cause {
            if let Some(mj) = e.downcast_ref::<minijinja::Error>() {
                chain.push(mj.detail().unwrap_or("").to_owned());
            }
            cause = e.source();
        }
        if let Some(refusal) = chain.iter().find_map(|d| d.strip_prefix(SANDBOX_MARK)) {
            return TemplateError::Escape {
                name: template.unwrap_or_default(),
                reason: refusal.to_owned(),
            };
        }
        match error.kind() {
            ErrorKind::SyntaxError => TemplateError::Syntax {
                template: template.unwrap_or_else(|| "template".into()),
                line: line.unwrap_or(0),
                message: error.detail().unwrap_or("invalid syntax").to_owned(),
            },
            ErrorKind::TemplateNotFound => TemplateError::NotFound {
                name: quoted_name(error.detail().unwrap_or(""))
                    .unwrap_or_else(|| error.to_string()),
                searched: self.search.dirs().to_vec(),
            },
            ErrorKind::OutOfFuel => TemplateError::OutOfFuel {
                template,
                line,
                fuel: self.fuel,
            },
            _ => {
                let mut message = error.kind().to_string();
                for detail in chain.iter().filter(|d| !d.is_empty()) {
                    message.push_str(": ");
                    message.push_str(detail);
                }
                TemplateError::Render {
                    template,
                    line,
                    message,
                }
            }
        }
    }
}

/// The most text one rendering may produce.
pub const MAX_OUTPUT: usize = 8 << 20;

/// A buffer that fails a write past [`MAX_OUTPUT`].
#[derive(Default)]
struct BoundedBuffer {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for BoundedBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + data.len() > MAX_OUTPUT {
            self.overflowed = true;
            return Err(std::io::Error::other("the rendering is too large"));
        }
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The first `"quoted"` name in a message.
fn quoted_name(detail: &str) -> Option<String> {
    let start = detail.find(['"', '\''])?;
    let quote = detail[start..].chars().next()?;
    let rest = &detail[start + 1..];
    let end = rest.find(quote)?;
    Some(rest[..end].to_owned())
}

fn parse_rendered(name: &str, text: String) -> Result<Rendered, TemplateError> {
    match crate::yaml11::from_str(&text) {
        Ok(config) => Ok(Rendered { text, config }),
        Err(e) => Err(TemplateError::Yaml {
            template: name.to_owned(),
            line: e.line,
            column: e.column,
            text: text
                .lines()
                .nth(e.line.saturating_sub(1))
                .unwrap_or("")
                .to_owned(),
            message: e.message,
        }),
    }
}
