//! Limits the host enforces on every plugin instance and call.

use std::time::Duration;

/// What one plugin instance may use and return. The defaults are safe for
/// untrusted plugins and roomy for Rust, Python and JavaScript ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Linear memory per instance, in bytes.
    pub memory_bytes: usize,
    /// Wall time one call into the plugin may take before it is interrupted.
    pub call_timeout: Duration,
    /// Largest request body `build-request` may return.
    pub max_request_body: usize,
    /// Most headers `build-request` may return.
    pub max_request_headers: usize,
    /// Most events one `feed` or `finish` call may return.
    pub max_events_per_call: usize,
    /// Most bytes of event text one call may return.
    pub max_event_bytes_per_call: usize,
    /// Bytes of log text one instance may write before its logs are dropped.
    pub max_log_bytes: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            memory_bytes: 128 << 20,
            call_timeout: Duration::from_millis(200),
            max_request_body: 32 << 20,
            max_request_headers: 64,
            max_events_per_call: 65_536,
            max_event_bytes_per_call: 16 << 20,
            max_log_bytes: 64 << 10,
        }
    }
}

impl PluginLimits {
    /// One line for `plugin inspect` and error messages.
    pub fn summary(&self) -> String {
        format!(
            "memory {} MiB per instance, {} ms per call, request body <= {} MiB, <= {} headers, <= {} events and {} MiB of text per call",
            self.memory_bytes >> 20,
            self.call_timeout.as_millis(),
            self.max_request_body >> 20,
            self.max_request_headers,
            self.max_events_per_call,
            self.max_event_bytes_per_call >> 20,
        )
    }
}

/// Command-line flags for [`PluginLimits`], shared by `benchmark` and
/// `plugin inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Linear memory per plugin instance, in MiB.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub plugin_memory_mb: u32,
    /// CPU time one plugin call may take, in milliseconds.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub plugin_cpu_ms: u64,
    /// Largest request body a plugin may build, in MiB.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub plugin_max_body_mb: u32,
    /// Most events one plugin parse call may return.
    #[arg(long, default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub plugin_max_events: u32,
}

impl LimitArgs {
    /// The limits these flags ask for.
    pub fn to_limits(&self) -> PluginLimits {
        PluginLimits {
            memory_bytes: (self.plugin_memory_mb as usize) << 20,
            call_timeout: Duration::from_millis(self.plugin_cpu_ms),
            max_request_body: (self.plugin_max_body_mb as usize) << 20,
            max_events_per_call: self.plugin_max_events as usize,
            ..PluginLimits::default()
        }
    }
}
