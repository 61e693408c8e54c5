use std::process::ExitCode;

fn main() -> ExitCode {
    // The plugin compiler child (see `plugin::compile`): before any CLI
    // parsing, logging or runtime start.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(
            genai_bench::plugin::compile::CHILD_ARG,
        ))
    {
        return genai_bench::plugin::compile::child_main();
    }
    genai_bench::cli::main()
}
