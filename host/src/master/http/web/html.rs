//! Building HTML by hand: escaping, the page frame, tables and badges. Every piece of text
//! that comes from the database or a request goes through [`esc`].

use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment for a link (names are letters, digits, `-_.`; anything else is encoded).
pub fn url_part(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A store time (ms since the epoch) as `2026-11-25 10:00:00` UTC, or `-`.
pub fn time(ms: Option<i64>) -> String {
    crate::store::utc_seconds(ms).unwrap_or_else(|| "-".into())
}

/// A state or health as a coloured badge (the CSS picks the colour from the value).
pub fn badge(value: &str) -> String {
    format!("<span class=\"badge {}\">{}</span>", esc(value), esc(value))
}

/// A link.
pub fn link(href: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", esc(href), esc(text))
}

/// A table with a header row; cells are HTML already.
pub fn table(id: &str, header: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\" id=\"{}\">{}</p>", esc(id), esc(empty));
    }
    let mut out = format!("<table id=\"{}\"><thead><tr>", esc(id));
    for cell in header {
        let _ = write!(out, "<th>{}</th>", esc(cell));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A definition list of `(label, HTML value)` pairs.
pub fn facts(pairs: &[(&str, String)]) -> String {
    let mut out = String::from("<dl class=\"facts\">");
    for (label, value) in pairs {
        let _ = write!(out, "<dt>{}</dt><dd>{value}</dd>", esc(label));
    }
    out.push_str("</dl>");
    out
}

/// The whole page around `body`. `refresh` reloads it every so many seconds (lists that
/// change while one looks at them); pages with their own live updates pass `None`.
pub fn page(title: &str, body: &str, refresh: Option<u32>) -> String {
    let refresh = refresh
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
{refresh}
<title>{title} · Basalt</title>
<link rel=\"stylesheet\" href=\"/static/basalt.css\">
</head>
<body>
<header><a class=\"brand\" href=\"/\">Basalt</a>
<nav><a href=\"/\">Lab</a> <a href=\"/jobs\">Jobs</a> <a href=\"/api\">API</a></nav></header>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
",
        title = esc(title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_names_is_shown_not_run() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(url_part("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn times_are_utc_to_the_second() {
        assert_eq!(time(Some(1_795_600_000_123)), "2026-11-25 09:46:40");
        assert_eq!(time(None), "-");
    }
}
