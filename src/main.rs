//! The `ttlcask` binary: parses the command line and hands it to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    match ttlcask::cli::main(ttlcask::cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ttlcask: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
