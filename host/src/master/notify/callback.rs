//! One callback request, as LAVA's `NotificationCallback.invoke_callback` makes it: `GET`
//! with nothing but the URL and the token header, or `POST` of the job's data as JSON or
//! form-encoded; the token (a remote artifact token's value, else the literal text) raw in
//! the `header:` it names (`Authorization` by default); any 2xx is delivered.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

use super::payload::urlencoded;

/// A callback ready to send.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The URL, placeholders substituted.
    pub url: &'a str,
    /// `GET` or `POST`.
    pub method: &'a str,
    /// `json` or `urlencoded`.
    pub content_type: &'a str,
    /// The header and the token's value, if the callback names a token.
    pub auth: Option<(&'a str, &'a str)>,
    /// The job's data (ignored for `GET`, as LAVA).
    pub data: &'a Value,
}

/// How a request went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Delivered(u16),
    /// A failure that may mend (no answer, a timeout, 5xx, 408, 429): try again later.
    Retry(Option<u16>, String),
    /// A failure that will not (another 4xx, a URL or header that cannot be sent).
    GiveUp(Option<u16>, String),
}

/// Whether `name` may be an HTTP header name (RFC 9110 token).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A shell-style pattern (`*`, `?`) matched against a host name, as LAVA's
/// `CALLBACK_ALLOWED_HOSTS` are with `fnmatch`.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    fn matches(p: &[u8], h: &[u8]) -> bool {
        match (p.first(), h.first()) {
            (None, None) => true,
            (Some(b'*'), _) => matches(&p[1..], h) || (!h.is_empty() && matches(p, &h[1..])),
            (Some(b'?'), Some(_)) => matches(&p[1..], &h[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => matches(&p[1..], &h[1..]),
            _ => false,
        }
    }
    // Host names are short; patterns with many stars stay cheap at that length.
    host.len() <= 255 && matches(pattern.as_bytes(), host.as_bytes())
}

/// The URL's host, when it is an `http`/`https` URL.
pub fn http_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host_port.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Addresses a job may not make the master call unless the admin lists their host: the
/// master's own machine (its API, and the pdudaemon and ser2net a lab runs beside it, whose
/// plain GETs switch power) and link-local ones (cloud metadata services).
fn is_internal(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_unspecified() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Resolves as the system does, leaving out internal addresses unless allowed: used for the
/// connection itself (and every redirect), so a name that resolves differently the second
/// time cannot reach them either.
struct GuardedResolver {
    allow_internal: bool,
}

impl GuardedResolver {
    fn addresses(&self, netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        let all: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
        if self.allow_internal {
            return Ok(all);
        }
        let kept: Vec<SocketAddr> = all
            .iter()
            .copied()
            .filter(|a| !is_internal(a.ip()))
            .collect();
        if kept.is_empty() && !all.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{netloc} is the master's own machine or a link-local address; list its \
                     host in notifications.callback_allowed_hosts to allow callbacks there"
                ),
            ));
        }
        Ok(kept)
    }
}

impl ureq::Resolver for GuardedResolver {
    fn resolve(&self, netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        self.addresses(netloc)
    }
}

/// The `host:port` a URL connects to.
fn netloc(url: &str, host: &str) -> String {
    let https = url.starts_with("https://");
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let port = match host_port.rsplit_once(']') {
        Some((_, after)) => after.strip_prefix(':'),
        None => host_port.rsplit_once(':').map(|(_, p)| p),
    }
    .and_then(|p| p.parse::<u16>().ok())
    .unwrap_or(if https { 443 } else { 80 });
    match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    }
}

/// Sends one callback.
pub fn send(request: &Request<'_>, timeout: Duration, allowed_hosts: &[String]) -> Outcome {
    let Some(host) = http_host(request.url) else {
        return Outcome::GiveUp(
            None,
            format!("{:?} is not an http:// or https:// URL", request.url),
        );
    };
    let listed = allowed_hosts.iter().any(|p| host_matches(p, &host));
    if !allowed_hosts.is_empty() && !listed {
        return Outcome::GiveUp(
            None,
            format!(
                "callback URL host '{host}' is not in the master's \
                 notifications.callback_allowed_hosts"
            ),
        );
    }
    let resolver = GuardedResolver {
        allow_internal: listed,
    };
    // Checked first for a clear, final answer; the connection resolves through it again.
    if let Err(e) = resolver.addresses(&netloc(request.url, &host)) {
        return match e.kind() {
            std::io::ErrorKind::PermissionDenied => Outcome::GiveUp(None, e.to_string()),
            _ => Outcome::Retry(None, format!("cannot resolve {host}: {e}")),
        };
    }
    let agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        .resolver(resolver)
        .redirects(5)
        .user_agent(concat!("basalt/", env!("CARGO_PKG_VERSION")))
        .build();
    let mut call = match request.method {
        "POST" => agent.post(request.url),
        _ => agent.get(request.url),
    };
    if let Some((header, token)) = request.auth {
        if !is_header_name(header) || token.contains(['\r', '\n']) {
            return Outcome::GiveUp(
                None,
                format!("the callback's header {header:?} or its token cannot be sent in HTTP"),
            );
        }
        call = call.set(header, token);
    }
    let result = match request.method {
        "POST" if request.content_type == "json" => call
            .set("Content-Type", "application/json")
            .send_string(&crate::master::events::python_json(request.data)),
        "POST" => call
            .set("Content-Type", "application/x-www-form-urlencoded")
            .send_string(&urlencoded(request.data)),
        _ => call.call(),
    };
    match result {
        Ok(response) => Outcome::Delivered(response.status()),
        Err(ureq::Error::Status(code, response)) => {
            let reason = format!("{code} {} for url: {}", response.status_text(), request.url);
            if code >= 500 || code == 408 || code == 429 {
                Outcome::Retry(Some(code), reason)
            } else {
                Outcome::GiveUp(Some(code), reason)
            }
        }
        Err(ureq::Error::Transport(transport)) => Outcome::Retry(None, transport.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_as_fnmatch() {
        assert!(host_matches("*.example.com", "ci.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches("127.0.0.?", "127.0.0.1"));
        assert!(!host_matches("ci", "evil"));
    }

    #[test]
    fn the_masters_own_machine_is_refused_unless_listed() {
        let data = Value::Null;
        let request = Request {
            url: "http://127.0.0.1:9/callback",
            method: "GET",
            content_type: "urlencoded",
            auth: None,
            data: &data,
        };
        let refused = send(&request, Duration::from_secs(1), &[]);
        assert!(
            matches!(&refused, Outcome::GiveUp(None, e) if e.contains("callback_allowed_hosts")),
            "{refused:?}"
        );
        let metadata = Request {
            url: "http://[::ffff:169.254.169.254]/latest/meta-data",
            ..request.clone()
        };
        assert!(matches!(
            send(&metadata, Duration::from_secs(1), &[]),
            Outcome::GiveUp(None, _)
        ));
        // Listed, it is tried (and nothing listens on port 9).
        let tried = send(&request, Duration::from_secs(1), &["127.0.0.1".into()]);
        assert!(matches!(tried, Outcome::Retry(None, _)), "{tried:?}");
        assert_eq!(netloc("https://h.example/x", "h.example"), "h.example:443");
        assert_eq!(netloc("http://[::1]:8080/", "::1"), "[::1]:8080");
    }

    #[test]
    fn the_host_is_read_from_http_urls_only() {
        assert_eq!(
            http_host("https://u:p@CI.example.com:8443/x?y").as_deref(),
            Some("ci.example.com")
        );
        assert_eq!(http_host("http://[::1]:80/").as_deref(), Some("::1"));
        assert_eq!(http_host("file:///etc/passwd"), None);
        assert_eq!(http_host("http:///x"), None);
    }
}
