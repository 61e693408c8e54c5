//! The host's rules for what a plugin-built request may contain.
//!
//! The host owns the destination and the credentials: a plugin chooses only a
//! path under `--api-base`, ordinary headers and a body.

use url::Url;

/// Headers that carry credentials, or that the host's request signatures
/// (SigV4, OCI) set and sign: only the host writes them (the plugin's `auth`
/// names the scheme). A plugin's own `date` would be sent next to the
/// signed one.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "date",
    "x-date",
    "x-content-sha256",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// Headers that route or frame the request, or that proxies act on: the
/// host's alone, and never a place for the key either.
const ROUTING_HEADERS: &[&str] = &[
    "host",
    "cookie",
    "cookie2",
    "set-cookie",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "expect",
    "forwarded",
    "via",
    "max-forwards",
    "x-real-ip",
    "x-http-method-override",
    "x-original-url",
    "x-rewrite-url",
];

/// Prefixes of header names with the same role as [`ROUTING_HEADERS`].
const ROUTING_PREFIXES: &[&str] = &["proxy-", "x-forwarded-", "sec-"];

fn is_routing_header(lower: &str) -> bool {
    ROUTING_HEADERS.contains(&lower) || ROUTING_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// Check one plugin header; `auth_header` is the header the host will use
/// for the key, which the plugin may not set either.
pub fn check_header(name: &str, value: &str, auth_header: Option<&str>) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(format!(
            "header name {:?} is not a valid HTTP token",
            truncate(name, 80)
        ));
    }
    let lower = name.to_ascii_lowercase();
    if CREDENTIAL_HEADERS.contains(&lower.as_str())
        || is_routing_header(&lower)
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

/// Check the header a plugin's `info` asks the key to be written into: a
/// valid name, and not one that routes or frames the request (the key must
/// not end up where a proxy or the server would act on it as routing).
pub fn check_auth_header(name: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    if name.is_empty() || name.len() > 64 || !name.bytes().all(is_token_byte) {
        return Err(format!(
            "auth header name {:?} is not a valid HTTP token of at most 64 characters",
            truncate(name, 80)
        ));
    }
    if is_routing_header(&lower) || lower == "content-type" {
        return Err(format!(
            "auth header '{name}' routes or frames the request; the key may go only into a credential header such as Authorization or X-Api-Key"
        ));
    }
    Ok(())
}

/// The HTTP methods the host sends for a plugin, exactly as spelled here.
const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Check a plugin's method: one of [`METHODS`], upper case.
pub fn check_method(method: &str) -> Result<reqwest::Method, String> {
    if !METHODS.contains(&method) {
        return Err(format!(
            "build-request returned method {:?}; the host sends only {}",
            truncate(method, 20),
            METHODS.join(", ")
        ));
    }
    reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())
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
    // Encoded separators, dots and NULs decode into traversal on servers and
    // proxies that decode before routing; no API path needs them.
    for enc in ["%2f", "%5c", "%2e", "%00"] {
        if before_query.contains(enc) {
            return Err(format!(
                "path {:?} has an encoded '/', '\\', '.' or NUL ({enc}); plugins may only add a plain path under --api-base",
                truncate(path, 80)
            ));
        }
    }
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
            "/..%2f..%2fadmin",
            "/v1%2f..%2fadmin",
            "/v1/%5c..%5cadmin",
            "/v1/%2e%2e%2fadmin",
            "/v1/x%00",
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
        for h in [
            "Expect",
            "X-Forwarded-Host",
            "Via",
            "X-Api-Key",
            "Sec-Fetch-Mode",
            // Signed by the host (OCI, SigV4): a second value would be sent.
            "Date",
            "x-content-sha256",
            "X-Amz-Date",
        ] {
            assert!(check_header(h, "x", None).is_err(), "{h}");
        }
    }

    #[test]
    fn the_key_goes_only_into_a_credential_header() {
        for ok in ["Authorization", "X-Api-Key", "api-key", "X-Custom-Token"] {
            assert!(check_auth_header(ok).is_ok(), "{ok}");
        }
        for bad in [
            "Expect",
            "X-Forwarded-Host",
            "Host",
            "Cookie",
            "Proxy-Authorization",
            "Content-Length",
            "Content-Type",
            "Bad Name",
            "",
        ] {
            assert!(check_auth_header(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_upper_case_ordinary_methods_are_sent() {
        for ok in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            assert!(check_method(ok).is_ok(), "{ok}");
        }
        for bad in [
            "post", "CONNECT", "connect", "TRACE", "trace", "FROB", "", "POST ",
        ] {
            assert!(check_method(bad).is_err(), "{bad:?}");
        }
    }
}
