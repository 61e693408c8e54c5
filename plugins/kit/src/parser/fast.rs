//! A fast path for the SSE payload every OpenAI-compatible server streams
//! once per token:
//!
//! ```text
//! {"id":"..","object":"chat.completion.chunk","created":1,"model":"m",
//!  "choices":[{"index":0,"delta":{"content":" the"},"finish_reason":null}]}
//! ```
//!
//! The typed serde view ([`crate::json::Payload`]) reads any JSON a server
//! may send, and costs ~470 ns natively for such a chunk (skipping the same
//! bytes costs ~175): most of a plugin's CPU per token. This reader knows
//! only the streaming fields of that shape (`choices[0]` with `delta`'s
//! `content`, `reasoning_content` and `reasoning`, the completions API's
//! `text`, `finish_reason`, and `usage` or `error` when null) and skips
//! everything else, validating it as strictly as serde_json does. Anything
//! it does not know for certain (`usage`, `error`, `message`, `choices` that
//! is not an array, a duplicate field, a value of another
//! type, a `\u` escape it cannot decode alone, invalid UTF-8 in the text,
//! deep nesting) makes it give up, and the payload takes the general path.
//! So the events it returns are always the ones the general path would
//! return (tested differentially against it on mutated chunks of every
//! server shape, and fuzzed).

use crate::model::Event;

/// Deeper than this, the general path decides (serde_json stops at 128).
const MAX_DEPTH: u32 = 32;

/// Events of `json` (a trimmed SSE payload) pushed to `out`, and `finish`
/// set when it says the answer is complete; `None` (nothing pushed) when
/// the payload is not of the shape this reads.
pub(super) fn openai_chunk(json: &[u8], out: &mut Vec<Event>, finish: &mut bool) -> Option<()> {
    openai_chunk_with(json, out, finish, &mut Template::default())
}

/// [`openai_chunk`] through `template`: a payload that is the template's
/// chunk with another text in its one varying field is read from that
/// text alone; any other payload is read in full, and becomes the
/// template when it is of that kind.
///
/// Why this is exact: the reader is deterministic and reads left to
/// right, and a string value leaves it in the same state whatever the
/// string holds. So the template's prefix leads it, byte for byte, to the
/// varying value; a string there that it reads to the same end (checked
/// here with the same [`Scan::string`]) leads it into the template's
/// suffix, byte for byte again, to the same outcome: every field but the
/// varying one as read in the template's chunk.
pub(super) fn openai_chunk_with(
    json: &[u8],
    out: &mut Vec<Event>,
    finish: &mut bool,
    template: &mut Template,
) -> Option<()> {
    if template.read(json, out, finish).is_some() {
        return Some(());
    }
    let choice = read_chunk(json)?;
    if let Some(c) = choice {
        *finish |= c.finishes();
        template.learn(json, &c);
        push_events(c.texts, out);
    }
    Some(())
}

/// `choices[0]` of an object of the shape this reads (`Some(None)` when
/// there is none); `None` when the payload is not of that shape.
fn read_chunk(json: &[u8]) -> Option<Option<Choice>> {
    let mut s = Scan { b: json, i: 0 };
    let mut choice = None;
    let mut seen = [false; 2];
    s.object(0, |s, key| {
        match key {
            b"choices" if choice.is_none() => choice = Some(s.choices()?),
            // Sent as null with every chunk by some servers (SGLang, TGI):
            // the same as absent.
            b"usage" => s.null(&mut seen[0])?,
            b"error" => s.null(&mut seen[1])?,
            // Known to the typed view: the general path reads them (and a
            // second `choices` is a duplicate field there).
            b"choices" | b"data" | b"text" | b"output" | b"response" | b"generated_text" => {
                return None;
            }
            _ => s.skip(1)?,
        }
        Some(())
    })?;
    if s.i != json.len() {
        return None;
    }
    Some(choice.flatten())
}

/// The events of a choice's text fields: reasoning first, then content.
fn push_events(texts: [Option<String>; 4], out: &mut Vec<Event>) {
    let [content, reasoning_content, reasoning, text] = texts;
    if let Some(text) = non_empty(reasoning_content).or(non_empty(reasoning)) {
        out.push(Event::Reasoning(text));
    }
    if let Some(text) = non_empty(content).or(non_empty(text)) {
        out.push(Event::Content(text));
    }
}

/// Which of a choice's text fields make its events: `[content-side,
/// reasoning-side]`, each an index into [`Choice::texts`].
fn sources(texts: &[Option<String>; 4]) -> [Option<usize>; 2] {
    let full = |i: usize| {
        texts[i]
            .as_ref()
            .is_some_and(|t| !t.is_empty())
            .then_some(i)
    };
    [
        full(CONTENT).or(full(TEXT)),
        full(REASONING_CONTENT).or(full(REASONING)),
    ]
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Indices of [`Choice::texts`].
const CONTENT: usize = 0;
const REASONING_CONTENT: usize = 1;
const REASONING: usize = 2;
const TEXT: usize = 3;

/// The fields of `choices[0]` (and of its `delta`) that make events.
#[derive(Default)]
struct Choice {
    /// `delta.content`, `delta.reasoning_content`, `delta.reasoning` and
    /// the completions API's `text`.
    texts: [Option<String>; 4],
    /// Where each text that was a string lies in the payload, quotes
    /// included.
    spans: [Option<(usize, usize)>; 4],
    finish_reason: Option<String>,
}

impl Choice {
    fn finishes(&self) -> bool {
        self.finish_reason.as_ref().is_some_and(|f| !f.is_empty())
    }
}

/// The last per-token chunk of a stream read in full, as a prefix and a
/// suffix around the one text field that made its event. Servers send
/// every token's chunk alike but for that text (the id, the timestamp and
/// the model repeat), so the next chunks are read from their text alone:
/// most of the reader's cost per token, and the same events (see
/// [`openai_chunk_with`]).
#[derive(Default)]
pub(super) struct Template {
    /// The bytes before the varying text's opening quote; empty when
    /// there is no template yet.
    prefix: Vec<u8>,
    /// The bytes after its closing quote.
    suffix: Vec<u8>,
    /// Which of [`Choice::texts`] varies.
    field: usize,
    /// The other texts, as read.
    texts: [Option<String>; 4],
    /// They are all null, absent or empty: the varying text alone makes
    /// the chunk's events (the common case, read without `texts`).
    alone: bool,
    /// The chunk gave a finish reason.
    finish: bool,
}

impl Template {
    /// The events of `json` when it is the template's chunk with another
    /// string in the varying field; `None` (nothing pushed) otherwise.
    pub(super) fn read(&self, json: &[u8], out: &mut Vec<Event>, finish: &mut bool) -> Option<()> {
        if self.prefix.is_empty() || json.len() < self.prefix.len() + 2 + self.suffix.len() {
            return None;
        }
        let (head, rest) = json.split_at(self.prefix.len());
        if rest[0] != b'"' || !same(head, &self.prefix) {
            return None;
        }
        let mut s = Scan { b: rest, i: 0 };
        let (raw, escaped) = s.string()?;
        if !same(&rest[s.i..], &self.suffix) {
            return None;
        }
        let text = text_of(raw, escaped)?;
        *finish |= self.finish;
        if self.alone {
            if !text.is_empty() {
                out.push(if matches!(self.field, CONTENT | TEXT) {
                    Event::Content(text)
                } else {
                    Event::Reasoning(text)
                });
            }
            return Some(());
        }
        let mut texts = self.texts.clone();
        texts[self.field] = Some(text);
        push_events(texts, out);
        Some(())
    }

    /// Takes `json`, just read in full as `c`, as the template when one
    /// text field alone made its events.
    fn learn(&mut self, json: &[u8], c: &Choice) {
        let field = match sources(&c.texts) {
            [Some(f), None] | [None, Some(f)] => f,
            _ => return,
        };
        let Some((start, end)) = c.spans[field] else {
            return;
        };
        self.prefix.clear();
        self.prefix.extend_from_slice(&json[..start]);
        self.suffix.clear();
        self.suffix.extend_from_slice(&json[end..]);
        self.field = field;
        self.texts = c.texts.clone();
        self.texts[field] = None;
        self.alone = self
            .texts
            .iter()
            .all(|t| t.as_ref().is_none_or(String::is_empty));
        self.finish = c.finishes();
    }
}

/// `a == b`, a word at a time: the slice comparison calls the guest's
/// `memcmp`, which wasi-libc runs a byte at a time.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().unwrap_or_default());
    (&mut wa).zip(&mut wb).all(|(x, y)| word(x) == word(y)) && wa.remainder() == wb.remainder()
}

/// A string value's text from its raw bytes: `None` for invalid UTF-8 or
/// a lone surrogate (the typed view decides those).
fn text_of(raw: &[u8], escaped: bool) -> Option<String> {
    // Escapes are ASCII: the raw bytes are UTF-8 exactly when the text is.
    let raw = std::str::from_utf8(raw).ok()?;
    if escaped {
        unescape(raw)
    } else {
        Some(raw.to_owned())
    }
}

/// A cursor over the payload.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    /// JSON whitespace (serde_json's set: no form feed).
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// An object, calling `field` with the cursor on each value; keys with
    /// escapes give up (the typed view matches them unescaped).
    ///
    /// The fast path must read only what the typed view reads without
    /// error: when that fails, the payload is read again as a strict
    /// `Value`, which refuses what skipping accepts (a lone surrogate).
    fn object(
        &mut self,
        depth: u32,
        mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>,
    ) -> Option<()> {
        self.members(depth, b'{', b'}', |s, _| {
            if s.peek()? != b'"' {
                return None;
            }
            let (key, escaped) = s.string()?;
            // The typed view reads its keys as text: invalid UTF-8 fails it
            // and sends the payload through serde_json's strict `Value`.
            if escaped || !(key.is_ascii() || std::str::from_utf8(key).is_ok()) {
                return None;
            }
            s.eat(b':')?;
            s.ws();
            field(s, key)
        })
    }

    /// An array, calling `item` with the cursor on each element (and its
    /// index).
    fn array(
        &mut self,
        depth: u32,
        mut item: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        self.members(depth, b'[', b']', |s, n| {
            s.ws();
            item(s, n)
        })
    }

    /// `open`, members separated by commas (each read by `member`, with
    /// its index), `close`.
    fn members(
        &mut self,
        depth: u32,
        open: u8,
        close: u8,
        mut member: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(open)?;
        if self.peek()? == close {
            self.i += 1;
            return Some(());
        }
        for n in 0.. {
            member(self, n)?;
            match self.peek()? {
                b',' => self.i += 1,
                c if c == close => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
        None
    }

    /// `choices`: an array whose first element, if any, is an object.
    fn choices(&mut self) -> Option<Option<Choice>> {
        let mut first = None;
        self.array(1, |s, n| {
            if n > 0 {
                return s.skip(2);
            }
            let mut c = Choice::default();
            let mut seen = [false; 3];
            s.object(2, |s, key| {
                match key {
                    b"delta" => s.delta(&mut c, &mut seen[0])?,
                    b"text" => s.text_field(&mut c, TEXT, &mut seen[1])?,
                    b"finish_reason" => c.finish_reason = s.text(&mut seen[2])?,
                    // Non-streaming: the general path reads it.
                    b"message" => return None,
                    _ => s.skip(3)?,
                }
                Some(())
            })?;
            first = Some(c);
            Some(())
        })?;
        Some(first)
    }

    /// `delta`: an object (or null) with the text fields.
    fn delta(&mut self, c: &mut Choice, seen: &mut bool) -> Option<()> {
        if std::mem::replace(seen, true) {
            return None;
        }
        if self.peek()? == b'n' {
            return self.literal(b"null");
        }
        let mut seen = [false; 4];
        self.object(3, |s, key| {
            match key {
                b"content" => s.text_field(c, CONTENT, &mut seen[0])?,
                b"reasoning_content" => s.text_field(c, REASONING_CONTENT, &mut seen[1])?,
                b"reasoning" => s.text_field(c, REASONING, &mut seen[2])?,
                // Usage inside the delta (a few servers): null is absent,
                // anything else the general path reads.
                b"usage" => s.null(&mut seen[3])?,
                _ => s.skip(4)?,
            }
            Some(())
        })
    }

    /// A text field of the choice, and where its string lies.
    fn text_field(&mut self, c: &mut Choice, field: usize, seen: &mut bool) -> Option<()> {
        let start = self.i;
        c.texts[field] = self.text(seen)?;
        if c.texts[field].is_some() {
            c.spans[field] = Some((start, self.i));
        }
        Some(())
    }

    /// A string field's value, or `None` inside for null; other types (and
    /// a field seen twice) give up.
    fn text(&mut self, seen: &mut bool) -> Option<Option<String>> {
        if std::mem::replace(seen, true) {
            return None;
        }
        match self.peek()? {
            b'n' => self.literal(b"null").map(|()| None),
            b'"' => {
                let (raw, escaped) = self.string()?;
                Some(Some(text_of(raw, escaped)?))
            }
            _ => None,
        }
    }

    /// A string at the cursor: its raw bytes between the quotes, and
    /// whether it holds escapes. Refuses what serde_json refuses: control
    /// characters, unknown escapes, `\u` without four hex digits.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            self.plain_bytes();
            match *self.b.get(self.i)? {
                b'"' => {
                    let raw = &self.b[start..self.i];
                    self.i += 1;
                    return Some((raw, escaped));
                }
                b'\\' => {
                    escaped = true;
                    match *self.b.get(self.i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                        b'u' => {
                            hex4(self.b.get(self.i + 2..self.i + 6)?)?;
                            self.i += 6;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => self.i += 1,
            }
        }
    }

    /// A field that must be null here (once); any other value gives up.
    fn null(&mut self, seen: &mut bool) -> Option<()> {
        if std::mem::replace(seen, true) {
            return None;
        }
        self.peek()?;
        self.literal(b"null")
    }

    /// Moves over string bytes that need no look (not `"`, `\\` or a
    /// control character), eight at a time as serde_json does, and then
    /// straight to the first byte that does: most JSON strings (keys, ids)
    /// are shorter than a word, so stepping a byte at a time from the
    /// first word holding a special byte cost more than the words did.
    fn plain_bytes(&mut self) {
        const ONES: u64 = u64::from_le_bytes([1; 8]);
        const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
        while let Some(word) = self.b.get(self.i..self.i + 8) {
            // Little-endian whatever the machine: byte k is bits 8k..8k+8.
            let x = u64::from_le_bytes(word.try_into().unwrap_or_default());
            let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
            let special = zero(x ^ (ONES * u64::from(b'"')))
                | zero(x ^ (ONES * u64::from(b'\\')))
                | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
            if special != 0 {
                // A borrow can only flag bytes above a truly special one,
                // so the lowest flag is the first special byte.
                self.i += (special.trailing_zeros() / 8) as usize;
                return;
            }
            self.i += 8;
        }
        // The last few bytes, one at a time.
        while let Some(&c) = self.b.get(self.i) {
            if c == b'"' || c == b'\\' || c < 0x20 {
                return;
            }
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// serde_json's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match *self.b.get(self.i)? {
            b'0' => {
                self.i += 1;
                if self.digit() {
                    return None;
                }
            }
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !self.digit() {
                return None;
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if !self.digit() {
                return None;
            }
            self.digits();
        }
        Some(())
    }

    fn digit(&self) -> bool {
        self.b.get(self.i).is_some_and(u8::is_ascii_digit)
    }

    fn digits(&mut self) {
        while self.digit() {
            self.i += 1;
        }
    }

    /// Any value, validated and skipped.
    fn skip(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(depth, |s, _| s.skip(depth + 1)),
            b'[' => self.array(depth, |s, _| s.skip(depth + 1)),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }
}

/// The value of four hex digits.
fn hex4(h: &[u8]) -> Option<u16> {
    h.iter().try_fold(0u16, |v, &c| {
        let d = (c as char).to_digit(16)?;
        Some(v << 4 | d as u16)
    })
}

/// `raw` (valid UTF-8, escapes already checked) unescaped; `None` for a
/// `\u` escape of a lone surrogate (serde_json refuses it).
fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let b = rest.as_bytes();
        let (c, used) = match b[at + 1] {
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'/' => ('/', 2),
            b'b' => ('\u{8}', 2),
            b'f' => ('\u{c}', 2),
            b'n' => ('\n', 2),
            b'r' => ('\r', 2),
            b't' => ('\t', 2),
            _ => {
                let hi = hex4(&b[at + 2..at + 6])?;
                match hi {
                    0xD800..=0xDBFF => {
                        let lo = b
                            .get(at + 6..at + 12)
                            .filter(|e| e.starts_with(b"\\u"))
                            .and_then(|e| hex4(&e[2..]))
                            .filter(|lo| (0xDC00..=0xDFFF).contains(lo))?;
                        let c =
                            0x10000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo) - 0xDC00);
                        (char::from_u32(c)?, 12)
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => (char::from_u32(u32::from(hi))?, 6),
                }
            }
        };
        out.push(c);
        rest = &rest[at + used..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::check_sse_fast_path as check;
    use super::super::check_sse_template as check_template;
    use super::{Template, read_chunk};

    /// Per-token chunks as servers send them, and chunks the fast path
    /// must leave to the typed view (`false`).
    const SHAPES: &[(&str, bool)] = &[
        // genai-bench serve-sim
        (
            r#"{"id":"chatcmpl-sim-20737","object":"chat.completion.chunk","created":1796398994,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
            true,
        ),
        (
            r#"{"id":"chatcmpl-sim-20737","object":"chat.completion.chunk","created":1796398994,"model":"m","choices":[{"index":0,"delta":{"content":" its"},"logprobs":null,"finish_reason":null}]}"#,
            true,
        ),
        (
            r#"{"id":"chatcmpl-sim-20737","object":"chat.completion.chunk","created":1796398994,"model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}]}"#,
            true,
        ),
        (
            r#"{"id":"chatcmpl-sim-20737","object":"chat.completion.chunk","created":1796398994,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":3,"total_tokens":4}}"#,
            false,
        ),
        // vLLM, with its reasoning parser
        (
            r#"{"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1718000000,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"content":" Hello"},"logprobs":null,"finish_reason":null,"stop_reason":null}]}"#,
            true,
        ),
        (
            r#"{"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1718000000,"model":"qwq","choices":[{"index":0,"delta":{"reasoning_content":"Let me think"},"logprobs":null,"finish_reason":null}]}"#,
            true,
        ),
        (
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"reasoning":"hm","reasoning_content":""},"finish_reason":null}]}"#,
            true,
        ),
        // SGLang and TGI: usage null with every chunk
        (
            r#"{"id":"5c5c","object":"chat.completion.chunk","created":1718000000,"model":"default","choices":[{"index":0,"delta":{"role":null,"content":"Hi","reasoning_content":null,"tool_calls":null},"logprobs":null,"finish_reason":null,"matched_stop":null}],"usage":null}"#,
            true,
        ),
        (
            r#"{"object":"chat.completion.chunk","id":"","created":1718000000,"model":"tgi","system_fingerprint":"2.0.4-native","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            true,
        ),
        // OpenAI
        (
            r#"{"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"gpt-4o","system_fingerprint":"fp_x","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null,"error":null}"#,
            true,
        ),
        (
            r#"{"id":"chatcmpl-x","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":null}]}"#,
            true,
        ),
        // the completions API
        (
            r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" world","logprobs":null,"finish_reason":null}]}"#,
            true,
        ),
        // escapes and raw UTF-8 in the text
        (
            r#"{"choices":[{"delta":{"content":"line\nbreak \"q\" \\ \/ \t \b\f\r \u00e9 \ud83d\ude00 \u0000"}}]}"#,
            true,
        ),
        (
            "{\"choices\":[{\"delta\":{\"content\":\"h\u{e9}llo \u{4e16}\u{754c} \u{1f600}\"}}]}",
            true,
        ),
        // odd but valid JSON around it
        (
            r#"{ "x" : [ 1 , 2.0 , -0 , 0.5E-3 , -1.5e+10 , true , false , null , { } , [ ] , "s" ] , "choices" : [ { "delta" : { "content" : "x" } } , { "delta" : { "content" : "second" } } ] }"#,
            true,
        ),
        (
            r#"{"choices":[{"delta":null,"text":"t","finish_reason":""}]}"#,
            true,
        ),
        (r#"{"choices":[]}"#, true),
        (r#"{}"#, true),
        // for the typed view
        (r#"{"choices":[{"message":{"content":"whole"}}]}"#, false),
        (
            r#"{"choices":[{"delta":{"content":"a","usage":{"completion_tokens":1}}}]}"#,
            false,
        ),
        (r#"{"error":{"message":"overloaded","code":529}}"#, false),
        (
            r#"{"choices":[{"delta":{"content":"a"}}],"choices":[]}"#,
            false,
        ),
        (
            r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
            false,
        ),
        (r#"{"choices":[{"delta":{"content":5}}]}"#, false),
        (r#"{"choices":[{"delta":{"content":"\udc00"}}]}"#, false),
        (r#"{"choices":[{"delta":{"con\u0074ent":"a"}}]}"#, false),
        (r#"{"generated_text":"tgi"}"#, false),
        (r#"{"choices":null}"#, false),
    ];

    #[test]
    fn reads_the_common_shapes_as_the_typed_view_does() {
        for (json, fast) in SHAPES {
            assert_eq!(check(json.as_bytes()), *fast, "fast path on {json}");
        }
    }

    /// Every shape with each byte deleted, replaced or preceded by one of
    /// the bytes that matter to JSON (and a control byte, a stray UTF-8
    /// byte): whatever the fast path reads, it reads as the typed view.
    #[test]
    fn agrees_with_the_typed_view_on_mutated_chunks() {
        let (mut variants, mut read) = (0, 0);
        for (json, _) in SHAPES {
            mutations(json.as_bytes(), |v| {
                read += usize::from(check(v));
                variants += 1;
            });
        }
        // Mutations the fast path still reads (inside strings, numbers,
        // skipped values) are part of what this checks.
        assert!(
            read * 10 > variants,
            "the fast path read only {read} of {variants} variants"
        );
    }

    /// `json` with each byte deleted, replaced by or preceded by each of
    /// the bytes that matter to JSON (and a control byte, stray UTF-8).
    fn mutations(json: &[u8], mut f: impl FnMut(&[u8])) {
        const BYTES: &[u8] = b"\"\\{}[],:0-9.eE+ u\x01\xff\xc3nt/";
        for i in 0..json.len() {
            let mut v = json.to_vec();
            v.remove(i);
            f(&v);
            for &b in BYTES {
                let mut v = json.to_vec();
                v[i] = b;
                f(&v);
                v[i] = json[i];
                v.insert(i, b);
                f(&v);
            }
        }
    }

    /// A template learnt from one shape reads another shape only as the
    /// full reader does, and each shape that makes a template reads its
    /// own chunk again.
    #[test]
    fn template_reads_other_shapes_as_the_full_reader_does() {
        let mut learnt = 0;
        for (first, _) in SHAPES {
            for (then, _) in SHAPES {
                let read = check_template(first.as_bytes(), then.as_bytes());
                if first == then {
                    assert_eq!(read, template_of(first).is_some(), "{first}");
                    learnt += usize::from(read);
                }
            }
        }
        assert!(learnt >= 10, "only {learnt} shapes make a template");
    }

    /// The template of `json`, if it makes one.
    fn template_of(json: &str) -> Option<Template> {
        let mut t = Template::default();
        let choice = read_chunk(json.as_bytes())??;
        t.learn(json.as_bytes(), &choice);
        (!t.prefix.is_empty()).then_some(t)
    }

    /// Every shape with a template, its text replaced by strings that are
    /// valid, escaped, invalid (bad escapes, lone surrogates, control
    /// bytes, bad UTF-8) or not strings at all.
    #[test]
    fn template_reads_new_texts_as_the_full_reader_does() {
        const TEXTS: &[(&[u8], bool)] = &[
            (b"\"x\"", true),
            (b"\"\"", true),
            (b"\" a longer token with spaces and more\"", true),
            (b"\"q\\\"uote\\\\ back\\/\\n\"", true),
            (b"\"\\u00e9\\ud83d\\ude00\"", true),
            (b"\"h\xc3\xa9llo \xe4\xb8\x96\"", true),
            (b"\"}]}\"", true),
            (b"\"\\udc00\"", false),
            (b"\"\\ud83d\"", false),
            (b"\"\\x\"", false),
            (b"\"\\u12\"", false),
            (b"\"a\x01b\"", false),
            (b"\"\xff\"", false),
            (b"\"\xc3\"", false),
            (b"\"open", false),
            (b"null", false),
            (b"5", false),
            (b"\"a\"\"b\"", false),
            (b"\"a\",\"content\":\"b\"", false),
        ];
        let mut read = 0;
        for (json, _) in SHAPES {
            let Some(t) = template_of(json) else {
                continue;
            };
            for (text, readable) in TEXTS {
                let then = [&t.prefix[..], text, &t.suffix[..]].concat();
                let got = check_template(json.as_bytes(), &then);
                assert_eq!(
                    got,
                    *readable,
                    "template on {:?}",
                    String::from_utf8_lossy(&then)
                );
                read += usize::from(got);
            }
        }
        assert!(read > 50, "the template read only {read} new texts");
    }

    /// Every shape's chunk with one byte deleted, replaced or inserted,
    /// read after the shape itself: the template reads only the variants
    /// whose change is inside the text, and reads those as the full reader.
    #[test]
    fn template_agrees_with_the_full_reader_on_mutated_chunks() {
        let (mut variants, mut read) = (0, 0);
        for (json, _) in SHAPES {
            let first = json.as_bytes();
            mutations(first, |v| {
                read += usize::from(check_template(first, v));
                variants += 1;
            });
        }
        assert!(
            read * 50 > variants,
            "the template read only {read} of {variants} variants"
        );
    }

    /// Pairs of chunks where the second is the first with a few random
    /// bytes changed, inserted or deleted (a fixed-seed xorshift): the
    /// template reads each as the full reader does, or leaves it.
    #[test]
    fn template_agrees_with_the_full_reader_on_random_edits() {
        const BYTES: &[u8] = b"\"\\{}[],:0-9.eE+ u\x01\xff\xc3nt/ab";
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut read = 0;
        for _ in 0..20_000 {
            let first = SHAPES[next(SHAPES.len())].0.as_bytes();
            let mut v = first.to_vec();
            for _ in 0..1 + next(3) {
                let at = next(v.len() + 1);
                let b = BYTES[next(BYTES.len())];
                match next(3) {
                    0 if at < v.len() => v[at] = b,
                    1 if at < v.len() => {
                        v.remove(at);
                    }
                    _ => v.insert(at, b),
                }
            }
            read += usize::from(check_template(first, &v));
        }
        assert!(read > 100, "the template read only {read} edited chunks");
    }
}
