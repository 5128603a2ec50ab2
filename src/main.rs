//! The `ttlcask` binary: parses the command line and hands it to the library.

use clap::Parser;

/// hyper takes a fresh 8 KiB read buffer for most requests, which glibc's malloc serves from
/// its bins; mimalloc costs 5-6% fewer instructions per request (ARCHITECTURE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    match ttlcask::cli::main(ttlcask::cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            // Not `eprintln!`, which panics when standard error cannot be written.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "ttlcask: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
