//! OCI request signing (the `oci-signature` auth scheme) for the OCI
//! Generative AI backends (`oci-cohere`, `oci-cohere-v2`, `oci-genai`,
//! `oci-openai`).
//!
//! Oracle's signature version 1 (draft-cavage-http-signatures-08): an
//! RSA-SHA256 signature over `date (request-target) host`, plus
//! `content-length content-type x-content-sha256` for requests with a body,
//! sent as `Authorization: Signature version="1",headers=...,keyId=...`.
//! The key comes from the OCI config file as the OCI SDKs and CLI read it
//! (`--config-file`, default `~/.oci/config`, section `--profile`, default
//! `DEFAULT`, whose values other sections inherit). Checked against the
//! signing strings and signatures Oracle's SDKs publish (tests below) and,
//! in `tests/e2e/wire.rs`, against the OCI Python SDK's own signature.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use aws_lc_rs::signature::RsaKeyPair;
use base64::Engine as _;
use sha2::Digest as _;

use crate::cloud::{CloudAuthArgs, OciAuth};

/// The headers signed for a request without a body.
const GENERIC_HEADERS: &str = "date (request-target) host";
/// ... and for one with a body (POST, PUT, PATCH).
const BODY_HEADERS: &str =
    "date (request-target) host content-length content-type x-content-sha256";

/// An OCI API signing key and the key ID it signs as; the key never prints.
pub struct Signer {
    key_id: String,
    key: RsaKeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A security token's key ID is a secret; a user's is not, but both
        // print the same way.
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

/// What a body contributes to the signature.
#[derive(Debug, Clone)]
pub struct BodyDigest {
    /// `content-length`.
    pub length: usize,
    /// `content-type`.
    pub content_type: String,
    /// `x-content-sha256`: base64 of the body's SHA-256.
    pub sha256: String,
}

impl BodyDigest {
    /// The digest of `body` sent as `content_type`.
    pub fn of(body: &[u8], content_type: &str) -> BodyDigest {
        BodyDigest {
            length: body.len(),
            content_type: content_type.to_string(),
            sha256: base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body)),
        }
    }
}

/// The OCI config file genai-bench's `--config-file` names, or the SDKs'
/// default (`OCI_CLI_CONFIG_FILE`, then `~/.oci/config`).
pub fn config_path(cloud: &CloudAuthArgs) -> PathBuf {
    cloud
        .config_file
        .clone()
        .or_else(|| crate::aws::env("OCI_CLI_CONFIG_FILE"))
        .map(|p| expand_home(&p))
        .unwrap_or_else(|| expand_home("~/.oci/config"))
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

fn profile(cloud: &CloudAuthArgs) -> String {
    cloud
        .profile
        .clone()
        .or_else(|| crate::aws::env("OCI_CLI_PROFILE"))
        .unwrap_or_else(|| "DEFAULT".into())
}

/// The values of `profile` in the config text: its own, over those of
/// `[DEFAULT]` (which every profile inherits, as the OCI SDKs read it).
fn profile_values(text: &str, profile: &str) -> Option<Vec<(String, String)>> {
    let own = crate::aws::ini_section(text, profile);
    if profile == "DEFAULT" {
        return own;
    }
    let own = own?;
    let mut values = crate::aws::ini_section(text, "DEFAULT").unwrap_or_default();
    values.retain(|(k, _)| !own.iter().any(|(o, _)| o == k));
    values.extend(own);
    Some(values)
}

/// The region requests go to: `--region`, else the profile's `region`
/// (`None` when neither is known; the config file may not exist yet).
pub fn region(cloud: &CloudAuthArgs) -> Option<String> {
    if let Some(r) = cloud.region.clone().filter(|r| !r.trim().is_empty()) {
        return Some(r);
    }
    let text = std::fs::read_to_string(config_path(cloud)).ok()?;
    profile_values(&text, &profile(cloud))?
        .into_iter()
        .find(|(k, _)| k == "region")
        .map(|(_, v)| v)
}

/// The default endpoint of OCI Generative AI inference in `region`, and the
/// OpenAI-compatible base under it for `oci-openai` (as the `oci-openai`
/// package builds them).
pub fn default_api_base(backend: &str, region: &str) -> String {
    let service = format!("https://inference.generativeai.{region}.oci.oraclecloud.com");
    if backend.eq_ignore_ascii_case("oci-openai") {
        format!("{service}/openai/v1")
    } else {
        service
    }
}

impl Signer {
    /// The signer of `--auth`, from the config file and profile the flags
    /// name, or what is missing and how to provide it.
    pub fn resolve(cloud: &CloudAuthArgs) -> anyhow::Result<Signer> {
        let auth = cloud.auth.unwrap_or(OciAuth::UserPrincipal);
        if matches!(auth, OciAuth::InstancePrincipal | OciAuth::InstanceOboUser) {
            bail!(
                "--auth {} needs the OCI instance metadata service and a federation token \
                 exchange, which this host does not do; use --auth user_principal (an API key \
                 in --config-file) or --auth security_token (a session from `oci session \
                 authenticate`)",
                match auth {
                    OciAuth::InstancePrincipal => "instance_principal",
                    _ => "instance_obo_user",
                }
            );
        }
        let path = config_path(cloud);
        let profile = profile(cloud);
        let shown = path.display();
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "OCI config file {shown} cannot be read; create one with `oci setup config` \
                 or name it with --config-file"
            )
        })?;
        let values = profile_values(&text, &profile).ok_or_else(|| {
            anyhow::anyhow!("OCI config file {shown} has no profile [{profile}] (--profile)")
        })?;
        let get = |k: &str| {
            values
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let need = |k: &str| {
            get(k).ok_or_else(|| {
                anyhow::anyhow!("OCI config file {shown}, profile [{profile}], has no `{k}`")
            })
        };
        let key_file = expand_home(&need("key_file")?);
        if get("pass_phrase").is_some() {
            bail!(
                "the OCI key {} is encrypted (pass_phrase in {shown}); this host reads \
                 unencrypted keys only: `openssl rsa -in {} -out key-plain.pem`, then point \
                 key_file at it (chmod 600)",
                key_file.display(),
                key_file.display()
            );
        }
        let key_id = match auth {
            OciAuth::SecurityToken => {
                let token = match cloud.security_token.clone() {
                    Some(t) => t,
                    None => {
                        let file = expand_home(&need("security_token_file")?);
                        std::fs::read_to_string(&file)
                            .with_context(|| {
                                format!(
                                    "the OCI security token file {} cannot be read; refresh \
                                     the session with `oci session refresh`",
                                    file.display()
                                )
                            })?
                            .trim()
                            .to_string()
                    }
                };
                crate::plugin::register_secret(&token);
                format!("ST${token}")
            }
            _ => format!(
                "{}/{}/{}",
                need("tenancy")?,
                need("user")?,
                need("fingerprint")?
            ),
        };
        let pem = std::fs::read_to_string(&key_file).with_context(|| {
            format!(
                "the OCI key file {} (key_file in {shown}) cannot be read",
                key_file.display()
            )
        })?;
        Signer::from_pem(key_id, &pem, &key_file)
    }

    /// A signer of `key_id` with the RSA key in `pem` (PKCS#1 `RSA PRIVATE
    /// KEY` or PKCS#8 `PRIVATE KEY`); `source` names the key in errors.
    pub fn from_pem(key_id: String, pem: &str, source: &Path) -> anyhow::Result<Signer> {
        crate::plugin::register_secret(pem);
        let shown = source.display();
        if pem.contains("ENCRYPTED") {
            bail!(
                "the OCI key {shown} is encrypted; this host reads unencrypted keys only: \
                 `openssl rsa -in {shown} -out key-plain.pem`"
            );
        }
        let label = pem
            .lines()
            .find_map(|l| l.trim().strip_prefix("-----BEGIN "))
            .and_then(|l| l.strip_suffix("-----"))
            .ok_or_else(|| anyhow::anyhow!("the OCI key {shown} is not a PEM file"))?
            .to_string();
        let body: String = pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .map(str::trim)
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .with_context(|| format!("the OCI key {shown} is not valid PEM"))?;
        let key = match label.as_str() {
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            other => bail!(
                "the OCI key {shown} is a {other}; OCI API keys are RSA (\"RSA PRIVATE KEY\" \
                 or \"PRIVATE KEY\")"
            ),
        }
        .map_err(|e| {
            anyhow::anyhow!(
                "the OCI key {shown} is not a usable RSA key ({e}); OCI API keys are RSA, \
                 2048 bits or more"
            )
        })?;
        Ok(Signer { key_id, key })
    }

    /// The key ID requests are signed as.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The headers that sign a request: `date`, for a body
    /// `x-content-sha256`, and `authorization`. The body's
    /// `content-type` comes from the request's headers.
    pub fn sign(
        &self,
        method: &str,
        url: &url::Url,
        headers: &[(String, String)],
        body: &[u8],
        time: SystemTime,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let date = httpdate::fmt_http_date(time);
        let digest = if has_body(method) {
            let content_type = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "an OCI-signed {method} needs a content-type (the plugin set none)"
                    )
                })?;
            Some(BodyDigest::of(body, content_type))
        } else {
            None
        };
        let mut out = vec![("date".to_string(), date.clone())];
        if let Some(d) = &digest {
            out.push(("x-content-sha256".to_string(), d.sha256.clone()));
        }
        out.push((
            "authorization".to_string(),
            self.authorization(method, url, &date, digest.as_ref())?,
        ));
        Ok(out)
    }

    /// The `Authorization` value for a request with these signed values.
    pub fn authorization(
        &self,
        method: &str,
        url: &url::Url,
        date: &str,
        body: Option<&BodyDigest>,
    ) -> anyhow::Result<String> {
        let text = signing_string(method, url, date, body);
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                text.as_bytes(),
                &mut sig,
            )
            .map_err(|e| anyhow::anyhow!("signing the OCI request: {e}"))?;
        Ok(format!(
            "Signature version=\"1\",headers=\"{}\",keyId=\"{}\",algorithm=\"rsa-sha256\",signature=\"{}\"",
            if body.is_some() {
                BODY_HEADERS
            } else {
                GENERIC_HEADERS
            },
            self.key_id,
            base64::engine::general_purpose::STANDARD.encode(sig)
        ))
    }
}

/// Whether OCI signs the body of `method`.
fn has_body(method: &str) -> bool {
    ["POST", "PUT", "PATCH"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// The text OCI signs: one `name: value` line per signed header, in the
/// order of [`GENERIC_HEADERS`] / [`BODY_HEADERS`], joined by `\n`.
pub fn signing_string(
    method: &str,
    url: &url::Url,
    date: &str,
    body: Option<&BodyDigest>,
) -> String {
    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut text = format!(
        "date: {date}\n(request-target): {} {target}\nhost: {}",
        method.to_ascii_lowercase(),
        crate::aws::host_header(url)
    );
    if let Some(b) = body {
        text.push_str(&format!(
            "\ncontent-length: {}\ncontent-type: {}\nx-content-sha256: {}",
            b.length, b.content_type, b.sha256
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    // Oracle's published example (the OCI SDKs' signer tests and the
    // "Request Signatures" page): a 1024-bit key, two requests and their
    // signatures. aws-lc-rs signs only with keys of 2048 bits or more, so
    // the example's signatures are verified over our signing strings: that
    // proves the strings are byte-for-byte the ones Oracle signed.
    const EXAMPLE_KEY: &str = "MIICXgIBAAKBgQDCFENGw33yGihy92pDjZQhl0C36rPJj+CvfSC8+q28hxA161QF
NUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6Z4UMR7EOcpfdUE9Hf3m/hs+F
UR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJwoYi+1hqp1fIekaxsyQIDAQAB
AoGBAJR8ZkCUvx5kzv+utdl7T5MnordT1TvoXXJGXK7ZZ+UuvMNUCdN2QPc4sBiA
QWvLw1cSKt5DsKZ8UETpYPy8pPYnnDEz2dDYiaew9+xEpubyeW2oH4Zx71wqBtOK
kqwrXa/pzdpiucRRjk6vE6YY7EBBs/g7uanVpGibOVAEsqH1AkEA7DkjVH28WDUg
f1nqvfn2Kj6CT7nIcE3jGJsZZ7zlZmBmHFDONMLUrXR/Zm3pR5m0tCmBqa5RK95u
412jt1dPIwJBANJT3v8pnkth48bQo/fKel6uEYyboRtA5/uHuHkZ6FQF7OUkGogc
mSJluOdc5t6hI1VsLn0QZEjQZMEOWr+wKSMCQQCC4kXJEsHAve77oP6HtG/IiEn7
kpyUXRNvFsDE0czpJJBvL/aRFUJxuRK91jhjC68sA7NsKMGg5OXb5I5Jj36xAkEA
gIT7aFOYBFwGgQAQkWNKLvySgKbAZRTeLBacpHMuQdl1DfdntvAyqpAZ0lY0RKmW
G6aFKaqQfOXKCyWoUiVknQJAXrlgySFci/2ueKlIE1QqIiLSZ8V8OlpFLRnb1pzI
7U1yQXnTAEFYM560yJlzUpOb1V4cScGd365tiSMvxLOvTA==";
    const EXAMPLE_DATE: &str = "Thu, 05 Jan 2014 21:31:40 GMT";
    const EXAMPLE_GET_URL: &str = "https://iaas.us-phoenix-1.oraclecloud.com/20160918/instances?availabilityDomain=Pjwf%3A%20PHX-AD-1&compartmentId=ocid1.compartment.oc1..aaaaaaaam3we6vgnherjq5q2idnccdflvjsnog7mlr6rtdb25gilchfeyjxa&displayName=TeamXInstances&volumeId=ocid1.volume.oc1.phx.abyhqljrgvttnlx73nmrwfaux7kcvzfs3s66izvxf2h4lgvyndsdsnoiwr5q";
    const EXAMPLE_GET_SIGNATURE: &str = "GBas7grhyrhSKHP6AVIj/h5/Vp8bd/peM79H9Wv8kjoaCivujVXlpbKLjMPeDUhxkFIWtTtLBj3sUzaFj34XE6YZAHc9r2DmE4pMwOAy/kiITcZxa1oHPOeRheC0jP2dqbTll8fmTZVwKZOKHYPtrLJIJQHJjNvxFWeHQjMaR7M=";
    const EXAMPLE_POST_URL: &str =
        "https://iaas.us-phoenix-1.oraclecloud.com/20160918/volumeAttachments";
    const EXAMPLE_POST_BODY: &str = "{
    \"compartmentId\": \"ocid1.compartment.oc1..aaaaaaaam3we6vgnherjq5q2idnccdflvjsnog7mlr6rtdb25gilchfeyjxa\",
    \"instanceId\": \"ocid1.instance.oc1.phx.abuw4ljrlsfiqw6vzzxb43vyypt4pkodawglp3wqxjqofakrwvou52gb6s5a\",
    \"volumeId\": \"ocid1.volume.oc1.phx.abyhqljrgvttnlx73nmrwfaux7kcvzfs3s66izvxf2h4lgvyndsdsnoiwr5q\"
}";
    const EXAMPLE_POST_SIGNATURE: &str = "Mje8vIDPlwIHmD/cTDwRxE7HaAvBg16JnVcsuqaNRim23fFPgQfLoOOxae6WqKb1uPjYEl0qIdazWaBy/Ml8DRhqlocMwoSXv0fbukP8J5N80LCmzT/FFBvIvTB91XuXI3hYfP9Zt1l7S6ieVadHUfqBedWH0itrtPJBgKmrWso=";

    /// The modulus and public exponent of a PKCS#1 RSAPrivateKey (DER:
    /// SEQUENCE { version, n, e, ... }).
    fn public_parts(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
        fn tlv(b: &[u8]) -> (u8, &[u8], &[u8]) {
            let tag = b[0];
            let (len, hdr) = if b[1] < 0x80 {
                (b[1] as usize, 2)
            } else {
                let n = (b[1] & 0x7f) as usize;
                let len = b[2..2 + n]
                    .iter()
                    .fold(0usize, |a, &x| (a << 8) | x as usize);
                (len, 2 + n)
            };
            (tag, &b[hdr..hdr + len], &b[hdr + len..])
        }
        let (_, seq, _) = tlv(der);
        let (_, _version, rest) = tlv(seq);
        let (_, n, rest) = tlv(rest);
        let (_, e, _) = tlv(rest);
        // DER INTEGERs carry a 0x00 before a high bit; the key wants none.
        let strip = |x: &[u8]| x[x.iter().take_while(|&&b| b == 0).count()..].to_vec();
        (strip(n), strip(e))
    }

    fn verify_example(message: &str, signature_b64: &str) -> bool {
        let der = base64::engine::general_purpose::STANDARD
            .decode(EXAMPLE_KEY.replace('\n', ""))
            .unwrap();
        let (n, e) = public_parts(&der);
        let sig = base64::engine::general_purpose::STANDARD
            .decode(signature_b64)
            .unwrap();
        aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e }
            .verify(
                &aws_lc_rs::signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
                message.as_bytes(),
                &sig,
            )
            .is_ok()
    }

    #[test]
    fn signing_strings_are_the_ones_oracle_signed_in_its_published_example() {
        let get = signing_string(
            "GET",
            &url::Url::parse(EXAMPLE_GET_URL).unwrap(),
            EXAMPLE_DATE,
            None,
        );
        assert!(get.starts_with("date: Thu, 05 Jan 2014 21:31:40 GMT\n(request-target): get /20160918/instances?availabilityDomain=Pjwf%3A%20PHX-AD-1&"), "{get}");
        assert!(verify_example(&get, EXAMPLE_GET_SIGNATURE), "{get}");

        let body = BodyDigest::of(EXAMPLE_POST_BODY.as_bytes(), "application/json");
        assert_eq!(body.length, 316);
        assert_eq!(body.sha256, "V9Z20UJTvkvpJ50flBzKE32+6m2zJjweHpDMX/U4Uy0=");
        let post = signing_string(
            "POST",
            &url::Url::parse(EXAMPLE_POST_URL).unwrap(),
            EXAMPLE_DATE,
            Some(&body),
        );
        assert_eq!(
            post,
            "date: Thu, 05 Jan 2014 21:31:40 GMT\n\
             (request-target): post /20160918/volumeAttachments\n\
             host: iaas.us-phoenix-1.oraclecloud.com\n\
             content-length: 316\n\
             content-type: application/json\n\
             x-content-sha256: V9Z20UJTvkvpJ50flBzKE32+6m2zJjweHpDMX/U4Uy0="
        );
        assert!(verify_example(&post, EXAMPLE_POST_SIGNATURE));
        // The check can fail: one byte more and the published signature no
        // longer verifies.
        assert!(!verify_example(&format!("{post} "), EXAMPLE_POST_SIGNATURE));
    }

    fn test_signer() -> Signer {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/test-oci-api-key.pem");
        Signer::from_pem(
            "ocid1.tenancy.oc1..t/ocid1.user.oc1..u/d6:c0:e3:d4:1d:a8:5b:d9:68:b7:41:e8:c8:7b:45:af"
                .into(),
            &std::fs::read_to_string(&path).unwrap(),
            &path,
        )
        .unwrap()
    }

    #[test]
    fn signed_requests_carry_what_oci_checks_and_verify_with_the_public_key() {
        let signer = test_signer();
        let url = url::Url::parse("http://127.0.0.1:8443/20231130/actions/chat").unwrap();
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_389_000_000);
        let headers = [("Content-Type".to_string(), "application/json".to_string())];
        let out = signer
            .sign("POST", &url, &headers, br#"{"a":1}"#, time)
            .unwrap();
        let get = |k: &str| out.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("date").unwrap(), "Mon, 06 Jan 2014 09:20:00 GMT");
        assert_eq!(
            get("x-content-sha256").unwrap(),
            BodyDigest::of(br#"{"a":1}"#, "").sha256
        );
        let auth = get("authorization").unwrap();
        let prefix = "Signature version=\"1\",headers=\"date (request-target) host content-length content-type x-content-sha256\",keyId=\"ocid1.tenancy.oc1..t/ocid1.user.oc1..u/d6:c0:e3:d4:1d:a8:5b:d9:68:b7:41:e8:c8:7b:45:af\",algorithm=\"rsa-sha256\",signature=\"";
        assert!(auth.starts_with(prefix), "{auth}");
        let sig = base64::engine::general_purpose::STANDARD
            .decode(auth[prefix.len()..].trim_end_matches('"'))
            .unwrap();
        let text = signing_string(
            "POST",
            &url,
            "Mon, 06 Jan 2014 09:20:00 GMT",
            Some(&BodyDigest::of(br#"{"a":1}"#, "application/json")),
        );
        assert!(text.contains("\nhost: 127.0.0.1:8443\n"), "{text}");
        use aws_lc_rs::signature::KeyPair as _;
        let public = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            signer.key.public_key().as_ref(),
        );
        assert!(public.verify(text.as_bytes(), &sig).is_ok());
        assert!(public.verify(b"another request", &sig).is_err());
        // A GET signs no body.
        let out = signer.sign("GET", &url, &[], b"", time).unwrap();
        assert!(out.iter().all(|(k, _)| k != "x-content-sha256"));
        assert!(out[1].1.contains("headers=\"date (request-target) host\""));
        // A body without a content type cannot be signed.
        assert!(signer.sign("POST", &url, &[], b"{}", time).is_err());
    }

    fn cloud(dir: &Path, config: &str) -> CloudAuthArgs {
        let path = dir.join("config");
        std::fs::write(&path, config).unwrap();
        CloudAuthArgs {
            config_file: Some(path.display().to_string()),
            ..CloudAuthArgs::default()
        }
    }

    #[test]
    fn config_files_are_read_as_the_oci_sdks_read_them() {
        let dir = tempfile::tempdir().unwrap();
        let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/test-oci-api-key.pem");
        let config = format!(
            "[DEFAULT]\nuser=ocid1.user.oc1..u\nfingerprint=aa:bb\ntenancy=ocid1.tenancy.oc1..t\n\
             region=us-chicago-1\nkey_file={}\n\n[OTHER]\nuser=ocid1.user.oc1..other\n\
             region=eu-frankfurt-1\n\n[SESSION]\nsecurity_token_file={}\n",
            key.display(),
            dir.path().join("token").display()
        );
        let mut c = cloud(dir.path(), &config);
        let s = Signer::resolve(&c).unwrap();
        assert_eq!(s.key_id(), "ocid1.tenancy.oc1..t/ocid1.user.oc1..u/aa:bb");
        assert_eq!(region(&c).as_deref(), Some("us-chicago-1"));
        // Another profile inherits DEFAULT's values and overrides its own.
        c.profile = Some("OTHER".into());
        assert_eq!(
            Signer::resolve(&c).unwrap().key_id(),
            "ocid1.tenancy.oc1..t/ocid1.user.oc1..other/aa:bb"
        );
        assert_eq!(region(&c).as_deref(), Some("eu-frankfurt-1"));
        c.region = Some("ap-osaka-1".into());
        assert_eq!(region(&c).as_deref(), Some("ap-osaka-1"));
        // A session token signs as ST$<token>.
        std::fs::write(dir.path().join("token"), "tok-123\n").unwrap();
        c.profile = Some("SESSION".into());
        c.auth = Some(OciAuth::SecurityToken);
        assert_eq!(Signer::resolve(&c).unwrap().key_id(), "ST$tok-123");
        c.security_token = Some("tok-flag".into());
        assert_eq!(Signer::resolve(&c).unwrap().key_id(), "ST$tok-flag");

        // What is wrong, and what to do.
        let err = |c: &CloudAuthArgs| format!("{:#}", Signer::resolve(c).unwrap_err());
        c.auth = Some(OciAuth::InstancePrincipal);
        assert!(err(&c).contains("use --auth user_principal"), "{}", err(&c));
        c.auth = None;
        c.profile = Some("MISSING".into());
        assert!(err(&c).contains("no profile [MISSING]"), "{}", err(&c));
        let c = cloud(
            dir.path(),
            "[DEFAULT]\nuser=u\ntenancy=t\nfingerprint=f\nkey_file=/nonexistent/key.pem\n",
        );
        assert!(err(&c).contains("/nonexistent/key.pem"), "{}", err(&c));
        let c = cloud(dir.path(), "[DEFAULT]\nuser=u\ntenancy=t\nkey_file=k\n");
        assert!(err(&c).contains("has no `fingerprint`"), "{}", err(&c));
        let c = cloud(
            dir.path(),
            &format!(
                "[DEFAULT]\nuser=u\ntenancy=t\nfingerprint=f\nkey_file={}\npass_phrase=x\n",
                key.display()
            ),
        );
        assert!(err(&c).contains("encrypted"), "{}", err(&c));
        let c = CloudAuthArgs {
            config_file: Some(dir.path().join("absent").display().to_string()),
            ..CloudAuthArgs::default()
        };
        assert!(err(&c).contains("oci setup config"), "{}", err(&c));
        // Not an RSA key.
        let ec = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n";
        let e = Signer::from_pem("k".into(), ec, Path::new("ec.pem")).unwrap_err();
        assert!(format!("{e:#}").contains("EC PRIVATE KEY"), "{e:#}");
    }

    #[test]
    fn default_endpoints_follow_the_region() {
        assert_eq!(
            default_api_base("oci-cohere", "us-chicago-1"),
            "https://inference.generativeai.us-chicago-1.oci.oraclecloud.com"
        );
        assert_eq!(
            default_api_base("oci-openai", "us-chicago-1"),
            "https://inference.generativeai.us-chicago-1.oci.oraclecloud.com/openai/v1"
        );
    }
}
