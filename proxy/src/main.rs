//! The `waygate` command line: `run`, `check`, `explain`, `demo`.

mod cli;

/// mimalloc: Pingora allocates per request and per connection; glibc malloc was ≈20% of a
/// request's instructions (benches/RESULTS.md has the before/after numbers).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
