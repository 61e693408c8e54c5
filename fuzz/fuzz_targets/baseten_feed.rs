//! Drives the real Baseten plugin through the host's plugin runtime with
//! arbitrary response bytes split at arbitrary points.
//!
//! Input layout: byte 0 picks the response head (status, stream, task),
//! byte 1 seeds the split points, the rest is the body.
//!
//! Oracle:
//! - the host never panics (libFuzzer reports it);
//! - no call hits the CPU or memory limit (bounded time and memory: a
//!   body of a few KB must never need the budget);
//! - the events are the same however the body is split, once adjacent
//!   content (and reasoning) events are merged: a plugin may emit text as it
//!   arrives, but never different text, usage, errors or end markers; and a
//!   body the plugin rejects whole it rejects split too.

#![no_main]

use std::sync::{Arc, OnceLock};

use genai_bench::plugin::{
    Event, LoadedPlugin, PluginErrorKind, PluginRuntime, ResponseHead, RuntimeOptions, Task,
};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    rt: tokio::runtime::Runtime,
    plugin: Arc<LoadedPlugin>,
    _runtime: PluginRuntime,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let runtime = PluginRuntime::new(RuntimeOptions {
            max_instances: 8,
            cache_dir: None,
            ..RuntimeOptions::default()
        })
        .expect("plugin runtime");
        let plugin = runtime.load_builtin("baseten").expect("load baseten");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio runtime");
        Fixture {
            rt,
            plugin,
            _runtime: runtime,
        }
    })
}

/// Parse `chunks` with a fresh instance, a `feed` call each or, with
/// `batch`, all in one call as the host hands them over; events, or the
/// error kind.
fn parse(
    f: &Fixture,
    head: &ResponseHead,
    chunks: &[&[u8]],
    batch: bool,
) -> Result<Vec<Event>, PluginErrorKind> {
    f.rt.block_on(async {
        let mut inst = f.plugin.instantiate(1).await.map_err(|e| e.kind)?;
        inst.begin_response(head).await.map_err(|e| e.kind)?;
        let mut events = Vec::new();
        if batch {
            let ends: Vec<u32> = chunks
                .iter()
                .scan(0u32, |at, c| {
                    *at += c.len() as u32;
                    Some(*at)
                })
                .collect();
            let lists = inst
                .feed_batch(&chunks.concat(), &ends)
                .await
                .map_err(|e| e.kind)?;
            assert_eq!(lists.len(), chunks.len(), "one list of events per chunk");
            events.extend(lists.into_iter().flatten());
        } else {
            for c in chunks {
                events.extend(inst.feed(c).await.map_err(|e| e.kind)?);
            }
        }
        events.extend(inst.finish().await.map_err(|e| e.kind)?);
        Ok(events)
    })
}

/// Two ways of feeding one body must both fail, or give the same events.
fn same(
    a: Result<Vec<Event>, PluginErrorKind>,
    b: Result<Vec<Event>, PluginErrorKind>,
    a_is: &str,
    b_is: &str,
) {
    match (a, b) {
        (Ok(a), Ok(b)) => assert_eq!(merged(a), merged(b), "events differ: {a_is} vs {b_is}"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("{a_is}: {a:?}; {b_is}: {b:?}"),
    }
}

/// Adjacent text events merged: how the text was cut is not meaningful.
fn merged(events: Vec<Event>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for e in events {
        match (out.last_mut(), e) {
            (_, Event::Content(s)) | (_, Event::Reasoning(s)) if s.is_empty() => {}
            (Some(Event::Content(a)), Event::Content(b)) => a.push_str(&b),
            (Some(Event::Reasoning(a)), Event::Reasoning(b)) => a.push_str(&b),
            (_, e) => out.push(e),
        }
    }
    out
}

/// Split `body` at points drawn from `seed` (xorshift), 1 to 8 pieces, or
/// byte by byte when `seed` says so.
fn split(body: &[u8], seed: u8) -> Vec<&[u8]> {
    if body.is_empty() {
        return vec![body];
    }
    if seed == 0xff {
        return body.chunks(1).collect();
    }
    let mut x = u64::from(seed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(body.len() as u64 + 1);
    let pieces = 1 + (seed as usize % 8);
    let mut cuts: Vec<usize> = (1..pieces)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % body.len() as u64) as usize
        })
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut at = 0;
    for c in cuts {
        out.push(&body[at..c]);
        at = c;
    }
    out.push(&body[at..]);
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (sel, seed, body) = (data[0], data[1], &data[2..]);
    let stream = sel & 1 == 1;
    let status = [200, 200, 400, 500][usize::from(sel >> 1) & 3];
    let task = if sel & 8 == 0 {
        Task::TextToText
    } else {
        Task::TextToEmbeddings
    };
    let content_type = match (sel >> 4) & 3 {
        0 if stream => "text/event-stream",
        0 | 1 => "application/json",
        2 => "text/plain",
        _ => "application/x-ndjson",
    };
    let head = ResponseHead {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        task,
        stream,
    };
    let f = fixture();
    let whole = parse(f, &head, &[body], false);
    let pieces = split(body, seed);
    let cut = parse(f, &head, &pieces, false);
    let batch = parse(f, &head, &pieces, true);
    for r in [&whole, &cut, &batch] {
        if let Err(kind) = r {
            // The plugin may reject a body (`Reported`); a trap, a limit
            // hit or an output cap on a few KB is a bug.
            assert!(
                *kind == PluginErrorKind::Reported,
                "a {}-byte body made the plugin fail with {kind:?}",
                body.len()
            );
        }
    }
    let n = pieces.len();
    same(
        whole,
        cut.clone(),
        "the whole body",
        &format!("{n} pieces a call each"),
    );
    same(
        cut,
        batch,
        &format!("{n} pieces a call each"),
        &format!("{n} pieces in one call"),
    );
});
