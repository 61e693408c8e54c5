//! Log setup: `LOG_LEVEL` (or genai-bench's `GENAI_BENCH_LOGGING_LEVEL`:
//! DEBUG, INFO, WARNING, ERROR) or `-v`/`-vv` choose the detail; logs go to
//! stderr and, for `benchmark`, to `genai_bench.log` (see [`log_to_file`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Log lines kept in memory before the log file is known: enough for any
/// start-up, bounded so a chatty plugin cannot grow it without end.
const MAX_BUFFERED: usize = 4 << 20;

/// Where the file copy of the log goes.
enum Sink {
    /// No file log (commands other than `benchmark`).
    Off,
    /// Kept until the file is known (the experiment folder is made after
    /// the checks that may fail first).
    Buffer(Vec<u8>),
    /// Appended to this file.
    File(std::fs::File, PathBuf),
}

static SINK: Mutex<Sink> = Mutex::new(Sink::Off);

/// Keep log lines from now on, for [`log_to_file`].
pub fn capture() {
    let mut s = SINK.lock().unwrap_or_else(|e| e.into_inner());
    if matches!(*s, Sink::Off) {
        *s = Sink::Buffer(Vec::new());
    }
}

/// Append the log (lines kept since [`capture`], then every new line) to
/// `path`, creating it and its folder. Returns the file's path.
pub fn log_to_file(path: &Path) -> anyhow::Result<PathBuf> {
    use anyhow::Context as _;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("log folder {} cannot be created", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("log file {} cannot be opened", path.display()))?;
    let mut s = SINK.lock().unwrap_or_else(|e| e.into_inner());
    if let Sink::Buffer(b) = &*s {
        file.write_all(b)
            .with_context(|| format!("log file {} cannot be written", path.display()))?;
    }
    *s = Sink::File(file, path.to_path_buf());
    Ok(path.to_path_buf())
}

/// The log file in use, if any.
pub fn log_file() -> Option<PathBuf> {
    match &*SINK.lock().unwrap_or_else(|e| e.into_inner()) {
        Sink::File(_, p) => Some(p.clone()),
        _ => None,
    }
}

/// Copies `text` (already shown on stderr, e.g. a run's summary table) into
/// the log file, so the file tells the whole story.
pub fn file_only(text: &str) {
    let mut w = SinkWriter;
    let _ = w.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = w.write_all(b"\n");
    }
}

/// Writes one formatted event to the sink.
struct SinkWriter;

impl std::io::Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut s = SINK.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *s {
            Sink::Off => {}
            Sink::Buffer(b) => {
                if b.len() + buf.len() <= MAX_BUFFERED {
                    b.extend_from_slice(buf);
                }
            }
            // A full disk must not stop a benchmark: the stderr copy stays.
            Sink::File(f, _) => {
                let _ = f.write_all(buf);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct MakeSink;

impl<'a> MakeWriter<'a> for MakeSink {
    type Writer = SinkWriter;
    fn make_writer(&'a self) -> SinkWriter {
        SinkWriter
    }
}

/// Map genai-bench's `LOG_LEVEL` names to a tracing level name.
pub fn level_from_env(value: &str) -> Option<&'static str> {
    match value.trim().to_ascii_uppercase().as_str() {
        "TRACE" => Some("trace"),
        "DEBUG" => Some("debug"),
        "INFO" => Some("info"),
        "WARN" | "WARNING" => Some("warn"),
        "ERROR" | "CRITICAL" => Some("error"),
        _ => None,
    }
}

/// Install the global subscriber. `verbose` counts `-v` flags; `LOG_LEVEL`
/// (else `GENAI_BENCH_LOGGING_LEVEL`) wins when set. An unknown `LOG_LEVEL` is reported, not ignored.
pub fn init(verbose: u8) {
    let mut warning = None;
    let from_env =
        std::env::var("LOG_LEVEL").or_else(|_| std::env::var("GENAI_BENCH_LOGGING_LEVEL"));
    let level = match from_env {
        Ok(v) => level_from_env(&v).unwrap_or_else(|| {
            warning = Some(format!(
                "LOG_LEVEL={v:?} is not a log level; use DEBUG, INFO, WARNING or ERROR. Using INFO."
            ));
            "info"
        }),
        Err(_) => match verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        },
    };
    // Dependencies stay at warn unless tracing everything.
    let filter = if level == "trace" {
        EnvFilter::new("trace")
    } else {
        EnvFilter::new(format!("warn,genai_bench={level},plugin={level}"))
    };
    // Colour only on a terminal: a redirected log (`2> run.log`) gets
    // plain text, not escape codes. NO_COLOR turns it off everywhere.
    use std::io::IsTerminal as _;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_ansi(ansi),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(MakeSink)
                .with_target(false)
                .with_ansi(false),
        )
        .try_init();
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
}
