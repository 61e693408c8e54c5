//! Request authentication: a plugin names an `auth-scheme`, the host holds
//! every secret and applies the scheme to the request the plugin built,
//! after the request policy checked it. The sandbox never sees a key, a
//! token or a signature.

use std::time::SystemTime;

use anyhow::bail;

use crate::cloud::CloudAuthArgs;
use crate::plugin::AuthScheme;
use crate::transport::Secret;

/// The secrets the schemes need, resolved once before the first request.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// `--api-key` / `--model-api-key` / `MODEL_API_KEY` ...
    pub api_key: Secret,
    /// AWS credentials and region (the `aws-sigv4` scheme).
    pub aws: Option<(crate::aws::Credentials, String)>,
    /// `--azure-ad-token` / `AZURE_AD_TOKEN` (the `azure` scheme).
    pub azure_ad_token: Secret,
    /// The Google access token source (the `gcp-oauth` scheme); the first
    /// token is fetched before the first request (see
    /// [`Credentials::start`]).
    pub gcp: Option<std::sync::Arc<crate::gcp::TokenSource>>,
    /// The OCI API key (the `oci-signature` scheme).
    pub oci: Option<std::sync::Arc<crate::oci::Signer>>,
}

impl Credentials {
    /// Resolves what `scheme` needs from the flags and environment, or says
    /// what is missing and how to give it.
    pub fn for_scheme(
        scheme: Option<&AuthScheme>,
        api_key: Secret,
        cloud: &CloudAuthArgs,
    ) -> anyhow::Result<Credentials> {
        let mut c = Credentials {
            api_key,
            ..Credentials::default()
        };
        match scheme {
            None | Some(AuthScheme::Header(_)) => {}
            Some(AuthScheme::Azure) => {
                c.azure_ad_token = Secret::new(
                    cloud
                        .azure_ad_token
                        .clone()
                        .or_else(|| crate::aws::env("AZURE_AD_TOKEN")),
                );
                if let Some(t) = c.azure_ad_token.expose() {
                    crate::plugin::register_secret(t);
                }
                if c.api_key.expose().is_none() && c.azure_ad_token.expose().is_none() {
                    bail!(
                        "Azure OpenAI needs a key (--api-key or MODEL_API_KEY, sent as \
                         `api-key`) or an Azure AD token (--azure-ad-token or AZURE_AD_TOKEN)"
                    );
                }
            }
            Some(AuthScheme::AwsSigv4(_)) => {
                c.aws = Some(crate::aws::resolve(
                    &crate::aws::AwsFlags {
                        access_key_id: cloud.aws_access_key_id.clone(),
                        secret_access_key: cloud.aws_secret_access_key.clone(),
                        session_token: cloud.aws_session_token.clone(),
                        profile: cloud.aws_profile.clone(),
                        region: cloud.aws_region.clone(),
                    },
                    "AWS SigV4 signing",
                    "--aws",
                )?);
            }
            Some(AuthScheme::GcpOauth) => {
                let path = cloud
                    .gcp_credentials_path
                    .clone()
                    .or_else(|| crate::aws::env("GOOGLE_APPLICATION_CREDENTIALS"))
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "Vertex AI needs a service account key: --gcp-credentials-path \
                             FILE.json or GOOGLE_APPLICATION_CREDENTIALS"
                        )
                    })?;
                let account = crate::gcp::ServiceAccount::from_file(std::path::Path::new(&path))?;
                c.gcp = Some(crate::gcp::TokenSource::new(account));
            }
            Some(AuthScheme::OciSignature) => {
                c.oci = Some(std::sync::Arc::new(crate::oci::Signer::resolve(cloud)?));
            }
        }
        Ok(c)
    }

    /// Obtains what must be fetched before the first request (a Google
    /// access token) and keeps it fresh; the returned task stops with the
    /// benchmark when aborted.
    pub async fn start(
        &self,
        client: &reqwest::Client,
    ) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
        let Some(g) = &self.gcp else {
            return Ok(None);
        };
        let life = g.refresh(client).await?;
        tracing::info!(
            "Google access token for {} obtained (valid {} s)",
            g.account().client_email,
            life.as_secs()
        );
        Ok(Some(g.keep_fresh(client.clone(), life)))
    }

    /// Whether the key is needed and missing for `scheme`.
    pub fn lacks_api_key(&self, scheme: Option<&AuthScheme>) -> bool {
        match scheme {
            Some(AuthScheme::Header(_)) => self.api_key.expose().is_none(),
            _ => false,
        }
    }

    /// The headers that authenticate a request to `url` with `headers` and
    /// `body`, for `scheme`; `time` is the signing time.
    pub fn headers(
        &self,
        scheme: Option<&AuthScheme>,
        method: &str,
        url: &url::Url,
        headers: &[(String, String)],
        body: &[u8],
        time: SystemTime,
    ) -> anyhow::Result<Vec<(String, String)>> {
        Ok(match scheme {
            None => Vec::new(),
            Some(AuthScheme::Header(h)) => match self.api_key.expose() {
                Some(key) => vec![(h.name.clone(), format!("{}{key}", h.prefix))],
                None => Vec::new(),
            },
            Some(AuthScheme::Azure) => {
                match (self.azure_ad_token.expose(), self.api_key.expose()) {
                    (Some(token), _) => vec![("Authorization".into(), format!("Bearer {token}"))],
                    (None, Some(key)) => vec![("api-key".into(), key.to_string())],
                    (None, None) => bail!("no Azure key or AD token"),
                }
            }
            Some(AuthScheme::AwsSigv4(service)) => {
                let Some((creds, region)) = &self.aws else {
                    bail!("no AWS credentials for SigV4 (a plugin swapped in a new scheme?)");
                };
                let host = crate::aws::host_header(url);
                let mut signed: Vec<(&str, &str)> = vec![("host", host.as_str())];
                signed.extend(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                crate::aws::sign(
                    crate::aws::Service::Named(service.clone()),
                    method,
                    url.as_str(),
                    &signed,
                    crate::aws::Payload::Bytes(body),
                    creds,
                    region,
                    time,
                )?
            }
            Some(AuthScheme::GcpOauth) => match self.gcp.as_ref().and_then(|g| g.current()) {
                Some(t) => vec![("Authorization".into(), format!("Bearer {t}"))],
                None => bail!("no Google access token (the token request failed?)"),
            },
            Some(AuthScheme::OciSignature) => match &self.oci {
                Some(signer) => signer.sign(method, url, headers, body, time)?,
                None => bail!("no OCI signing key (a plugin swapped in a new scheme?)"),
            },
        })
    }
}

/// The non-secret backend settings plugins get as `backend-options`, from
/// the cloud flags and genai-bench's environment variables.
pub fn backend_options(cloud: &CloudAuthArgs, aws_region: Option<&str>) -> Vec<(String, String)> {
    let flag_or_env = |flag: &Option<String>, var: &str| {
        flag.clone()
            .or_else(|| crate::aws::env(var))
            .filter(|v| !v.trim().is_empty())
    };
    let mut out = Vec::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            out.push((k.to_string(), v));
        }
    };
    put(
        "azure-deployment",
        flag_or_env(&cloud.azure_deployment, "AZURE_OPENAI_DEPLOYMENT"),
    );
    put(
        "azure-api-version",
        Some(
            flag_or_env(&cloud.azure_api_version, "AZURE_OPENAI_API_VERSION")
                .unwrap_or_else(|| "2024-02-01".into()),
        ),
    );
    put(
        "aws-region",
        aws_region
            .map(str::to_string)
            .or_else(|| flag_or_env(&cloud.aws_region, "AWS_DEFAULT_REGION")),
    );
    put(
        "gcp-project-id",
        flag_or_env(&cloud.gcp_project_id, "GCP_PROJECT_ID"),
    );
    put(
        "gcp-location",
        Some(
            flag_or_env(&cloud.gcp_location, "GCP_LOCATION")
                .unwrap_or_else(|| "us-central1".into()),
        ),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::AuthHeader;

    fn url() -> url::Url {
        url::Url::parse("https://bedrock-runtime.us-east-1.amazonaws.com/model/m/invoke").unwrap()
    }

    #[test]
    fn header_and_azure_schemes_put_the_secret_where_the_scheme_says() {
        let mut c = Credentials {
            api_key: Secret::new(Some("k-123".into())),
            ..Credentials::default()
        };
        let h = AuthScheme::Header(AuthHeader {
            name: "Authorization".into(),
            prefix: "Api-Key ".into(),
        });
        let t = SystemTime::now();
        assert_eq!(
            c.headers(Some(&h), "POST", &url(), &[], b"", t).unwrap(),
            vec![("Authorization".to_string(), "Api-Key k-123".to_string())]
        );
        assert_eq!(
            c.headers(Some(&AuthScheme::Azure), "POST", &url(), &[], b"", t)
                .unwrap(),
            vec![("api-key".to_string(), "k-123".to_string())]
        );
        c.azure_ad_token = Secret::new(Some("ad-token".into()));
        assert_eq!(
            c.headers(Some(&AuthScheme::Azure), "POST", &url(), &[], b"", t)
                .unwrap(),
            vec![("Authorization".to_string(), "Bearer ad-token".to_string())]
        );
        assert!(
            c.headers(None, "POST", &url(), &[], b"", t)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn sigv4_scheme_signs_for_the_plugins_service() {
        let c = Credentials {
            aws: Some((crate::aws::Credentials::example(), "us-west-2".into())),
            ..Credentials::default()
        };
        let headers = [("content-type".to_string(), "application/json".to_string())];
        let signed = c
            .headers(
                Some(&AuthScheme::AwsSigv4("bedrock".into())),
                "POST",
                &url(),
                &headers,
                b"{}",
                SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            )
            .unwrap();
        let auth = &signed.iter().find(|(k, _)| k == "authorization").unwrap().1;
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20231114/us-west-2/bedrock/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, Signature="
            ),
            "{auth}"
        );
        assert!(
            signed
                .iter()
                .any(|(k, v)| k == "x-amz-date" && v == "20231114T221320Z")
        );
        // Without credentials the scheme fails the request, loudly.
        let none = Credentials::default();
        assert!(
            none.headers(
                Some(&AuthScheme::AwsSigv4("bedrock".into())),
                "POST",
                &url(),
                &headers,
                b"{}",
                SystemTime::now()
            )
            .is_err()
        );
    }
}
