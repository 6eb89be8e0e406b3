//! Words for `/bin/sh`, quoted as Python's `shlex.quote` does (LAVA writes its scripts and
//! command lines with it), so what Basalt runs reads the same as what lava-run runs.

/// `word` as one shell word: unchanged when it holds only characters no shell treats
/// specially, in single quotes otherwise.
pub fn quote(word: &str) -> String {
    if word.is_empty() {
        return "''".into();
    }
    if word
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || "@%+=:,./-".contains(c))
    {
        return word.to_owned();
    }
    single_quoted(word)
}

/// `text` in single quotes whatever it holds (a quote inside ends them, is escaped, and
/// starts them again): how LAVA writes values into scripts.
pub fn single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r#"'"'"'"#))
}

/// Whether `name` can be a shell variable: a letter or `_`, then letters, digits and `_`.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An argument vector as one command line for `sh -c` that runs exactly those words.
pub fn join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_as_shlex_quote_does() {
        assert_eq!(quote("plain/path-1.img"), "plain/path-1.img");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("two words"), "'two words'");
        assert_eq!(quote("it's"), r#"'it'"'"'s'"#);
        assert_eq!(join(&["echo", "a b", "$HOME"]), "echo 'a b' '$HOME'");
    }
}
