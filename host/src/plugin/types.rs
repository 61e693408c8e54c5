//! Plain host-side mirrors of the WIT types, so the rest of the host does not
//! depend on generated names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::bindings::wit;

/// What a benchmark asks the model to do (genai-bench's task names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Task {
    /// `text-to-text`: generate text from a prompt.
    #[serde(rename = "text-to-text")]
    TextToText,
    /// `image-text-to-text`: generate text from a prompt and images.
    #[serde(rename = "image-text-to-text")]
    ImageTextToText,
    /// `text-to-embeddings`: embed documents.
    #[serde(rename = "text-to-embeddings")]
    TextToEmbeddings,
    /// `text-to-rerank`: rank documents against a query.
    #[serde(rename = "text-to-rerank")]
    TextToRerank,
    /// `image-to-embeddings`: embed images.
    #[serde(rename = "image-to-embeddings")]
    ImageToEmbeddings,
    /// `text-to-image`: generate images from a prompt.
    #[serde(rename = "text-to-image")]
    TextToImage,
    /// `text-to-speech`: synthesize speech from text.
    #[serde(rename = "text-to-speech")]
    TextToSpeech,
}

impl Task {
    /// Every task, in the order genai-bench lists them.
    pub const ALL: [Task; 7] = [
        Task::TextToText,
        Task::TextToImage,
        Task::TextToEmbeddings,
        Task::TextToRerank,
        Task::TextToSpeech,
        Task::ImageTextToText,
        Task::ImageToEmbeddings,
    ];

    /// The task's name on the command line and in result files.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::TextToText => "text-to-text",
            Task::ImageTextToText => "image-text-to-text",
            Task::TextToEmbeddings => "text-to-embeddings",
            Task::TextToRerank => "text-to-rerank",
            Task::ImageToEmbeddings => "image-to-embeddings",
            Task::TextToImage => "text-to-image",
            Task::TextToSpeech => "text-to-speech",
        }
    }

    /// Whether the task produces generated text (and so output tokens).
    pub fn generates_text(self) -> bool {
        matches!(self, Task::TextToText | Task::ImageTextToText)
    }

    /// Whether runs of the task iterate over batch sizes (documents per
    /// request) rather than concurrency, as genai-bench forces.
    pub fn iterates_batches(self) -> bool {
        matches!(self, Task::TextToEmbeddings | Task::TextToRerank)
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Task::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown task '{s}'; accepted: {}",
                    Task::ALL.map(Task::as_str).join(", ")
                )
            })
    }
}

impl From<wit::Task> for Task {
    fn from(t: wit::Task) -> Self {
        match t {
            wit::Task::TextToText => Task::TextToText,
            wit::Task::ImageTextToText => Task::ImageTextToText,
            wit::Task::TextToEmbeddings => Task::TextToEmbeddings,
            wit::Task::TextToRerank => Task::TextToRerank,
            wit::Task::ImageToEmbeddings => Task::ImageToEmbeddings,
            wit::Task::TextToImage => Task::TextToImage,
            wit::Task::TextToSpeech => Task::TextToSpeech,
        }
    }
}

impl From<Task> for wit::Task {
    fn from(t: Task) -> Self {
        match t {
            Task::TextToText => wit::Task::TextToText,
            Task::ImageTextToText => wit::Task::ImageTextToText,
            Task::TextToEmbeddings => wit::Task::TextToEmbeddings,
            Task::TextToRerank => wit::Task::TextToRerank,
            Task::ImageToEmbeddings => wit::Task::ImageToEmbeddings,
            Task::TextToImage => wit::Task::TextToImage,
            Task::TextToSpeech => wit::Task::TextToSpeech,
        }
    }
}

/// Where the host puts the API key: `name: <prefix><key>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthHeader {
    /// Header name, e.g. `Authorization`.
    pub name: String,
    /// Text before the key, e.g. `Api-Key `.
    pub prefix: String,
}

/// How the host authenticates a plugin's requests (WIT `auth-scheme`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthScheme {
    /// The API key in a header.
    Header(AuthHeader),
    /// AWS SigV4 for this service name.
    AwsSigv4(String),
    /// OCI request signing.
    OciSignature,
    /// A Google OAuth2 token from a service account.
    GcpOauth,
    /// Azure OpenAI `api-key` (or an AD token as Bearer).
    Azure,
}

impl AuthScheme {
    /// The header that carries the credential, for the request policy and
    /// messages.
    pub fn header_name(&self) -> &str {
        match self {
            AuthScheme::Header(h) => &h.name,
            AuthScheme::Azure => "api-key",
            _ => "Authorization",
        }
    }

    /// Whether the scheme sends the API key (`--api-key`, `MODEL_API_KEY`).
    pub fn uses_api_key(&self) -> bool {
        matches!(self, AuthScheme::Header(_) | AuthScheme::Azure)
    }

    /// One line for `plugin inspect` and messages.
    pub fn describe(&self) -> String {
        match self {
            AuthScheme::Header(h) => format!("{}: {}<key>", h.name, h.prefix),
            AuthScheme::AwsSigv4(service) => format!("AWS SigV4 (service {service})"),
            AuthScheme::OciSignature => "OCI request signature".into(),
            AuthScheme::GcpOauth => "Authorization: Bearer <Google OAuth2 token>".into(),
            AuthScheme::Azure => {
                "api-key: <key> (or Authorization: Bearer <Azure AD token>)".into()
            }
        }
    }
}

impl From<wit::AuthScheme> for AuthScheme {
    fn from(a: wit::AuthScheme) -> Self {
        match a {
            wit::AuthScheme::Header(h) => AuthScheme::Header(AuthHeader {
                name: h.name,
                prefix: h.prefix,
            }),
            wit::AuthScheme::AwsSigv4(service) => AuthScheme::AwsSigv4(service),
            wit::AuthScheme::OciSignature => AuthScheme::OciSignature,
            wit::AuthScheme::GcpOauth => AuthScheme::GcpOauth,
            wit::AuthScheme::Azure => AuthScheme::Azure,
        }
    }
}

/// A plugin's static metadata, as returned by its `info` export.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    /// Backend name used by `--api-backend`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// One-line description.
    pub description: String,
    /// Tasks the plugin supports.
    pub tasks: Vec<Task>,
    /// How requests are authenticated, if at all.
    pub auth: Option<AuthScheme>,
    /// Further `--api-backend` names the plugin serves (empty for 0.1.0 plugins).
    pub backends: Vec<String>,
}

impl PluginInfo {
    /// Whether `--api-backend NAME` selects this plugin.
    pub fn serves(&self, backend: &str) -> bool {
        self.name.eq_ignore_ascii_case(backend)
            || self
                .backends
                .iter()
                .any(|b| b.eq_ignore_ascii_case(backend))
    }
}

impl From<wit::PluginInfo> for PluginInfo {
    fn from(i: wit::PluginInfo) -> Self {
        PluginInfo {
            name: i.name,
            version: i.version,
            description: i.description,
            tasks: i.tasks.into_iter().map(Task::from).collect(),
            auth: i.auth.map(AuthScheme::from),
            backends: i.backends,
        }
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Text content.
    pub content: String,
}

/// The typed benchmark request the host hands to a plugin.
#[derive(Debug, Clone)]
pub struct BenchRequest {
    /// Task of the run.
    pub task: Task,
    /// `--api-model-name`.
    pub model: String,
    /// Sampled prompt.
    pub prompt: String,
    /// Conversation to send instead of `prompt` when not empty.
    pub messages: Vec<Message>,
    /// Images as data URLs.
    pub image_urls: Vec<String>,
    /// Documents to embed or rank.
    pub documents: Vec<String>,
    /// Query documents are ranked against (rerank).
    pub query: String,
    /// Images wanted (text-to-image): width, height, count.
    pub image_output: Option<(u32, u32, u32)>,
    /// Output length wanted by the scenario.
    pub max_tokens: Option<u32>,
    /// Whether to ask for a streaming response.
    pub stream: bool,
    /// Additional request params as a JSON object.
    pub params_json: String,
    /// The `--api-backend` name the user chose (the plugin's name or one of
    /// its `backends`); empty lets the plugin use its own name.
    pub backend: String,
    /// Non-secret backend settings from the host's flags (Azure
    /// deployment, AWS region, ...).
    pub backend_options: Vec<(String, String)>,
}

impl BenchRequest {
    /// A text-to-text request with no extra params, handy for probes and tests.
    pub fn text(model: &str, prompt: &str, max_tokens: Option<u32>, stream: bool) -> Self {
        BenchRequest {
            task: Task::TextToText,
            model: model.to_string(),
            prompt: prompt.to_string(),
            messages: Vec::new(),
            image_urls: Vec::new(),
            documents: Vec::new(),
            query: String::new(),
            image_output: None,
            max_tokens,
            stream,
            params_json: "{}".to_string(),
            backend: String::new(),
            backend_options: Vec::new(),
        }
    }

    pub(crate) fn to_wit(&self) -> wit::Request {
        wit::Request {
            task: self.task.into(),
            model: self.model.clone(),
            prompt: self.prompt.clone(),
            messages: self
                .messages
                .iter()
                .map(|m| wit::Message {
                    role: m.role.clone(),
                    content: m.content.clone(),
                })
                .collect(),
            image_urls: self.image_urls.clone(),
            documents: self.documents.clone(),
            query: self.query.clone(),
            image_output: self
                .image_output
                .map(|(width, height, count)| wit::ImageOutput {
                    width,
                    height,
                    count,
                }),
            max_tokens: self.max_tokens,
            stream: self.stream,
            params_json: self.params_json.clone(),
            backend: self.backend.clone(),
            backend_options: self.backend_options.clone(),
        }
    }
}

/// A request built by a plugin and accepted by the host's policy checks.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    /// HTTP method.
    pub method: reqwest::Method,
    /// Path relative to the base URL ("" means the base URL itself).
    pub path: String,
    /// Plugin headers (already checked against the deny-list).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// What the plugin's parser for this request's response is to be told
    /// (contract 0.5.0 on; empty before). Never read by the host.
    pub parser_note: String,
}

/// Token counts reported by a server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// `prompt_tokens`.
    pub prompt_tokens: Option<u64>,
    /// `completion_tokens`.
    pub completion_tokens: Option<u64>,
    /// Reasoning tokens.
    pub reasoning_tokens: Option<u64>,
}

/// What a plugin found in a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Event {
    /// Generated answer text.
    Content(String),
    /// Generated reasoning text.
    Reasoning(String),
    /// Bytes of generated audio.
    Audio(u64),
    /// Images generated.
    Images(u32),
    /// Server token counts.
    Usage(Usage),
    /// An error reported inside the body.
    Error {
        /// The server's code, if any.
        code: Option<i32>,
        /// The server's message.
        message: String,
    },
    /// End of the response signalled by the server.
    End,
}

impl Event {
    /// Approximate bytes this event holds, for the host's output caps.
    pub fn size(&self) -> usize {
        match self {
            Event::Content(s) | Event::Reasoning(s) => s.len(),
            Event::Error { message, .. } => message.len(),
            Event::Usage(_) | Event::End | Event::Audio(_) | Event::Images(_) => 16,
        }
    }
}

impl From<wit::Event> for Event {
    fn from(e: wit::Event) -> Self {
        match e {
            wit::Event::Content(s) => Event::Content(s),
            wit::Event::Reasoning(s) => Event::Reasoning(s),
            wit::Event::Audio(n) => Event::Audio(n),
            wit::Event::Images(n) => Event::Images(n),
            wit::Event::Usage(u) => Event::Usage(Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                reasoning_tokens: u.reasoning_tokens,
            }),
            wit::Event::Error(e) => Event::Error {
                code: e.code,
                message: e.message,
            },
            wit::Event::End => Event::End,
        }
    }
}

/// What the parser is told about a response before its body.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// HTTP status.
    pub status: u16,
    /// Headers with lower-case names.
    pub headers: Vec<(String, String)>,
    /// Task of the request.
    pub task: Task,
    /// Whether streaming was requested.
    pub stream: bool,
}

impl ResponseHead {
    pub(crate) fn to_wit(&self) -> wit::ResponseHead {
        wit::ResponseHead {
            status: self.status,
            headers: self.headers.clone(),
            task: self.task.into(),
            stream: self.stream,
        }
    }
}
