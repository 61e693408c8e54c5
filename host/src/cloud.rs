//! genai-bench's cloud credential options (`--aws-*`, `--azure-*`,
//! `--gcp-*`, OCI's `--auth`/`--config-file`/`--profile`/...), accepted
//! with genai-bench's names, defaults and environment variables.
//!
//! They belong to the cloud backends (aws-bedrock, azure-openai,
//! gcp-vertex, oci-*). The host owns every secret: values are read here,
//! registered for redaction, and never handed to a plugin. Given with a
//! backend that does not use them, they are reported as ignored rather
//! than silently dropped.

use clap::Args;

/// Cloud model credentials (genai-bench's `model_auth_options` and
/// `oci_auth_options`).
#[derive(Debug, Clone, Default, Args)]
pub struct CloudAuthArgs {
    /// Authentication type of the model provider (genai-bench parses it but
    /// never uses it; recorded in the metadata).
    #[arg(help_heading = "Cloud model credentials", long)]
    pub model_auth_type: Option<String>,
    /// AWS access key ID for Bedrock [env: AWS_ACCESS_KEY_ID].
    #[arg(help_heading = "Cloud model credentials", long)]
    pub aws_access_key_id: Option<String>,
    /// AWS secret access key for Bedrock [env: AWS_SECRET_ACCESS_KEY].
    #[arg(help_heading = "Cloud model credentials", long)]
    pub aws_secret_access_key: Option<String>,
    /// AWS session token for temporary credentials [env: AWS_SESSION_TOKEN].
    #[arg(help_heading = "Cloud model credentials", long)]
    pub aws_session_token: Option<String>,
    /// AWS profile of ~/.aws/credentials [env: AWS_PROFILE].
    #[arg(help_heading = "Cloud model credentials", long)]
    pub aws_profile: Option<String>,
    /// AWS region for Bedrock [env: AWS_DEFAULT_REGION].
    #[arg(help_heading = "Cloud model credentials", long)]
    pub aws_region: Option<String>,
    /// Azure OpenAI endpoint URL [env: AZURE_OPENAI_ENDPOINT].
    #[arg(help_heading = "Cloud model credentials", long)]
    pub azure_endpoint: Option<String>,
    /// Azure OpenAI deployment name [env: AZURE_OPENAI_DEPLOYMENT].
    #[arg(help_heading = "Cloud model credentials", long)]
    pub azure_deployment: Option<String>,
    /// Azure OpenAI API version [env: AZURE_OPENAI_API_VERSION] [default: 2024-02-01].
    #[arg(help_heading = "Cloud model credentials", long)]
    pub azure_api_version: Option<String>,
    /// Azure AD token [env: AZURE_AD_TOKEN].
    #[arg(help_heading = "Cloud model credentials", long)]
    pub azure_ad_token: Option<String>,
    /// GCP project ID for Vertex AI [env: GCP_PROJECT_ID].
    #[arg(help_heading = "Cloud model credentials", long)]
    pub gcp_project_id: Option<String>,
    /// GCP location for Vertex AI [env: GCP_LOCATION] [default: us-central1].
    #[arg(help_heading = "Cloud model credentials", long)]
    pub gcp_location: Option<String>,
    /// GCP service account JSON file [env: GOOGLE_APPLICATION_CREDENTIALS].
    #[arg(help_heading = "Cloud model credentials", long)]
    pub gcp_credentials_path: Option<String>,
    /// OCI authentication type [default: user_principal].
    #[arg(
        help_heading = "Cloud model credentials",
        long,
        value_enum,
        ignore_case = true
    )]
    pub auth: Option<OciAuth>,
    /// OCI config file for user_principal [default: ~/.oci/config].
    #[arg(help_heading = "Cloud model credentials", long)]
    pub config_file: Option<String>,
    /// OCI config profile [default: DEFAULT].
    #[arg(help_heading = "Cloud model credentials", long)]
    pub profile: Option<String>,
    /// OCI security token for security_token authentication.
    #[arg(help_heading = "Cloud model credentials", long)]
    pub security_token: Option<String>,
    /// OCI region for security_token authentication.
    #[arg(help_heading = "Cloud model credentials", long)]
    pub region: Option<String>,
}

/// OCI's authentication types (genai-bench's `--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OciAuth {
    /// API key from the OCI config file.
    #[value(name = "user_principal")]
    UserPrincipal,
    /// The instance's own identity.
    #[value(name = "instance_principal")]
    InstancePrincipal,
    /// A session token.
    #[value(name = "security_token")]
    SecurityToken,
    /// Instance principal on behalf of a user.
    #[value(name = "instance_obo_user")]
    InstanceOboUser,
}

/// Which backends read a group of flags.
struct Group {
    backends: &'static [&'static str],
    flags: &'static [&'static str],
}

const GROUPS: &[Group] = &[
    Group {
        backends: &["aws-bedrock"],
        flags: &[
            "--aws-access-key-id",
            "--aws-secret-access-key",
            "--aws-session-token",
            "--aws-profile",
            "--aws-region",
        ],
    },
    Group {
        backends: &["azure-openai"],
        flags: &[
            "--azure-endpoint",
            "--azure-deployment",
            "--azure-api-version",
            "--azure-ad-token",
        ],
    },
    Group {
        backends: &["gcp-vertex"],
        flags: &[
            "--gcp-project-id",
            "--gcp-location",
            "--gcp-credentials-path",
        ],
    },
    Group {
        backends: &["oci-cohere", "oci-cohere-v2", "oci-genai", "oci-openai"],
        flags: &[
            "--auth",
            "--config-file",
            "--profile",
            "--security-token",
            "--region",
        ],
    },
];

impl CloudAuthArgs {
    /// Flags given on the command line, in [`GROUPS`] order.
    fn given(&self) -> Vec<&'static str> {
        let set = [
            self.aws_access_key_id.is_some(),
            self.aws_secret_access_key.is_some(),
            self.aws_session_token.is_some(),
            self.aws_profile.is_some(),
            self.aws_region.is_some(),
            self.azure_endpoint.is_some(),
            self.azure_deployment.is_some(),
            self.azure_api_version.is_some(),
            self.azure_ad_token.is_some(),
            self.gcp_project_id.is_some(),
            self.gcp_location.is_some(),
            self.gcp_credentials_path.is_some(),
            self.auth.is_some(),
            self.config_file.is_some(),
            self.profile.is_some(),
            self.security_token.is_some(),
            self.region.is_some(),
        ];
        GROUPS
            .iter()
            .flat_map(|g| g.flags.iter().copied())
            .zip(set)
            .filter_map(|(f, on)| on.then_some(f))
            .collect()
    }

    /// Secrets among the values, for redaction in logs and files.
    pub fn secrets(&self) -> Vec<&str> {
        [
            &self.aws_secret_access_key,
            &self.aws_session_token,
            &self.azure_ad_token,
            &self.security_token,
        ]
        .into_iter()
        .filter_map(|s| s.as_deref())
        .filter(|s| !s.is_empty())
        .collect()
    }

    /// Warnings for flags that `backend` does not read: said, not dropped.
    pub fn unused_warnings(&self, backend: &str) -> Vec<String> {
        let mut out = Vec::new();
        for g in GROUPS {
            if g.backends.contains(&backend) {
                continue;
            }
            let given: Vec<&str> = self
                .given()
                .into_iter()
                .filter(|f| g.flags.contains(f))
                .collect();
            if !given.is_empty() {
                out.push(format!(
                    "{} {} only read by --api-backend {}; --api-backend {backend} does not use \
                     {}, so {} ignored",
                    given.join(", "),
                    if given.len() == 1 { "is" } else { "are" },
                    g.backends.join(" / "),
                    if given.len() == 1 { "it" } else { "them" },
                    if given.len() == 1 {
                        "it is"
                    } else {
                        "they are"
                    },
                ));
            }
        }
        out
    }

    /// genai-bench's metadata `auth_config`: which scheme, never a secret.
    pub fn auth_config(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        if let Some(t) = &self.model_auth_type {
            m.insert("model_auth_type".into(), t.clone().into());
        }
        m.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_a_backend_does_not_read_are_named() {
        let a = CloudAuthArgs {
            aws_region: Some("us-east-1".into()),
            aws_secret_access_key: Some("s3cr3t".into()),
            profile: Some("DEFAULT".into()),
            ..CloudAuthArgs::default()
        };
        let w = a.unused_warnings("baseten");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains(
                "--aws-secret-access-key, --aws-region are only read by --api-backend aws-bedrock"
            ),
            "{}",
            w[0]
        );
        assert!(
            w[1].contains("--profile is only read by --api-backend oci-cohere"),
            "{}",
            w[1]
        );
        assert!(a.unused_warnings("aws-bedrock").len() == 1);
        assert_eq!(a.secrets(), vec!["s3cr3t"]);
    }
}
