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

use std::path::Path;
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

/// A checked upload destination: where and as whom.
#[derive(Debug, Clone)]
pub struct Uploader {
    endpoint: Endpoint,
    bucket: String,
    prefix: String,
    region: String,
    credentials: crate::aws::Credentials,
}

#[derive(Debug, Clone)]
enum Endpoint {
    /// `https://<bucket>.s3.<region>.amazonaws.com/<key>`.
    Aws,
    /// `<endpoint>/<bucket>/<key>` (path style, as S3-compatible stores want).
    Custom(url::Url),
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
        let (credentials, region) = crate::aws::resolve(
            &crate::aws::AwsFlags {
                access_key_id: self.storage_aws_access_key_id.clone(),
                secret_access_key: self.storage_aws_secret_access_key.clone(),
                session_token: self.storage_aws_session_token.clone(),
                profile: self.storage_aws_profile.clone(),
                region: self.storage_aws_region.clone(),
            },
            "--upload-results",
            "--storage-aws",
        )?;
        let endpoint = match crate::aws::env("AWS_ENDPOINT_URL_S3")
            .or_else(|| crate::aws::env("AWS_ENDPOINT_URL"))
        {
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
        let host = crate::aws::host_header(url);
        let extra = [("host", host.as_str()), ("content-type", content_type)];
        crate::aws::sign(
            crate::aws::Service::S3,
            method,
            url.as_str(),
            &extra,
            crate::aws::Payload::Bytes(body),
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

    #[test]
    fn object_names_are_encoded_once_with_slashes_kept() {
        let u = Uploader {
            endpoint: Endpoint::Custom(url::Url::parse("http://127.0.0.1:9000/").unwrap()),
            bucket: "results".into(),
            prefix: "team".into(),
            region: "us-east-1".into(),
            credentials: crate::aws::Credentials::example(),
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
    fn s3_errors_are_read_from_their_xml() {
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified \
                    bucket does not exist</Message></Error>";
        assert_eq!(
            s3_error(body),
            "NoSuchBucket: The specified bucket does not exist"
        );
    }
}
