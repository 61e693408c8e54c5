//! The response body: a hyper `Body` that generates its frames on demand.
//!
//! hyper polls the body from the connection task whenever it can write; the
//! body returns a frame once that frame's deadline has passed. So no extra
//! task or channel sits between the generator and the socket, and a frame's
//! ground-truth timestamp is taken at the moment hyper takes it.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::config::LatencyDist;
use super::faults::FaultKind;
use super::ground_truth::{Outcome, Recorder};
use super::render::Template;
use super::rng::Rng;
use super::server::Shared;

/// Frames grow to at most this size when deadlines have passed (zero-delay
/// mode, or a stream that fell behind); bounded so one frame never holds a
/// whole long response.
const MAX_FRAME: usize = 64 * 1024;

/// One step of a fixed body.
pub(crate) enum Step {
    /// Send these bytes, counted as this many output tokens.
    Data(Bytes, u32),
    /// Send nothing until then.
    Wait(Instant),
    /// Abort the connection.
    Reset,
}

enum Gen {
    /// Fixed steps: error bodies, non-streaming responses.
    Script(VecDeque<Step>),
    /// A token stream.
    Stream(Box<StreamState>),
}

/// The body of every simulator response. Owns the request's [`Recorder`],
/// so the ground truth is written when hyper drops the body.
pub(crate) struct SimBody {
    rec: Recorder,
    source: Gen,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Exact length, for a body that is one complete `Data` step (lets
    /// hyper send `Content-Length`).
    exact_len: Option<u64>,
    /// Reset: one `Pending` was returned so hyper flushed what it buffered.
    reset_yielded: bool,
    done: bool,
}

impl SimBody {
    /// A body made of fixed steps. `exact` marks a single well-formed
    /// payload whose length can be announced.
    pub(crate) fn script(rec: Recorder, steps: Vec<Step>, exact: bool) -> Self {
        let exact_len = match (exact, steps.as_slice()) {
            (true, [Step::Data(b, _)]) => Some(b.len() as u64),
            _ => None,
        };
        SimBody {
            rec,
            source: Gen::Script(steps.into()),
            sleep: None,
            exact_len,
            reset_yielded: false,
            done: false,
        }
    }

    /// A complete body sent at once.
    pub(crate) fn full(rec: Recorder, data: Vec<u8>, tokens: u32) -> Self {
        SimBody::script(rec, vec![Step::Data(data.into(), tokens)], true)
    }

    pub(crate) fn stream(rec: Recorder, stream: TokenStream) -> Self {
        SimBody {
            rec,
            source: Gen::Stream(Box::new(stream.start())),
            sleep: None,
            exact_len: None,
            reset_yielded: false,
            done: false,
        }
    }

    /// `Ready(())` once `deadline` has passed; the sleep is allocated once
    /// per body and re-armed.
    fn wait_until(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        match &mut self.sleep {
            Some(s) => {
                if s.deadline() != deadline {
                    s.as_mut().reset(deadline);
                }
            }
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        match &mut self.sleep {
            Some(s) => s.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }

    fn frame(&mut self, data: Bytes, tokens: u32) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rec.chunk(tokens, data.len());
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn finish(&mut self) {
        self.done = true;
        self.rec.end(Outcome::Complete);
    }

    fn end(&mut self) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.finish();
        Poll::Ready(None)
    }

    /// Aborts the body. The first call returns `Pending` (and wakes at once)
    /// so hyper flushes the frames it already buffered: it drops its write
    /// buffer when a body fails.
    fn reset(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if !self.reset_yielded {
            self.reset_yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.done = true;
        self.rec.end(Outcome::Reset);
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "simulated connection reset",
        ))))
    }

    fn poll_script(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        loop {
            let Gen::Script(steps) = &mut self.source else {
                unreachable!("poll_script on a stream body");
            };
            match steps.front() {
                None => return self.end(),
                Some(Step::Data(..)) => {
                    let Some(Step::Data(data, tokens)) = steps.pop_front() else {
                        unreachable!();
                    };
                    let last = steps.is_empty();
                    let frame = self.frame(data, tokens);
                    if last {
                        // hyper stops polling once a known length is written,
                        // so the end is marked with the last frame.
                        self.finish();
                    }
                    return frame;
                }
                Some(Step::Wait(deadline)) => {
                    let deadline = *deadline;
                    if self.wait_until(deadline, cx).is_pending() {
                        return Poll::Pending;
                    }
                    if let Gen::Script(steps) = &mut self.source {
                        steps.pop_front();
                    }
                }
                Some(Step::Reset) => return self.reset(cx),
            }
        }
    }

    fn poll_stream(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        loop {
            let Gen::Stream(s) = &mut self.source else {
                unreachable!("poll_stream on a script body");
            };
            match s.advance(Instant::now()) {
                Next::Frame(data, tokens) => {
                    let last = s.phase == Phase::Done;
                    let frame = self.frame(data, tokens);
                    if last {
                        // Lets hyper end the body with this frame's write.
                        self.finish();
                    }
                    return frame;
                }
                Next::WaitUntil(deadline) => {
                    if self.wait_until(deadline, cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                Next::End => return self.end(),
                Next::Reset => return self.reset(cx),
            }
        }
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        // hyper polls the body right after buffering the response head.
        this.rec.headers_sent();
        if this.done {
            return Poll::Ready(None);
        }
        match this.source {
            Gen::Script(_) => this.poll_script(cx),
            Gen::Stream(_) => this.poll_stream(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact_len {
            Some(n) if !self.done => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

/// What the stream wants next.
enum Next {
    Frame(Bytes, u32),
    WaitUntil(Instant),
    End,
    Reset,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Role,
    Tokens,
    /// The reset fault: abort once the next group would be due.
    ResetAt,
    Done,
}

/// Everything a streamed response needs to generate its events.
pub(crate) struct TokenStream {
    pub(crate) template: Template,
    pub(crate) total: u32,
    pub(crate) per_chunk: u32,
    /// Deadline of the first token.
    pub(crate) first_token: Instant,
    pub(crate) itl: LatencyDist,
    pub(crate) load_factor: f64,
    pub(crate) shared: Arc<Shared>,
    pub(crate) timing_rng: Rng,
    pub(crate) text_rng: Rng,
    /// A mid-stream fault and the number of tokens sent before it acts.
    pub(crate) fault: Option<(FaultKind, u32)>,
    pub(crate) stall: Duration,
    /// The prompt token count, when the usage chunk is wanted.
    pub(crate) usage: Option<u64>,
    pub(crate) finish_reason: &'static str,
    /// Hand over each group as its own frame, never coalescing.
    pub(crate) frame_per_group: bool,
}

/// A [`TokenStream`] in motion.
struct StreamState {
    cfg: TokenStream,
    phase: Phase,
    sent: u32,
    /// Deadline of the next token group.
    next: Instant,
    /// Tokens in the next group.
    next_size: u32,
    fault_done: bool,
    buf: BytesMut,
    /// Tokens in `buf`, not yet handed over.
    buf_tokens: u32,
}

impl TokenStream {
    fn start(self) -> StreamState {
        let mut s = StreamState {
            phase: Phase::Role,
            sent: 0,
            next: self.first_token,
            next_size: 0,
            fault_done: false,
            buf: BytesMut::new(),
            buf_tokens: 0,
            cfg: self,
        };
        s.next_size = s.group_size();
        // The first token is due at `first_token`; the rest of its group
        // follows at the inter-token latency.
        let extra = s.next_size.saturating_sub(1);
        let first_group = s.gaps(extra);
        s.next += first_group;
        let want = s
            .cfg
            .template
            .event_len(s.cfg.per_chunk)
            .saturating_mul(s.cfg.total.div_ceil(s.cfg.per_chunk) as usize + 3);
        s.buf.reserve(want.clamp(512, MAX_FRAME));
        s
    }
}

impl StreamState {
    fn fault_pending(&self) -> Option<(FaultKind, u32)> {
        self.cfg.fault.filter(|_| !self.fault_done)
    }

    /// Size of the group after the `sent` tokens: `per_chunk`, cut short by
    /// the end or by a pending fault point.
    fn group_size(&self) -> u32 {
        let mut n = self.cfg.per_chunk.min(self.cfg.total - self.sent);
        if let Some((_, at)) = self.fault_pending()
            && at > self.sent
        {
            n = n.min(at - self.sent);
        }
        n
    }

    /// Time for `n` more tokens, scaled by the current load.
    fn gaps(&mut self, n: u32) -> Duration {
        if n == 0 || self.cfg.itl.is_zero() {
            return Duration::ZERO;
        }
        let mut secs = 0.0;
        for _ in 0..n {
            secs += self.cfg.itl.sample_secs(&mut self.cfg.timing_rng);
        }
        if self.cfg.load_factor > 0.0 {
            let in_flight = self.cfg.shared.in_flight.load(Ordering::Relaxed).max(1);
            secs *= 1.0 + self.cfg.load_factor * (in_flight - 1) as f64;
        }
        super::config::secs(secs)
    }

    fn take(&mut self) -> Next {
        let tokens = std::mem::take(&mut self.buf_tokens);
        Next::Frame(self.buf.split().freeze(), tokens)
    }

    /// Hands over what is buffered, else waits, ends or resets.
    fn flush_or(&mut self, then: Next) -> Next {
        if self.buf.is_empty() {
            then
        } else {
            self.take()
        }
    }

    fn advance(&mut self, now: Instant) -> Next {
        loop {
            match self.phase {
                Phase::Done => return self.flush_or(Next::End),
                Phase::ResetAt => {
                    if !self.buf.is_empty() {
                        return self.take();
                    }
                    if now < self.next {
                        return Next::WaitUntil(self.next);
                    }
                    return Next::Reset;
                }
                Phase::Role => {
                    // Right after the headers, not at the first token.
                    self.cfg.template.role(&mut self.buf);
                    self.phase = Phase::Tokens;
                    if self.cfg.frame_per_group && !self.buf.is_empty() {
                        return self.take();
                    }
                }
                Phase::Tokens => {
                    if let Some((kind, at)) = self.fault_pending()
                        && self.sent == at
                    {
                        self.fault_done = true;
                        match kind {
                            FaultKind::Cut => self.phase = Phase::Done,
                            FaultKind::Reset => self.phase = Phase::ResetAt,
                            FaultKind::Malformed => self.cfg.template.malformed(&mut self.buf),
                            FaultKind::ErrorInStream => {
                                self.cfg.template.error(&mut self.buf);
                                self.phase = Phase::Done;
                            }
                            FaultKind::Stall => self.next += self.cfg.stall,
                            // Not mid-stream faults; never scheduled here.
                            _ => {}
                        }
                        continue;
                    }
                    if self.sent == self.cfg.total {
                        let usage = self.cfg.usage.map(|p| (p, u64::from(self.sent)));
                        self.cfg
                            .template
                            .trailer(&mut self.buf, self.cfg.finish_reason, usage);
                        self.phase = Phase::Done;
                        continue;
                    }
                    if now < self.next || self.buf.len() >= MAX_FRAME {
                        return self.flush_or(Next::WaitUntil(self.next));
                    }
                    let n = self.next_size;
                    self.cfg
                        .template
                        .tokens(&mut self.buf, &mut self.cfg.text_rng, n);
                    self.buf_tokens += n;
                    self.sent += n;
                    if self.sent < self.cfg.total {
                        self.next_size = self.group_size();
                        let size = self.next_size;
                        let gap = self.gaps(size);
                        self.next += gap;
                    }
                    if self.cfg.frame_per_group && !self.buf.is_empty() {
                        return self.take();
                    }
                }
            }
        }
    }
}
