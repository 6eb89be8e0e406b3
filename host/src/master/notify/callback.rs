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
    host.len() <= 255 && pattern.len() <= 255 && matches(pattern.as_bytes(), host.as_bytes())
}

/// A callback URL as the HTTP client will read it (the `url` crate, which ureq uses, so the
/// host checked is the host connected to): `http`/`https`, a host, no credentials.
pub fn parse_url(text: &str) -> Result<url::Url, String> {
    // `\` ends the authority for url but not for a naive reader; nothing legitimate has one.
    if text.contains('\\') {
        return Err(format!("{text:?} contains a backslash"));
    }
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?} is not an http:// or https:// URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{} carries credentials in the URL; give them as the callback's token",
            redacted(&url)
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} names no host"));
    }
    Ok(url)
}

/// The URL without user name or password, for logs and records.
pub fn redacted(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// The host of a URL for matching: lower case, IPv6 without brackets.
fn host_of(url: &url::Url) -> String {
    match url.host() {
        Some(url::Host::Ipv6(v6)) => v6.to_string(),
        Some(host) => host.to_string().to_ascii_lowercase(),
        None => String::new(),
    }
}

/// Addresses a job may not make the master call unless the admin lists their host: the
/// master's own machine, by any of its addresses (its API, and the pdudaemon and ser2net a
/// lab runs beside it, whose plain GETs switch power), `0.0.0.0/8`, and link-local ones
/// (cloud metadata services).
fn is_internal(ip: IpAddr, own: &[IpAddr]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    own.contains(&ip)
        || match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4.octets()[0] == 0 || v4.is_link_local(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        }
}

/// Every address of this machine's interfaces, read each time (they change).
fn own_addresses() -> Vec<IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    interfaces
        .filter_map(|i| i.address)
        .filter_map(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect()
}

/// Resolves as the system does, for the connection itself and every redirect, deciding per
/// host: a host the admin's list does not match is refused (when there is a list), and
/// internal addresses are left out unless the host is listed — so neither a name that
/// resolves differently the second time nor a redirect reaches what the check refused.
struct GuardedResolver {
    allowed_hosts: Vec<String>,
}

impl GuardedResolver {
    fn addresses(&self, netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        let refused = |why: String| std::io::Error::new(std::io::ErrorKind::PermissionDenied, why);
        let host = netloc
            .rsplit_once(':')
            .map_or(netloc, |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let listed = self.allowed_hosts.iter().any(|p| host_matches(p, &host));
        if !self.allowed_hosts.is_empty() && !listed {
            return Err(refused(format!(
                "callback URL host '{host}' is not in the master's \
                 notifications.callback_allowed_hosts"
            )));
        }
        let all: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
        if listed {
            return Ok(all);
        }
        let own = own_addresses();
        let kept: Vec<SocketAddr> = all
            .iter()
            .copied()
            .filter(|a| !is_internal(a.ip(), &own))
            .collect();
        if kept.is_empty() && !all.is_empty() {
            return Err(refused(format!(
                "{netloc} is the master's own machine or a link-local address; list its host \
                 in notifications.callback_allowed_hosts to allow callbacks there"
            )));
        }
        Ok(kept)
    }
}

impl ureq::Resolver for GuardedResolver {
    fn resolve(&self, netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        self.addresses(netloc)
    }
}

/// Sends one callback.
pub fn send(request: &Request<'_>, timeout: Duration, allowed_hosts: &[String]) -> Outcome {
    let url = match parse_url(request.url) {
        Ok(url) => url,
        Err(e) => return Outcome::GiveUp(None, e),
    };
    let host = host_of(&url);
    let port = url.port_or_known_default().unwrap_or(80);
    let netloc = match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    };
    let resolver = GuardedResolver {
        allowed_hosts: allowed_hosts.to_vec(),
    };
    // Checked first for a clear, final answer; the connection resolves through it again.
    if let Err(e) = resolver.addresses(&netloc) {
        return match e.kind() {
            std::io::ErrorKind::PermissionDenied => Outcome::GiveUp(None, e.to_string()),
            _ => Outcome::Retry(None, format!("cannot resolve {host}: {e}")),
        };
    }
    // Per socket operation, as Python's requests applies LAVA's CALLBACK_TIMEOUT: a large
    // body is not cut off at a whole-request deadline.
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(timeout)
        .timeout_read(timeout)
        .timeout_write(timeout)
        .resolver(resolver)
        .redirects(5)
        .user_agent(concat!("basalt/", env!("CARGO_PKG_VERSION")))
        .build();
    let shown = redacted(&url);
    let mut call = match request.method {
        "POST" => agent.post(url.as_str()),
        _ => agent.get(url.as_str()),
    };
    if let Some((header, token)) = request.auth {
        if !is_header_name(header)
            || !token
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
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
        Ok(response) if (200..300).contains(&response.status()) => {
            Outcome::Delivered(response.status())
        }
        Ok(response) => Outcome::GiveUp(
            Some(response.status()),
            format!(
                "{} {} for url: {shown} (a redirect that was not followed)",
                response.status(),
                response.status_text()
            ),
        ),
        Err(ureq::Error::Status(code, response)) => {
            let reason = format!("{code} {} for url: {shown}", response.status_text());
            if code >= 500 || code == 408 || code == 429 {
                Outcome::Retry(Some(code), reason)
            } else {
                Outcome::GiveUp(Some(code), reason)
            }
        }
        Err(ureq::Error::Transport(transport)) => {
            use ureq::ErrorKind::{BadHeader, InsecureRequestHttpsOnly, InvalidUrl, UnknownScheme};
            let message = transport.to_string();
            match transport.kind() {
                InvalidUrl | UnknownScheme | BadHeader | InsecureRequestHttpsOnly => {
                    Outcome::GiveUp(None, message)
                }
                // The resolver's refusal of a redirect target.
                _ if message.contains("callback_allowed_hosts") => Outcome::GiveUp(None, message),
                _ => Outcome::Retry(None, message),
            }
        }
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
    fn urls_are_read_as_the_client_reads_them() {
        assert!(parse_url("https://CI.example.com:8443/x?y").is_ok());
        for bad in [
            "file:///etc/passwd",
            "http://",
            "http://127.0.0.1:16421\\@ci.example.com/power",
            "http://user:pass@ci.example.com/",
            "gopher://ci.example.com/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    fn get(url: &str) -> Outcome {
        let data = Value::Null;
        let request = Request {
            url,
            method: "GET",
            content_type: "urlencoded",
            auth: None,
            data: &data,
        };
        send(&request, Duration::from_secs(1), &[])
    }

    #[test]
    fn the_masters_own_machine_is_refused_unless_listed() {
        for url in [
            "http://127.0.0.1:9/callback",
            "http://0.1.2.3/",
            "http://[::ffff:169.254.169.254]/latest/meta-data",
            "http://localhost:9/",
        ] {
            let refused = get(url);
            assert!(
                matches!(&refused, Outcome::GiveUp(None, e) if e.contains("callback_allowed_hosts")),
                "{url}: {refused:?}"
            );
        }
        // Each of this machine's own addresses, not only loopback.
        for ip in own_addresses() {
            let url = match ip {
                IpAddr::V4(v4) => format!("http://{v4}:9/"),
                IpAddr::V6(v6) => format!("http://[{v6}]:9/"),
            };
            assert!(matches!(get(&url), Outcome::GiveUp(None, _)), "{url}");
        }
        // Listed, it is tried (and nothing listens on port 9).
        let data = Value::Null;
        let request = Request {
            url: "http://127.0.0.1:9/callback",
            method: "GET",
            content_type: "urlencoded",
            auth: None,
            data: &data,
        };
        let tried = send(&request, Duration::from_secs(1), &["127.0.0.1".into()]);
        assert!(matches!(tried, Outcome::Retry(None, _)), "{tried:?}");
        // A host the list does not name is refused whatever it resolves to.
        let other = send(&request, Duration::from_secs(1), &["ci.example.com".into()]);
        assert!(matches!(other, Outcome::GiveUp(None, _)), "{other:?}");
    }
}
