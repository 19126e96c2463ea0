//! `zocket <socket type> ...`: one socket, bound and connected as asked, sending what the
//! input says and printing what it receives.

use std::future::Future;
use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use zocket::monitor::Event;
use zocket::{
    Dealer, Message, Options, Pair, Pub, Pull, Push, Rep, Req, Router, Socket, Sub, XPub, XSub,
};

use crate::args::{Endpoints, Kind, TalkArgs};
use crate::format::{self, Format};
use crate::{units, Fail};

/// Runs one socket command to its end.
pub async fn run(kind: Kind, args: TalkArgs) -> Result<(), Fail> {
    check(kind, &args)?;
    let separator = args.frames.as_ref().map(|s| s.as_bytes().to_vec());
    let mut output = Output {
        format: args.format.unwrap_or(Format::Ascii),
        separator: separator.clone().unwrap_or_else(|| b"|".to_vec()),
        buf: Vec::new(),
    };
    let mut options = args.curve.security()?.apply(Options::default(), args.quiet);
    if let Some(id) = &args.identity {
        options = options.identity(Bytes::from(id.0.clone()));
    }
    if kind == Kind::Router {
        // Report a message to an unknown peer instead of dropping it silently.
        options = options.router_mandatory(true);
    }
    let timeout = args.recv_timeout;
    // pub, push and req: --count is the number of messages sent; the others count receptions.
    let send_count = match kind {
        Kind::Pub | Kind::Push | Kind::Req => args.count,
        _ => None,
    };
    let recv_count = match kind {
        Kind::Pub | Kind::Push | Kind::Req => None,
        _ => args.count,
    };
    let mut monitor = None;
    // Runs a duplex socket (its statistics printed with --stats, also when interrupted),
    // then closes it.
    macro_rules! duplex {
        ($socket:expr) => {{
            let mut socket = $socket;
            let done = until_interrupted(
                args.stats,
                open_duplex(&mut socket, kind, &args, output, &mut monitor),
            )
            .await;
            print_stats(&socket, kind, &args);
            done?;
            socket.close().await;
        }};
    }
    let result = async {
        match kind {
            Kind::Pub => {
                let mut socket = Pub::with_options(options);
                let mut input = Input::new(&args, send_count).await?;
                let done = until_interrupted(args.stats, async {
                    open(&socket, kind, &args, &mut monitor).await?;
                    send_input(&mut socket, &mut input).await
                })
                .await;
                print_stats(&socket, kind, &args);
                done?;
                socket.close().await;
            }
            Kind::Push => {
                let mut socket = Push::with_options(options);
                let mut input = Input::new(&args, send_count).await?;
                let done = until_interrupted(args.stats, async {
                    open(&socket, kind, &args, &mut monitor).await?;
                    send_input(&mut socket, &mut input).await
                })
                .await;
                print_stats(&socket, kind, &args);
                done?;
                socket.close().await;
            }
            Kind::Req => {
                let mut socket = Req::with_options(options);
                let mut input = Input::new(&args, send_count).await?;
                let done = until_interrupted(args.stats, async {
                    open(&socket, kind, &args, &mut monitor).await?;
                    while let Some(msg) = input.next().await? {
                        let reply = within(timeout, "reply", socket.request(msg)).await?;
                        output.print(None, &reply)?;
                    }
                    Ok(())
                })
                .await;
                print_stats(&socket, kind, &args);
                done?;
                socket.close().await;
            }
            Kind::Sub => {
                let mut socket = Sub::with_options(options);
                if args.subscribe.is_empty() {
                    socket.subscribe("");
                }
                for topic in &args.subscribe {
                    socket.subscribe(topic);
                }
                let done = until_interrupted(args.stats, async {
                    open(&socket, kind, &args, &mut monitor).await?;
                    print_received(&mut socket, recv_count, timeout, &mut output).await
                })
                .await;
                print_stats(&socket, kind, &args);
                done?;
            }
            Kind::Pull => {
                let mut socket = Pull::with_options(options);
                let done = until_interrupted(args.stats, async {
                    open(&socket, kind, &args, &mut monitor).await?;
                    print_received(&mut socket, recv_count, timeout, &mut output).await
                })
                .await;
                print_stats(&socket, kind, &args);
                done?;
            }
            Kind::Rep => {
                let mut socket = Rep::with_options(options);
                let answer = if let Some(text) = &args.reply {
                    Answer::Text(split(text.as_bytes(), separator.as_deref()))
                } else if let Some(cmd) = &args.exec {
                    Answer::Exec(cmd.clone())
                } else {
                    Answer::Echo
                };
                let done = until_interrupted(args.stats, async {
                    open(&socket, kind, &args, &mut monitor).await?;
                    let mut received = 0;
                    while recv_count != Some(received) {
                        let request = within(timeout, "request", socket.recv()).await?;
                        output.print(None, request.message())?;
                        let reply = match &answer {
                            Answer::Text(msg) => msg.clone(),
                            Answer::Echo => request.message().clone(),
                            Answer::Exec(cmd) => {
                                exec(cmd, request.message(), separator.as_deref()).await?
                            }
                        };
                        request
                            .reply(reply)
                            .await
                            .map_err(|e| Fail::runtime("reply", e))?;
                        received += 1;
                    }
                    Ok(())
                })
                .await;
                print_stats(&socket, kind, &args);
                done?;
                socket.close().await;
            }
            // The duplex sockets: stdin (or --data) out, what arrives printed, until the end.
            Kind::Dealer => duplex!(Dealer::with_options(options)),
            Kind::Router => duplex!(Router::with_options(options)),
            Kind::Pair => duplex!(Pair::with_options(options)),
            Kind::XPub => duplex!(XPub::with_options(options)),
            Kind::XSub => {
                let socket = XSub::with_options(options);
                if args.subscribe.is_empty() {
                    socket.subscribe("");
                }
                for topic in &args.subscribe {
                    socket.subscribe(topic);
                }
                duplex!(socket)
            }
        }
        Ok(())
    }
    .await;
    if let Some(monitor) = monitor {
        monitor.finish().await;
    }
    result
}

/// Runs a command's work; with `--stats`, Ctrl-C or SIGTERM also ends it (as a normal end),
/// so that its statistics are printed.
async fn until_interrupted(
    stats: bool,
    work: impl Future<Output = Result<(), Fail>>,
) -> Result<(), Fail> {
    if !stats {
        return work.await;
    }
    tokio::select! {
        done = work => done,
        () = interrupted() => Ok(()),
    }
}

/// Resolves at Ctrl-C (SIGINT) or SIGTERM; never if they cannot be watched.
async fn interrupted() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// With `--stats`, prints the socket's statistics to stderr, each line prefixed like the
/// command's other messages.
fn print_stats(socket: &Socket, kind: Kind, args: &TalkArgs) {
    if !args.stats {
        return;
    }
    let stats = socket.stats().to_string();
    let mut err = std::io::stderr().lock();
    for line in stats.lines() {
        let _ = writeln!(err, "zocket {kind}: {line}");
    }
}

/// Refuses, with one line saying what is expected, an option that makes no sense for `kind`.
fn check(kind: Kind, a: &TalkArgs) -> Result<(), Fail> {
    let usage = |message: String| Err(Fail::Usage(message));
    if a.endpoints.bind.is_empty() && a.endpoints.connect.is_empty() {
        return usage(format!(
            "zocket {kind} needs an endpoint: expected at least one --bind ENDPOINT or --connect ENDPOINT, such as --connect tcp://127.0.0.1:5555"
        ));
    }
    let sending = [
        ("--data", a.data.is_some()),
        ("--file", a.file.is_some()),
        ("--interval", a.interval.is_some()),
        ("--delay", a.delay.is_some()),
        ("--wait-peers", a.wait_peers.is_some()),
    ];
    if !kind.sends() {
        if let Some((option, _)) = sending.iter().find(|(_, given)| *given) {
            let why = if kind == Kind::Rep {
                "it only answers requests (with --reply, --echo or --exec)"
            } else {
                "it only receives"
            };
            return usage(format!(
                "{option} makes no sense for a {kind} socket: {why}; the sockets that send are pub, req, dealer, router, push, pair, xpub and xsub"
            ));
        }
    }
    let receiving = [
        ("--format", a.format.is_some()),
        ("--recv-timeout", a.recv_timeout.is_some()),
    ];
    if !kind.receives() {
        if let Some((option, _)) = receiving.iter().find(|(_, given)| *given) {
            return usage(format!(
                "{option} makes no sense for a {kind} socket: it never receives; the sockets that receive are sub, req, rep, dealer, router, pull, pair, xpub and xsub"
            ));
        }
    }
    if !matches!(kind, Kind::Sub | Kind::XSub) && !a.subscribe.is_empty() {
        return usage(format!(
            "--subscribe makes no sense for a {kind} socket: only sub and xsub subscribe (they receive from pub and xpub)"
        ));
    }
    let answers = [
        ("--reply", a.reply.is_some()),
        ("--echo", a.echo),
        ("--exec", a.exec.is_some()),
    ];
    match answers.iter().find(|(_, given)| *given) {
        Some((option, _)) if kind != Kind::Rep => {
            return usage(format!(
                "{option} makes no sense for a {kind} socket: only rep answers requests"
            ));
        }
        None if kind == Kind::Rep => {
            return usage(
                "zocket rep needs to know how to answer: expected --reply TEXT, --echo or --exec CMD"
                    .to_owned(),
            );
        }
        _ => {}
    }
    if a.identity.is_some() && !matches!(kind, Kind::Req | Kind::Dealer | Kind::Router) {
        return usage(format!(
            "--identity makes no sense for a {kind} socket: only req, dealer and router have a routing id (the one a router peer sees)"
        ));
    }
    if kind == Kind::Router && a.frames.is_none() && (a.data.is_some() || a.file.is_some()) {
        return usage(
            "zocket router sends each message to the peer its first frame names: with --data or --file, also give --frames SEP and write PEER<SEP>BODY"
                .to_owned(),
        );
    }
    Ok(())
}

/// Starts the monitor (every event with --monitor, else failed handshakes unless --quiet),
/// binds and connects every endpoint, waits for --wait-peers.
async fn open(
    socket: &Socket,
    kind: Kind,
    args: &TalkArgs,
    monitor: &mut Option<MonitorTask>,
) -> Result<(), Fail> {
    let shown = if args.monitor {
        Some(Shown::Every)
    } else if !args.quiet {
        Some(Shown::Failures)
    } else {
        None
    };
    if let Some(shown) = shown {
        *monitor = Some(MonitorTask::start(
            socket,
            kind,
            !args.endpoints.connect.is_empty(),
            shown,
        ));
    }
    bind_and_connect(socket, &kind.to_string(), &args.endpoints, args.quiet).await?;
    if let Some(n) = args.wait_peers {
        socket
            .wait_for_peers(n)
            .await
            .map_err(|e| Fail::runtime("waiting for peers", e))?;
    }
    Ok(())
}

/// Which connection events a [`MonitorTask`] prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    /// Every event (`--monitor`).
    Every,
    /// Only failed handshakes: without them, a client with the wrong CURVE server key (or a
    /// peer that speaks something else) would wait in silence while it retries.
    Failures,
}

/// Prints a socket's connection events to stderr, from a task of its own.
struct MonitorTask {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// How long, at exit, a socket that dialed waits for its `connected` event still on its way.
///
/// The library marks a dialed peer ready before its dialer task emits `Connected`, so a
/// short-lived `zocket push --connect ... --data x --monitor` can be done before the event
/// exists. Only with --monitor, only when --connect was given and no `connected` was printed.
const CONNECTED_GRACE: Duration = Duration::from_millis(250);

impl MonitorTask {
    fn start(socket: &Socket, kind: Kind, dials: bool, shown: Shown) -> MonitorTask {
        let mut monitor = socket.monitor();
        let dials = dials && shown == Shown::Every;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut last_listening = None;
            let mut connected = false;
            let mut print = |event: Event| {
                connected |= matches!(event, Event::Connected { .. });
                if shown == Shown::Failures && !matches!(event, Event::HandshakeFailed { .. }) {
                    return connected;
                }
                // The library reports a new listener twice (transport and engine): once is enough.
                if let Event::Listening { endpoint } = &event {
                    if last_listening.as_ref() == Some(endpoint) {
                        return connected;
                    }
                    last_listening = Some(endpoint.clone());
                }
                eprintln!("zocket {kind}: {}", describe(&event));
                connected
            };
            loop {
                tokio::select! {
                    biased;
                    event = monitor.next() => match event {
                        Some(event) => { print(event); }
                        None => return,
                    },
                    _ = &mut stopped => break,
                }
            }
            // Print what already happened, without waiting for more...
            let mut done = false;
            while let Some(Some(event)) = monitor.next().now_or_never() {
                done = print(event);
            }
            // ...except for a `connected` that is late (see CONNECTED_GRACE).
            if dials && !done {
                let _ = tokio::time::timeout(CONNECTED_GRACE, async {
                    while let Some(event) = monitor.next().await {
                        if print(event) {
                            break;
                        }
                    }
                })
                .await;
            }
        });
        MonitorTask { stop, task }
    }

    /// Prints the events that already happened, then stops.
    async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Binds (printing each bound endpoint to stderr unless `quiet`), then connects.
pub async fn bind_and_connect(
    socket: &Socket,
    label: &str,
    endpoints: &Endpoints,
    quiet: bool,
) -> Result<(), Fail> {
    for endpoint in &endpoints.bind {
        let bound = socket
            .bind(endpoint)
            .await
            .map_err(|e| Fail::runtime(&format!("cannot bind {endpoint}"), e))?;
        if !quiet {
            eprintln!("zocket {label}: bound {bound}");
        }
    }
    for endpoint in &endpoints.connect {
        socket
            .connect(endpoint)
            .map_err(|e| Fail::runtime(&format!("cannot connect to {endpoint}"), e))?;
    }
    Ok(())
}

/// A monitor event as one line of text.
fn describe(event: &Event) -> String {
    match event {
        Event::Listening { endpoint } => format!("listening on {endpoint}"),
        Event::Accepted { endpoint, peer } => format!("accepted {peer} on {endpoint}"),
        Event::Connected { endpoint, peer } if endpoint == peer => {
            format!("connected to {endpoint}")
        }
        Event::Connected { endpoint, peer } => format!("connected to {endpoint} ({peer})"),
        Event::Disconnected { endpoint, reason } => {
            format!("disconnected from {endpoint}: {reason}")
        }
        Event::Retrying {
            endpoint,
            attempt,
            delay,
        } => format!("retrying {endpoint} in {delay:?} (attempt {attempt})"),
        Event::HandshakeFailed { endpoint, reason } => {
            format!("handshake with {endpoint} failed: {reason}")
        }
        Event::Discovered { addr } => format!("discovered {addr}"),
        Event::Lost { addr } => format!("lost {addr}"),
        other => format!("{other:?}"),
    }
}

/// Awaits a receive, for at most `limit` when --recv-timeout was given.
/// Sends every message of `input` through a sending socket (Pub, Push: both are sinks).
async fn send_input<S>(socket: &mut S, input: &mut Input) -> Result<(), Fail>
where
    S: Sink<Message, Error = zocket::Error> + Unpin,
{
    while let Some(msg) = input.next().await? {
        SinkExt::send(socket, msg)
            .await
            .map_err(|e| Fail::runtime("send", e))?;
    }
    Ok(())
}

/// Sub and Pull: prints what arrives, `count` messages or until the socket ends.
async fn print_received<S>(
    socket: &mut S,
    count: Option<u64>,
    timeout: Option<Duration>,
    output: &mut Output,
) -> Result<(), Fail>
where
    S: Stream<Item = zocket::Result<Message>> + Unpin,
{
    let mut received = 0;
    while count != Some(received) {
        let next = async { socket.next().await.unwrap_or(Err(zocket::Error::Closed)) };
        let msg = within(timeout, "message", next).await?;
        output.print(None, &msg)?;
        received += 1;
    }
    Ok(())
}

async fn within<T>(
    limit: Option<Duration>,
    what: &str,
    receive: impl Future<Output = zocket::Result<T>>,
) -> Result<T, Fail> {
    let result = match limit {
        Some(limit) => tokio::time::timeout(limit, receive)
            .await
            .map_err(|_| Fail::Runtime(format!("no {what} within {limit:?} (--recv-timeout)")))?,
        None => receive.await,
    };
    result.map_err(|e| Fail::runtime(&format!("receiving a {what}"), e))
}

/// Dealer, Router and Pair: opens the socket, then runs [`duplex`] on it with the input
/// (all of it: --count counts the messages received) and --recv-timeout.
async fn open_duplex<S>(
    socket: &mut S,
    kind: Kind,
    args: &TalkArgs,
    output: Output,
    monitor: &mut Option<MonitorTask>,
) -> Result<(), Fail>
where
    S: std::ops::Deref<Target = Socket>
        + Stream<Item = zocket::Result<Message>>
        + Sink<Message, Error = zocket::Error>
        + Unpin,
{
    let input = Input::new(args, None).await?;
    open(socket, kind, args, monitor).await?;
    duplex(socket, kind, input, output, args.recv_timeout, args.count).await
}

/// Dealer, Router and Pair: send the input and print what arrives, at once, until --count
/// messages arrived (or forever). A Router's messages carry the peer's routing id first.
async fn duplex<S>(
    socket: &mut S,
    kind: Kind,
    mut input: Input,
    mut output: Output,
    timeout: Option<Duration>,
    count: Option<u64>,
) -> Result<(), Fail>
where
    S: Stream<Item = zocket::Result<Message>> + Sink<Message, Error = zocket::Error> + Unpin,
{
    let (mut tx, mut rx) = StreamExt::split(socket);
    let sending = async {
        while let Some(mut msg) = input.next().await? {
            let mut peer = None;
            if kind == Kind::Router {
                let Some(first) = msg.pop_front().filter(|_| !msg.is_empty()) else {
                    eprintln!("warning: a router message needs PEER<SEP>BODY (with --frames SEP); skipped");
                    continue;
                };
                let id = Bytes::from(units::peer_id(&first));
                peer = Some(format::peer_text(&id));
                msg.push_front(id);
            }
            match tx.send(msg).await {
                Ok(()) => {}
                Err(zocket::Error::HostUnreachable) => eprintln!(
                    "warning: no peer {} is connected; message dropped",
                    peer.unwrap_or_default()
                ),
                Err(e) => return Err(Fail::runtime("send", e)),
            }
        }
        // Input done: keep receiving.
        std::future::pending::<Result<(), Fail>>().await
    };
    let receiving = async {
        let mut received = 0;
        while count != Some(received) {
            let next = async { rx.next().await.unwrap_or(Err(zocket::Error::Closed)) };
            let mut msg = within(timeout, "message", next).await?;
            let peer = if kind == Kind::Router {
                msg.pop_front()
            } else {
                None
            };
            output.print(peer.as_deref(), &msg)?;
            received += 1;
        }
        Ok(())
    };
    tokio::select! {
        result = sending => result,
        result = receiving => result,
    }
}

/// What a Rep answers.
enum Answer {
    Text(Message),
    Echo,
    Exec(String),
}

/// Runs `sh -c cmd` with the request on its stdin; its stdout, less one trailing newline, is
/// the reply (split into frames on `separator`).
async fn exec(cmd: &str, request: &Message, separator: Option<&[u8]>) -> Result<Message, Fail> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Fail::runtime(&format!("cannot run --exec {cmd:?}"), e))?;
    let input = join(request, separator);
    let stdin = child.stdin.take();
    let write = async move {
        if let Some(mut stdin) = stdin {
            // A command that does not read its input closes the pipe: that is fine.
            let _ = stdin.write_all(&input).await;
        }
    };
    let ((), output) = tokio::join!(write, child.wait_with_output());
    let output = output.map_err(|e| Fail::runtime(&format!("running --exec {cmd:?}"), e))?;
    if !output.status.success() {
        eprintln!(
            "warning: --exec {cmd:?} {}; replying with its output",
            output.status
        );
    }
    let mut stdout = output.stdout;
    if stdout.last() == Some(&b'\n') {
        stdout.pop();
    }
    Ok(split(&stdout, separator))
}

/// The messages to send: --data or --file (repeated --count times, or forever with
/// --interval), or stdin's lines; --delay before the first, --interval between them.
struct Input {
    source: Source,
    left: Option<u64>,
    delay: Option<Duration>,
    interval: Option<Duration>,
    started: bool,
    separator: Option<Vec<u8>>,
}

enum Source {
    Fixed(Message),
    Stdin(BufReader<tokio::io::Stdin>),
}

impl Input {
    async fn new(args: &TalkArgs, count: Option<u64>) -> Result<Input, Fail> {
        let separator = args.frames.as_ref().map(|s| s.as_bytes().to_vec());
        let fixed = match (&args.data, &args.file) {
            (Some(data), _) => Some(data.as_bytes().to_vec()),
            (None, Some(path)) => Some(tokio::fs::read(path).await.map_err(|e| {
                Fail::runtime(&format!("cannot read --file {}", path.display()), e)
            })?),
            (None, None) => None,
        };
        let (source, left) = match fixed {
            Some(bytes) => {
                let left = match (count, args.interval) {
                    (Some(n), _) => Some(n),
                    (None, Some(_)) => None,
                    (None, None) => Some(1),
                };
                (Source::Fixed(split(&bytes, separator.as_deref())), left)
            }
            None => (Source::Stdin(BufReader::new(tokio::io::stdin())), count),
        };
        Ok(Input {
            source,
            left,
            delay: args.delay,
            interval: args.interval,
            started: false,
            separator,
        })
    }

    /// The next message, or `None` when the input is done.
    async fn next(&mut self) -> Result<Option<Message>, Fail> {
        if self.left == Some(0) {
            return Ok(None);
        }
        let pause = if self.started {
            self.interval
        } else {
            self.delay
        };
        self.started = true;
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        let msg = match &mut self.source {
            Source::Fixed(msg) => msg.clone(),
            Source::Stdin(reader) => {
                let mut line = Vec::new();
                let read = reader
                    .read_until(b'\n', &mut line)
                    .await
                    .map_err(|e| Fail::runtime("reading stdin", e))?;
                if read == 0 {
                    return Ok(None);
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                split(&line, self.separator.as_deref())
            }
        };
        if let Some(left) = &mut self.left {
            *left -= 1;
        }
        Ok(Some(msg))
    }
}

/// `bytes` as one frame, or split into frames on `separator`.
fn split(bytes: &[u8], separator: Option<&[u8]>) -> Message {
    let Some(sep) = separator.filter(|s| !s.is_empty()) else {
        return Message::from(bytes.to_vec());
    };
    let mut msg = Message::new();
    let mut rest = bytes;
    while let Some(at) = rest.windows(sep.len()).position(|w| w == sep) {
        msg.push(rest[..at].to_vec());
        rest = &rest[at + sep.len()..];
    }
    msg.push(rest.to_vec());
    msg
}

/// The frames of `msg` joined with `separator` (back to back without one).
fn join(msg: &Message, separator: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.byte_len());
    for (i, frame) in msg.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(separator.unwrap_or_default());
        }
        out.extend_from_slice(frame);
    }
    out
}

/// Prints received messages to stdout, flushed after each one.
struct Output {
    format: Format,
    separator: Vec<u8>,
    buf: Vec<u8>,
}

impl Output {
    fn print(&mut self, peer: Option<&[u8]>, msg: &Message) -> Result<(), Fail> {
        self.buf.clear();
        format::message(
            &mut self.buf,
            self.format,
            &self.separator,
            peer,
            msg.frames(),
        );
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&self.buf)
            .and_then(|()| stdout.flush())
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::BrokenPipe => Fail::BrokenPipe,
                _ => Fail::runtime("writing to stdout", e),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_join_are_inverse() {
        let msg = split(b"a||b||", Some(b"||"));
        assert_eq!(msg.frames(), ["a", "b", ""]);
        assert_eq!(join(&msg, Some(b"||")), b"a||b||");
        assert_eq!(split(b"a|b", None).frames(), ["a|b"]);
        assert_eq!(split(b"", Some(b"|")).frames(), [""]);
    }
}
