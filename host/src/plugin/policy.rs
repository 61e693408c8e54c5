//! The host's rules for what a plugin-built request may contain.
//!
//! The host owns the destination and the credentials: a plugin chooses only a
//! path under `--api-base`, ordinary headers and a body.

use url::Url;

/// Headers a plugin may never set: credentials, routing and framing belong
/// to the host.
const DENIED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "host",
    "cookie",
    "cookie2",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "expect",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-api-key",
    "api-key",
];

/// Check one plugin header; `auth_header` is the header the host will use
/// for the key, which the plugin may not set either.
pub fn check_header(name: &str, value: &str, auth_header: Option<&str>) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(format!("header name {name:?} is not a valid HTTP token"));
    }
    let lower = name.to_ascii_lowercase();
    if DENIED_HEADERS.contains(&lower.as_str())
        || lower.starts_with("proxy-")
        || auth_header.is_some_and(|a| a.eq_ignore_ascii_case(name))
    {
        return Err(format!(
            "header '{name}' is reserved for the host (credentials, routing and framing are set by genai-bench)"
        ));
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(format!(
            "header '{name}' has a control character in its value"
        ));
    }
    Ok(())
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Resolve a plugin path against the base URL, refusing anything that could
/// leave the base URL's scheme, host and port.
pub fn resolve_url(base: &Url, path: &str) -> Result<Url, String> {
    if path.is_empty() {
        return Ok(base.clone());
    }
    if !path.starts_with('/') {
        return Err(format!(
            "path {:?} must be empty or start with '/': plugins give a path under --api-base, never a URL",
            truncate(path, 80)
        ));
    }
    if path.starts_with("//") || path.starts_with("/\\") {
        return Err(format!(
            "path {:?} would name another host; plugins may only add a path under --api-base",
            truncate(path, 80)
        ));
    }
    if path
        .bytes()
        .any(|b| b <= 0x20 || b == 0x7f || b == b'#' || b == b'\\')
    {
        return Err(format!(
            "path {:?} contains whitespace, control characters, '\\' or '#'",
            truncate(path, 80)
        ));
    }
    let lower = path.to_ascii_lowercase();
    let before_query = lower.split('?').next().unwrap_or("");
    if before_query
        .split('/')
        .any(|seg| matches!(seg, ".." | "." | "%2e%2e" | "%2e." | ".%2e" | "%2e"))
    {
        return Err(format!(
            "path {:?} has a '.' or '..' segment; plugins may only add a path under --api-base",
            truncate(path, 80)
        ));
    }
    let (p, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, base.query()),
    };
    let mut url = base.clone();
    let joined = format!("{}{}", base.path().trim_end_matches('/'), p);
    url.set_path(&joined);
    url.set_query(query);
    if url.scheme() != base.scheme()
        || url.host_str() != base.host_str()
        || url.port_or_known_default() != base.port_or_known_default()
    {
        return Err(format!(
            "path {:?} leaves the base URL's host",
            truncate(path, 80)
        ));
    }
    Ok(url)
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn empty_path_is_the_base_url_verbatim() {
        let b = base("https://model-abc.api.baseten.co/environments/production/predict");
        assert_eq!(resolve_url(&b, "").unwrap().as_str(), b.as_str());
    }

    #[test]
    fn path_is_appended_under_the_base_path() {
        let b = base("http://127.0.0.1:8000/prefix/");
        assert_eq!(
            resolve_url(&b, "/v1/chat/completions").unwrap().as_str(),
            "http://127.0.0.1:8000/prefix/v1/chat/completions"
        );
        let b = base("http://127.0.0.1:8000");
        assert_eq!(
            resolve_url(&b, "/v1/x?y=1").unwrap().as_str(),
            "http://127.0.0.1:8000/v1/x?y=1"
        );
    }

    #[test]
    fn absolute_and_scheme_relative_paths_are_refused() {
        let b = base("http://127.0.0.1:8000");
        for p in [
            "http://evil.example/x",
            "//evil.example/x",
            "/\\evil.example",
            "evil",
            "/a b",
            "/a#frag",
            "/@evil.example",
            "/../../admin",
            "/v1/%2E%2E/x",
            "/./x",
        ] {
            let r = resolve_url(&b, p);
            if let Ok(u) = &r {
                // "/@evil.example" is a legal path segment; it must stay on our host.
                assert_eq!(u.host_str(), Some("127.0.0.1"), "{p}");
            }
            if p != "/@evil.example" {
                assert!(r.is_err(), "{p} accepted");
            }
        }
    }

    #[test]
    fn reserved_headers_are_refused() {
        for h in [
            "Authorization",
            "HOST",
            "cookie",
            "Proxy-Authorization",
            "proxy-foo",
            "Transfer-Encoding",
        ] {
            assert!(check_header(h, "x", None).is_err(), "{h}");
        }
        assert!(check_header("X-Custom-Key", "x", Some("x-custom-key")).is_err());
        assert!(check_header("Content-Type", "application/json", None).is_ok());
        assert!(check_header("X-Ok", "a\r\nInjected: 1", None).is_err());
        assert!(check_header("Bad Name", "x", None).is_err());
    }
}
