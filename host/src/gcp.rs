//! Google OAuth2 access tokens from a service account, for the `gcp-oauth`
//! auth scheme (Vertex AI): a JWT signed RS256 with the account's private
//! key (aws-lc-rs, already the TLS stack's crypto) is exchanged at the
//! account's `token_uri` for an access token, which the host sends as
//! `Authorization: Bearer` and renews before it expires.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use base64::Engine as _;

use crate::transport::Secret;

/// OAuth scope of Vertex AI calls.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// What the host needs of a service-account JSON file.
pub struct ServiceAccount {
    /// `client_email`.
    pub client_email: String,
    /// `token_uri`.
    pub token_uri: String,
    /// `project_id`, if the file has one.
    pub project_id: Option<String>,
    /// The PKCS#8 private key (DER).
    key_der: Vec<u8>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Reads `--gcp-credentials-path` / `GOOGLE_APPLICATION_CREDENTIALS`.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<ServiceAccount> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("GCP credentials file {shown} cannot be read"))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("GCP credentials file {shown} is not JSON"))?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        if field("type").as_deref() != Some("service_account") {
            bail!(
                "GCP credentials file {shown} is not a service account key (\"type\": \
                 \"service_account\"); create one with `gcloud iam service-accounts keys create`"
            );
        }
        let pem = field("private_key")
            .ok_or_else(|| anyhow::anyhow!("GCP credentials file {shown} has no private_key"))?;
        crate::plugin::register_secret(&pem);
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        let key_der = base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .with_context(|| format!("the private_key of {shown} is not PEM"))?;
        aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&key_der).map_err(|e| {
            anyhow::anyhow!("the private_key of {shown} is not an RSA PKCS#8 key ({e})")
        })?;
        Ok(ServiceAccount {
            client_email: field("client_email").ok_or_else(|| {
                anyhow::anyhow!("GCP credentials file {shown} has no client_email")
            })?,
            token_uri: field("token_uri")
                .unwrap_or_else(|| "https://oauth2.googleapis.com/token".into()),
            project_id: field("project_id"),
            key_der,
        })
    }

    /// The signed JWT assertion for a token request at `now`.
    pub fn assertion(&self, now: SystemTime) -> anyhow::Result<String> {
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let header = b64(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = b64(serde_json::json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + 3600,
        })
        .to_string()
        .as_bytes());
        let input = format!("{header}.{claims}");
        let key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&self.key_der)
            .map_err(|e| anyhow::anyhow!("service account key: {e}"))?;
        let mut sig = vec![0u8; key.public_modulus_len()];
        key.sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .map_err(|e| anyhow::anyhow!("signing the token request: {e}"))?;
        Ok(format!("{input}.{}", b64(&sig)))
    }
}

/// The current access token, renewed in the background.
#[derive(Debug)]
pub struct TokenSource {
    account: ServiceAccount,
    token: RwLock<Secret>,
}

impl TokenSource {
    /// A source for `account`; call [`TokenSource::refresh`] before use.
    pub fn new(account: ServiceAccount) -> Arc<TokenSource> {
        Arc::new(TokenSource {
            account,
            token: RwLock::new(Secret::default()),
        })
    }

    /// The account.
    pub fn account(&self) -> &ServiceAccount {
        &self.account
    }

    /// The token to send, if one was obtained.
    pub fn current(&self) -> Option<String> {
        self.token
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .expose()
            .map(str::to_string)
    }

    /// Exchanges a fresh assertion for a token; returns its lifetime.
    pub async fn refresh(&self, client: &reqwest::Client) -> anyhow::Result<Duration> {
        let assertion = self.account.assertion(SystemTime::now())?;
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", &assertion)
            .finish();
        let resp = client
            .post(&self.account.token_uri)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .with_context(|| format!("token request to {}", self.account.token_uri))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "{} refused the service account {} ({status}): {}",
                self.account.token_uri,
                self.account.client_email,
                crate::plugin::display_safe(&body, 300)
            );
        }
        let v: serde_json::Value = serde_json::from_str(&body)
            .with_context(|| format!("{} answered no JSON", self.account.token_uri))?;
        let token = v
            .get("access_token")
            .and_then(|t| t.as_str())
            .ok_or_else(|| {
                anyhow::anyhow!("{} answered no access_token", self.account.token_uri)
            })?;
        crate::plugin::register_secret(token);
        *self.token.write().unwrap_or_else(|e| e.into_inner()) = Secret::new(Some(token.into()));
        Ok(Duration::from_secs(
            v.get("expires_in").and_then(|e| e.as_u64()).unwrap_or(3600),
        ))
    }

    /// Renews the token 5 minutes before it expires, until dropped (the
    /// returned task is aborted with the benchmark).
    pub fn keep_fresh(
        self: &Arc<Self>,
        client: reqwest::Client,
        first: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut wait = first;
            loop {
                tokio::time::sleep(
                    wait.saturating_sub(Duration::from_secs(300))
                        .max(Duration::from_secs(30)),
                )
                .await;
                match me.refresh(&client).await {
                    Ok(life) => wait = life,
                    Err(e) => {
                        tracing::warn!("renewing the Google access token: {e:#}; retrying in 30 s");
                        wait = Duration::from_secs(330);
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway 2048-bit key made for these tests.
    fn account() -> ServiceAccount {
        let pem = include_str!("../tests/data/test-service-account-key.pem");
        let dir = tempfile_dir();
        let path = dir.join("sa.json");
        std::fs::write(
            &path,
            serde_json::json!({
                "type": "service_account",
                "client_email": "bench@test-project.iam.gserviceaccount.com",
                "private_key": pem,
                "token_uri": "http://127.0.0.1:9/token",
                "project_id": "test-project",
            })
            .to_string(),
        )
        .unwrap();
        ServiceAccount::from_file(&path).unwrap()
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("gcp-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn assertion_is_an_rs256_jwt_the_public_key_verifies() {
        let a = account();
        assert_eq!(a.project_id.as_deref(), Some("test-project"));
        let jwt = a
            .assertion(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let dec = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap()
        };
        let claims: serde_json::Value = serde_json::from_slice(&dec(parts[1])).unwrap();
        assert_eq!(claims["iss"], "bench@test-project.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], "http://127.0.0.1:9/token");
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!(claims["exp"], 1_700_003_600u64);
        // The signature verifies with the key's public half.
        let key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&a.key_der).unwrap();
        use aws_lc_rs::signature::KeyPair as _;
        let public = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            key.public_key().as_ref(),
        );
        public
            .verify(
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &dec(parts[2]),
            )
            .expect("signature verifies");
    }

    #[test]
    fn files_that_are_not_service_accounts_are_refused_clearly() {
        let dir = tempfile_dir();
        let p = dir.join("user.json");
        std::fs::write(&p, r#"{"type": "authorized_user", "client_id": "x"}"#).unwrap();
        let e = format!("{:#}", ServiceAccount::from_file(&p).unwrap_err());
        assert!(e.contains("is not a service account key"), "{e}");
    }
}
