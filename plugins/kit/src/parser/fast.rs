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
    // Nothing can fail from here: the events go out.
    if let Some(Some(c)) = choice {
        *finish |= c.finish_reason.as_ref().is_some_and(|f| !f.is_empty());
        let reasoning = non_empty(c.reasoning_content).or(non_empty(c.reasoning));
        if let Some(text) = reasoning {
            out.push(Event::Reasoning(text));
        }
        if let Some(text) = non_empty(c.content).or(non_empty(c.text)) {
            out.push(Event::Content(text));
        }
    }
    Some(())
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// The fields of `choices[0]` (and of its `delta`) that make events.
#[derive(Default)]
struct Choice {
    content: Option<String>,
    reasoning_content: Option<String>,
    reasoning: Option<String>,
    text: Option<String>,
    finish_reason: Option<String>,
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
                    b"text" => c.text = s.text(&mut seen[1])?,
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
                b"content" => c.content = s.text(&mut seen[0])?,
                b"reasoning_content" => c.reasoning_content = s.text(&mut seen[1])?,
                b"reasoning" => c.reasoning = s.text(&mut seen[2])?,
                // Usage inside the delta (a few servers): null is absent,
                // anything else the general path reads.
                b"usage" => s.null(&mut seen[3])?,
                _ => s.skip(4)?,
            }
            Some(())
        })
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
                // Escapes are ASCII: the raw bytes are UTF-8 exactly when
                // the text is.
                let raw = std::str::from_utf8(raw).ok()?;
                Some(Some(if escaped {
                    unescape(raw)?
                } else {
                    raw.to_owned()
                }))
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
        const BYTES: &[u8] = b"\"\\{}[],:0-9.eE+ u\x01\xff\xc3nt/";
        let (mut variants, mut read) = (0, 0);
        for (json, _) in SHAPES {
            let json = json.as_bytes();
            for i in 0..json.len() {
                let mut v = json.to_vec();
                v.remove(i);
                read += usize::from(check(&v));
                variants += 1;
                for &b in BYTES {
                    let mut v = json.to_vec();
                    v[i] = b;
                    read += usize::from(check(&v));
                    v[i] = json[i];
                    v.insert(i, b);
                    read += usize::from(check(&v));
                    variants += 2;
                }
            }
        }
        // Mutations the fast path still reads (inside strings, numbers,
        // skipped values) are part of what this checks.
        assert!(
            read * 10 > variants,
            "the fast path read only {read} of {variants} variants"
        );
    }
}
