//! `zocket`: talk to zocket sockets from a shell (like nngcat), and measure a link between two
//! processes (like libzmq's local_thr/remote_thr and local_lat/remote_lat).
//!
//! Exit codes: 0 done, 1 runtime failure, 2 bad usage (clap's own errors use 2 as well).

// The doc comments of `args` are clap's help text, read in a terminal: `PEER<SEP>BODY` there
// is not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

mod args;
mod curve;
mod format;
mod perf;
mod talk;
mod units;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command, Kind, Perf};

/// Why a command stopped early.
#[derive(Debug)]
pub enum Fail {
    /// The command line asks for something that makes no sense: exit code 2.
    Usage(String),
    /// Something went wrong while running: exit code 1.
    Runtime(String),
    /// Whoever reads our stdout went away (`zocket sub ... | head -1`): exit quietly.
    BrokenPipe,
}

impl Fail {
    /// A runtime failure while doing `what`.
    pub fn runtime(what: &str, error: impl std::fmt::Display) -> Fail {
        Fail::Runtime(format!("{what}: {error}"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Keygen) {
        // Written at once, so that `zocket keygen > key` never holds half a pair.
        use std::io::Write as _;
        let pair = curve::keygen();
        return match std::io::stdout().lock().write_all(pair.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: writing to stdout: {e}");
                ExitCode::from(1)
            }
        };
    }
    // `zocket perf` runs on one thread unless --threads asks for more: a sender or receiver and
    // its connection driver on one thread hand batches over without cross-thread wake-ups (16 B
    // across two processes on a 2-core machine: ~4.7 M msgs/s on one thread against ~2.8 M on
    // two workers each; a round trip gains nothing from a second worker either). The socket
    // commands run multi-threaded, as a service would.
    let perf_threads = match &cli.command {
        Command::Perf(Perf::Thr(a) | Perf::Send(a) | Perf::Lat(a) | Perf::Ping(a)) => {
            Some(a.threads)
        }
        _ => None,
    };
    let mut builder = match perf_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(usize::from(n));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Pub(a) => talk::run(Kind::Pub, a).await,
            Command::Sub(a) => talk::run(Kind::Sub, a).await,
            Command::Req(a) => talk::run(Kind::Req, a).await,
            Command::Rep(a) => talk::run(Kind::Rep, a).await,
            Command::Dealer(a) => talk::run(Kind::Dealer, a).await,
            Command::Router(a) => talk::run(Kind::Router, a).await,
            Command::Push(a) => talk::run(Kind::Push, a).await,
            Command::Pull(a) => talk::run(Kind::Pull, a).await,
            Command::Pair(a) => talk::run(Kind::Pair, a).await,
            Command::Xpub(a) => talk::run(Kind::XPub, a).await,
            Command::Xsub(a) => talk::run(Kind::XSub, a).await,
            Command::Perf(p) => perf::run(p).await,
            Command::Keygen => Ok(()),
        }
    });
    // A read of stdin may still be blocked in tokio's blocking pool: do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(()) | Err(Fail::BrokenPipe) => ExitCode::SUCCESS,
        Err(Fail::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Fail::Runtime(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}
