//! The session core driven in memory with virtual time: no sockets, no sleeps.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::frame::{Frame, HEADER_LEN, MAX_CONTROL_PAYLOAD, MAX_DATA_PAYLOAD};
use super::stream::SEND_QUEUE_LIMIT;
use super::*;
use crate::proto::limits::OverLimit;

fn config(side: Side) -> Config {
    Config {
        side,
        instance: [side as u8; 16],
        stream_window: 256 * 1024,
        max_streams: 8,
        max_message_size: 1024 * 1024,
        max_message_frames: 1000,
        connection_window: 32 * 1024 * 1024,
        heartbeat_interval: Some(Duration::from_secs(5)),
        heartbeat_timeout: Duration::from_secs(15),
        handshake_timeout: Duration::from_secs(10),
    }
}

/// Two sessions wired back to back, with a virtual clock.
struct Pair {
    client: Session,
    server: Session,
    now: Instant,
    client_events: Vec<Event>,
    server_events: Vec<Event>,
}

impl Pair {
    fn new() -> Pair {
        Self::with(config(Side::Client), config(Side::Server))
    }

    fn with(c: Config, s: Config) -> Pair {
        let now = Instant::now();
        let mut pair = Pair {
            client: Session::new(c, now),
            server: Session::new(s, now),
            now,
            client_events: vec![],
            server_events: vec![],
        };
        pair.drive();
        pair
    }

    /// Moves bytes both ways until neither side has anything to send.
    fn drive(&mut self) {
        loop {
            let a = transfer(&mut self.client, &mut self.server, self.now);
            let b = transfer(&mut self.server, &mut self.client, self.now);
            while let Some(e) = self.client.poll_event() {
                self.client_events.push(e);
            }
            while let Some(e) = self.server.poll_event() {
                self.server_events.push(e);
            }
            if !a && !b {
                break;
            }
        }
    }

    /// Advances the clock to the earliest timer and runs it.
    fn advance_to_next_timer(&mut self) {
        let next = [self.client.poll_timeout(), self.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("a timer is armed");
        self.now = next.max(self.now);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }

    fn incoming(&mut self) -> StreamId {
        let pos = self
            .server_events
            .iter()
            .position(|e| matches!(e, Event::Incoming { .. }))
            .expect("incoming stream");
        match self.server_events.remove(pos) {
            Event::Incoming { id, .. } => id,
            _ => unreachable!(),
        }
    }
}

fn transfer(from: &mut Session, to: &mut Session, now: Instant) -> bool {
    let mut t = Transmit::new();
    if !from.poll_transmit(now, &mut t) {
        return false;
    }
    let mut buf = BytesMut::from(&t.concat()[..]);
    let _ = to.handle_input(now, &mut buf);
    true
}

fn read_all(s: &mut Session, id: StreamId) -> (Vec<u8>, ReadBytes) {
    let mut out = vec![];
    let mut buf = [0u8; 4096];
    loop {
        match s.read_bytes(id, &mut buf).unwrap() {
            ReadBytes::Data(n) => out.extend_from_slice(&buf[..n]),
            other => return (out, other),
        }
    }
}

#[test]
fn hello_is_exchanged_first() {
    let p = Pair::new();
    assert!(matches!(p.client_events[0], Event::Established(h) if h.instance == [1; 16]));
    assert!(matches!(p.server_events[0], Event::Established(h) if h.instance == [0; 16]));
    assert_eq!(p.client.peer().unwrap().stream_window, 256 * 1024);
}

#[test]
fn open_accept_write_read_close() {
    let mut p = Pair::new();
    let id = p.client.open(RAW_STREAM, "rpc", &Bytes::new()).unwrap();
    assert_eq!(p.client.write_bytes(id, b"hello ").unwrap(), 6);
    assert_eq!(p.client.write_bytes(id, b"world").unwrap(), 5);
    p.client.finish(id).unwrap();
    p.drive();
    assert!(p
        .server_events
        .iter()
        .any(|e| matches!(e, Event::Incoming { path, .. } if path == "rpc")));
    let sid = p.incoming();
    assert_eq!(sid, id);
    p.server.accept(sid, RAW_STREAM, Bytes::new());
    p.drive();
    assert!(p.client_events.contains(&Event::Accepted {
        id,
        socket_type: RAW_STREAM,
        identity: Bytes::new(),
    }));
    let (data, end) = read_all(&mut p.server, sid);
    assert_eq!(data, b"hello world");
    assert_eq!(end, ReadBytes::Finished);
    // The other direction is still open.
    assert_eq!(p.server.write_bytes(sid, b"reply").unwrap(), 5);
    p.server.finish(sid).unwrap();
    p.drive();
    let (data, end) = read_all(&mut p.client, id);
    assert_eq!((data.as_slice(), end), (&b"reply"[..], ReadBytes::Finished));
    p.client.release(id);
    p.server.release(sid);
    p.drive();
    assert_eq!(p.client.stream_count(), 0);
    assert_eq!(p.server.stream_count(), 0);
}

#[test]
fn a_stream_opened_before_hello_gets_credit_when_it_arrives() {
    let now = Instant::now();
    let mut client = Session::new(config(Side::Client), now);
    let mut server = Session::new(config(Side::Server), now);
    let id = client.open(RAW_STREAM, "early", &Bytes::new()).unwrap();
    assert_eq!(
        client.write_bytes(id, b"hi").unwrap(),
        0,
        "no credit before HELLO"
    );
    transfer(&mut server, &mut client, now); // the server's HELLO
    let events: Vec<_> = std::iter::from_fn(|| client.poll_event()).collect();
    assert!(events.contains(&Event::Writable(id)), "{events:?}");
    assert_eq!(client.write_bytes(id, b"hi").unwrap(), 2);
}

#[test]
fn reject_reaches_the_opener_with_reason() {
    let mut p = Pair::new();
    let id = p.client.open(1, "nowhere", &Bytes::new()).unwrap();
    p.drive();
    let sid = p.incoming();
    p.server
        .reject(sid, Reason::NO_SUCH_PATH, "no socket at path \"nowhere\"");
    p.drive();
    let err = p.client.write_bytes(id, b"x").unwrap_err();
    assert_eq!(
        err,
        StreamError::Rejected {
            reason: Reason::NO_SUCH_PATH,
            text: "no socket at path \"nowhere\"".into()
        }
    );
}

#[test]
fn writer_blocks_at_window_and_resumes_after_reads() {
    let mut p = Pair::new();
    let id = p.client.open(RAW_STREAM, "", &Bytes::new()).unwrap();
    p.drive();
    let sid = p.incoming();
    p.server.accept(sid, RAW_STREAM, Bytes::new());
    let big = vec![9u8; 1024 * 1024];
    let mut sent = 0;
    loop {
        let n = p.client.write_bytes(id, &big[sent..]).unwrap();
        if n == 0 {
            break;
        }
        sent += n;
    }
    assert!(sent < 256 * 1024, "window bounds what is queued: {sent}");
    assert!(sent > 250 * 1024, "most of the window is usable: {sent}");
    p.drive();
    let (data, end) = read_all(&mut p.server, sid);
    assert_eq!(data.len(), sent);
    assert_eq!(end, ReadBytes::Blocked);
    p.drive();
    assert!(p.client_events.contains(&Event::Writable(id)));
    assert!(p.client.write_bytes(id, &big[sent..]).unwrap() > 0);
}

#[test]
fn unread_stream_does_not_block_other_streams() {
    let mut p = Pair::new();
    let slow = p.client.open(RAW_STREAM, "slow", &Bytes::new()).unwrap();
    let fast = p.client.open(RAW_STREAM, "fast", &Bytes::new()).unwrap();
    let big = vec![1u8; 512 * 1024];
    let n = p.client.write_bytes(slow, &big).unwrap();
    assert!(n > 0);
    p.drive();
    assert_eq!(
        p.client.write_bytes(slow, &big).unwrap(),
        0,
        "slow stream is out of credit"
    );
    assert_eq!(p.client.write_bytes(fast, b"ping").unwrap(), 4);
    p.drive();
    let (data, _) = read_all(&mut p.server, fast);
    assert_eq!(data, b"ping");
}

#[test]
fn message_chunks_keep_their_flags_and_empty_frames() {
    let mut p = Pair::new();
    let id = p.client.open(3, "", &Bytes::new()).unwrap();
    p.client
        .write_chunk(id, Bytes::new(), DataFlags::MORE)
        .unwrap();
    p.client
        .write_chunk(id, Bytes::from_static(b"body"), DataFlags::default())
        .unwrap();
    p.drive();
    let sid = p.incoming();
    assert_eq!(
        p.server.read_chunk(sid).unwrap(),
        Some((Bytes::new(), DataFlags::MORE))
    );
    assert_eq!(
        p.server.read_chunk(sid).unwrap(),
        Some((Bytes::from_static(b"body"), DataFlags::default()))
    );
    assert_eq!(p.server.read_chunk(sid).unwrap(), None);
}

/// The streams of the DATA frames (and CLOSEs) in one transmit, in order.
fn data_order(session: &mut Session, now: Instant) -> Vec<(StreamId, bool)> {
    let mut t = Transmit::new();
    session.poll_transmit(now, &mut t);
    let mut buf = BytesMut::from(&t.concat()[..]);
    let mut order = vec![];
    while let Some(frame) = Frame::decode(&mut buf).unwrap() {
        match frame {
            Frame::Data { stream, .. } => order.push((stream, false)),
            Frame::Close { stream } => order.push((stream, true)),
            _ => {}
        }
    }
    order
}

#[test]
fn streams_take_turns_chunk_by_chunk_and_a_lone_stream_sends_all_at_once() {
    let mut p = Pair::new();
    let a = p.client.open(3, "", &Bytes::new()).unwrap();
    let b = p.client.open(3, "", &Bytes::new()).unwrap();
    p.drive();
    for _ in 0..3 {
        for id in [a, b] {
            let chunk = Bytes::from_static(b"m");
            assert!(p
                .client
                .write_chunk(id, chunk, DataFlags::default())
                .unwrap());
        }
    }
    let order: Vec<StreamId> = data_order(&mut p.client, p.now)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        order,
        [a, b, a, b, a, b],
        "one chunk per turn while others wait"
    );

    for _ in 0..3 {
        let chunk = Bytes::from_static(b"m");
        assert!(p
            .client
            .write_chunk(a, chunk, DataFlags::default())
            .unwrap());
    }
    p.client.finish(a).unwrap();
    // Alone, it sends its three chunks in one turn; its CLOSE takes the next turn, after them.
    assert_eq!(
        data_order(&mut p.client, p.now),
        [(a, false), (a, false), (a, false), (a, true)]
    );
}

/// Encodes `frames` into one input buffer.
fn input(frames: &[Frame]) -> BytesMut {
    let mut buf = BytesMut::new();
    for f in frames {
        f.encode(&mut buf);
    }
    buf
}

/// The frames in what `session` transmits now.
fn transmitted(session: &mut Session, now: Instant) -> Vec<Frame> {
    let mut t = Transmit::new();
    session.poll_transmit(now, &mut t);
    let mut buf = BytesMut::from(&t.concat()[..]);
    std::iter::from_fn(|| Frame::decode(&mut buf).unwrap()).collect()
}

fn hello(stream_window: u32, max_streams: u32, max_message_size: u64) -> Frame {
    Frame::Hello(Hello {
        instance: [7; 16],
        stream_window,
        max_streams,
        max_message_size,
    })
}

fn open(id: u32, socket_type: u8) -> Frame {
    Frame::Open {
        stream: StreamId(id),
        socket_type,
        path: String::new(),
        identity: Bytes::new(),
    }
}

fn data(id: u32, flags: DataFlags, payload: &[u8]) -> Frame {
    Frame::Data {
        stream: StreamId(id),
        flags,
        payload: Bytes::copy_from_slice(payload),
    }
}

/// A frame of a type this version does not know (0x7F), with a 10-byte payload.
fn unknown_frame(buf: &mut BytesMut) {
    buf.extend_from_slice(&[0x7F, 0, 0, 0, 0, 1, 0, 0, 0, 10]);
    buf.extend_from_slice(&[0xAB; 10]);
}

/// Reads every chunk buffered on `id`; returns how many there were and how it ended.
#[test]
fn a_frame_that_fits_one_chunk_waits_for_credit_instead_of_being_cut_at_the_window_edge() {
    let mut p = Pair::new(); // 256 KiB windows
    let id = p.client.open(7, "", &Bytes::new()).unwrap();
    p.drive();
    let sid = p.incoming();
    p.server.accept(sid, 7, Bytes::new());
    p.drive();
    // 60 KiB frames: four fit the window whole, the fifth does not fit what is left.
    let frame = Bytes::from(vec![5u8; 60 * 1024]);
    for _ in 0..4 {
        assert_eq!(
            p.client
                .write_frame_part(id, &mut frame.clone(), 0, false)
                .unwrap(),
            Some(frame.len())
        );
    }
    assert_eq!(
        p.client
            .write_frame_part(id, &mut frame.clone(), 0, false)
            .unwrap(),
        None,
        "the fifth waits for credit rather than going out in two pieces"
    );
    p.drive();
    let mut chunks = vec![];
    while let Some((chunk, flags)) = p.server.read_chunk(sid).unwrap() {
        chunks.push((chunk.len(), flags));
    }
    p.drive(); // the window update goes back
    assert!(p.client_events.contains(&Event::Writable(id)));
    assert_eq!(
        p.client
            .write_frame_part(id, &mut frame.clone(), 0, false)
            .unwrap(),
        Some(frame.len())
    );
    p.drive();
    while let Some((chunk, flags)) = p.server.read_chunk(sid).unwrap() {
        chunks.push((chunk.len(), flags));
    }
    assert_eq!(chunks, vec![(frame.len(), DataFlags::default()); 5]);
    // A frame larger than one chunk goes out in pieces, as far as credit allows, as before.
    let big = Bytes::from(vec![6u8; 200 * 1024]);
    let first = p
        .client
        .write_frame_part(id, &mut big.clone(), 0, false)
        .unwrap();
    assert!(first.is_some_and(|n| n > 0 && n < big.len()), "{first:?}");
}

fn drain_chunks(s: &mut Session, id: StreamId) -> (usize, Result<(), StreamError>) {
    let mut n = 0;
    loop {
        match s.read_chunk(id) {
            Ok(Some(_)) => n += 1,
            Ok(None) => return (n, Ok(())),
            Err(e) => return (n, Err(e)),
        }
    }
}

#[test]
fn a_message_over_max_message_size_resets_only_its_stream() {
    let mut c = config(Side::Client);
    c.max_message_size = 10 * 1024 * 1024;
    let mut s = config(Side::Server);
    s.max_message_size = 100 * 1024;
    let mut p = Pair::with(c, s);
    let big = p.client.open(3, "", &Bytes::new()).unwrap();
    let other = p.client.open(3, "", &Bytes::new()).unwrap();
    let chunk = Bytes::from(vec![0u8; 60 * 1024]);
    for flags in [
        DataFlags::CONTINUED,
        DataFlags::CONTINUED,
        DataFlags::default(),
    ] {
        // The third chunk is in flight when the RESET goes out: ignored, credited back.
        assert!(p.client.write_chunk(big, chunk.clone(), flags).unwrap());
    }
    p.drive();
    assert_eq!(p.server.error(), None, "the connection goes on");
    assert_eq!(p.client.error(), None);
    let (read, end) = drain_chunks(&mut p.server, big);
    assert_eq!(read, 1, "the chunk within the limit was delivered");
    assert_eq!(
        end,
        Err(StreamError::TooLarge(OverLimit::Size {
            size: 120 * 1024,
            max: 100 * 1024
        }))
    );
    assert_eq!(
        p.client.write_bytes(big, b"x").unwrap_err(),
        StreamError::Reset(Reason::MESSAGE_TOO_LARGE),
        "the sender learns why"
    );
    assert_eq!(
        p.server.held_bytes(),
        0,
        "nothing of the reset stream is held"
    );
    // The other stream still delivers.
    assert!(p
        .client
        .write_chunk(other, Bytes::from_static(b"fine"), DataFlags::default())
        .unwrap());
    p.drive();
    assert_eq!(
        p.server.read_chunk(other).unwrap(),
        Some((Bytes::from_static(b"fine"), DataFlags::default()))
    );
}

#[test]
fn an_endless_message_of_empty_frames_is_reset_at_max_message_frames_while_another_stream_delivers()
{
    let mut s = config(Side::Server);
    s.max_message_frames = 100;
    let mut p = Pair::with(config(Side::Client), s);
    let endless = p.client.open(8, "", &Bytes::new()).unwrap();
    let other = p.client.open(8, "", &Bytes::new()).unwrap();
    p.drive();
    let sid = p.incoming();
    p.server.accept(sid, 7, Bytes::new());
    let oid = p.incoming();
    p.server.accept(oid, 7, Bytes::new());
    // The server's reader keeps up: credit never runs out, only the frame limit stops it.
    let mut frames_sent = 0;
    for round in 0..50 {
        for _ in 0..10 {
            match p.client.write_chunk(endless, Bytes::new(), DataFlags::MORE) {
                Ok(true) => frames_sent += 1,
                Ok(false) | Err(_) => break,
            }
        }
        let msg = Bytes::from(format!("msg {round}"));
        assert!(p
            .client
            .write_chunk(other, msg.clone(), DataFlags::default())
            .unwrap());
        p.drive();
        assert_eq!(
            p.server.read_chunk(oid).unwrap(),
            Some((msg, DataFlags::default())),
            "the other stream delivers in round {round}"
        );
        let _ = drain_chunks(&mut p.server, sid);
    }
    assert!(frames_sent <= 110, "the sender stopped soon: {frames_sent}");
    assert_eq!(p.server.error(), None);
    assert_eq!(
        drain_chunks(&mut p.server, sid).1,
        Err(StreamError::TooLarge(OverLimit::Frames { max: 100 }))
    );
    assert_eq!(
        p.client.write_bytes(endless, b"x").unwrap_err(),
        StreamError::Reset(Reason::MESSAGE_TOO_LARGE)
    );
    p.server.release(sid);
    let _ = drain_chunks(&mut p.server, oid);
    assert_eq!(p.server.held_bytes(), 0);
}

#[test]
fn empty_continued_chunks_count_as_frames() {
    let mut s = config(Side::Server);
    s.max_message_frames = 10;
    let now = Instant::now();
    let mut server = Session::new(s, now);
    let mut buf = input(&[hello(1 << 20, 8, 1 << 20), open(1, 8)]);
    for _ in 0..20 {
        data(1, DataFlags::CONTINUED, b"").encode(&mut buf);
    }
    server.handle_input(now, &mut buf).unwrap();
    let (n, end) = drain_chunks(&mut server, StreamId(1));
    assert_eq!(n, 10);
    assert_eq!(
        end,
        Err(StreamError::TooLarge(OverLimit::Frames { max: 10 }))
    );
}

#[test]
fn one_byte_chunks_and_unknown_frames_pause_input_at_the_connection_window_and_resume_after_reads()
{
    let window: u64 = 64 * 1024;
    let mut s = config(Side::Server);
    s.connection_window = window;
    let now = Instant::now();
    let mut server = Session::new(s, now);
    let mut buf = input(&[hello(1 << 20, 8, 1 << 20), open(1, RAW_STREAM)]);
    let chunks = 5000; // 5000 × 17 credit fits the 256 KiB stream window
    for _ in 0..chunks {
        data(1, DataFlags::default(), b"x").encode(&mut buf);
        unknown_frame(&mut buf);
    }
    let id = StreamId(1);
    let mut read = 0;
    let mut pauses = 0;
    for _ in 0..1000 {
        let before = buf.len();
        server.handle_input(now, &mut buf).unwrap();
        assert!(
            server.held_bytes() <= window + crate::proto::limits::held_cost(1),
            "held {} over the window",
            server.held_bytes()
        );
        if buf.is_empty() {
            break;
        }
        assert!(
            server.is_input_paused(),
            "input left in the buffer only when paused"
        );
        pauses += 1;
        // Paused: more input is not decoded until reads bring the count to half.
        let left = buf.len();
        server.handle_input(now, &mut buf).unwrap();
        assert_eq!(buf.len(), left, "nothing decoded while paused");
        assert!(buf.len() < before);
        while !server.wants_input() {
            let mut one = [0u8; 1];
            assert_eq!(server.read_bytes(id, &mut one).unwrap(), ReadBytes::Data(1));
            read += 1;
        }
        assert!(server.held_bytes() <= window / 2);
    }
    assert!(buf.is_empty(), "all input was taken in the end");
    assert!(pauses >= 3, "paused {pauses} times");
    let (rest, _) = read_all(&mut server, id);
    assert_eq!(read + rest.len(), chunks);
    assert_eq!(server.held_bytes(), 0, "everything read: nothing held");
    server.handle_input(now, &mut buf).unwrap();
    assert!(!server.is_input_paused());
    assert_eq!(server.error(), None, "a legitimate peer gets no error");
}

#[test]
fn released_and_reset_streams_hold_nothing() {
    let now = Instant::now();
    let mut server = Session::new(config(Side::Server), now);
    let mut buf = input(&[hello(1 << 20, 8, 1 << 20), open(1, RAW_STREAM), open(3, 8)]);
    for _ in 0..100 {
        data(1, DataFlags::default(), b"abc").encode(&mut buf);
        data(3, DataFlags::default(), b"abc").encode(&mut buf);
    }
    Frame::Reset {
        stream: StreamId(3),
        reason: Reason::CANCEL,
    }
    .encode(&mut buf);
    server.handle_input(now, &mut buf).unwrap();
    assert_eq!(
        server.held_bytes(),
        200 * crate::proto::limits::held_cost(3)
    );
    server.release(StreamId(1));
    assert_eq!(
        server.held_bytes(),
        100 * crate::proto::limits::held_cost(3)
    );
    server.release(StreamId(3));
    assert_eq!(server.held_bytes(), 0);
}

#[test]
fn a_hello_with_a_field_below_its_minimum_is_refused_naming_the_field() {
    for (hello, field) in [
        (hello(0, 8, 1 << 20), "stream_window 0"),
        (hello(64 * 1024 - 1, 8, 1 << 20), "stream_window 65535"),
        (hello(1 << 20, 0, 1 << 20), "max_streams 0"),
        (hello(1 << 20, 8, 0), "max_message_size 0"),
    ] {
        let now = Instant::now();
        let mut server = Session::new(config(Side::Server), now);
        let err = server.handle_input(now, &mut input(&[hello])).unwrap_err();
        assert!(
            matches!(err, SessionError::Protocol(ref m) if m.contains(field)),
            "{err}"
        );
        let goaway = transmitted(&mut server, now)
            .into_iter()
            .find_map(|f| match f {
                Frame::GoAway { reason, text } => Some((reason, text)),
                _ => None,
            })
            .expect("a GOAWAY");
        assert_eq!(goaway.0, Reason::PROTOCOL_ERROR);
        assert!(goaway.1.contains(field), "{}", goaway.1);
    }
    let now = Instant::now();
    let mut server = Session::new(config(Side::Server), now);
    server
        .handle_input(now, &mut input(&[hello(64 * 1024, 1, 1)]))
        .unwrap();
}

#[test]
fn no_idle_timeout_while_input_is_paused() {
    let mut s = config(Side::Server);
    s.connection_window = 64 * 1024;
    let mut now = Instant::now();
    let mut server = Session::new(s, now);
    let mut buf = input(&[hello(1 << 20, 8, 1 << 20), open(1, RAW_STREAM)]);
    for _ in 0..2000 {
        data(1, DataFlags::default(), b"x").encode(&mut buf);
    }
    server.handle_input(now, &mut buf).unwrap();
    assert!(server.is_input_paused());
    let start = now;
    let mut pings = 0;
    // A minute of our not reading: the peer is not to blame, and it hears from us.
    while now - start < Duration::from_secs(60) {
        now = server.poll_timeout().expect("keepalive armed while paused");
        server.handle_timeout(now);
        pings += transmitted(&mut server, now)
            .iter()
            .filter(|f| matches!(f, Frame::Ping { .. }))
            .count();
        assert_eq!(server.error(), None);
    }
    assert!(pings >= 10, "we keep pinging while paused: {pings}");
    let (got, _) = read_all(&mut server, StreamId(1));
    assert!(!got.is_empty());
    assert!(server.wants_input());
    server.handle_input(now, &mut buf).unwrap();
    assert!(buf.is_empty());
    // Input resumed: the idle timer runs again.
    let idle_deadline = now + Duration::from_secs(15);
    while server.error().is_none() {
        now = server.poll_timeout().unwrap();
        assert!(now <= idle_deadline);
        server.handle_timeout(now);
    }
    assert!(matches!(server.error(), Some(SessionError::Timeout(_))));
}

#[test]
fn heartbeat_pings_a_quiet_peer_and_times_out_a_silent_one() {
    let mut p = Pair::new();
    let start = p.now;
    p.advance_to_next_timer();
    assert_eq!(p.now - start, Duration::from_secs(5));
    p.drive(); // PING and PONG: both alive
    assert!(p.client.error().is_none() && p.server.error().is_none());
    // Now the server goes silent: the client pings, gets nothing, and gives up.
    let t0 = p.now;
    loop {
        p.now = p.client.poll_timeout().unwrap();
        p.client.handle_timeout(p.now);
        let mut t = Transmit::new();
        p.client.poll_transmit(p.now, &mut t); // lost on the wire
        if p.client.error().is_some() {
            break;
        }
    }
    assert_eq!(p.now - t0, Duration::from_secs(15));
    assert!(matches!(p.client.error(), Some(SessionError::Timeout(_))));
}

#[test]
fn handshake_times_out_without_hello() {
    let now = Instant::now();
    let mut s = Session::new(config(Side::Server), now);
    s.handle_timeout(now + Duration::from_secs(10));
    assert!(matches!(s.error(), Some(SessionError::Timeout(_))));
}

#[test]
fn frame_before_hello_is_a_protocol_error() {
    let now = Instant::now();
    let mut s = Session::new(config(Side::Server), now);
    let mut buf = BytesMut::new();
    Frame::Ping { nonce: 1 }.encode(&mut buf);
    assert!(matches!(
        s.handle_input(now, &mut buf),
        Err(SessionError::Protocol(_))
    ));
}

#[test]
fn header_claiming_4_gib_is_refused_before_buffering() {
    let now = Instant::now();
    let mut s = Session::new(config(Side::Server), now);
    let mut buf = BytesMut::from(&[0u8, 0, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF][..]);
    let err = s.handle_input(now, &mut buf).unwrap_err();
    assert!(
        matches!(err, SessionError::Protocol(ref m) if m.contains("4294967295")),
        "{err}"
    );
    assert!(
        buf.capacity() < 1024 * 1024,
        "nothing reserved for the claimed body"
    );
}

#[test]
fn stream_limit_is_kept_by_the_opener_and_enforced_by_the_acceptor() {
    let mut p = Pair::new();
    for _ in 0..8 {
        p.client.open(RAW_STREAM, "", &Bytes::new()).unwrap();
    }
    assert_eq!(
        p.client.open(RAW_STREAM, "", &Bytes::new()).unwrap_err(),
        OpenError::TooManyStreams
    );

    // A peer that ignores the limit gets REJECT for the extra stream.
    let now = Instant::now();
    let mut server = Session::new(config(Side::Server), now);
    let mut buf = BytesMut::new();
    Frame::Hello(Hello {
        instance: [7; 16],
        stream_window: 1 << 16,
        max_streams: 100,
        max_message_size: 1 << 20,
    })
    .encode(&mut buf);
    for i in 0..9 {
        Frame::Open {
            stream: StreamId(2 * i + 1),
            socket_type: RAW_STREAM,
            path: String::new(),
            identity: Bytes::new(),
        }
        .encode(&mut buf);
    }
    server.handle_input(now, &mut buf).unwrap();
    let mut t = Transmit::new();
    server.poll_transmit(now, &mut t);
    let mut out = BytesMut::from(&t.concat()[..]);
    let mut rejects = vec![];
    while let Some(f) = Frame::decode(&mut out).unwrap() {
        if let Frame::Reject { stream, reason, .. } = f {
            rejects.push((stream, reason));
        }
    }
    assert_eq!(rejects, vec![(StreamId(17), Reason::TOO_MANY_STREAMS)]);
}

// ----- frame codec -----

fn arb_frame() -> impl Strategy<Value = Frame> {
    let id = any::<u32>().prop_map(StreamId);
    let text = "[a-z /\\.]{0,40}";
    prop_oneof![
        (
            id.clone(),
            0u8..4,
            proptest::collection::vec(any::<u8>(), 0..2000)
        )
            .prop_map(|(stream, f, p)| Frame::Data {
                stream,
                flags: DataFlags(f),
                payload: Bytes::from(p)
            }),
        (id.clone(), any::<u32>())
            .prop_map(|(stream, increment)| Frame::Window { stream, increment }),
        (
            id.clone(),
            any::<u8>(),
            text,
            proptest::collection::vec(any::<u8>(), 0..=255)
        )
            .prop_map(|(stream, socket_type, path, identity)| Frame::Open {
                stream,
                socket_type,
                path,
                identity: Bytes::from(identity)
            }),
        (
            id.clone(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..=255)
        )
            .prop_map(|(stream, socket_type, identity)| Frame::Accept {
                stream,
                socket_type,
                identity: Bytes::from(identity)
            }),
        (id.clone(), any::<u32>(), text).prop_map(|(stream, r, text)| Frame::Reject {
            stream,
            reason: Reason(r),
            text
        }),
        id.clone().prop_map(|stream| Frame::Close { stream }),
        (id, any::<u32>()).prop_map(|(stream, r)| Frame::Reset {
            stream,
            reason: Reason(r)
        }),
        any::<u64>().prop_map(|nonce| Frame::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Frame::Pong { nonce }),
        (any::<[u8; 16]>(), any::<u32>(), any::<u32>(), any::<u64>()).prop_map(
            |(instance, w, m, x)| Frame::Hello(Hello {
                instance,
                stream_window: w,
                max_streams: m,
                max_message_size: x
            })
        ),
        (any::<u32>(), text).prop_map(|(r, text)| Frame::GoAway {
            reason: Reason(r),
            text
        }),
    ]
}

/// Lengths at the edges, where length bugs live.
fn edge_len() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(MAX_CONTROL_PAYLOAD as u32 - 1),
        Just(MAX_CONTROL_PAYLOAD as u32),
        Just(MAX_CONTROL_PAYLOAD as u32 + 1),
        Just(MAX_DATA_PAYLOAD as u32 - 1),
        Just(MAX_DATA_PAYLOAD as u32),
        Just(MAX_DATA_PAYLOAD as u32 + 1),
        Just(u32::MAX - 1),
        Just(u32::MAX),
        any::<u32>(),
    ]
}

proptest! {
    #[test]
    fn every_frame_round_trips_at_every_split(frame in arb_frame(), split in any::<prop::sample::Index>()) {
        let mut encoded = BytesMut::new();
        frame.encode(&mut encoded);
        let bytes = encoded.freeze();
        let at = split.index(bytes.len() + 1);
        let mut buf = BytesMut::from(&bytes[..at]);
        let first = Frame::decode(&mut buf).unwrap();
        if at < bytes.len() {
            prop_assert_eq!(first, None);
            buf.extend_from_slice(&bytes[at..]);
            prop_assert_eq!(Frame::decode(&mut buf).unwrap(), Some(frame));
        } else {
            prop_assert_eq!(first, Some(frame));
        }
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic_nor_overallocate(
        kind in prop_oneof![0u8..12, any::<u8>()],
        flags in any::<u8>(),
        stream in any::<u32>(),
        len in edge_len(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[kind, flags]);
        buf.extend_from_slice(&stream.to_be_bytes());
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&body);
        while let Ok(Some(_)) = Frame::decode(&mut buf) {}
        prop_assert!(buf.capacity() <= HEADER_LEN + MAX_DATA_PAYLOAD + 512);
    }

    #[test]
    fn arbitrary_bytes_into_a_session_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
        let now = Instant::now();
        let mut s = Session::new(config(Side::Server), now);
        let mut hello = BytesMut::new();
        Frame::Hello(Hello { instance: [7; 16], stream_window: 1 << 16, max_streams: 4, max_message_size: 1 << 20 }).encode(&mut hello);
        s.handle_input(now, &mut hello).unwrap();
        for chunk in chunks {
            let mut buf = BytesMut::from(&chunk[..]);
            let _ = s.handle_input(now, &mut buf);
            let mut t = Transmit::new();
            s.poll_transmit(now, &mut t);
            while s.poll_event().is_some() {}
        }
    }
}

/// A peer that announces a 4 GiB window and never reads (its TCP is full, so nothing we
/// queue goes out) cannot make us queue our own messages without bound: a stream holds at
/// most `SEND_QUEUE_LIMIT` unsent bytes, then its writer waits as for credit, and is told
/// when transmitting made room.
#[test]
fn a_huge_peer_window_does_not_let_a_stream_queue_unsent_data_without_bound() {
    let mut p = Pair::with(
        config(Side::Client),
        Config {
            stream_window: u32::MAX,
            ..config(Side::Server)
        },
    );
    let id = p.client.open(7, "", &Bytes::new()).unwrap();
    p.drive();
    let sid = p.incoming();
    p.server.accept(sid, 7, Bytes::new());
    p.drive();
    let frame = Bytes::from(vec![1u8; 60 * 1024]);
    let mut queued = 0usize;
    while let Some(n) = p
        .client
        .write_frame_part(id, &mut frame.clone(), 0, false)
        .unwrap()
    {
        queued += n;
        assert!(
            queued <= SEND_QUEUE_LIMIT + frame.len(),
            "queued {queued} bytes for a peer that reads nothing"
        );
    }
    assert!(queued >= SEND_QUEUE_LIMIT, "stopped early, at {queued}");
    // What the driver transmits makes room, and the writer is told.
    p.client_events.clear();
    let mut t = Transmit::new();
    while !p.client_events.contains(&Event::Writable(id)) {
        assert!(p.client.poll_transmit(p.now, &mut t), "nothing to transmit");
        t = Transmit::new();
        while let Some(e) = p.client.poll_event() {
            p.client_events.push(e);
        }
    }
    assert!(p
        .client
        .write_frame_part(id, &mut frame.clone(), 0, false)
        .unwrap()
        .is_some());
}
