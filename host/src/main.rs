use std::process::ExitCode;

fn main() -> ExitCode {
    genai_bench::cli::main()
}
