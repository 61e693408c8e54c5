//! Log setup: `LOG_LEVEL` (genai-bench's variable: DEBUG, INFO, WARNING,
//! ERROR) or `-v`/`-vv` choose the detail; logs go to stderr.

use tracing_subscriber::EnvFilter;

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
/// wins when set. An unknown `LOG_LEVEL` is reported, not ignored.
pub fn init(verbose: u8) {
    let mut warning = None;
    let level = match std::env::var("LOG_LEVEL") {
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .try_init();
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
}
