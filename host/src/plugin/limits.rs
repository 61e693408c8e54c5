//! Limits the host enforces on every plugin instance and call.

use std::time::Duration;

/// What one plugin instance may use and return. The defaults are safe for
/// untrusted plugins and roomy for Rust, Python and JavaScript ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Linear memory per instance, in bytes.
    pub memory_bytes: usize,
    /// Linear memory of all live instances of the process together, in
    /// bytes: what keeps many instances, each under `memory_bytes`, from
    /// taking the machine's memory at high concurrency.
    pub memory_total_bytes: usize,
    /// CPU time one call may use: the time it spends running, wasm and
    /// host functions on its behalf, not time queued behind other calls.
    pub call_timeout: Duration,
    /// Wall-clock time one call may take, waiting included: the backstop
    /// that ends a call whatever it is doing (the instance is discarded).
    pub call_wall_timeout: Duration,
    /// Largest request body `build-request` may return.
    pub max_request_body: usize,
    /// Most headers `build-request` may return.
    pub max_request_headers: usize,
    /// Most events one `feed` or `finish` call may return.
    pub max_events_per_call: usize,
    /// Most bytes of event text one call may return.
    pub max_event_bytes_per_call: usize,
    /// Most events one response may produce, over all calls.
    pub max_events_per_request: usize,
    /// Most bytes of event text one response may produce, over all calls.
    pub max_text_bytes_per_request: usize,
    /// Bytes of log text one instance may write before its logs are dropped.
    pub max_log_bytes: usize,
    /// Largest total size of the headers `build-request` may return.
    pub max_request_header_bytes: usize,
    /// Largest component file the host compiles.
    pub max_component_bytes: usize,
    /// Longest a component may take to compile.
    pub compile_timeout: Duration,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            memory_bytes: 128 << 20,
            memory_total_bytes: default_memory_total(),
            call_timeout: Duration::from_millis(200),
            call_wall_timeout: Duration::from_secs(10),
            max_request_body: 32 << 20,
            max_request_headers: 64,
            max_events_per_call: 65_536,
            max_event_bytes_per_call: 16 << 20,
            // A 1M-token answer at one event per token, and ~8 bytes a token.
            max_events_per_request: 1 << 20,
            max_text_bytes_per_request: 8 << 20,
            max_log_bytes: 64 << 10,
            max_request_header_bytes: 64 << 10,
            max_component_bytes: 64 << 20,
            compile_timeout: Duration::from_secs(120),
        }
    }
}

impl PluginLimits {
    /// One line for `plugin inspect` and error messages.
    pub fn summary(&self) -> String {
        format!(
            "memory {} MiB per instance (all memories and tables) and {} MiB for all instances together, {} ms CPU and {} ms wall per call, request body <= {} MiB, <= {} headers of <= {} KiB in all, <= {} events and {} MiB of text per call, <= {} events and {} MiB of text per response, component <= {} MiB compiled within {} s",
            self.memory_bytes >> 20,
            self.memory_total_bytes >> 20,
            self.call_timeout.as_millis(),
            self.call_wall_timeout.as_millis(),
            self.max_request_body >> 20,
            self.max_request_headers,
            self.max_request_header_bytes >> 10,
            self.max_events_per_call,
            self.max_event_bytes_per_call >> 20,
            self.max_events_per_request,
            self.max_text_bytes_per_request >> 20,
            self.max_component_bytes >> 20,
            self.compile_timeout.as_secs(),
        )
    }
}

/// Command-line flags for [`PluginLimits`], shared by `benchmark` and
/// `plugin inspect`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Plugin limits (per instance, per call, per response)")]
pub struct LimitArgs {
    /// Linear memory per plugin instance, in MiB.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub plugin_memory_mb: u32,
    /// Linear memory of all plugin instances together, with the request
    /// bodies and event text the host keeps for them, in MiB (default: half
    /// of the machine's memory, or of the cgroup's limit when lower). A
    /// growth past it fails that request's plugin call with a memory error;
    /// the run goes on.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=(1 << 30)))]
    pub plugin_memory_total_mb: Option<u64>,
    /// CPU time one plugin call may take, in milliseconds.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub plugin_cpu_ms: u64,
    /// Largest request body a plugin may build, in MiB.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub plugin_max_body_mb: u32,
    /// Most events one plugin parse call may return.
    #[arg(long, default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub plugin_max_events: u32,
    /// Wall-clock time one plugin call may take, waiting included, in
    /// milliseconds; past it the call is cancelled and its request fails.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub plugin_wall_ms: u64,
    /// Most events one response's parser may return, over all its calls.
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    pub plugin_max_events_per_request: u32,
    /// Most text (content and reasoning) one response's parser may return,
    /// over all its calls, in MiB.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub plugin_max_output_mb: u32,
    /// Largest plugin component the host compiles, in MiB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub plugin_max_size_mb: u32,
    /// Longest a plugin may take to compile, in seconds.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub plugin_compile_timeout: u64,
}

impl LimitArgs {
    /// The limits these flags ask for.
    pub fn to_limits(&self) -> PluginLimits {
        PluginLimits {
            memory_bytes: (self.plugin_memory_mb as usize) << 20,
            memory_total_bytes: self
                .plugin_memory_total_mb
                .map(|mb| usize::try_from(mb << 20).unwrap_or(usize::MAX))
                .unwrap_or_else(default_memory_total),
            call_timeout: Duration::from_millis(self.plugin_cpu_ms),
            max_request_body: (self.plugin_max_body_mb as usize) << 20,
            max_events_per_call: self.plugin_max_events as usize,
            call_wall_timeout: Duration::from_millis(self.plugin_wall_ms),
            max_events_per_request: self.plugin_max_events_per_request as usize,
            max_text_bytes_per_request: (self.plugin_max_output_mb as usize) << 20,
            max_component_bytes: (self.plugin_max_size_mb as usize) << 20,
            compile_timeout: Duration::from_secs(self.plugin_compile_timeout),
            ..PluginLimits::default()
        }
    }
}

/// Half of the memory this process may use: the machine's (`MemTotal` in
/// /proc/meminfo) or its cgroup's limit when lower (in a container the
/// machine's figure is the node's), or 8 GiB where neither can be read.
/// Plugins share it with the host, the server under test and the OS.
pub fn default_memory_total() -> usize {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| mem_total_kib(&m))
        .map(|kib| kib.saturating_mul(1024));
    let bytes = match (machine, cgroup_memory_limit()) {
        (Some(m), Some(c)) => m.min(c),
        (m, c) => m.or(c).unwrap_or(16 << 30),
    };
    usize::try_from(bytes / 2).unwrap_or(usize::MAX)
}

/// The memory limit of this process's cgroup (v2 `memory.max`, v1
/// `memory.limit_in_bytes`), if it has one.
fn cgroup_memory_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let read = |p: String| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|v| cgroup_limit(&v))
    };
    let (v2, v1) = cgroup_paths(&own);
    v2.and_then(|p| read(format!("/sys/fs/cgroup{p}/memory.max")))
        .or_else(|| {
            v1.and_then(|p| read(format!("/sys/fs/cgroup/memory{p}/memory.limit_in_bytes")))
        })
        .or_else(|| read("/sys/fs/cgroup/memory.max".into()))
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes".into()))
}

/// The v2 and v1-memory paths of /proc/self/cgroup.
fn cgroup_paths(own: &str) -> (Option<&str>, Option<&str>) {
    let v2 = own.lines().find_map(|l| l.strip_prefix("0::"));
    let v1 = own.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then_some(path)
    });
    (v2, v1)
}

/// A cgroup limit file's value; `max` and v1's "no limit" (~2^63) are none.
fn cgroup_limit(v: &str) -> Option<u64> {
    v.trim().parse::<u64>().ok().filter(|&b| b < 1 << 60)
}

fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_is_half_the_memory() {
        let m = "MemTotal:       24573020 kB\nMemFree:        1000 kB\n";
        assert_eq!(mem_total_kib(m), Some(24_573_020));
        assert_eq!(mem_total_kib("MemFree: 1 kB\n"), None);
        assert!(default_memory_total() >= 64 << 20);
    }

    #[test]
    fn a_cgroup_limit_is_read_where_it_is() {
        let v1 = "4:memory:/pod/abc\n1:cpu:/\n0::/\n";
        assert_eq!(cgroup_paths(v1), (Some("/"), Some("/pod/abc")));
        let v2 = "0::/kubepods/pod1/c2\n";
        assert_eq!(cgroup_paths(v2), (Some("/kubepods/pod1/c2"), None));
        assert_eq!(cgroup_limit("4294967296\n"), Some(4 << 30));
        assert_eq!(cgroup_limit("max\n"), None);
        assert_eq!(cgroup_limit("9223372036854771712\n"), None);
    }
}
