//! Command-line interface.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::plugin::{PluginRuntime, RuntimeOptions, builtin};

/// LLM serving benchmark with API formats in sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "genai-bench", version, about, propagate_version = true)]
pub struct Cli {
    /// More log detail (-v debug, -vv trace); LOG_LEVEL=DEBUG does the same.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmark a model endpoint: for each model, traffic scenario and
    /// concurrency, run a closed loop and write genai-bench compatible results.
    Benchmark(Box<crate::benchmark::BenchmarkArgs>),
    /// Start the built-in simulator and benchmark it through the Baseten
    /// plugin: a 30-second tour with no network and no credentials.
    Demo(crate::demo::DemoArgs),
    /// Serve the built-in LLM endpoint simulator (OpenAI, Baseten, TGI and Ollama routes,
    /// timing model, faults on demand, ground truth).
    ServeSim(Box<crate::simulator::SimArgs>),
    /// Inspect and manage backend plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Write genai-bench's Excel workbook of an experiment folder.
    Excel(crate::reports::commands::ExcelArgs),
    /// Write genai-bench's plot grid (PNG and SVG) of experiment folders.
    Plot(crate::reports::commands::PlotArgs),
    /// Write the self-contained HTML report of an experiment folder.
    Report(crate::reports::commands::ReportArgs),
    /// Merge the experiment folders of several load generators (shards)
    /// into one, with exact percentiles over the union of their requests.
    Merge(crate::merge::MergeArgs),
    /// Measure this machine's client against the built-in simulator: its
    /// error against the simulator's ground truth as load rises, and the
    /// load at which the client becomes the bottleneck.
    Calibrate(crate::calibrate::CalibrateArgs),
}

/// `genai-bench plugin ...`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Print a plugin's metadata, the WIT world it implements and the limits
    /// it runs under.
    Inspect(InspectArgs),
    /// List the built-in plugins.
    List,
    /// Check a plugin against the contract: metadata, requests for every
    /// task, canned responses split at every byte, CPU and memory per call.
    Check(crate::plugin_dev::check::CheckArgs),
    /// Create a new plugin project (Rust, Python or JavaScript) that builds
    /// and passes `plugin check` as generated.
    New(crate::plugin_dev::scaffold::NewArgs),
}

/// Arguments of `plugin inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A built-in backend name (e.g. `baseten`) or a path to a .wasm component.
    pub plugin: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print the full WIT contract the host implements.
    #[arg(long)]
    pub wit: bool,
    /// The limits to show (and load the plugin under).
    #[command(flatten)]
    pub limits: crate::plugin::limits::LimitArgs,
}

/// Entry point of the `genai-bench` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init(cli.verbose);
    if !matches!(
        cli.command,
        Command::Benchmark(_) | Command::Demo(_) | Command::ServeSim(_) | Command::Calibrate(_)
    ) {
        // Commands that only print end quietly when their reader goes away
        // (`plot --list-fields | head`), as other Unix tools do. The long
        // ones keep SIGPIPE ignored: a closed pipe must not lose results.
        // SAFETY: setting a signal's disposition to its default is sound.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Benchmark(args) => crate::benchmark::run(*args),
        Command::Demo(args) => crate::demo::run(args),
        Command::ServeSim(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(crate::simulator::run(*args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::List) => {
            // One line per plugin: its name, then the other names it serves.
            for p in builtin::BUILTIN_PLUGINS {
                if p.backends.is_empty() {
                    println!("{}", p.name);
                } else {
                    println!("{} (also: {})", p.name, p.backends.join(", "));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Inspect(args)) => inspect(&args),
        Command::Plugin(PluginCommand::Check(args)) => {
            let report = crate::plugin_dev::check::run(&args)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report.to_json())?);
            } else {
                print!("{}", report.render());
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Plugin(PluginCommand::New(args)) => crate::plugin_dev::scaffold::run(&args),
        Command::Excel(args) => crate::reports::commands::excel(args),
        Command::Plot(args) => crate::reports::commands::plot(args),
        Command::Report(args) => crate::reports::commands::report(args),
        Command::Merge(args) => crate::merge::run(args),
        Command::Calibrate(args) => crate::calibrate::run(args),
    }
}

fn inspect(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let runtime = PluginRuntime::new(RuntimeOptions {
        max_instances: 8,
        limits: args.limits.to_limits(),
        ..RuntimeOptions::default()
    })?;
    let plugin = runtime.load_named_or_path(&args.plugin)?;
    let info = plugin.info();
    let limits = plugin.limits();
    if args.json {
        let v = serde_json::json!({
            "name": info.name,
            "version": info.version,
            "description": info.description,
            "tasks": info.tasks,
            "auth": info.auth,
            "backends": info.backends,
            "contract": plugin.contract().as_str(),
            "world": plugin.contract().world(),
            "imports": plugin.world().imports,
            "exports": plugin.world().exports,
            "origin": plugin.origin().to_string(),
            "sha256": plugin.sha256(),
            "compiled_from_cache": plugin.from_cache(),
            "load_ms": plugin.load_time().as_secs_f64() * 1000.0,
            "limits": {
                "memory_bytes": limits.memory_bytes,
                "memory_total_bytes": limits.memory_total_bytes,
                "call_timeout_ms": limits.call_timeout.as_millis() as u64,
                "call_wall_timeout_ms": limits.call_wall_timeout.as_millis() as u64,
                "max_events_per_request": limits.max_events_per_request,
                "max_text_bytes_per_request": limits.max_text_bytes_per_request,
                "max_request_header_bytes": limits.max_request_header_bytes,
                "max_component_bytes": limits.max_component_bytes,
                "compile_timeout_s": limits.compile_timeout.as_secs(),
                "max_request_body": limits.max_request_body,
                "max_request_headers": limits.max_request_headers,
                "max_events_per_call": limits.max_events_per_call,
                "max_event_bytes_per_call": limits.max_event_bytes_per_call,
            },
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("name:        {}", info.name);
        println!("version:     {}", info.version);
        println!("description: {}", info.description);
        println!(
            "tasks:       {}",
            info.tasks
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        match &info.auth {
            Some(a) => println!("auth:        {}", a.describe()),
            None => println!("auth:        none"),
        }
        if !info.backends.is_empty() {
            println!("also serves: {}", info.backends.join(", "));
        }
        println!(
            "contract:    {}{}",
            plugin.contract(),
            if plugin.contract() == crate::plugin::ContractVersion::CURRENT {
                String::new()
            } else {
                format!(
                    " (older; this host loads {})",
                    crate::plugin::ContractVersion::supported_list()
                )
            }
        );
        println!("world:       {}", plugin.contract().world());
        // Names inside the component are the plugin's text too.
        let safe = |names: &[String]| crate::plugin::display_safe(&names.join(", "), 4000);
        println!("imports:     {}", safe(&plugin.world().imports));
        println!("exports:     {}", safe(&plugin.world().exports));
        println!("origin:      {}", plugin.origin());
        println!("sha256:      {}", plugin.sha256());
        println!(
            "loaded in:   {:.1} ms ({})",
            plugin.load_time().as_secs_f64() * 1000.0,
            if plugin.from_cache() {
                "compiled-plugin cache"
            } else {
                "compiled now"
            }
        );
        println!("limits:      {}", limits.summary());
    }
    if args.wit {
        println!("\n{}", crate::plugin::WIT_SOURCE);
    }
    Ok(ExitCode::SUCCESS)
}
