//! The command line, as clap parses it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::curve::CurveArgs;
use crate::format::Format;
use crate::units;

/// Talk to zocket sockets from a shell, and measure a link between two processes.
#[derive(Debug, Parser)]
#[command(
    name = "zocket",
    version,
    arg_required_else_help = true,
    after_help = "Examples:\n  zocket pull --bind tcp://127.0.0.1:5555 --count 3\n  seq 3 | zocket push --connect tcp://127.0.0.1:5555\n  zocket rep --bind ipc:///tmp/echo.sock --exec 'tr a-z A-Z'\n  zocket req --connect ipc:///tmp/echo.sock --data hello\n  zocket keygen > server.key   # then give clients its public line\n  zocket rep --bind tcp://127.0.0.1:5555 --curve-secret-file server.key --echo\n  zocket req --connect tcp://127.0.0.1:5555 --curve-server-key PUBLIC --data hello\n\nExit codes: 0 done, 1 runtime failure (including --recv-timeout), 2 bad usage."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publisher: sends each message to every subscriber whose subscription prefixes its first frame.
    Pub(TalkArgs),
    /// Subscriber: prints the messages whose first frame starts with a --subscribe topic.
    Sub(TalkArgs),
    /// Requester: sends each message as a request and prints its reply.
    Req(TalkArgs),
    /// Replier: prints each request and answers it (--reply, --echo or --exec).
    Rep(TalkArgs),
    /// Dealer: sends round-robin and prints what it receives, at once.
    Dealer(TalkArgs),
    /// Router: prints each message after its sender's routing id; sends PEER<SEP>BODY lines to PEER.
    Router(TalkArgs),
    /// Pipeline source: sends each message to one puller, round-robin.
    Push(TalkArgs),
    /// Pipeline sink: prints the messages pushed to it.
    Pull(TalkArgs),
    /// Exclusive pair: sends to and prints from its one peer, at once.
    Pair(TalkArgs),
    /// Extended publisher: sends like pub, and prints its subscribers' subscriptions
    /// (\x01topic / \x00topic) and an xsub's upstream messages.
    Xpub(TalkArgs),
    /// Extended subscriber: prints like sub (--subscribe); sends its input upstream to the
    /// publishers (a one-frame \x01topic / \x00topic subscribes / unsubscribes).
    Xsub(TalkArgs),
    /// Print a new CURVE key pair as two lines, `public: KEY` and `secret: KEY` (Z85).
    Keygen,
    /// Measure throughput or latency between two processes (like libzmq's local_thr/remote_thr,
    /// local_lat/remote_lat).
    #[command(subcommand)]
    Perf(Perf),
}

/// The socket type of a talk command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pub,
    Sub,
    Req,
    Rep,
    Dealer,
    Router,
    Push,
    Pull,
    Pair,
    XPub,
    XSub,
}

impl Kind {
    /// Whether the socket sends messages of its own (Rep only answers).
    pub fn sends(self) -> bool {
        !matches!(self, Kind::Sub | Kind::Pull | Kind::Rep)
    }

    /// Whether the socket prints messages it receives (Req prints replies, Rep requests).
    pub fn receives(self) -> bool {
        !matches!(self, Kind::Pub | Kind::Push)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Pub => "pub",
            Kind::Sub => "sub",
            Kind::Req => "req",
            Kind::Rep => "rep",
            Kind::Dealer => "dealer",
            Kind::Router => "router",
            Kind::Push => "push",
            Kind::Pull => "pull",
            Kind::Pair => "pair",
            Kind::XPub => "xpub",
            Kind::XSub => "xsub",
        })
    }
}

/// Where a socket binds and connects: any number of each, every endpoint form zocket accepts
/// (tcp://host:port[/path], ipc:///file[#path], inproc://name, dns://host:port, mdns://name).
#[derive(Debug, Clone, Args)]
pub struct Endpoints {
    /// Bind ENDPOINT (repeatable); the bound endpoint, with its real port for :0, is printed to stderr.
    ///
    /// ENDPOINT is tcp://host:port[/path], ipc:///file[#path], inproc://name (same process
    /// only), dns://host:port[/path] (connect only) or mdns://name[/path] (announced and found on the local network by multicast DNS).
    #[arg(long, value_name = "ENDPOINT", value_parser = units::endpoint)]
    pub bind: Vec<String>,
    /// Connect to ENDPOINT (repeatable); dials in the background and redials when the peer goes away.
    #[arg(long, value_name = "ENDPOINT", value_parser = units::endpoint)]
    pub connect: Vec<String>,
}

/// Options of the socket commands. Which ones apply depends on the socket type; one that
/// makes no sense for it is refused with exit code 2.
#[derive(Debug, Clone, Args)]
pub struct TalkArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,

    /// Send TEXT as the message (split into frames on --frames SEP).
    #[arg(
        long,
        value_name = "TEXT",
        conflicts_with = "file",
        help_heading = "Sending"
    )]
    pub data: Option<String>,
    /// Send the contents of PATH as the message (one frame, or split on --frames SEP).
    #[arg(long, value_name = "PATH", help_heading = "Sending")]
    pub file: Option<PathBuf>,
    /// Split each message into frames on SEP (input), and join frames with SEP in ascii output (default `|`).
    #[arg(long, value_name = "SEP", value_parser = units::separator, help_heading = "Sending")]
    pub frames: Option<String>,
    /// Wait DURATION between messages (100ms, 1s); with --data/--file and no --count, repeat forever.
    #[arg(long, value_name = "DURATION", value_parser = units::duration, help_heading = "Sending")]
    pub interval: Option<Duration>,
    /// Wait DURATION before the first message (after --wait-peers).
    #[arg(long, value_name = "DURATION", value_parser = units::duration, help_heading = "Sending")]
    pub delay: Option<Duration>,
    /// Wait until N peers are connected (for a sub peer: with its subscriptions applied) before the first message.
    #[arg(long, value_name = "N", help_heading = "Sending")]
    pub wait_peers: Option<usize>,

    /// pub, push, req: send N messages (--data/--file repeated; stdin: at most N lines).
    /// Others: exit after receiving N messages.
    #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Sending and receiving")]
    pub count: Option<u64>,

    /// How to print received messages [default: ascii].
    #[arg(long, value_enum, value_name = "FORMAT", help_heading = "Receiving")]
    pub format: Option<Format>,
    /// Exit with an error (code 1) when no message arrives within DURATION.
    #[arg(long, value_name = "DURATION", value_parser = units::duration, help_heading = "Receiving")]
    pub recv_timeout: Option<Duration>,

    /// sub: receive messages whose first frame starts with TOPIC (repeatable; none = everything).
    #[arg(long, value_name = "TOPIC", help_heading = "Socket-specific")]
    pub subscribe: Vec<String>,
    /// rep: answer every request with TEXT (split into frames on --frames SEP).
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["echo", "exec"], help_heading = "Socket-specific")]
    pub reply: Option<String>,
    /// rep: answer every request with the request itself.
    #[arg(long, conflicts_with = "exec", help_heading = "Socket-specific")]
    pub echo: bool,
    /// rep: run `sh -c CMD` for each request, the request on its stdin; its stdout is the reply
    /// (less one trailing newline, as in $(CMD)).
    #[arg(long, value_name = "CMD", help_heading = "Socket-specific")]
    pub exec: Option<String>,
    /// req, dealer, router: the routing id a router peer sees (text, or 0x and hex digits).
    #[arg(long, value_name = "ID", value_parser = units::identity, help_heading = "Socket-specific")]
    pub identity: Option<RoutingId>,

    #[command(flatten)]
    pub curve: CurveArgs,

    /// Print connection events (listening, connected, disconnected, retrying, handshake failed) to stderr.
    /// Failed handshakes (a wrong CURVE key, an incompatible peer) are printed even without it.
    #[arg(long)]
    pub monitor: bool,
    /// Do not print the bound endpoints, nor failed handshakes, to stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// At exit, print the socket's statistics to stderr: messages and bytes sent and received,
    /// messages dropped at the high-water mark, connections; per peer with its address, routing
    /// id and CURVE key. With it, Ctrl-C (or SIGTERM) ends the command with the statistics.
    #[arg(long)]
    pub stats: bool,
}

/// The four roles of `zocket perf`, in two pairs.
#[derive(Debug, Subcommand)]
pub enum Perf {
    /// Throughput, receiving side (a pull socket): reports msgs/s and MB/s once --count messages arrived.
    Thr(PerfArgs),
    /// Throughput, sending side (a push socket): sends --count messages of --size bytes.
    Send(PerfArgs),
    /// Latency, echoing side (a rep socket): answers --count requests.
    Lat(PerfArgs),
    /// Latency, measuring side (a req socket): reports round-trip p50/p90/p99/max over --count requests.
    Ping(PerfArgs),
}

#[derive(Debug, Clone, Args)]
pub struct PerfArgs {
    #[command(flatten)]
    pub endpoints: Endpoints,
    /// Message size (16, 256B, 4KiB, 64KiB); both sides must agree.
    #[arg(long, short = 's', value_name = "SIZE", value_parser = units::size, default_value = "16")]
    pub size: usize,
    /// Number of messages (thr/send, default 1000000) or round trips (lat/ping, default 10000); both sides must agree.
    #[arg(long, short = 'n', value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Print the report as one JSON object instead of a line of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub curve: CurveArgs,
    /// Do not print the bound endpoints to stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Tokio threads: 1 (the default) runs on one thread (tokio's current_thread runtime), more
    /// on a multi-threaded runtime with that many workers, as a service might. On one thread a
    /// socket and its connection driver hand batches over without cross-thread wake-ups.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
}

/// A routing id given on the command line, as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingId(pub Vec<u8>);

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
