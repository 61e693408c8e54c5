//! Plain mirrors of the WIT types, so the logic builds and tests natively
//! without the component bindings.

/// What a benchmark asks the model to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    TextToText,
    ImageTextToText,
    TextToEmbeddings,
    TextToRerank,
    ImageToEmbeddings,
    TextToImage,
    TextToSpeech,
}

/// How the host authenticates the plugin's requests (WIT `auth-scheme`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// The API key in header `.0`, after the text `.1` (e.g. `Bearer `).
    Header(&'static str, &'static str),
    /// AWS SigV4 for this service name.
    AwsSigv4(&'static str),
    /// OCI request signing.
    OciSignature,
    /// A Google OAuth2 token as `Authorization: Bearer`.
    GcpOauth,
    /// Azure `api-key` (or an AD token as Bearer).
    Azure,
}

/// Severity of a log line sent to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Warn,
}

/// Where log lines go; the component forwards them to `host::log`.
pub trait Log {
    fn log(&mut self, level: Level, message: &str);
}

/// Drops every line; for callers that do not care.
pub struct NoLog;

impl Log for NoLog {
    fn log(&mut self, _level: Level, _message: &str) {}
}

/// One chat message of the host's conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// The host's typed benchmark request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub task: Task,
    pub model: String,
    pub prompt: String,
    pub messages: Vec<Message>,
    pub image_urls: Vec<String>,
    pub documents: Vec<String>,
    /// The query documents are ranked against (rerank).
    pub query: String,
    /// Images wanted (text-to-image): width, height, count.
    pub image_output: Option<(u32, u32, u32)>,
    pub max_tokens: Option<u32>,
    pub stream: bool,
    pub params_json: String,
    /// The `--api-backend` name the user chose (e.g. `baseten`, `openai`,
    /// `vllm`, `sglang`).
    pub backend: String,
    /// Non-secret backend settings (`azure-deployment`, `aws-region`, ...).
    pub backend_options: Vec<(String, String)>,
}

impl Request {
    /// A backend option's value, if the host set it.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.backend_options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The HTTP request the plugin wants sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// What a streamed answer is when its content type does not say.
    pub stream_body: StreamBody,
}

/// Which API's answers the parser reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI-compatible and TGI-style fields (`choices`, `text`, ...).
    #[default]
    OpenAi,
    /// Cohere v2 chat: typed events (`content-delta`, `message-end`).
    Cohere,
    /// Vertex AI Gemini: `candidates[].content.parts[].text`,
    /// `usageMetadata`, `finishReason`.
    Gemini,
    /// OCI Generative AI: chat events of the COHERE, COHEREV2 and GENERIC
    /// formats, `chatResponse`, `embedText` / `rerankText` results.
    Oci,
}

/// What a streamed body is when the server's content type does not say
/// (`application/octet-stream`, `text/plain`, or none): decided by the
/// request format the plugin sent, never by the generated text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StreamBody {
    /// Chat formats: an OpenAI-compatible server answers with SSE, which a
    /// Truss model wrapping one may send as `application/octet-stream`;
    /// the first bytes tell SSE from plain text.
    #[default]
    Sniff,
    /// Baseten's prompt format: a Truss model's generator streams raw text;
    /// it is read as text from the first byte.
    PlainText,
}

impl StreamBody {
    /// This choice as the request's parser note (contract 0.5.0: the
    /// parser runs in another instance than `build-request`).
    pub fn note(self) -> &'static str {
        match self {
            StreamBody::Sniff => "",
            StreamBody::PlainText => "stream-body=plain-text",
        }
    }

    /// The choice a parser note carries; anything else is the default.
    pub fn from_note(note: &str) -> StreamBody {
        if note == StreamBody::PlainText.note() {
            StreamBody::PlainText
        } else {
            StreamBody::Sniff
        }
    }
}

/// Token counts reported by the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
}

/// An error the server reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: Option<i32>,
    pub message: String,
}

/// What the parser found in the bytes it was fed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Content(String),
    Reasoning(String),
    /// Bytes of generated audio.
    Audio(u64),
    /// Images generated.
    Images(u32),
    Usage(Usage),
    Error(ApiError),
    End,
}

/// What the parser is told about the response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub task: Task,
    pub stream: bool,
    /// From the request this response answers.
    pub stream_body: StreamBody,
    /// The plugin's answer format.
    pub dialect: Dialect,
}
