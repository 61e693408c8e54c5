//! `--upload-results`: copy the experiment folder to object storage after
//! the benchmark, with genai-bench's storage flags.
//!
//! The `aws` provider speaks the S3 API with SigV4 (signed by the
//! `aws-sigv4` crate, checked against AWS's published examples below), so
//! it also reaches any S3-compatible store (MinIO, Ceph, R2, OCI's and
//! GCS's S3 interfaces) through `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`,
//! as AWS's own SDKs do. Everything is checked before the first run, so a
//! missing bucket or key is found in a second, not after an hour of load.
//!
//! Objects are named `<prefix>/<experiment folder name>/<file>`: genai-bench
//! leaves out the folder name, so a second experiment under the same prefix
//! overwrote the first.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use clap::Args;

/// genai-bench's result-upload and storage options.
#[derive(Debug, Clone, Default, Args)]
pub struct UploadArgs {
    /// Upload the experiment folder to object storage when the benchmark
    /// ends (needs --storage-bucket).
    #[arg(help_heading = "Result upload", long)]
    pub upload_results: bool,
    /// OCI Object Storage namespace (OCI-specific).
    #[arg(help_heading = "Result upload", long)]
    pub namespace: Option<String>,
    /// Storage provider: aws (S3 and S3-compatible stores) is built in; oci,
    /// azure, gcp and github are named with what to use instead [default: oci,
    /// as genai-bench].
    #[arg(help_heading = "Result upload", long, value_enum, ignore_case = true)]
    pub storage_provider: Option<StorageProvider>,
    /// Bucket (or container) to upload to.
    #[arg(help_heading = "Result upload", long)]
    pub storage_bucket: Option<String>,
    /// Prefix of the uploaded objects' names.
    #[arg(help_heading = "Result upload", long, default_value = "")]
    pub storage_prefix: String,
    /// Authentication type of the storage provider.
    #[arg(help_heading = "Result upload", long)]
    pub storage_auth_type: Option<String>,
    /// S3 access key ID [env: AWS_ACCESS_KEY_ID].
    #[arg(help_heading = "Result upload", long)]
    pub storage_aws_access_key_id: Option<String>,
    /// S3 secret access key [env: AWS_SECRET_ACCESS_KEY].
    #[arg(help_heading = "Result upload", long)]
    pub storage_aws_secret_access_key: Option<String>,
    /// S3 session token [env: AWS_SESSION_TOKEN].
    #[arg(help_heading = "Result upload", long)]
    pub storage_aws_session_token: Option<String>,
    /// S3 region [env: AWS_REGION, AWS_DEFAULT_REGION; else the profile's, else us-east-1].
    #[arg(help_heading = "Result upload", long)]
    pub storage_aws_region: Option<String>,
    /// Profile of ~/.aws/credentials [env: AWS_PROFILE].
    #[arg(help_heading = "Result upload", long)]
    pub storage_aws_profile: Option<String>,
    /// Azure storage account name [env: AZURE_STORAGE_ACCOUNT_NAME].
    #[arg(help_heading = "Result upload", long)]
    pub storage_azure_account_name: Option<String>,
    /// Azure storage account key [env: AZURE_STORAGE_ACCOUNT_KEY].
    #[arg(help_heading = "Result upload", long)]
    pub storage_azure_account_key: Option<String>,
    /// Azure storage connection string [env: AZURE_STORAGE_CONNECTION_STRING].
    #[arg(help_heading = "Result upload", long)]
    pub storage_azure_connection_string: Option<String>,
    /// Azure storage SAS token [env: AZURE_STORAGE_SAS_TOKEN].
    #[arg(help_heading = "Result upload", long)]
    pub storage_azure_sas_token: Option<String>,
    /// GCP project for Cloud Storage [env: GCP_PROJECT_ID].
    #[arg(help_heading = "Result upload", long)]
    pub storage_gcp_project_id: Option<String>,
    /// GCP service account JSON file [env: GOOGLE_APPLICATION_CREDENTIALS].
    #[arg(help_heading = "Result upload", long)]
    pub storage_gcp_credentials_path: Option<String>,
    /// GitHub token [env: GITHUB_TOKEN].
    #[arg(help_heading = "Result upload", long)]
    pub github_token: Option<String>,
    /// GitHub repository owner [env: GITHUB_OWNER].
    #[arg(help_heading = "Result upload", long)]
    pub github_owner: Option<String>,
    /// GitHub repository name [env: GITHUB_REPO].
    #[arg(help_heading = "Result upload", long)]
    pub github_repo: Option<String>,
}

/// genai-bench's storage providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageProvider {
    /// OCI Object Storage.
    Oci,
    /// Amazon S3 or an S3-compatible store.
    Aws,
    /// Azure Blob Storage.
    Azure,
    /// Google Cloud Storage.
    Gcp,
    /// A GitHub repository.
    Github,
}

impl StorageProvider {
    fn as_str(self) -> &'static str {
        match self {
            StorageProvider::Oci => "oci",
            StorageProvider::Aws => "aws",
            StorageProvider::Azure => "azure",
            StorageProvider::Gcp => "gcp",
            StorageProvider::Github => "github",
        }
    }
}

/// S3 credentials.
#[derive(Clone)]
struct AwsCredentials {
    key_id: String,
    secret: String,
    session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret, even in a debug print.
        f.debug_struct("AwsCredentials")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A checked upload destination: where and as whom.
#[derive(Debug, Clone)]
pub struct Uploader {
    endpoint: Endpoint,
    bucket: String,
    prefix: String,
    region: String,
    credentials: AwsCredentials,
}

#[derive(Debug, Clone)]
enum Endpoint {
    /// `https://<bucket>.s3.<region>.amazonaws.com/<key>`.
    Aws,
    /// `<endpoint>/<bucket>/<key>` (path style, as S3-compatible stores want).
    Custom(url::Url),
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl UploadArgs {
    /// Checks the flags before anything runs: `None` without
    /// `--upload-results`, else an uploader whose bucket, region and
    /// credentials are all known.
    pub fn plan(&self) -> anyhow::Result<Option<Uploader>> {
        if !self.upload_results {
            if self.storage_bucket.is_some() || self.storage_provider.is_some() {
                tracing::warn!(
                    "--storage-bucket / --storage-provider are given without --upload-results: \
                     nothing will be uploaded"
                );
            }
            return Ok(None);
        }
        let bucket = self
            .storage_bucket
            .clone()
            .filter(|b| !b.trim().is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--upload-results needs --storage-bucket (the bucket to upload the \
                     experiment folder to)"
                )
            })?;
        let provider = self.storage_provider.unwrap_or(StorageProvider::Oci);
        if provider != StorageProvider::Aws {
            bail!(
                "--storage-provider {} is not built into this client yet; use --storage-provider \
                 aws, which reaches Amazon S3 and any S3-compatible store through \
                 AWS_ENDPOINT_URL (OCI: https://<namespace>.compat.objectstorage.<region>.\
                 oraclecloud.com with a customer secret key; GCS: https://storage.googleapis.com \
                 with an HMAC key; Azure: an S3 gateway), or upload the folder afterwards with \
                 the provider's own tool{}",
                provider.as_str(),
                if self.storage_provider.is_none() {
                    " (oci is genai-bench's default provider)"
                } else {
                    ""
                }
            );
        }
        let profile = self
            .storage_aws_profile
            .clone()
            .or_else(|| env("AWS_PROFILE"));
        let from_profile = || -> anyhow::Result<Option<ProfileValues>> {
            read_profile(profile.as_deref().unwrap_or("default"), profile.is_some())
        };
        let key_id = self
            .storage_aws_access_key_id
            .clone()
            .or_else(|| env("AWS_ACCESS_KEY_ID"));
        let secret = self
            .storage_aws_secret_access_key
            .clone()
            .or_else(|| env("AWS_SECRET_ACCESS_KEY"));
        let mut profile_values = None;
        let credentials = match (key_id, secret) {
            (Some(key_id), Some(secret)) => AwsCredentials {
                key_id,
                secret,
                session_token: self
                    .storage_aws_session_token
                    .clone()
                    .or_else(|| env("AWS_SESSION_TOKEN")),
            },
            (Some(_), None) | (None, Some(_)) => bail!(
                "--upload-results: S3 needs both an access key ID and a secret access key \
                 (--storage-aws-access-key-id / --storage-aws-secret-access-key, or \
                 AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY); only one is set"
            ),
            (None, None) => {
                profile_values = from_profile()?;
                match profile_values.as_ref().and_then(|p| p.credentials.clone()) {
                    Some(c) => c,
                    None => bail!(
                        "--upload-results: no S3 credentials: pass --storage-aws-access-key-id \
                         and --storage-aws-secret-access-key, set AWS_ACCESS_KEY_ID and \
                         AWS_SECRET_ACCESS_KEY, or name a profile of ~/.aws/credentials with \
                         --storage-aws-profile"
                    ),
                }
            }
        };
        crate::plugin::register_secret(&credentials.secret);
        if let Some(t) = &credentials.session_token {
            crate::plugin::register_secret(t);
        }
        let region = match self
            .storage_aws_region
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
        let endpoint = match env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")) {
            Some(e) => {
                let url = url::Url::parse(&e).map_err(|err| {
                    anyhow::anyhow!(
                        "AWS_ENDPOINT_URL(_S3) '{e}' is not a URL ({err}); expected e.g. \
                         http://127.0.0.1:9000"
                    )
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    bail!("AWS_ENDPOINT_URL(_S3) '{e}' must be an http:// or https:// URL");
                }
                Endpoint::Custom(url)
            }
            None => Endpoint::Aws,
        };
        Ok(Some(Uploader {
            endpoint,
            bucket,
            prefix: self.storage_prefix.trim_matches('/').to_string(),
            region,
            credentials,
        }))
    }

    /// Secrets among the values, for redaction.
    pub fn secrets(&self) -> Vec<&str> {
        [
            &self.storage_aws_secret_access_key,
            &self.storage_aws_session_token,
            &self.storage_azure_account_key,
            &self.storage_azure_connection_string,
            &self.storage_azure_sas_token,
            &self.github_token,
        ]
        .into_iter()
        .filter_map(|s| s.as_deref())
        .filter(|s| !s.is_empty())
        .collect()
    }
}

/// What a profile of the shared AWS files holds.
struct ProfileValues {
    credentials: Option<AwsCredentials>,
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
        (Some(key_id), Some(secret)) => Some(AwsCredentials {
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

/// The `key = value` lines of INI section `[name]`.
fn ini_section(text: &str, name: &str) -> Option<Vec<(String, String)>> {
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

/// What an upload did.
#[derive(Debug)]
pub struct UploadReport {
    /// Objects written.
    pub objects: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Where, as `s3://bucket/prefix/folder/`.
    pub location: String,
}

/// Characters left as they are in S3 object names in a URL path: RFC 3986
/// unreserved ones and `/`.
const KEY_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

impl Uploader {
    /// The object URL of `key` (already relative to the bucket).
    fn object_url(&self, key: &str) -> anyhow::Result<url::Url> {
        let encoded = percent_encoding::utf8_percent_encode(key, KEY_ENCODE).to_string();
        let bucket = percent_encoding::utf8_percent_encode(&self.bucket, KEY_ENCODE).to_string();
        let s = match &self.endpoint {
            Endpoint::Aws => format!(
                "https://{bucket}.s3.{}.amazonaws.com/{encoded}",
                self.region
            ),
            Endpoint::Custom(base) => {
                format!("{}/{bucket}/{encoded}", base.as_str().trim_end_matches('/'))
            }
        };
        url::Url::parse(&s).with_context(|| format!("object URL '{s}'"))
    }

    /// Uploads every file under `folder` (not its `.lock`) as
    /// `<prefix>/<folder name>/<relative path>`.
    pub async fn upload_folder(&self, folder: &Path) -> anyhow::Result<UploadReport> {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let base_key = if self.prefix.is_empty() {
            name
        } else {
            format!("{}/{name}", self.prefix)
        };
        let mut files = Vec::new();
        collect_files(folder, folder, &mut files)?;
        files.sort();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()?;
        let mut bytes = 0u64;
        for rel in &files {
            let body = std::fs::read(folder.join(rel))
                .with_context(|| format!("reading {}", folder.join(rel).display()))?;
            let key = format!("{base_key}/{}", rel.replace('\\', "/"));
            bytes += body.len() as u64;
            self.put(&client, &key, body).await?;
        }
        Ok(UploadReport {
            objects: files.len(),
            bytes,
            location: format!("s3://{}/{base_key}/", self.bucket),
        })
    }

    /// One signed `PutObject`, tried up to three times on network errors
    /// and 5xx answers.
    async fn put(&self, client: &reqwest::Client, key: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let url = self.object_url(key)?;
        let content_type = content_type(key);
        let mut last = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            let headers = self.sign("PUT", &url, content_type, &body, SystemTime::now())?;
            let mut req = client.put(url.clone()).body(body.clone());
            for (k, v) in &headers {
                req = req.header(k.as_str(), v.as_str());
            }
            match req.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    last = format!("{status}: {}", s3_error(&text));
                    if !status.is_server_error() {
                        break;
                    }
                }
                Err(e) => last = format!("{e}"),
            }
        }
        bail!(
            "upload of s3://{}/{key} failed: {}",
            self.bucket,
            crate::plugin::redact_secrets(last)
        )
    }

    /// The headers that sign a request (SigV4, S3 flavour: single URI
    /// encoding, no path normalization, `x-amz-content-sha256`).
    fn sign(
        &self,
        method: &str,
        url: &url::Url,
        content_type: &str,
        body: &[u8],
        time: SystemTime,
    ) -> anyhow::Result<Vec<(String, String)>> {
        let host = host_header(url);
        let extra = [("host", host.as_str()), ("content-type", content_type)];
        sign_s3(
            method,
            url.as_str(),
            &extra,
            body,
            &self.credentials,
            &self.region,
            time,
        )
        .map(|mut signed| {
            signed.push(("content-type".into(), content_type.into()));
            signed
        })
    }
}

/// `host[:port]` as sent in the Host header.
fn host_header(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// SigV4 for S3 with the `aws-sigv4` crate: returns the headers to add
/// (`x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token`,
/// `authorization`).
fn sign_s3(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    credentials: &AwsCredentials,
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
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| anyhow::anyhow!("SigV4 parameters: {e}"))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| anyhow::anyhow!("SigV4: {e}"))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| anyhow::anyhow!("SigV4: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// `Code: Message` of an S3 XML error body, else the body's start.
fn s3_error(body: &str) -> String {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&close)? + start;
        Some(body[start..end].to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => crate::plugin::display_safe(body, 300),
    }
}

fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next().unwrap_or_default() {
        "json" => "application/json",
        "html" => "text/html; charset=utf-8",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "log" | "txt" | "csv" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Relative paths of the files under `dir`, the folder's lock left out.
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            if rel != crate::results::LOCK_FILE {
                out.push(rel);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_credentials() -> AwsCredentials {
        // AWS's documentation example key (not a real one).
        AwsCredentials {
            key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    fn at_2013_05_24() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600)
    }

    /// `sign_s3` with AWS's example key, region and time.
    fn example_signed(
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<(String, String)> {
        sign_s3(
            method,
            url,
            headers,
            body,
            &example_credentials(),
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

    #[test]
    fn object_names_are_encoded_once_with_slashes_kept() {
        let u = Uploader {
            endpoint: Endpoint::Custom(url::Url::parse("http://127.0.0.1:9000/").unwrap()),
            bucket: "results".into(),
            prefix: "team".into(),
            region: "us-east-1".into(),
            credentials: example_credentials(),
        };
        let url = u
            .object_url("team/exp/D(100,100)_text-to-text_m ü.json")
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9000/results/team/exp/D%28100%2C100%29_text-to-text_m%20%C3%BC.json"
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

    #[test]
    fn s3_errors_are_read_from_their_xml() {
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified \
                    bucket does not exist</Message></Error>";
        assert_eq!(
            s3_error(body),
            "NoSuchBucket: The specified bucket does not exist"
        );
    }
}
