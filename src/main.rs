//! The `testlayer` command.

use clap::Parser;

fn main() {
    let cli = testlayer::cli::Cli::parse();
    std::process::exit(testlayer::cli::main(cli));
}
