//! AWS credentials and Signature Version 4, for Bedrock requests (the
//! `aws-sigv4` auth scheme) and S3 uploads (`--upload-results`).
//!
//! Credentials are resolved as AWS's own tools do: the flags, else
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, else
//! a profile of `~/.aws/credentials` (`AWS_SHARED_CREDENTIALS_FILE`) and
//! `~/.aws/config` (`AWS_CONFIG_FILE`). Signing is AWS's `aws-sigv4` crate,
//! checked against AWS's published examples below.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::bail;

/// A non-empty environment variable.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// AWS credentials; the secret never prints.
#[derive(Clone)]
pub struct Credentials {
    key_id: String,
    secret: String,
    session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Credentials from their parts.
    pub fn new(key_id: &str, secret: &str, session_token: Option<&str>) -> Self {
        Credentials {
            key_id: key_id.to_string(),
            secret: secret.to_string(),
            session_token: session_token.map(str::to_string),
        }
    }

    /// AWS's documentation example key (not a real one), for tests.
    #[cfg(test)]
    pub fn example() -> Self {
        Credentials {
            key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }
}

/// The flags a caller has for credentials and region.
#[derive(Debug, Clone, Default)]
pub struct AwsFlags {
    /// Access key ID.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token.
    pub session_token: Option<String>,
    /// Profile of the shared files.
    pub profile: Option<String>,
    /// Region.
    pub region: Option<String>,
}

/// Credentials and region from `flags`, the environment or a profile.
/// `what` names the feature and `prefix` its flags (`--aws`,
/// `--storage-aws`) in messages. Secrets are registered for redaction.
pub fn resolve(
    flags: &AwsFlags,
    what: &str,
    prefix: &str,
) -> anyhow::Result<(Credentials, String)> {
    let profile = flags.profile.clone().or_else(|| env("AWS_PROFILE"));
    let from_profile = || -> anyhow::Result<Option<ProfileValues>> {
        read_profile(profile.as_deref().unwrap_or("default"), profile.is_some())
    };
    let key_id = flags
        .access_key_id
        .clone()
        .or_else(|| env("AWS_ACCESS_KEY_ID"));
    let secret = flags
        .secret_access_key
        .clone()
        .or_else(|| env("AWS_SECRET_ACCESS_KEY"));
    let mut profile_values = None;
    let credentials = match (key_id, secret) {
        (Some(key_id), Some(secret)) => Credentials {
            key_id,
            secret,
            session_token: flags
                .session_token
                .clone()
                .or_else(|| env("AWS_SESSION_TOKEN")),
        },
        (Some(_), None) | (None, Some(_)) => bail!(
            "{what}: AWS needs both an access key ID and a secret access key \
             ({prefix}-access-key-id / {prefix}-secret-access-key, or AWS_ACCESS_KEY_ID / \
             AWS_SECRET_ACCESS_KEY); only one is set"
        ),
        (None, None) => {
            profile_values = from_profile()?;
            match profile_values.as_ref().and_then(|p| p.credentials.clone()) {
                Some(c) => c,
                None => bail!(
                    "{what}: no AWS credentials: pass {prefix}-access-key-id and \
                     {prefix}-secret-access-key, set AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY, or name a profile of ~/.aws/credentials with \
                     {prefix}-profile"
                ),
            }
        }
    };
    crate::plugin::register_secret(&credentials.secret);
    if let Some(t) = &credentials.session_token {
        crate::plugin::register_secret(t);
    }
    let region = match flags
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
    {
        Some(r) => r,
        None => {
            if profile_values.is_none() {
                profile_values = from_profile().ok().flatten();
            }
            profile_values
                .and_then(|p| p.region)
                .unwrap_or_else(|| "us-east-1".to_string())
        }
    };
    Ok((credentials, region))
}

/// What a profile of the shared AWS files holds.
struct ProfileValues {
    credentials: Option<Credentials>,
    region: Option<String>,
}

/// `[name]` of `~/.aws/credentials` (or `AWS_SHARED_CREDENTIALS_FILE`) and
/// `[profile name]` / `[default]` of `~/.aws/config` (or `AWS_CONFIG_FILE`).
/// A profile named explicitly must exist.
fn read_profile(name: &str, explicit: bool) -> anyhow::Result<Option<ProfileValues>> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let creds_file = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials")));
    let config_file = env("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".aws/config")));
    let creds = creds_file
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| ini_section(&t, name));
    let config_section = if name == "default" {
        "default".to_string()
    } else {
        format!("profile {name}")
    };
    let config = config_file
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| ini_section(&t, &config_section));
    if creds.is_none() && config.is_none() {
        if explicit {
            bail!(
                "AWS profile '{name}' is not in {} or {}",
                creds_file
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                config_file
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
        }
        return Ok(None);
    }
    let get = |k: &str| {
        creds
            .as_ref()
            .and_then(|s| s.iter().find(|(key, _)| key == k))
            .or_else(|| {
                config
                    .as_ref()
                    .and_then(|s| s.iter().find(|(key, _)| key == k))
            })
            .map(|(_, v)| v.clone())
    };
    let credentials = match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(key_id), Some(secret)) => Some(Credentials {
            key_id,
            secret,
            session_token: get("aws_session_token"),
        }),
        _ => None,
    };
    Ok(Some(ProfileValues {
        credentials,
        region: get("region"),
    }))
}

/// The `key = value` pairs of section `[name]` of an INI file (AWS and OCI
/// config files), keys lower-cased; `None` when the section is absent.
pub(crate) fn ini_section(text: &str, name: &str) -> Option<Vec<(String, String)>> {
    let mut inside = false;
    let mut found = None::<Vec<(String, String)>>;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = section.trim() == name;
            if inside && found.is_none() {
                found = Some(Vec::new());
            }
            continue;
        }
        if inside
            && let Some((k, v)) = line.split_once('=')
            && let Some(f) = found.as_mut()
        {
            f.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    found
}

/// `host[:port]` as sent in the Host header.
pub fn host_header(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// Which SigV4 flavour to sign with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// S3: the path encoded once, not normalized, `x-amz-content-sha256`.
    S3,
    /// Any other service by its signing name (e.g. `bedrock`): the path's
    /// segments encoded again in the canonical request, as botocore does.
    Named(String),
}

/// The body a signature covers.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// The bytes themselves (hashed here).
    Bytes(&'a [u8]),
    /// Their SHA-256, lower-case hex (a body hashed elsewhere).
    Sha256(&'a str),
}

/// Signs a request; returns the headers to add (`x-amz-date`,
/// `authorization`, and `x-amz-security-token` / `x-amz-content-sha256`
/// when they apply). `url` is already percent-encoded; `headers` are the
/// ones sent (with `host`).
#[allow(clippy::too_many_arguments)]
pub fn sign(
    service: Service,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Payload<'_>,
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> anyhow::Result<Vec<(String, String)>> {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(
        &credentials.key_id,
        &credentials.secret,
        credentials.session_token.clone(),
        None,
        "genai-bench",
    )
    .into();
    let mut settings = SigningSettings::default();
    let name = match &service {
        Service::S3 => {
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            "s3"
        }
        Service::Named(n) => n.as_str(),
    };
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(name)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| anyhow::anyhow!("SigV4 parameters: {e}"))?
        .into();
    let body = match body {
        Payload::Bytes(b) => SignableBody::Bytes(b),
        Payload::Sha256(h) => SignableBody::Precomputed(h.to_string()),
    };
    let request = SignableRequest::new(method, url, headers.iter().copied(), body)
        .map_err(|e| anyhow::anyhow!("SigV4: {e}"))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| anyhow::anyhow!("SigV4: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at_2013_05_24() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600)
    }

    /// `sign` for S3 with AWS's example key, region and time.
    fn example_signed(
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<(String, String)> {
        sign(
            Service::S3,
            method,
            url,
            headers,
            Payload::Bytes(body),
            &Credentials::example(),
            "us-east-1",
            at_2013_05_24(),
        )
        .unwrap()
    }

    fn authorization(signed: &[(String, String)]) -> &str {
        signed
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str())
            .expect("an authorization header")
    }

    /// AWS S3 API reference, "Signature Calculations for the Authorization
    /// Header", example GET Object.
    #[test]
    fn sigv4_matches_aws_published_get_object_example() {
        let signed = example_signed(
            "GET",
            "https://examplebucket.s3.amazonaws.com/test.txt",
            &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("range", "bytes=0-9"),
            ],
            b"",
        );
        assert_eq!(
            authorization(&signed),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// Same page, example PUT Object (a key with `$`, percent-encoded once).
    #[test]
    fn sigv4_matches_aws_published_put_object_example() {
        let signed = example_signed(
            "PUT",
            "https://examplebucket.s3.amazonaws.com/test%24file.text",
            &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("date", "Fri, 24 May 2013 00:00:00 GMT"),
                ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ],
            b"Welcome to Amazon S3.",
        );
        assert_eq!(
            authorization(&signed),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, \
             Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
        assert!(signed.iter().any(|(k, v)| k == "x-amz-content-sha256"
            && v == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"));
    }

    /// AWS's SigV4 test suite, `get-vanilla` (service `service`, key
    /// AKIDEXAMPLE, 2015-08-30T12:36:00Z): the non-S3 flavour.
    #[test]
    fn sigv4_matches_aws_test_suite_get_vanilla() {
        let creds = Credentials {
            key_id: "AKIDEXAMPLE".into(),
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let signed = sign(
            Service::Named("service".into()),
            "GET",
            "https://example.amazonaws.com/",
            &[("host", "example.amazonaws.com")],
            Payload::Bytes(b""),
            &creds,
            "us-east-1",
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160),
        )
        .unwrap();
        assert_eq!(
            authorization(&signed),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn profiles_are_read_from_ini_sections() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key=B\n\n[other]\n\
                    aws_access_key_id=C\n";
        let d = ini_section(text, "default").unwrap();
        assert_eq!(
            d,
            vec![
                ("aws_access_key_id".to_string(), "A".to_string()),
                ("aws_secret_access_key".to_string(), "B".to_string()),
            ]
        );
        assert!(ini_section(text, "missing").is_none());
    }
}
