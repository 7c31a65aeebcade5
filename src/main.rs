//! The `testlayer` command.

use clap::Parser;

/// mimalloc rather than the system allocator: the controller's caches churn
/// through many small objects on many threads, where glibc's allocator
/// keeps far more memory than is live (measured: see the operator
/// benchmark's part f in the README).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = testlayer::cli::Cli::parse();
    std::process::exit(testlayer::cli::main(cli));
}
