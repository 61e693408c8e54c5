//! Loading the model's tokenizer and counting tokens with it.
//!
//! Token counts are what the benchmark's input lengths are measured in, so
//! they must come from the served model's own tokenizer. [`TokenCounter::load`]
//! takes a local `tokenizer.json`, a folder holding one, or a Hugging Face
//! model id, which it looks up in the standard Hugging Face cache before
//! downloading it once (into that same cache). Counts never include special
//! tokens (genai-bench counts `encode(text, add_special_tokens=False)`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, anyhow, bail};
use tokenizers::Tokenizer;

/// Vocabulary size of the built-in demo tokenizer.
pub const DEMO_VOCAB_SIZE: usize = 8000;

/// A loaded tokenizer. Clones share it, and it can be used from many
/// threads at once.
#[derive(Clone)]
pub struct TokenCounter {
    inner: Arc<Inner>,
}

struct Inner {
    tokenizer: Tokenizer,
    name: String,
    /// Distinguishes tokenizers in caches keyed by tokenizer (clones share
    /// it; two loads of the same file do not, which only costs a rebuild).
    id: u64,
    /// SHA-256 (hex) of the tokenizer.json bytes: keys on-disk caches, so
    /// the same file loaded in another process finds them.
    fingerprint: String,
}

impl std::fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCounter")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl TokenCounter {
    /// Loads a tokenizer from `spec`: a `tokenizer.json` file, a folder
    /// containing `tokenizer.json`, or a Hugging Face model id such as
    /// `Qwen/Qwen2.5-7B-Instruct`.
    ///
    /// A model id is looked up first in the Hugging Face cache
    /// (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`), preferring the revision `refs/main`
    /// names, so a cached model works offline; otherwise `tokenizer.json` is
    /// downloaded once into that cache, with `$HF_TOKEN` for gated models
    /// (`HF_ENDPOINT` and `HF_HUB_OFFLINE=1` are honoured).
    pub fn load(spec: &str) -> anyhow::Result<Self> {
        let spec = spec.trim();
        if spec.is_empty() {
            bail!(
                "no tokenizer given: pass a Hugging Face model id (e.g. Qwen/Qwen2.5-7B-Instruct), \
                 a tokenizer.json file or a folder containing one"
            );
        }
        let path = Path::new(spec);
        if path.exists() {
            return Self::from_local(path, spec);
        }
        if looks_like_path(spec) {
            bail!(
                "tokenizer '{spec}' does not exist: pass an existing tokenizer.json file, a folder \
                 containing tokenizer.json, or a Hugging Face model id such as org/name"
            );
        }
        let file = hub_tokenizer_file(spec)?;
        Self::from_file_named(&file, spec)
    }

    /// Loads a local `tokenizer.json` or a folder that contains one.
    fn from_local(path: &Path, name: &str) -> anyhow::Result<Self> {
        let file = if path.is_dir() {
            let file = path.join("tokenizer.json");
            if !file.is_file() {
                bail!(
                    "folder '{}' has no tokenizer.json; only the Hugging Face tokenizers format \
                     is supported (a model saved with transformers' save_pretrained has it)",
                    path.display()
                );
            }
            file
        } else {
            path.to_path_buf()
        };
        Self::from_file_named(&file, name)
    }

    /// Loads a `tokenizer.json` file, naming the tokenizer `name`.
    pub fn from_file_named(file: &Path, name: &str) -> anyhow::Result<Self> {
        let bytes = std::fs::read(file)
            .with_context(|| format!("cannot read tokenizer '{}'", file.display()))?;
        let mut tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| {
            anyhow!(
                "cannot load tokenizer '{}': {e}; expected a Hugging Face tokenizer.json",
                file.display()
            )
        })?;
        let fingerprint = {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(&bytes);
            digest.iter().map(|b| format!("{b:02x}")).collect()
        };
        // Some tokenizer.json files carry truncation (e.g. BERT's 512) or
        // padding; either would silently change every count.
        tokenizer
            .with_truncation(None)
            .map_err(|e| anyhow!("cannot disable truncation of '{}': {e}", file.display()))?;
        tokenizer.with_padding(None);
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Ok(Self {
            inner: Arc::new(Inner {
                tokenizer,
                name: name.to_string(),
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                fingerprint,
            }),
        })
    }

    /// The name the tokenizer was loaded by (model id or path).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// An id unique to this loaded tokenizer and its clones, for caches.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// SHA-256 (hex) of the tokenizer.json it was loaded from.
    pub fn fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    /// Token ids of `text`, without special tokens.
    pub fn try_encode(&self, text: &str) -> anyhow::Result<Vec<u32>> {
        let encoding = self
            .inner
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| anyhow!("tokenizer '{}' cannot encode text: {e}", self.name()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Token ids of `text`, without special tokens; empty (and a warning
    /// logged) if the tokenizer fails, which well-formed tokenizers do not.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.try_encode(text).unwrap_or_else(|e| {
            tracing::warn!("{e:#}");
            Vec::new()
        })
    }

    /// Number of tokens in `text`, without special tokens.
    pub fn count(&self, text: &str) -> usize {
        self.encode(text).len()
    }

    /// Token ids of `text` with each token's byte range in `text` (as the
    /// tokenizer reports it: some trim whitespace off the range), for
    /// tokenizing a corpus once.
    pub(crate) fn encode_with_offsets(
        &self,
        text: &str,
    ) -> anyhow::Result<Vec<(u32, usize, usize)>> {
        let encoding = self
            .inner
            .tokenizer
            .encode(text, false)
            .map_err(|e| anyhow!("tokenizer '{}' cannot encode text: {e}", self.name()))?;
        Ok(encoding
            .get_ids()
            .iter()
            .zip(encoding.get_offsets())
            .map(|(&id, &(start, end))| (id, start, end))
            .collect())
    }

    /// Text of `ids`, special tokens skipped.
    pub fn try_decode(&self, ids: &[u32]) -> anyhow::Result<String> {
        self.inner
            .tokenizer
            .decode(ids, true)
            .map_err(|e| anyhow!("tokenizer '{}' cannot decode tokens: {e}", self.name()))
    }

    /// Text of `ids`, special tokens skipped; empty (and a warning logged)
    /// if the tokenizer fails.
    pub fn decode(&self, ids: &[u32]) -> String {
        self.try_decode(ids).unwrap_or_else(|e| {
            tracing::warn!("{e:#}");
            String::new()
        })
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.tokenizer.get_vocab_size(true)
    }
}

/// True when `spec` can only be meant as a local path (so a missing file
/// is reported as such instead of trying the Hub).
fn looks_like_path(spec: &str) -> bool {
    spec.starts_with(['/', '.', '~', '\\'])
        || spec.ends_with(".json")
        || spec.contains('\\')
        || spec.matches('/').count() > 1
        || spec.chars().nth(1) == Some(':')
}

/// The Hugging Face hub cache folder, as huggingface_hub resolves it.
pub fn hub_cache_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("HF_HUB_CACHE").or_else(|| var("HUGGINGFACE_HUB_CACHE")) {
        return Some(PathBuf::from(dir));
    }
    if let Some(home) = var("HF_HOME") {
        return Some(PathBuf::from(home).join("hub"));
    }
    let home = var("HOME").or_else(|| var("USERPROFILE"))?;
    Some(PathBuf::from(home).join(".cache/huggingface/hub"))
}

/// `tokenizer.json` of model `id` in hub cache `hub`, if cached: the
/// snapshot `refs/main` names, else the most recently written snapshot.
pub fn cached_tokenizer(hub: &Path, id: &str) -> Option<PathBuf> {
    let repo = hub.join(format!("models--{}", id.replace('/', "--")));
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs/main")) {
        let file = repo
            .join("snapshots")
            .join(rev.trim())
            .join("tokenizer.json");
        if file.is_file() {
            return Some(file);
        }
    }
    std::fs::read_dir(repo.join("snapshots"))
        .ok()?
        .filter_map(|e| {
            let file = e.ok()?.path().join("tokenizer.json");
            let modified = std::fs::metadata(&file).ok()?.modified().ok()?;
            Some((modified, file))
        })
        .max()
        .map(|(_, file)| file)
}

/// Finds model `id`'s tokenizer.json in the hub cache or downloads it.
fn hub_tokenizer_file(id: &str) -> anyhow::Result<PathBuf> {
    let valid = |c: char| c.is_ascii_alphanumeric() || "-_./".contains(c);
    if !id.chars().all(valid) || id.starts_with('/') || id.ends_with('/') {
        bail!(
            "tokenizer '{id}' is neither an existing local path nor a valid Hugging Face model id \
             (org/name, letters, digits, '-', '_', '.')"
        );
    }
    let hub = hub_cache_dir().ok_or_else(|| {
        anyhow!("cannot locate the Hugging Face cache for '{id}': set HF_HOME or HF_HUB_CACHE")
    })?;
    if let Some(file) = cached_tokenizer(&hub, id) {
        tracing::debug!(file = %file.display(), "tokenizer found in the Hugging Face cache");
        return Ok(file);
    }
    let offline = std::env::var("HF_HUB_OFFLINE")
        .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes" | "on"));
    if offline {
        bail!(
            "tokenizer for '{id}' is not in the Hugging Face cache {} and HF_HUB_OFFLINE is set; \
             unset it to download, or pass a local tokenizer.json or folder instead",
            hub.display()
        );
    }
    download(&hub, id).with_context(|| {
        format!(
            "cannot get the tokenizer of '{id}': not in the Hugging Face cache {} and the \
             download failed. For a gated or private model export HF_TOKEN with a token that \
             has access; or pass a local tokenizer.json file or a folder containing one",
            hub.display()
        )
    })
}

/// Downloads `tokenizer.json` of model `id` into hub cache `hub`.
fn download(hub: &Path, id: &str) -> anyhow::Result<PathBuf> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo, RepoType};

    tracing::info!("downloading the tokenizer of '{id}' into {}", hub.display());
    let mut builder = ApiBuilder::from_cache(Cache::new(hub.to_path_buf())).with_progress(false);
    if let Some(token) = std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()) {
        builder = builder.with_token(Some(token));
    }
    if let Some(endpoint) = std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()) {
        builder = builder.with_endpoint(endpoint);
    }
    let api = builder.build()?;
    let repo = api.repo(Repo::with_revision(
        id.to_string(),
        RepoType::Model,
        "main".to_string(),
    ));
    Ok(repo.get("tokenizer.json")?)
}

/// Trains a byte-level BPE tokenizer (GPT-2 style: byte-level
/// pre-tokenizer and decoder, no prefix space) on `corpus_text` and saves
/// it as a `tokenizer.json` at `out`.
pub fn train_bpe(corpus_text: &str, vocab_size: usize, out: &Path) -> anyhow::Result<()> {
    use tokenizers::AddedToken;
    use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::{
        DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
        TokenizerBuilder, TokenizerImpl,
    };

    if corpus_text.trim().is_empty() {
        bail!("cannot train a tokenizer on empty text");
    }
    if vocab_size < 300 {
        bail!("vocabulary size {vocab_size} is too small: byte-level BPE needs at least 300");
    }
    let byte_level = ByteLevel::new(false, true, true);
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(2)
        .special_tokens(vec![AddedToken::from("<|endoftext|>", true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer: TokenizerImpl<
        BPE,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    > = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(byte_level.into()))
        .with_post_processor(Some(byte_level.into()))
        .with_decoder(Some(byte_level.into()))
        .build()
        .map_err(|e| anyhow!("cannot build a BPE tokenizer: {e}"))?;
    // Paragraphs rather than lines, so that newline runs are learned too.
    tokenizer
        .train(&mut trainer, corpus_text.split_inclusive("\n\n"))
        .map_err(|e| anyhow!("training the BPE tokenizer failed: {e}"))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create folder '{}'", dir.display()))?;
    }
    // Written under a temporary name and renamed, so a concurrent reader
    // never sees half a file.
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    tokenizer
        .save(&tmp, false)
        .map_err(|e| anyhow!("cannot write tokenizer '{}': {e}", tmp.display()))?;
    std::fs::rename(&tmp, out)
        .with_context(|| format!("cannot move tokenizer into place at '{}'", out.display()))?;
    Ok(())
}

/// A tokenizer trained on the built-in corpus (byte-level BPE,
/// [`DEMO_VOCAB_SIZE`] tokens) for runs without a real model tokenizer.
/// It is trained once (a few seconds) and saved in `cache_dir`; later calls
/// load the saved file.
pub fn builtin_demo_tokenizer(cache_dir: &Path) -> anyhow::Result<TokenCounter> {
    let corpus = crate::sampling::corpus::BUILTIN_TEXT;
    // The training recipe's version and the corpus's length key the file,
    // so a changed recipe or an edited corpus retrains.
    let file = cache_dir.join(format!(
        "demo-tokenizer-v2-bpe{DEMO_VOCAB_SIZE}-{}.json",
        corpus.len()
    ));
    if !file.is_file() {
        tracing::info!(
            "training the built-in demo tokenizer into {}",
            file.display()
        );
        train_bpe(corpus, DEMO_VOCAB_SIZE, &file)?;
    }
    TokenCounter::from_file_named(&file, "builtin-demo-bpe")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// A BPE tokenizer trained once per test binary on part of the built-in
    /// corpus (the whole corpus takes too long in a debug build).
    pub(crate) fn test_tokenizer() -> TokenCounter {
        static TOK: OnceLock<TokenCounter> = OnceLock::new();
        TOK.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("gb-tok-test-{}", std::process::id()));
            let file = dir.join("tokenizer.json");
            let text = crate::sampling::corpus::BUILTIN_TEXT;
            // Plays and Bible both, so the vocabulary fits either.
            let sample = format!("{}{}", &text[..150_000], &text[text.len() - 150_000..]);
            train_bpe(&sample, 2000, &file).unwrap();
            let tok = TokenCounter::load(file.to_str().unwrap()).unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            tok
        })
        .clone()
    }

    #[test]
    fn trained_tokenizer_round_trips() {
        let tok = test_tokenizer();
        let text = "Shall I compare thee to a summer's day?\nThou art more lovely.";
        let ids = tok.encode(text);
        assert!(!ids.is_empty() && ids.len() < text.len());
        assert_eq!(tok.decode(&ids), text);
        assert_eq!(tok.count(text), ids.len());
        assert_eq!(tok.count(""), 0);
        assert!(tok.vocab_size() > 1000);
    }

    #[test]
    fn clones_share_the_tokenizer() {
        let tok = test_tokenizer();
        let copy = tok.clone();
        assert_eq!(tok.id(), copy.id());
        assert_eq!(tok.name(), copy.name());
        fn send_sync<T: Send + Sync>() {}
        send_sync::<TokenCounter>();
    }

    #[test]
    fn missing_local_paths_are_clear_errors() {
        for spec in [
            "/nonexistent/tokenizer.json",
            "./nope",
            "a/b/c",
            "my-tokenizer.json",
        ] {
            let err = TokenCounter::load(spec).unwrap_err().to_string();
            assert!(
                err.contains(spec) && err.contains("does not exist"),
                "{err}"
            );
        }
        let err = TokenCounter::load("  ").unwrap_err().to_string();
        assert!(err.contains("no tokenizer given"), "{err}");
        let err = TokenCounter::load("bad id!").unwrap_err().to_string();
        assert!(err.contains("not a valid Hugging Face model id") || err.contains("neither"));
    }

    #[test]
    fn folder_without_tokenizer_json_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = TokenCounter::load(dir.path().to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no tokenizer.json"), "{err}");
        std::fs::write(dir.path().join("tokenizer.json"), "{not json").unwrap();
        let err = TokenCounter::load(dir.path().to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot load tokenizer"), "{err}");
    }

    #[test]
    fn loads_a_folder_with_tokenizer_json() {
        let dir = tempfile::tempdir().unwrap();
        train_bpe(
            "hello world\nhello there\n",
            300,
            &dir.path().join("tokenizer.json"),
        )
        .unwrap();
        let tok = TokenCounter::load(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(tok.decode(&tok.encode("hello world")), "hello world");
    }

    #[test]
    fn hub_cache_lookup_prefers_refs_main() {
        let hub = tempfile::tempdir().unwrap();
        let repo = hub.path().join("models--org--model");
        for rev in ["aaa", "bbb"] {
            let snap = repo.join("snapshots").join(rev);
            std::fs::create_dir_all(&snap).unwrap();
            std::fs::write(snap.join("tokenizer.json"), rev).unwrap();
        }
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "aaa\n").unwrap();
        let found = cached_tokenizer(hub.path(), "org/model").unwrap();
        assert!(found.ends_with("snapshots/aaa/tokenizer.json"), "{found:?}");
        // Without refs/main the newest snapshot is used.
        std::fs::remove_file(repo.join("refs/main")).unwrap();
        assert!(cached_tokenizer(hub.path(), "org/model").is_some());
        assert!(cached_tokenizer(hub.path(), "org/other").is_none());
    }

    #[test]
    fn train_rejects_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("t.json");
        assert!(train_bpe("   ", 1000, &out).is_err());
        assert!(train_bpe("text", 10, &out).is_err());
    }
}
