//! What a template's text must keep to before minijinja parses it.
//!
//! minijinja counts lines and columns in 16 bits, and its parser guards most of its recursion
//! with a depth limit but not all of it: a chain of unary operators (`- - - x`, `not not x`),
//! of inline `else`s (`a if b else c if d else …`), of `{% elif %}`s, and parentheses around
//! assignment targets (`{% set ((a)) = … %}`) each recurse once per link, with no bound. A few
//! tens of kilobytes of such a chain overflow the stack and abort the whole process (the master
//! renders dictionaries that arrive over its APIs). Real templates chain two or three; the
//! source is tokenised with minijinja's own lexer (so the check sees exactly what the parser
//! will) and refused past [`MAX_CHAIN`], naming the line.

use minijinja::machinery::{tokenize, Token};
use minijinja::syntax::SyntaxConfig;

use super::TemplateError;

/// The most lines, and the longest line, minijinja can give a position in: it counts lines
/// and columns in 16 bits, and overflows past them (a panic in debug builds).
pub(super) const MAX_LINES: usize = u16::MAX as usize;

/// The longest chain of one construct minijinja parses by unguarded recursion (its own guard
/// stops other nesting at 150 levels).
pub(super) const MAX_CHAIN: usize = 64;

/// The most tokens one `{{ … }}` or `{% … %}` may hold. Chains the parser builds in loops
/// (`a + a + …`, `x|f|f…`, `a.b.b…`) still make an expression tree as deep as they are long,
/// which minijinja's compiler walks by recursion; every recursion within a tag, guarded or
/// not, is bounded by its length. LAVA's templates have at most 242.
pub(super) const MAX_TAG_TOKENS: usize = 1024;

/// Refuses a source minijinja could not number or could not parse without overflowing its
/// stack, naming the first line at fault.
pub(super) fn check(name: &str, source: &str, syntax: &SyntaxConfig) -> Result<(), TemplateError> {
    check_numberable(name, source)?;
    check_chains(name, source, syntax)
}

fn check_numberable(name: &str, source: &str) -> Result<(), TemplateError> {
    let fault = |line, what| TemplateError::Unnumberable {
        template: name.to_owned(),
        line,
        what,
        limit: MAX_LINES,
    };
    let mut lines = 0;
    for (index, line) in source.split('\n').enumerate() {
        lines = index + 1;
        if line.len() >= MAX_LINES {
            return Err(fault(lines, "is too long"));
        }
    }
    if lines >= MAX_LINES {
        return Err(fault(MAX_LINES, "is one too many"));
    }
    Ok(())
}

/// The constructs counted, each by what the parser recurses on.
#[derive(Default)]
struct Chains {
    /// Unary `-` and `not` in a row.
    unary: usize,
    /// `else` tokens in the current tag (inline if-expressions).
    inline_else: usize,
    /// Open parentheses in the current tag.
    parens: usize,
    /// Tokens in the current tag.
    tag_tokens: usize,
    /// Is the next token the first of a `{% … %}` tag?
    statement_start: bool,
    /// For each open `{% if %}`, its `elif`s so far.
    elifs: Vec<usize>,
}

fn check_chains(name: &str, source: &str, syntax: &SyntaxConfig) -> Result<(), TemplateError> {
    let mut chains = Chains::default();
    for token in tokenize(source, false, syntax.clone()) {
        // A source the lexer refuses gets the parser's own error, with its position.
        let Ok((token, span)) = token else {
            return Ok(());
        };
        let fault = |what: &'static str| TemplateError::TooDeep {
            template: name.to_owned(),
            line: usize::from(span.start_line),
            what,
            limit: MAX_CHAIN,
        };
        let first_in_statement = std::mem::take(&mut chains.statement_start);
        match &token {
            Token::Minus | Token::Ident("not") => chains.unary += 1,
            _ => chains.unary = 0,
        }
        match token {
            Token::VariableStart => {
                (chains.inline_else, chains.parens, chains.tag_tokens) = (0, 0, 0);
            }
            Token::BlockStart => {
                (chains.inline_else, chains.parens, chains.tag_tokens) = (0, 0, 0);
                chains.statement_start = true;
            }
            Token::TemplateData(_) | Token::VariableEnd | Token::BlockEnd => {}
            _ => {
                chains.tag_tokens += 1;
                if chains.tag_tokens > MAX_TAG_TOKENS {
                    return Err(TemplateError::TooDeep {
                        template: name.to_owned(),
                        line: usize::from(span.start_line),
                        what: "tokens in one tag",
                        limit: MAX_TAG_TOKENS,
                    });
                }
            }
        }
        match token {
            Token::Ident("if") if first_in_statement => chains.elifs.push(0),
            // Each `elif` recurses, and so does each `if` inside one: what bounds the stack
            // is the sum over every open `if`.
            Token::Ident("elif") if first_in_statement => {
                if let Some(elifs) = chains.elifs.last_mut() {
                    *elifs += 1;
                }
                if chains.elifs.iter().sum::<usize>() > MAX_CHAIN {
                    return Err(fault("`{% elif %}`s in one `{% if %}`"));
                }
            }
            Token::Ident("endif") if first_in_statement => {
                chains.elifs.pop();
            }
            Token::Ident("else") if !first_in_statement => {
                chains.inline_else += 1;
                if chains.inline_else > MAX_CHAIN {
                    return Err(fault("inline `else`s in one tag"));
                }
            }
            Token::ParenOpen => {
                chains.parens += 1;
                if chains.parens > MAX_CHAIN {
                    return Err(fault("nested parentheses"));
                }
            }
            Token::ParenClose => chains.parens = chains.parens.saturating_sub(1),
            _ => {}
        }
        if chains.unary > MAX_CHAIN {
            return Err(fault("`-` or `not` operators in a row"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax() -> SyntaxConfig {
        SyntaxConfig::builder()
            .trim_blocks(true)
            .build()
            .expect("the default delimiters are valid")
    }

    fn refusal(source: &str) -> Option<String> {
        check("t.jinja2", source, &syntax())
            .err()
            .map(|e| e.to_string())
    }

    fn repeat(unit: &str, times: usize) -> String {
        unit.repeat(times)
    }

    #[test]
    fn chains_up_to_the_limit_pass_and_one_more_is_refused_with_its_line() {
        let cases: [(&str, &str, &str, &str); 5] = [
            ("{{ ", "- ", "1 }}", "`-` or `not`"),
            ("{{ ", "not ", "x }}", "`-` or `not`"),
            ("{{ 1 ", "if x else 1 ", "}}", "inline `else`"),
            ("{% set ", "(", "a", "parentheses"),
            ("{% if a %}", "{% elif b %}", "{% endif %}", "`{% elif %}`"),
        ];
        for (head, link, tail, what) in cases {
            let at_limit = format!("\n{head}{}{tail}", repeat(link, MAX_CHAIN));
            assert_eq!(refusal(&at_limit), None, "{at_limit}");
            let beyond = format!("\n{head}{}{tail}", repeat(link, MAX_CHAIN + 1));
            let message = refusal(&beyond).expect("refused");
            assert!(message.contains(what), "{message}");
            assert!(message.starts_with("t.jinja2:2:"), "{message}");
        }
    }

    #[test]
    fn long_tags_are_refused_whatever_they_chain() {
        for link in ["x + ", "x or ", "x|f|", "a.b", "a[0]", "f()"] {
            let long = format!("{{{{ x{} }}}}", link.repeat(MAX_TAG_TOKENS));
            let message = refusal(&long).expect("refused");
            assert!(message.contains("tokens in one tag"), "{link}: {message}");
        }
        let fits = format!("{{{{ x{} }}}}", " + x".repeat(MAX_TAG_TOKENS / 2 - 1));
        assert_eq!(refusal(&fits), None);
    }

    #[test]
    fn text_and_strings_are_not_counted() {
        let dashes = repeat("- ", 10_000);
        assert_eq!(refusal(&format!("{dashes}\n# {dashes}")), None);
        assert_eq!(refusal(&format!("{{{{ '{dashes}' }}}}")), None);
        assert_eq!(refusal(&format!("{{# {dashes} #}}")), None);
    }

    #[test]
    fn elifs_of_nested_ifs_count_for_their_own_if() {
        let inner = repeat("{% if c %}{% elif d %}{% endif %}", 2 * MAX_CHAIN);
        assert_eq!(refusal(&format!("{{% if a %}}{inner}{{% endif %}}")), None);
        let outer = repeat("{% elif b %}{% if c %}{% endif %}", MAX_CHAIN + 1);
        let message = refusal(&format!("{{% if a %}}{outer}{{% endif %}}")).expect("refused");
        assert!(message.contains("`{% elif %}`"), "{message}");
    }

    #[test]
    fn lines_past_sixteen_bits_are_refused() {
        let long = "x".repeat(MAX_LINES);
        assert!(refusal(&long)
            .expect("refused")
            .contains("line 1 is too long"));
        let many = "\n".repeat(MAX_LINES);
        assert!(refusal(&many).expect("refused").contains("one too many"));
    }
}
