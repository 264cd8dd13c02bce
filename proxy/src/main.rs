//! The `waygate` command line: `run`, `check`, `explain`, `demo`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
