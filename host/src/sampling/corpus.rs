//! Source text for synthetic prompts, tokenized once and cut into windows
//! of an exact token count.
//!
//! genai-bench re-encodes shuffled corpus lines for every request. Here the
//! corpus is tokenized once per tokenizer (lazily, in chunks of about
//! [`CHUNK_BYTES`], so start-up costs nothing and a test touches only a few
//! chunks), and a prompt is the text of a run of tokens starting at a
//! random line.
//!
//! Counting: a chunk is cut into *segments*, each a non-blank line plus
//! the blank lines after it, and encoded whole. A chunk is *local* when
//! every segment start is a token boundary and the text from its second
//! segment on encodes to the same ids as in context: the tokenizer treats
//! the start of a non-blank line as a hard boundary (true of byte-level BPE
//! tokenizers such as GPT-2's, Llama 3's or Qwen's, and of BERT's
//! WordPiece). A prompt over local chunks is whole segments (counts known,
//! original text) plus a prefix of one more segment, which alone is decoded
//! and re-encoded, adjusted until its count is right: a 10,000-token prompt
//! costs one short encode instead of a 10,000-token one. The first 16 such
//! prompts of a corpus and every 64th after are re-encoded whole as a
//! check; a mismatch switches the corpus to the slow path for good (logged
//! as a warning).
//!
//! The slow path, for tokenizers without that property (SentencePiece
//! models that prepend `▁` to the text, for one) or when the fast one
//! cannot hit the count: decode the window of ids, re-encode the whole
//! prompt, and grow or shrink the window by the difference until the count
//! is exact (see [`Corpus::exact_text`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::bail;
use rand::Rng;

use crate::tokenizer::TokenCounter;

/// The built-in corpus: Shakespeare's sonnets (genai-bench's own corpus),
/// fourteen of his plays and twenty books of the King James Bible, all in
/// the public domain (sources in `host/data/README.md`).
pub const BUILTIN_TEXT: &str = include_str!("../../data/corpus.txt");

/// genai-bench's own corpus, its `sonnet.txt` (84 lines, 3,642 bytes):
/// the first section of [`BUILTIN_TEXT`], after its title line.
pub fn genai_bench_sonnets() -> &'static str {
    let body = BUILTIN_TEXT
        .split_once("\n\n")
        .map_or(BUILTIN_TEXT, |(_, rest)| rest);
    let end = body.find("\n\n").map_or(body.len(), |i| i + 1);
    &body[..end]
}

/// Target size of a lazily tokenized chunk of text.
pub const CHUNK_BYTES: usize = 16 * 1024;

/// How many window lengths the slow path tries at one start position
/// before moving to another.
const ADJUST_STEPS: usize = 6;

/// How many start positions the slow path tries before settling for the
/// closest count.
const STARTS: usize = 4;

/// Fast-path prompts re-encoded whole as a check: the first
/// `AUDIT_FIRST`, then one in `AUDIT_EVERY`.
const AUDIT_FIRST: u64 = 16;
const AUDIT_EVERY: u64 = 64;

/// A text to cut prompts from, tokenized on demand with one tokenizer.
pub struct Corpus {
    text: Arc<str>,
    tokenizer: TokenCounter,
    chunks: Vec<Chunk>,
    /// Fast-path prompts made so far (for the audit schedule).
    fast_prompts: AtomicU64,
    /// Set when an audit found a fast-path count wrong.
    fast_disabled: AtomicBool,
}

struct Chunk {
    /// Byte range of the chunk in `text`. Every chunk ends with `\n` and
    /// every chunk but the first starts at a non-blank line.
    start: usize,
    end: usize,
    tokens: OnceLock<ChunkTokens>,
}

struct ChunkTokens {
    /// The chunk's ids.
    ids: Vec<u32>,
    /// Per segment: first token index in `ids` and byte offset in the
    /// chunk's text.
    segments: Vec<(u32, u32)>,
    /// Segments that begin at a non-blank line: where prompts start.
    starts: Vec<u32>,
    /// Whether segment starts are hard token boundaries in this chunk
    /// (see the module doc).
    local: bool,
}

impl ChunkTokens {
    /// Token range of segment `k`.
    fn token_range(&self, k: usize) -> std::ops::Range<usize> {
        let end = self
            .segments
            .get(k + 1)
            .map_or(self.ids.len(), |s| s.0 as usize);
        self.segments[k].0 as usize..end
    }

    /// Byte range of segment `k` in a chunk text of `len` bytes.
    fn byte_range(&self, k: usize, len: usize) -> std::ops::Range<usize> {
        let end = self.segments.get(k + 1).map_or(len, |s| s.1 as usize);
        self.segments[k].1 as usize..end
    }
}

/// A position in the corpus: chunk index and segment index within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    chunk: usize,
    segment: usize,
}

/// Text that comes before every window of a prompt (a `P` scenario's
/// shared prefix), with its token count in that context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    text: String,
    tokens: usize,
}

impl Head {
    /// The head's text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Whether byte `i` of `text` starts a non-blank line.
fn segment_start(text: &str, i: usize) -> bool {
    (i == 0 || text.as_bytes()[i - 1] == b'\n')
        && i < text.len()
        && !text[i..].starts_with(char::is_whitespace)
}

/// How a corpus got its tokens before a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmUp {
    /// Read from the on-disk cache rather than tokenized.
    pub from_cache: bool,
    /// Wall time it took.
    pub secs: f64,
}

/// Tokenized-corpus cache files: magic and format version.
const CACHE_MAGIC: &[u8] = b"GBCORPUS";
const CACHE_FORMAT: u32 = 1;

fn put(out: &mut Vec<u8>, x: u32) {
    out.extend_from_slice(&x.to_le_bytes());
}

/// Reads a cache file front to back, failing on a short read.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> anyhow::Result<&[u8]> {
        if self.0.len() < n {
            bail!("the file is truncated");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn u32(&mut self) -> anyhow::Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }

    fn u32s(&mut self, n: usize) -> anyhow::Result<Vec<u32>> {
        let bytes = self.take(n.saturating_mul(4))?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

impl Corpus {
    /// A corpus over `text` for `tokenizer`. Nothing is tokenized yet.
    pub fn new(text: impl Into<String>, tokenizer: TokenCounter) -> anyhow::Result<Self> {
        let mut text: String = text.into();
        if text.trim().is_empty() {
            bail!("the prompt corpus has no text");
        }
        // Chunks end with a newline so that chunk after chunk (and the
        // wrap from the last to the first) reads as consecutive lines.
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < text.len() {
            // Cut at the first non-blank line start past the target size,
            // so that chunk boundaries are segment boundaries (a byte
            // search: '\n' never occurs inside a multi-byte character).
            let mut end = text.len();
            let mut i = start + CHUNK_BYTES;
            while i < text.len() {
                match text.as_bytes()[i..].iter().position(|&b| b == b'\n') {
                    Some(n) if segment_start(&text, i + n + 1) => {
                        end = i + n + 1;
                        break;
                    }
                    Some(n) => i += n + 1,
                    None => break,
                }
            }
            chunks.push(Chunk {
                start,
                end,
                tokens: OnceLock::new(),
            });
            start = end;
        }
        Ok(Self {
            text: text.into(),
            tokenizer,
            chunks,
            fast_prompts: AtomicU64::new(0),
            fast_disabled: AtomicBool::new(false),
        })
    }

    /// The built-in corpus for `tokenizer`, shared by every caller using
    /// the same tokenizer (so it is tokenized once per process).
    pub fn builtin(tokenizer: &TokenCounter) -> Arc<Corpus> {
        static CACHE: OnceLock<Mutex<HashMap<u64, Arc<Corpus>>>> = OnceLock::new();
        let mut cache = CACHE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cache
            .entry(tokenizer.id())
            .or_insert_with(|| {
                Arc::new(
                    Corpus::new(BUILTIN_TEXT, tokenizer.clone())
                        .expect("the built-in corpus is not empty"),
                )
            })
            .clone()
    }

    /// The tokenizer the corpus is cut with.
    pub fn tokenizer(&self) -> &TokenCounter {
        &self.tokenizer
    }

    /// Size of the text in bytes.
    pub fn len_bytes(&self) -> usize {
        self.text.len()
    }

    /// Tokenizes every chunk now, on every core (about three seconds of
    /// CPU for the built-in corpus), so later samples cost only their own
    /// work.
    pub fn warm_up(&self) -> anyhow::Result<()> {
        let next = AtomicUsize::new(0);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(self.chunks.len())
            .max(1);
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| -> anyhow::Result<()> {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= self.chunks.len() {
                                return Ok(());
                            }
                            self.chunk(i)?;
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join()
                    .map_err(|_| anyhow::anyhow!("tokenizing the prompt corpus panicked"))??;
            }
            Ok(())
        })
    }

    /// Whether every chunk is tokenized.
    pub fn is_warm(&self) -> bool {
        self.chunks.iter().all(|c| c.tokens.get().is_some())
    }

    /// [`Corpus::warm_up`], reading the tokens from `dir` if an earlier
    /// process saved them there for the same text and tokenizer file, and
    /// saving them otherwise. A cache file that cannot be read or written
    /// only costs the tokenizing (with a warning).
    pub fn warm_up_cached(&self, dir: Option<&Path>) -> anyhow::Result<WarmUp> {
        let started = std::time::Instant::now();
        if self.is_warm() {
            return Ok(WarmUp {
                from_cache: false,
                secs: 0.0,
            });
        }
        let path = dir.map(|d| d.join(format!("{}.tokens", self.cache_key())));
        if let Some(p) = path.as_deref().filter(|p| p.is_file()) {
            match std::fs::read(p)
                .map_err(anyhow::Error::from)
                .and_then(|b| self.load_tokens(&b))
            {
                Ok(()) => {
                    return Ok(WarmUp {
                        from_cache: true,
                        secs: started.elapsed().as_secs_f64(),
                    });
                }
                Err(e) => tracing::warn!(
                    "ignoring the unreadable tokenized-corpus cache {}: {e:#}",
                    p.display()
                ),
            }
        }
        self.warm_up()?;
        if let Some(p) = &path
            && let Err(e) = self.save_tokens(p)
        {
            tracing::warn!("cannot save the tokenized corpus to {}: {e:#}", p.display());
        }
        Ok(WarmUp {
            from_cache: false,
            secs: started.elapsed().as_secs_f64(),
        })
    }

    /// Names the cache file: the format, the chunking, the tokenizer file
    /// and the text.
    fn cache_key(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(CACHE_FORMAT.to_le_bytes());
        h.update((CHUNK_BYTES as u64).to_le_bytes());
        h.update(self.tokenizer.fingerprint().as_bytes());
        h.update(self.text.as_bytes());
        h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Every chunk's tokens, then a SHA-256 of all before it.
    fn save_tokens(&self, path: &Path) -> anyhow::Result<()> {
        use sha2::Digest;
        let mut out = Vec::new();
        out.extend_from_slice(CACHE_MAGIC);
        put(&mut out, CACHE_FORMAT);
        put(&mut out, self.chunks.len() as u32);
        for i in 0..self.chunks.len() {
            let t = self.chunk(i)?;
            out.push(u8::from(t.local));
            put(&mut out, t.ids.len() as u32);
            t.ids.iter().for_each(|&x| put(&mut out, x));
            put(&mut out, t.segments.len() as u32);
            for &(tok, byte) in &t.segments {
                put(&mut out, tok);
                put(&mut out, byte);
            }
            put(&mut out, t.starts.len() as u32);
            t.starts.iter().for_each(|&x| put(&mut out, x));
        }
        let digest = sha2::Sha256::digest(&out);
        out.extend_from_slice(&digest);
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        // Another process may write the same file at once: each writes its
        // own temporary file and renames it into place.
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("corpus"),
            std::process::id()
        ));
        std::fs::write(&tmp, &out)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Fill every chunk from a [`Corpus::save_tokens`] file, after checking
    /// its digest and that every index in it is in range for this text.
    fn load_tokens(&self, bytes: &[u8]) -> anyhow::Result<()> {
        use sha2::Digest;
        let Some((body, digest)) = bytes.split_last_chunk::<32>() else {
            bail!("the file is truncated");
        };
        if sha2::Sha256::digest(body).as_slice() != digest {
            bail!("its checksum does not match (a partial or corrupted write)");
        }
        let mut r = Reader(body);
        if r.take(CACHE_MAGIC.len())? != CACHE_MAGIC || r.u32()? != CACHE_FORMAT {
            bail!("it is not a tokenized-corpus file of this version");
        }
        if r.u32()? as usize != self.chunks.len() {
            bail!("it was made for another text");
        }
        let mut parsed = Vec::with_capacity(self.chunks.len());
        for i in 0..self.chunks.len() {
            let text = self.chunk_text(i);
            let local = r.take(1)?[0] != 0;
            let n = r.u32()? as usize;
            let ids = r.u32s(n)?;
            let n = r.u32()? as usize;
            let flat = r.u32s(2 * n)?;
            let segments: Vec<(u32, u32)> = flat.chunks_exact(2).map(|p| (p[0], p[1])).collect();
            let n = r.u32()? as usize;
            let starts = r.u32s(n)?;
            // Ranges are cut from these indices; out-of-range ones would
            // panic later, so the file is refused instead.
            let ordered = segments
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1);
            let in_range = segments
                .iter()
                .all(|&(t, b)| t as usize <= ids.len() && text.is_char_boundary(b as usize));
            if !ordered || !in_range || starts.iter().any(|&k| k as usize >= segments.len()) {
                bail!("chunk {i} has indices out of range");
            }
            parsed.push(ChunkTokens {
                ids,
                segments,
                starts,
                local,
            });
        }
        if !r.0.is_empty() {
            bail!("it has trailing bytes");
        }
        for (chunk, tokens) in self.chunks.iter().zip(parsed) {
            // A chunk tokenized meanwhile holds the same tokens.
            let _ = chunk.tokens.set(tokens);
        }
        Ok(())
    }

    fn chunk_text(&self, i: usize) -> &str {
        &self.text[self.chunks[i].start..self.chunks[i].end]
    }

    fn chunk(&self, i: usize) -> anyhow::Result<&ChunkTokens> {
        if let Some(t) = self.chunks[i].tokens.get() {
            return Ok(t);
        }
        let text = self.chunk_text(i);
        // The chunk is encoded followed by the next chunk's first line, so
        // that its last segment is tokenized in context (a text's final
        // newlines can merge into one token where a following line would
        // keep them apart).
        let next = self.chunk_text((i + 1) % self.chunks.len());
        let lookahead = &next[..next.find('\n').map_or(next.len(), |n| n + 1)];
        let extended = format!("{text}{lookahead}");
        // Segment starts, and the chunk's end as a last boundary.
        let bounds: Vec<usize> = std::iter::once(0)
            .chain(
                text.match_indices('\n')
                    .map(|(i, _)| i + 1)
                    .filter(|&i| segment_start(text, i)),
            )
            .chain(std::iter::once(text.len()))
            .collect();
        let tokens = self.tokenizer.encode_with_offsets(&extended)?;
        // Map each boundary to the first token that starts at or after
        // it. Tokens with an empty range (whitespace whose range the
        // tokenizer trims) never begin a segment.
        let mut segments = Vec::with_capacity(bounds.len());
        let mut starts = Vec::new();
        let mut aligned = segment_start(next, 0);
        let mut j = 0;
        for (k, &b) in bounds.iter().enumerate() {
            while b > 0 && j < tokens.len() && (tokens[j].1 < b || tokens[j].2 <= tokens[j].1) {
                j += 1;
            }
            if b > 0 {
                // The boundary is a token boundary: the token starts
                // exactly there, the one before ends by then, and the token
                // does not carry the newline before it (a trimmed range
                // would hide that).
                aligned &= match tokens.get(j) {
                    Some(&(id, start, _)) => {
                        start == b
                            && (j == 0 || tokens[j - 1].2 <= b)
                            && !self
                                .tokenizer
                                .try_decode(&[id])?
                                .starts_with(char::is_whitespace)
                    }
                    None => false,
                };
            }
            if b == text.len() {
                break;
            }
            if segment_start(text, b) {
                starts.push(k as u32);
            }
            segments.push((j as u32, b as u32));
        }
        let ids: Vec<u32> = tokens.iter().map(|t| t.0).collect();
        // A text that starts at a segment tokenizes as it does in context
        // (not so for tokenizers that prepend a space to every text).
        let local = aligned
            && segments.get(1).is_none_or(|&(t, b)| {
                self.tokenizer
                    .try_encode(&extended[b as usize..])
                    .is_ok_and(|rest| rest == ids[t as usize..])
            });
        let mut ids = ids;
        ids.truncate(j.min(tokens.len()));
        let computed = ChunkTokens {
            ids,
            segments,
            starts,
            local,
        };
        // Another thread may have won the race; either result is the same.
        Ok(self.chunks[i].tokens.get_or_init(|| computed))
    }

    /// A random non-blank line start.
    fn random_start(&self, rng: &mut impl Rng) -> anyhow::Result<Position> {
        // A few tries in case the drawn chunk holds no text (only blank
        // lines), then the first chunk that does.
        for _ in 0..8 {
            let chunk = rng.random_range(0..self.chunks.len());
            let starts = &self.chunk(chunk)?.starts;
            if !starts.is_empty() {
                let segment = starts[rng.random_range(0..starts.len())] as usize;
                return Ok(Position { chunk, segment });
            }
        }
        for chunk in 0..self.chunks.len() {
            if let Some(&segment) = self.chunk(chunk)?.starts.first() {
                return Ok(Position {
                    chunk,
                    segment: segment as usize,
                });
            }
        }
        bail!("the prompt corpus has no text")
    }

    /// `len` token ids from `start`, continuing into the next chunks and
    /// wrapping around to the beginning of the corpus as needed.
    fn ids_from(&self, start: Position, len: usize) -> anyhow::Result<Vec<u32>> {
        let mut out = Vec::with_capacity(len);
        let mut chunk = start.chunk;
        let first = self.chunk(chunk)?;
        let mut token = first.token_range(start.segment).start;
        let mut empty_run = 0;
        while out.len() < len {
            let ids = &self.chunk(chunk)?.ids;
            let take = (len - out.len()).min(ids.len() - token);
            out.extend_from_slice(&ids[token..token + take]);
            empty_run = if take == 0 { empty_run + 1 } else { 0 };
            if empty_run > self.chunks.len() {
                bail!("the prompt corpus has no tokens");
            }
            chunk = (chunk + 1) % self.chunks.len();
            token = 0;
        }
        Ok(out)
    }

    /// Text of exactly `target` tokens cut from a random position, and its
    /// count (the real one: if no window hits `target`, the closest, see
    /// [`Corpus::exact_text_after`]).
    pub fn exact_text(&self, rng: &mut impl Rng, target: usize) -> anyhow::Result<(String, usize)> {
        self.exact_text_after(rng, None, target)
    }

    /// A head of exactly `tokens` tokens (counted alone) followed by
    /// `separator`, to put before windows with
    /// [`Corpus::exact_text_after`]. `separator` must end with a newline,
    /// so windows start on a line of their own.
    pub fn head(&self, rng: &mut impl Rng, tokens: usize, separator: &str) -> anyhow::Result<Head> {
        debug_assert!(separator.ends_with('\n'));
        let (mut text, _) = self.exact_text(rng, tokens)?;
        text.push_str(separator);
        // Its count in context: what it adds in front of a window (its
        // final newlines may tokenize differently at the end of a text).
        let (probe, probe_tokens) = self.exact_text(rng, 32)?;
        let together = self.tokenizer.count(&format!("{text}{probe}"));
        let tokens = together.saturating_sub(probe_tokens);
        Ok(Head { text, tokens })
    }

    /// `head` (if any) followed by a window from a random position,
    /// `target` tokens in all, and the real count.
    ///
    /// The fast path (module doc) hits the count exactly; the slow path
    /// decodes the window, re-encodes the whole prompt, and grows or
    /// shrinks the window by the difference until the count is exact, at
    /// up to four start positions. A tokenizer for which no window
    /// gives the exact count (rare: e.g. when every cut makes tokens
    /// merge) yields the closest count found, logged at debug level; the
    /// returned count is always the real one.
    pub fn exact_text_after(
        &self,
        rng: &mut impl Rng,
        head: Option<&Head>,
        target: usize,
    ) -> anyhow::Result<(String, usize)> {
        let (head_text, head_tokens) = head.map_or(("", 0), |h| (h.text.as_str(), h.tokens));
        let body = target.saturating_sub(head_tokens).max(1);
        let mut text = String::with_capacity(head_text.len() + body * 6);
        if !self.fast_disabled.load(Ordering::Relaxed) {
            for _ in 0..2 {
                text.clear();
                text.push_str(head_text);
                let start = self.random_start(rng)?;
                if !self.fast_text(start, body, &mut text)? {
                    continue;
                }
                let count = head_tokens + body;
                let n = self.fast_prompts.fetch_add(1, Ordering::Relaxed);
                if n < AUDIT_FIRST || n.is_multiple_of(AUDIT_EVERY) {
                    let real = self.tokenizer.try_encode(&text)?.len();
                    if real != count {
                        self.fast_disabled.store(true, Ordering::Relaxed);
                        tracing::warn!(
                            tokenizer = self.tokenizer.name(),
                            expected = count,
                            real,
                            "a prompt cut from pre-tokenized lines re-encoded to another \
                             count; every prompt is now re-encoded whole (slower)"
                        );
                        break;
                    }
                }
                return Ok((text, count));
            }
        }
        self.slow_text(rng, head_text, target, body)
    }

    /// Appends text of exactly `body` tokens from `start` to `out`,
    /// assuming line starts are hard token boundaries; false (and `out`
    /// in an unspecified state) when this start cannot be used.
    fn fast_text(&self, start: Position, body: usize, out: &mut String) -> anyhow::Result<bool> {
        let (mut chunk, mut segment) = (start.chunk, start.segment);
        let mut remaining = body;
        let mut empty_run = 0;
        loop {
            let tokens = self.chunk(chunk)?;
            if !tokens.local {
                return Ok(false);
            }
            let chunk_text = self.chunk_text(chunk);
            let range = tokens.token_range(segment);
            let text = &chunk_text[tokens.byte_range(segment, chunk_text.len())];
            let len = range.len();
            if remaining > len {
                out.push_str(text);
                remaining -= len;
                segment += 1;
                if segment == tokens.segments.len() {
                    chunk = (chunk + 1) % self.chunks.len();
                    segment = 0;
                    // Only chunk 0 can start with a blank line, which
                    // would join the previous segment in a real text.
                    if !segment_start(self.chunk_text(chunk), 0) {
                        return Ok(false);
                    }
                }
                // Segments that encode to nothing (whitespace, for some
                // tokenizers) must not loop forever.
                empty_run = if len == 0 { empty_run + 1 } else { 0 };
                if empty_run > 100_000 {
                    return Ok(false);
                }
                continue;
            }
            // The last, partial segment: decode a prefix of its ids and
            // adjust its length until it re-encodes to what is missing.
            let ids = &tokens.ids[range];
            let mut take = remaining;
            for _ in 0..ADJUST_STEPS {
                let part = if take == len {
                    text.to_string()
                } else {
                    self.tokenizer.try_decode(&ids[..take])?
                };
                let count = self.tokenizer.try_encode(&part)?.len();
                if count == remaining {
                    out.push_str(&part);
                    return Ok(true);
                }
                let next = take as i64 + remaining as i64 - count as i64;
                if next < 1 || next > len as i64 || next == take as i64 {
                    return Ok(false);
                }
                take = next as usize;
            }
            return Ok(false);
        }
    }

    /// The slow path of [`Corpus::exact_text_after`]: whole-prompt
    /// re-encoding, `body` the first guess of the window length.
    fn slow_text(
        &self,
        rng: &mut impl Rng,
        head: &str,
        target: usize,
        body: usize,
    ) -> anyhow::Result<(String, usize)> {
        let mut best: Option<(usize, String, usize)> = None; // (distance, text, count)
        let mut text = String::with_capacity(head.len() + body * 6);
        for _ in 0..STARTS {
            let start = self.random_start(rng)?;
            // Some slack so growing the window needs no second lookup.
            let mut ids = self.ids_from(start, body + body / 16 + 8)?;
            let mut len = body;
            let mut tried = Vec::with_capacity(ADJUST_STEPS);
            for _ in 0..ADJUST_STEPS {
                if len > ids.len() {
                    ids = self.ids_from(start, len + len / 16 + 8)?;
                }
                text.clear();
                text.push_str(head);
                text.push_str(&self.tokenizer.try_decode(&ids[..len])?);
                let count = self.tokenizer.try_encode(&text)?.len();
                if count == target {
                    return Ok((std::mem::take(&mut text), count));
                }
                let distance = count.abs_diff(target);
                if best.as_ref().is_none_or(|b| distance < b.0) {
                    best = Some((distance, text.clone(), count));
                }
                tried.push(len);
                let next = if count > target {
                    len.saturating_sub(count - target).max(1)
                } else {
                    len + (target - count)
                };
                // A length already tried means the counts oscillate
                // around the target here: step by one, or give up on
                // this start.
                let next = if tried.contains(&next) {
                    if count > target { len - 1 } else { len + 1 }
                } else {
                    next
                };
                if next == 0 || tried.contains(&next) {
                    break;
                }
                len = next;
            }
        }
        let (_, text, count) = best.expect("at least one window was tried");
        tracing::debug!(
            target,
            count,
            tokenizer = self.tokenizer.name(),
            "no corpus window re-encodes to exactly the target token count; using the closest"
        );
        Ok((text, count))
    }

    /// Whether prompts are still cut on the fast path (false once an
    /// audit found a wrong count, or before any prompt).
    pub fn fast_path_active(&self) -> bool {
        !self.fast_disabled.load(Ordering::Relaxed) && self.fast_prompts.load(Ordering::Relaxed) > 0
    }
}

/// Corpora built from other texts (datasets), cached per tokenizer.
#[derive(Default)]
pub(crate) struct CorpusCache {
    by_tokenizer: Mutex<HashMap<u64, Arc<Corpus>>>,
}

impl CorpusCache {
    /// The corpus over `text()` for `tokenizer`, built on first use.
    pub(crate) fn get(
        &self,
        tokenizer: &TokenCounter,
        text: impl FnOnce() -> String,
    ) -> anyhow::Result<Arc<Corpus>> {
        let mut map = self.by_tokenizer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(&tokenizer.id()) {
            return Ok(c.clone());
        }
        let corpus = Arc::new(Corpus::new(text(), tokenizer.clone())?);
        map.insert(tokenizer.id(), corpus.clone());
        Ok(corpus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::tests::test_tokenizer;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// A chunk's ids, segments, starts and locality.
    type Dumped = (Vec<u32>, Vec<(u32, u32)>, Vec<u32>, bool);

    /// Every chunk's tokens, for comparing two corpora.
    fn dump(c: &Corpus) -> Vec<Dumped> {
        (0..c.chunks.len())
            .map(|i| {
                let t = c.chunk(i).unwrap();
                (t.ids.clone(), t.segments.clone(), t.starts.clone(), t.local)
            })
            .collect()
    }

    /// About 200 KB of the built-in text: a dozen chunks.
    fn some_text() -> &'static str {
        let end = BUILTIN_TEXT[..200_000].rfind('\n').unwrap() + 1;
        &BUILTIN_TEXT[..end]
    }

    #[test]
    fn warm_up_tokenizes_every_chunk_as_lazy_use_would() {
        let warm = Corpus::new(some_text(), test_tokenizer()).unwrap();
        assert!(!warm.is_warm());
        warm.warm_up().unwrap();
        assert!(warm.is_warm());
        let lazy = Corpus::new(some_text(), test_tokenizer()).unwrap();
        assert!(lazy.chunks.len() > 8);
        assert_eq!(dump(&warm), dump(&lazy));
    }

    #[test]
    fn tokenized_corpus_is_read_back_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let first = Corpus::new(some_text(), test_tokenizer()).unwrap();
        let w = first.warm_up_cached(Some(dir.path())).unwrap();
        assert!(!w.from_cache);
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "one file, no temporary left behind");
        let file = files[0].as_ref().unwrap().path();

        let second = Corpus::new(some_text(), test_tokenizer()).unwrap();
        let w = second.warm_up_cached(Some(dir.path())).unwrap();
        assert!(w.from_cache);
        assert!(second.is_warm());
        assert_eq!(dump(&first), dump(&second));

        // Another text has another key: not read from this file.
        let other = Corpus::new(&some_text()[..100_000], test_tokenizer()).unwrap();
        assert!(!other.warm_up_cached(Some(dir.path())).unwrap().from_cache);

        // A damaged file is refused (and rewritten), never trusted.
        let mut bytes = std::fs::read(&file).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        std::fs::write(&file, &bytes).unwrap();
        let third = Corpus::new(some_text(), test_tokenizer()).unwrap();
        let err = third.load_tokens(&bytes).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        let w = third.warm_up_cached(Some(dir.path())).unwrap();
        assert!(!w.from_cache);
        assert_eq!(dump(&first), dump(&third));
        assert!(third.load_tokens(&std::fs::read(&file).unwrap()).is_ok());
        assert!(third.load_tokens(&bytes[..10]).is_err());
    }

    #[test]
    fn builtin_corpus_is_big_plain_text() {
        assert!(BUILTIN_TEXT.len() > 1_000_000, "{}", BUILTIN_TEXT.len());
        assert!(BUILTIN_TEXT.starts_with("Sonnets"));
        assert!(BUILTIN_TEXT.contains("Shall I compare thee to a summer's day?"));
        assert!(BUILTIN_TEXT.contains("In the beginning God created the heaven and the earth."));
        assert!(!BUILTIN_TEXT.contains("**"));
        // Tests cut it at arbitrary byte offsets.
        assert!(BUILTIN_TEXT.is_ascii());
    }

    #[test]
    fn sonnets_are_genai_bench_sonnet_txt() {
        let sonnets = genai_bench_sonnets();
        assert_eq!((sonnets.len(), sonnets.lines().count()), (3642, 84));
        assert!(sonnets.starts_with("Shall I compare thee"));
        assert!(sonnets.ends_with("admiring praise.\n"));
    }

    #[test]
    fn chunks_cover_the_text_and_end_at_line_starts() {
        let corpus = Corpus::new(BUILTIN_TEXT, test_tokenizer()).unwrap();
        assert!(corpus.chunks.len() > 100);
        let mut at = 0;
        for (i, c) in corpus.chunks.iter().enumerate() {
            assert_eq!(c.start, at);
            assert!(corpus.text[c.start..c.end].ends_with('\n'));
            assert!(i == 0 || segment_start(&corpus.text, c.start));
            at = c.end;
        }
        assert_eq!(at, corpus.text.len());
    }

    #[test]
    fn segments_cover_chunks() {
        let tok = test_tokenizer();
        let corpus = Corpus::new("alpha beta\n\n  gamma\n\ndelta\n", tok.clone()).unwrap();
        let t = corpus.chunk(0).unwrap();
        let text = corpus.chunk_text(0);
        let segments: Vec<&str> = (0..t.segments.len())
            .map(|k| &text[t.byte_range(k, text.len())])
            .collect();
        assert_eq!(segments, ["alpha beta\n\n  gamma\n\n", "delta\n"]);
        assert_eq!(t.starts, [0, 1]);
        assert_eq!(tok.decode(&t.ids[t.token_range(1)]), "delta\n");
        // A byte-level BPE tokenizer treats line starts as boundaries.
        assert!(t.local);
    }

    #[test]
    fn windows_start_at_lines_and_wrap() {
        let tok = test_tokenizer();
        let corpus = Corpus::new("alpha beta\n\ngamma delta\n", tok.clone()).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..20 {
            let start = corpus.random_start(&mut rng).unwrap();
            let text = tok.decode(&corpus.ids_from(start, 1).unwrap());
            assert!(text.starts_with(['a', 'g']), "{text:?}");
        }
        // Longer than the corpus: wraps around.
        let start = Position {
            chunk: 0,
            segment: 0,
        };
        let all = corpus.ids_from(start, 100).unwrap();
        assert_eq!(all.len(), 100);
        assert!(
            tok.decode(&all)
                .starts_with("alpha beta\n\ngamma delta\nalpha beta")
        );
        for target in [3, 20, 100] {
            let (text, count) = corpus.exact_text(&mut rng, target).unwrap();
            assert_eq!((count, tok.count(&text)), (target, target), "{text:?}");
        }
    }

    #[test]
    fn exact_text_hits_target_counts() {
        let tok = test_tokenizer();
        let corpus = Corpus::builtin(&tok);
        let mut rng = StdRng::seed_from_u64(7);
        for target in [1, 2, 3, 10, 57, 100, 1000, 5000] {
            let (text, count) = corpus.exact_text(&mut rng, target).unwrap();
            assert_eq!(count, target);
            assert_eq!(tok.count(&text), target, "{text:?}");
        }
        assert!(corpus.fast_path_active());
    }

    #[test]
    fn counts_hold_across_chunk_seams_and_blank_lines() {
        // Paragraphs separated by blank lines: chunk ends fall after blank
        // lines, where a text's final newlines can merge into one token.
        let tok = test_tokenizer();
        let mut text = String::new();
        for i in 0..3000 {
            text.push_str(&format!("Paragraph {i} says: and so it goes.\n\n\n"));
        }
        let corpus = Corpus::new(text, tok.clone()).unwrap();
        assert!(corpus.chunks.len() > 3);
        let mut rng = StdRng::seed_from_u64(13);
        for _ in 0..150 {
            let target = rng.random_range(1..400);
            let (text, count) = corpus.exact_text(&mut rng, target).unwrap();
            assert_eq!((count, tok.count(&text)), (target, target), "{text:?}");
        }
        assert!(corpus.fast_path_active());
    }

    #[test]
    fn heads_count_in_context() {
        let tok = test_tokenizer();
        let corpus = Corpus::builtin(&tok);
        let mut rng = StdRng::seed_from_u64(11);
        let head = corpus.head(&mut rng, 120, "\n\n").unwrap();
        assert_eq!(tok.count(head.text().strip_suffix("\n\n").unwrap()), 120);
        for target in [125, 150, 400] {
            let (text, count) = corpus
                .exact_text_after(&mut rng, Some(&head), target)
                .unwrap();
            assert!(text.starts_with(head.text()));
            assert_eq!((count, tok.count(&text)), (target, target));
        }
    }

    #[test]
    fn slow_path_hits_target_counts() {
        let tok = test_tokenizer();
        let corpus = Corpus::new(&BUILTIN_TEXT[..200_000], tok.clone()).unwrap();
        corpus.fast_disabled.store(true, Ordering::Relaxed);
        let mut rng = StdRng::seed_from_u64(3);
        for target in [1, 9, 250, 3000] {
            let (text, count) = corpus.exact_text(&mut rng, target).unwrap();
            assert_eq!((count, tok.count(&text)), (target, target));
        }
        let head = corpus.head(&mut rng, 50, "\n").unwrap();
        let (text, count) = corpus.exact_text_after(&mut rng, Some(&head), 80).unwrap();
        assert!(text.starts_with(head.text()));
        assert_eq!((count, tok.count(&text)), (80, 80));
        assert!(!corpus.fast_path_active());
    }

    #[test]
    fn consecutive_windows_differ() {
        let tok = test_tokenizer();
        let corpus = Corpus::builtin(&tok);
        let mut rng = StdRng::seed_from_u64(3);
        let texts: Vec<String> = (0..20)
            .map(|_| corpus.exact_text(&mut rng, 200).unwrap().0)
            .collect();
        let firsts: std::collections::HashSet<_> =
            texts.iter().map(|t| t.lines().next().unwrap()).collect();
        assert!(firsts.len() >= 18, "{firsts:?}");
    }

    #[test]
    fn non_ascii_text_chunks_and_counts() {
        let tok = test_tokenizer();
        let line = "Grüße aus Köln — 日本語のテキスト, ünïcödé 😀 façade\n";
        let corpus = Corpus::new(line.repeat(2000), tok.clone()).unwrap();
        assert!(corpus.chunks.len() > 3);
        let mut rng = StdRng::seed_from_u64(5);
        for target in [1, 5, 50, 500] {
            let (text, count) = corpus.exact_text(&mut rng, target).unwrap();
            assert_eq!(tok.count(&text), count);
            assert_eq!(count, target);
        }
    }

    #[test]
    fn empty_text_is_an_error() {
        assert!(Corpus::new(" \n\n", test_tokenizer()).is_err());
    }
}
