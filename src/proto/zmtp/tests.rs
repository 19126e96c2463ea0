//! The ZMTP codecs and session core, driven in memory with virtual time.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::command::{Command, CommandError, Ready, MAX_PING_CONTEXT};
use super::frame::{Frame, FrameError};
use super::session::MAX_COMMAND_LEN;
use super::*;
use crate::proto::limits;
use crate::proto::native::Transmit;
use crate::{Message, SocketType};

// ----- frame codec -----

fn encoded(frame: &Frame) -> Bytes {
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    out.freeze()
}

/// Feeds `bytes` cut at every split point; every cut must decode to `Ok(None)` first and
/// to exactly one frame once the rest arrives.
fn decode_at_every_split(bytes: &[u8], max: u64) -> Frame {
    let mut whole = None;
    for at in 0..=bytes.len() {
        let mut buf = BytesMut::from(&bytes[..at]);
        let first = Frame::decode(&mut buf, max).unwrap();
        let frame = if at < bytes.len() {
            assert_eq!(first, None, "split at {at}");
            assert_eq!(buf.len(), at, "a partial frame is not consumed");
            buf.extend_from_slice(&bytes[at..]);
            Frame::decode(&mut buf, max).unwrap().expect("whole frame")
        } else {
            first.expect("whole frame")
        };
        assert!(buf.is_empty());
        if let Some(w) = &whole {
            assert_eq!(&frame, w);
        }
        whole = Some(frame);
    }
    whole.unwrap()
}

/// Body sizes at the short/long boundary and around it.
fn body_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(255),
        Just(256),
        Just(257),
        0usize..700
    ]
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    (any::<bool>(), any::<bool>(), body_len(), any::<u8>()).prop_map(|(more, command, len, b)| {
        Frame {
            more,
            command,
            body: Bytes::from(vec![b; len]),
        }
    })
}

/// Size fields at the edges, where length bugs live (`max` is the decoder's limit).
fn edge_size(max: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(255),
        Just(256),
        Just(max.saturating_sub(1)),
        Just(max),
        Just(max.saturating_add(1)),
        Just(u64::from(u32::MAX)),
        Just(u64::MAX - 1),
        Just(u64::MAX),
        any::<u64>(),
    ]
}

proptest! {
    #[test]
    fn every_frame_round_trips_at_every_split(frame in arb_frame()) {
        let bytes = encoded(&frame);
        let expected_header = if frame.body.len() <= 255 { 2 } else { 9 };
        prop_assert_eq!(bytes.len(), expected_header + frame.body.len());
        prop_assert_eq!(decode_at_every_split(&bytes, 1 << 20), frame);
    }

    #[test]
    fn arbitrary_frames_never_panic_nor_reserve_past_the_limit(
        flags in prop_oneof![0u8..8, any::<u8>()],
        max in prop_oneof![Just(0u64), Just(1), Just(255), Just(256), Just(4096), Just(1 << 20)],
        size_pick in any::<prop::sample::Index>(),
        tail in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let sizes = [0, 1, 255, 256, max.saturating_sub(1), max, max + 1, u64::from(u32::MAX), u64::MAX - 1, u64::MAX];
        let size = sizes[size_pick.index(sizes.len())];
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[flags]);
        if flags & frame::LONG != 0 {
            buf.extend_from_slice(&size.to_be_bytes());
        } else {
            buf.extend_from_slice(&[size as u8]);
        }
        buf.extend_from_slice(&tail);
        check_decoder_bounds(buf, max)?;
    }

    #[test]
    fn uniform_random_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        max in edge_size(1024),
    ) {
        check_decoder_bounds(BytesMut::from(&bytes[..]), max)?;
    }
}

/// Decodes until the input runs out or fails: the decoder never reserves (the buffer
/// only shrinks by what it splits off), an error leaves the input as it was, and an
/// incomplete frame's announced length is within `max`.
fn check_decoder_bounds(mut buf: BytesMut, max: u64) -> Result<(), TestCaseError> {
    loop {
        let cap = buf.capacity();
        let len = buf.len();
        match Frame::decode(&mut buf, max) {
            Ok(Some(frame)) => {
                prop_assert!(frame.body.len() as u64 <= max);
                prop_assert_eq!(
                    cap - buf.capacity(),
                    len - buf.len(),
                    "split off, not moved"
                );
            }
            Ok(None) => {
                prop_assert_eq!((buf.len(), buf.capacity()), (len, cap));
                if let Some(total) = frame::frame_len(&buf) {
                    prop_assert!(total as u64 <= max.saturating_add(9));
                }
                break;
            }
            Err(_) => {
                prop_assert_eq!((buf.len(), buf.capacity()), (len, cap));
                break;
            }
        }
    }
    Ok(())
}

#[test]
fn the_nine_byte_long_frame_of_all_ones_is_refused_without_reserving() {
    let input = [0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    for max in [0, 1 << 20, u64::MAX - 1, u64::MAX] {
        let mut buf = BytesMut::from(&input[..]);
        let cap = buf.capacity();
        let err = Frame::decode(&mut buf, max).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { size: u64::MAX, .. }),
            "{err}"
        );
        assert_eq!((buf.len(), buf.capacity()), (9, cap));
    }
}

#[test]
fn a_huge_claim_under_a_huge_limit_reserves_nothing() {
    let mut buf = BytesMut::from(&[0x02, 0x40, 0, 0, 0, 0, 0, 0, 0][..]);
    let cap = buf.capacity();
    assert_eq!(Frame::decode(&mut buf, u64::MAX), Ok(None));
    assert_eq!((buf.len(), buf.capacity()), (9, cap));
    // The announced length is for the reader to bound, not a reservation.
    assert_eq!(frame::frame_len(&buf), Some(9 + (1 << 62)));
}

#[test]
fn frame_len_is_known_once_the_header_is_complete() {
    let mut bytes = BytesMut::new();
    Frame::message(Bytes::from(vec![1u8; 70_000]), true).encode(&mut bytes);
    Frame::message(Bytes::from(vec![2u8; 10]), false).encode(&mut bytes);
    for at in 0..9 {
        assert_eq!(frame::frame_len(&bytes[..at]), None, "split at {at}");
    }
    for at in [9, 100, 70_008, bytes.len()] {
        assert_eq!(
            frame::frame_len(&bytes[..at]),
            Some(70_009),
            "split at {at}"
        );
    }
    assert_eq!(frame::frame_len(&bytes[70_009..70_010]), None);
    assert_eq!(frame::frame_len(&bytes[70_009..]), Some(12));
    assert_eq!(frame::frame_len(&[0x80, 0]), None, "reserved flags");
    assert_eq!(
        frame::frame_len(&[0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        None,
        "not addressable"
    );
}

#[test]
fn a_long_frame_with_a_short_size_is_accepted() {
    let mut buf = BytesMut::from(&[0x03, 0, 0, 0, 0, 0, 0, 0, 2, b'h', b'i'][..]);
    let frame = Frame::decode(&mut buf, 10).unwrap().unwrap();
    assert_eq!(frame, Frame::message(Bytes::from_static(b"hi"), true));
}

#[test]
fn reserved_flag_bits_are_refused_at_the_first_byte() {
    for flags in [0x08u8, 0x10, 0x80, 0xff] {
        let mut buf = BytesMut::from(&[flags][..]);
        assert_eq!(
            Frame::decode(&mut buf, 100),
            Err(FrameError::ReservedFlags(flags))
        );
    }
}

#[test]
fn short_bodies_are_copied_out_of_the_input_and_long_ones_split_off() {
    // Short: copied, so it keeps no read buffer alive.
    let mut buf = BytesMut::new();
    Frame::message(Bytes::from(vec![9u8; 1000]), false).encode(&mut buf);
    let input = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.capacity();
    let frame = Frame::decode(&mut buf, 1 << 20).unwrap().unwrap();
    assert_eq!(frame.body, vec![9u8; 1000]);
    assert!(!input.contains(&(frame.body.as_ptr() as usize)));
    // Long (`COPY_BELOW` and more): split off without copying.
    let mut buf = BytesMut::new();
    Frame::message(Bytes::from(vec![9u8; limits::COPY_BELOW]), false).encode(&mut buf);
    let body_at = buf.as_ptr() as usize + 9;
    let frame = Frame::decode(&mut buf, 1 << 20).unwrap().unwrap();
    assert_eq!(frame.body.as_ptr() as usize, body_at);
}

// ----- commands -----

fn arb_command() -> impl Strategy<Value = Command> {
    let bytes = |max: usize| proptest::collection::vec(any::<u8>(), 0..=max).prop_map(Bytes::from);
    prop_oneof![
        (
            proptest::sample::select(SocketType::ALL.to_vec()),
            bytes(255)
        )
            .prop_map(|(socket_type, identity)| Command::Ready(Ready {
                socket_type,
                identity
            })),
        bytes(300).prop_map(Command::Subscribe),
        bytes(300).prop_map(Command::Cancel),
        (any::<u16>(), bytes(MAX_PING_CONTEXT))
            .prop_map(|(ttl, context)| Command::Ping { ttl, context }),
        bytes(MAX_PING_CONTEXT).prop_map(Command::Pong),
        "[ -~]{0,255}".prop_map(Command::Error),
        "[A-Z]{0,12}"
            .prop_filter("not a known command", |n| {
                !["READY", "SUBSCRIBE", "CANCEL", "PING", "PONG", "ERROR"].contains(&n.as_str())
            })
            .prop_map(|n| Command::Unknown(Bytes::from(n))),
    ]
}

fn encoded_command(command: &Command) -> Bytes {
    let mut out = BytesMut::new();
    command.encode(&mut out);
    out.freeze()
}

proptest! {
    #[test]
    fn every_command_round_trips_at_every_split(command in arb_command()) {
        let frame = decode_at_every_split(&encoded_command(&command), 1 << 20);
        prop_assert!(frame.command && !frame.more);
        prop_assert_eq!(Command::decode(frame.body).unwrap(), command);
    }

    #[test]
    fn arbitrary_command_bodies_never_panic(
        name in proptest::sample::select(vec!["READY", "SUBSCRIBE", "CANCEL", "PING", "PONG", "ERROR", "X"]),
        name_len_delta in -1i8..=1,
        data in proptest::collection::vec(prop_oneof![Just(0u8), Just(0xff), Just(11), any::<u8>()], 0..80),
    ) {
        let mut body = vec![(name.len() as i8 + name_len_delta) as u8];
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(&data);
        let _ = Command::decode(Bytes::from(body));
    }
}

/// READY as libzmq 4.3 sends it for a PUB socket without identity: libzmq adds the
/// Identity property only for REQ, DEALER and ROUTER (`mechanism_t::add_basic_properties`).
const LIBZMQ_PUB_READY: [u8; 27] = [
    0x04, 0x19, 0x05, b'R', b'E', b'A', b'D', b'Y', 0x0b, b'S', b'o', b'c', b'k', b'e', b't', b'-',
    b'T', b'y', b'p', b'e', 0x00, 0x00, 0x00, 0x03, b'P', b'U', b'B',
];

#[test]
fn libzmq_pub_ready_decodes_and_matches_ours_byte_for_byte() {
    let mut buf = BytesMut::from(&LIBZMQ_PUB_READY[..]);
    let frame = Frame::decode(&mut buf, 1024).unwrap().unwrap();
    assert!(frame.command && buf.is_empty());
    let ready = Ready {
        socket_type: SocketType::Pub,
        identity: Bytes::new(),
    };
    assert_eq!(
        Command::decode(frame.body).unwrap(),
        Command::Ready(ready.clone())
    );
    assert_eq!(
        &encoded_command(&Command::Ready(ready))[..],
        &LIBZMQ_PUB_READY
    );
}

/// READY body (after the name) from a list of properties.
fn ready_body(props: &[(&str, &[u8])]) -> Bytes {
    let mut body = vec![5];
    body.extend_from_slice(b"READY");
    for (name, value) in props {
        body.push(name.len() as u8);
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(&(value.len() as u32).to_be_bytes());
        body.extend_from_slice(value);
    }
    Bytes::from(body)
}

#[test]
fn libzmq_dealer_ready_with_empty_identity_decodes() {
    let body = ready_body(&[("Socket-Type", b"DEALER"), ("Identity", b"")]);
    assert_eq!(
        Command::decode(body).unwrap(),
        Command::Ready(Ready {
            socket_type: SocketType::Dealer,
            identity: Bytes::new()
        })
    );
}

#[test]
fn ready_ignores_unknown_properties_and_reads_libzmq_xsub_as_xsub() {
    let body = ready_body(&[
        ("X-Custom", b"value"),
        ("socket-type", b"XSUB"),
        ("IDENTITY", b"me"),
    ]);
    assert_eq!(
        Command::decode(body).unwrap(),
        Command::Ready(Ready {
            socket_type: SocketType::XSub,
            identity: Bytes::from_static(b"me")
        })
    );
}

#[test]
fn malformed_ready_commands_are_refused() {
    let missing = ready_body(&[("Identity", b"x")]);
    assert_eq!(
        Command::decode(missing),
        Err(CommandError::MissingSocketType)
    );
    let duplicate = ready_body(&[("Socket-Type", b"PUB"), ("SOCKET-TYPE", b"PUB")]);
    assert_eq!(
        Command::decode(duplicate),
        Err(CommandError::DuplicateProperty("SOCKET-TYPE".into()))
    );
    let unknown = ready_body(&[("Socket-Type", b"CLIENT")]);
    assert_eq!(
        Command::decode(unknown),
        Err(CommandError::UnknownSocketType("CLIENT".into()))
    );
    let good = ready_body(&[("Socket-Type", b"PUB")]);
    for cut in 7..good.len() {
        assert!(
            matches!(
                Command::decode(good.slice(..cut)),
                Err(CommandError::Malformed(_))
            ),
            "READY cut at {cut}"
        );
    }
    let mut trailing = good.to_vec();
    trailing.push(0);
    assert!(Command::decode(Bytes::from(trailing)).is_err());
}

#[test]
fn ping_contexts_are_cut_to_16_bytes_and_short_pings_refused() {
    let mut body = b"\x04PING\x00\x0a".to_vec();
    body.extend_from_slice(&[7u8; 20]);
    assert_eq!(
        Command::decode(Bytes::from(body)).unwrap(),
        Command::Ping {
            ttl: 10,
            context: Bytes::from(vec![7u8; 16])
        }
    );
    assert_eq!(
        Command::decode(Bytes::from_static(b"\x04PING\x00")),
        Err(CommandError::Malformed("PING"))
    );
    assert_eq!(
        Command::decode(Bytes::from_static(b"\x05ERROR\x05abc")),
        Err(CommandError::Malformed("ERROR"))
    );
    assert_eq!(
        Command::decode(Bytes::from_static(b"\x09SUBSCRIBE")),
        Ok(Command::Subscribe(Bytes::new()))
    );
}

// ----- session -----

fn config(socket_type: SocketType) -> ZmtpConfig {
    ZmtpConfig {
        socket_type,
        identity: Bytes::new(),
        peer_minor: 1,
        max_message_size: 32 << 20,
        heartbeat_interval: Some(Duration::from_secs(1)),
        heartbeat_timeout: Duration::from_secs(3),
        handshake_timeout: Duration::from_secs(10),
        recv_limit: 1000,
        recv_bytes_limit: 1 << 20,
        max_message_frames: crate::proto::limits::DEFAULT_MAX_MESSAGE_FRAMES,
        zocket_marker: false,
    }
}

/// Two sessions wired back to back, with a virtual clock.
struct Pair {
    a: ZmtpSession,
    b: ZmtpSession,
    now: Instant,
    a_events: Vec<ZmtpEvent>,
    b_events: Vec<ZmtpEvent>,
    /// Input each side has not consumed yet (as a driver keeps it).
    a_in: BytesMut,
    b_in: BytesMut,
    /// Whether bytes from `b` reach `a` (false: `b` went silent / the link is cut).
    b_to_a: bool,
}

impl Pair {
    fn new(a: SocketType, b: SocketType) -> Pair {
        Self::with(config(a), config(b))
    }

    fn with(a: ZmtpConfig, b: ZmtpConfig) -> Pair {
        let now = Instant::now();
        let mut pair = Pair {
            a: ZmtpSession::new(a, now),
            b: ZmtpSession::new(b, now),
            now,
            a_events: vec![],
            b_events: vec![],
            a_in: BytesMut::new(),
            b_in: BytesMut::new(),
            b_to_a: true,
        };
        pair.drive();
        pair
    }

    /// Moves bytes both ways until neither side has anything to send.
    fn drive(&mut self) {
        loop {
            let x = transfer(&mut self.a, &mut self.b, &mut self.b_in, self.now, true);
            let y = transfer(
                &mut self.b,
                &mut self.a,
                &mut self.a_in,
                self.now,
                self.b_to_a,
            );
            self.a_events
                .extend(std::iter::from_fn(|| self.a.poll_event()));
            self.b_events
                .extend(std::iter::from_fn(|| self.b.poll_event()));
            if !x && !y {
                break;
            }
        }
    }

    /// Advances the clock to the earliest timer, runs it, and moves the bytes it causes.
    fn advance_to_next_timer(&mut self) {
        let next = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .expect("a timer is armed");
        self.now = next.max(self.now);
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        self.drive();
    }
}

/// Transmits what `from` has and, if `deliver`, feeds it to `to`.
fn transfer(
    from: &mut ZmtpSession,
    to: &mut ZmtpSession,
    input: &mut BytesMut,
    now: Instant,
    deliver: bool,
) -> bool {
    let mut t = Transmit::new();
    if !from.poll_transmit(now, &mut t) {
        return false;
    }
    if deliver {
        input.extend_from_slice(&t.concat());
        let _ = to.handle_input(now, input);
    }
    true
}

fn all_bytes(s: &mut ZmtpSession, now: Instant) -> Vec<u8> {
    let mut t = Transmit::new();
    s.poll_transmit(now, &mut t);
    t.concat()
}

fn recv_all(s: &mut ZmtpSession) -> Vec<Message> {
    std::iter::from_fn(|| s.recv()).collect()
}

/// A fresh session that has consumed a peer READY of type `peer`.
fn ready_session(local: SocketType, peer: SocketType, now: Instant) -> ZmtpSession {
    ready_session_with(config(local), peer, now)
}

/// A fresh session of `cfg` that has consumed a peer READY of type `peer`.
fn ready_session_with(cfg: ZmtpConfig, peer: SocketType, now: Instant) -> ZmtpSession {
    let mut s = ZmtpSession::new(cfg, now);
    all_bytes(&mut s, now);
    let mut buf = BytesMut::from(
        &encoded_command(&Command::Ready(Ready {
            socket_type: peer,
            identity: Bytes::new(),
        }))[..],
    );
    s.handle_input(now, &mut buf).unwrap();
    assert!(matches!(s.poll_event(), Some(ZmtpEvent::Ready { .. })));
    s
}

fn command_bytes(command: Command) -> BytesMut {
    BytesMut::from(&encoded_command(&command)[..])
}

#[test]
fn ready_is_sent_first_and_exchanged() {
    let now = Instant::now();
    let mut cfg = config(SocketType::Dealer);
    cfg.identity = Bytes::from_static(b"dealer-1");
    let mut dealer = ZmtpSession::new(cfg, now);
    let first = all_bytes(&mut dealer, now);
    let mut buf = BytesMut::from(&first[..]);
    let frame = Frame::decode(&mut buf, 1024).unwrap().unwrap();
    assert!(buf.is_empty(), "only READY before the peer's READY");
    assert_eq!(
        Command::decode(frame.body).unwrap(),
        Command::Ready(Ready {
            socket_type: SocketType::Dealer,
            identity: Bytes::from_static(b"dealer-1")
        })
    );

    let mut cfg = config(SocketType::Router);
    cfg.identity = Bytes::from_static(b"router");
    let p = Pair::with(config(SocketType::Dealer), cfg);
    assert_eq!(
        p.a_events,
        [ZmtpEvent::Ready {
            socket_type: SocketType::Router,
            identity: Bytes::from_static(b"router")
        }]
    );
    assert_eq!(
        p.b_events,
        [ZmtpEvent::Ready {
            socket_type: SocketType::Dealer,
            identity: Bytes::new()
        }]
    );
    assert_eq!(p.a.peer().unwrap().socket_type, SocketType::Router);
}

#[test]
fn multipart_messages_with_empty_frames_arrive_intact_and_readable_is_deduplicated() {
    let mut p = Pair::new(SocketType::Dealer, SocketType::Router);
    p.b_events.clear();
    let first = Message::from(vec![
        Bytes::new(),
        Bytes::from_static(b"a"),
        Bytes::new(),
        Bytes::from(vec![3u8; 300]),
    ]);
    let second = Message::from(vec![Bytes::new()]);
    p.a.send(first.clone());
    p.a.send(second.clone());
    assert_eq!(p.a.queued_bytes(), 301);
    p.drive();
    assert_eq!(p.a.queued_bytes(), 0);
    assert_eq!(p.b_events, [ZmtpEvent::Readable]);
    assert_eq!(recv_all(&mut p.b), [first, second]);
    p.a.send(Message::from("again"));
    p.drive();
    assert_eq!(p.b_events, [ZmtpEvent::Readable, ZmtpEvent::Readable]);
}

#[test]
fn messages_sent_before_the_peer_ready_wait_for_it() {
    let now = Instant::now();
    let mut a = ZmtpSession::new(config(SocketType::Push), now);
    a.send(Message::from("early"));
    let bytes = all_bytes(&mut a, now);
    assert_eq!(
        bytes.len(),
        encoded_command(&Command::Ready(Ready {
            socket_type: SocketType::Push,
            identity: Bytes::new()
        }))
        .len()
    );
    let mut buf = command_bytes(Command::Ready(Ready {
        socket_type: SocketType::Pull,
        identity: Bytes::new(),
    }));
    a.handle_input(now, &mut buf).unwrap();
    assert_eq!(all_bytes(&mut a, now), b"\x00\x05early");
}

#[test]
fn a_16_mib_message_is_neither_copied_on_send_nor_quadratically_on_receive() {
    let mut p = Pair::new(SocketType::Push, SocketType::Pull);
    let big = Bytes::from(vec![0xabu8; 16 << 20]);
    p.a.send(Message::from(vec![
        Bytes::from_static(b"head"),
        big.clone(),
    ]));
    let mut t = Transmit::new();
    assert!(p.a.poll_transmit(p.now, &mut t));
    // The payload is a segment of its own, referenced, not copied.
    let mut slices = [std::io::IoSlice::new(&[]); 4];
    let n = t.io_slices(&mut slices);
    assert!(slices[..n].iter().any(|s| s.as_ptr() == big.as_ptr()));
    let wire = t.concat();
    assert_eq!(wire.len(), 2 + 4 + 9 + (16 << 20));

    // Fed like the driver reads: room made by `make_room`, then at most 64 KiB at a time
    // into the spare capacity, decoded after each read.
    let mut input = BytesMut::new();
    let (mut reallocations, mut copied) = (0, 0);
    let mut rest = &wire[..];
    while !rest.is_empty() {
        let (base, len) = (input.as_ptr(), input.len());
        frame::make_room(&mut input, p.b.incomplete_frame_len());
        if input.as_ptr() != base && len > 0 {
            reallocations += 1;
            copied += len;
        }
        let n = (64 * 1024)
            .min(input.capacity() - input.len())
            .min(rest.len());
        input.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        p.b.handle_input(p.now, &mut input).unwrap();
    }
    // Past 1 MiB the room doubles with what arrived (the claim alone reserves at most
    // 1 MiB): a few reallocations, each copying what is buffered, which adds up to less
    // than twice the message (once per read would be 256 copies).
    assert!(reallocations <= 10, "{reallocations} reallocations");
    assert!(copied < 2 * (16 << 20), "{copied} bytes copied");
    let msg = p.b.recv().unwrap();
    assert_eq!(msg.frames()[0], "head");
    assert_eq!(msg.frames()[1].len(), 16 << 20);
    assert!(msg.frames()[1] == big);
    assert!(input.is_empty());
}

/// A SUB and a PUB, the SUB speaking to a peer of greeting minor `minor`.
fn sub_pub(minor: u8, sub_first: bool) -> (Pair, bool) {
    let mut sub = config(SocketType::Sub);
    sub.peer_minor = minor;
    let mut publ = config(SocketType::Pub);
    publ.peer_minor = minor;
    let p = if sub_first {
        Pair::with(sub, publ)
    } else {
        Pair::with(publ, sub)
    };
    (p, sub_first)
}

#[test]
fn subscriptions_travel_as_commands_to_31_peers_and_as_messages_to_30_peers() {
    for minor in [0, 1] {
        for sub_first in [true, false] {
            let (mut p, sub_is_a) = sub_pub(minor, sub_first);
            p.a_events.clear();
            p.b_events.clear();
            let (sub, publ) = if sub_is_a {
                (&mut p.a, &mut p.b)
            } else {
                (&mut p.b, &mut p.a)
            };
            sub.subscribe(Bytes::from_static(b"topic"));
            sub.cancel(Bytes::from_static(b"old"));
            let wire = all_bytes(sub, p.now);
            let expected: Vec<u8> = if minor >= 1 {
                [
                    &encoded_command(&Command::Subscribe(Bytes::from_static(b"topic")))[..],
                    &encoded_command(&Command::Cancel(Bytes::from_static(b"old")))[..],
                ]
                .concat()
            } else {
                b"\x00\x06\x01topic\x00\x04\x00old".to_vec()
            };
            assert_eq!(wire, expected, "minor {minor}");
            publ.handle_input(p.now, &mut BytesMut::from(&wire[..]))
                .unwrap();
            // Either form comes out of `recv` as ZMTP 3.0 subscription messages.
            let events: Vec<_> = std::iter::from_fn(|| publ.poll_event()).collect();
            assert_eq!(events, [ZmtpEvent::Readable]);
            assert_eq!(
                recv_all(publ),
                [Message::from("\x01topic"), Message::from("\x00old")],
                "minor {minor}, sub first {sub_first}"
            );
        }
    }
}

#[test]
fn a_31_pub_also_accepts_message_style_subscriptions_like_libzmq() {
    let now = Instant::now();
    let mut publ = ready_session(SocketType::Pub, SocketType::Sub, now);
    let mut buf = BytesMut::from(&b"\x00\x02\x01a\x00\x01\x00\x01\x02\x01b\x00\x01\x05"[..]);
    publ.handle_input(now, &mut buf).unwrap();
    let events: Vec<_> = std::iter::from_fn(|| publ.poll_event()).collect();
    assert_eq!(events, [ZmtpEvent::Readable]);
    // They arrive as they are, in order with the rest (a multi-frame message is not a
    // subscription; the engine tells them apart).
    let msgs = recv_all(&mut publ);
    assert_eq!(
        msgs,
        [
            Message::from("\x01a"),
            Message::from("\x00"),
            Message::from(["\x01b", "\x05"])
        ]
    );
}

#[test]
fn message_style_subscriptions_from_a_non_sub_peer_are_messages() {
    let now = Instant::now();
    let mut pull = ready_session(SocketType::Pull, SocketType::Push, now);
    pull.handle_input(now, &mut BytesMut::from(&b"\x00\x02\x01a"[..]))
        .unwrap();
    assert_eq!(recv_all(&mut pull), [Message::from("\x01a")]);
}

#[test]
fn pings_and_pongs_keep_a_quiet_session_alive() {
    let mut p = Pair::new(SocketType::Pair, SocketType::Pair);
    let start = p.now;
    while p.now < start + Duration::from_secs(60) {
        p.advance_to_next_timer();
    }
    assert_eq!(p.a.error(), None);
    assert_eq!(p.b.error(), None);
}

#[test]
fn pongs_alone_keep_a_pinging_session_alive() {
    let mut quiet = config(SocketType::Pair);
    quiet.heartbeat_interval = None;
    let mut p = Pair::with(config(SocketType::Pair), quiet);
    let start = p.now;
    while p.now < start + Duration::from_secs(60) {
        p.advance_to_next_timer();
    }
    assert_eq!(p.a.error(), None);
    assert_eq!(p.b.error(), None);
}

#[test]
fn a_ping_is_answered_with_a_pong_echoing_its_context() {
    let now = Instant::now();
    let mut s = ready_session(SocketType::Pair, SocketType::Pair, now);
    s.handle_input(
        now,
        &mut command_bytes(Command::Ping {
            ttl: 0,
            context: Bytes::from_static(b"ctx"),
        }),
    )
    .unwrap();
    assert_eq!(
        all_bytes(&mut s, now),
        &encoded_command(&Command::Pong(Bytes::from_static(b"ctx")))[..]
    );
}

#[test]
fn our_ping_carries_the_heartbeat_timeout_as_ttl() {
    let now = Instant::now();
    let mut s = ready_session(SocketType::Pair, SocketType::Pair, now);
    let at = s.poll_timeout().unwrap();
    assert_eq!(at, now + Duration::from_secs(1));
    s.handle_timeout(at);
    assert_eq!(
        all_bytes(&mut s, at),
        &encoded_command(&Command::Ping {
            ttl: 30,
            context: Bytes::new()
        })[..]
    );
}

#[test]
fn silence_times_the_session_out() {
    let mut p = Pair::new(SocketType::Pair, SocketType::Pair);
    let start = p.now;
    p.b_to_a = false; // b's bytes no longer reach a
    while p.a.error().is_none() {
        p.advance_to_next_timer();
    }
    assert_eq!(
        p.a.error(),
        Some(&ZmtpError::Timeout(
            "peer silent for longer than the heartbeat timeout"
        ))
    );
    assert_eq!(p.now, start + Duration::from_secs(3));
}

#[test]
fn the_peer_ping_ttl_times_out_a_session_without_heartbeats_of_its_own() {
    let now = Instant::now();
    let mut cfg = config(SocketType::Pair);
    cfg.heartbeat_interval = None;
    let mut s = ZmtpSession::new(cfg, now);
    let mut buf = command_bytes(Command::Ready(Ready {
        socket_type: SocketType::Pair,
        identity: Bytes::new(),
    }));
    s.handle_input(now, &mut buf).unwrap();
    assert_eq!(s.poll_timeout(), None);
    let mut ping = command_bytes(Command::Ping {
        ttl: 20,
        context: Bytes::new(),
    });
    s.handle_input(now, &mut ping).unwrap();
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(2)));
    s.handle_timeout(now + Duration::from_secs(2));
    assert_eq!(
        s.error(),
        Some(&ZmtpError::Timeout(
            "peer silent for longer than its PING's TTL"
        ))
    );
}

#[test]
fn a_missing_ready_times_out_the_handshake() {
    let now = Instant::now();
    let mut s = ZmtpSession::new(config(SocketType::Req), now);
    all_bytes(&mut s, now);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(10)));
    s.handle_timeout(now + Duration::from_secs(10));
    assert_eq!(
        s.error(),
        Some(&ZmtpError::Timeout(
            "handshake timed out: no READY from peer"
        ))
    );
    let err = encoded_command(&Command::Error(
        "handshake timed out: no READY from peer".into(),
    ));
    assert_eq!(all_bytes(&mut s, now), &err[..]);
    assert!(s.is_closed());
}

#[test]
fn incompatible_socket_types_are_refused_naming_both_types() {
    let now = Instant::now();
    let mut publ = ZmtpSession::new(config(SocketType::Pub), now);
    let mut ready = command_bytes(Command::Ready(Ready {
        socket_type: SocketType::Req,
        identity: Bytes::new(),
    }));
    let err = publ.handle_input(now, &mut ready).unwrap_err();
    assert_eq!(
        err,
        ZmtpError::IncompatiblePeer {
            local: SocketType::Pub,
            remote: SocketType::Req
        }
    );
    assert_eq!(
        err.to_string(),
        "peer socket type REQ is incompatible with our PUB"
    );

    // Back to back: the side that reads the other's READY first refuses it with an ERROR
    // in place of its own READY, and the other side learns why.
    let p = Pair::new(SocketType::Pub, SocketType::Req);
    assert_eq!(
        p.b.error(),
        Some(&ZmtpError::IncompatiblePeer {
            local: SocketType::Req,
            remote: SocketType::Pub
        })
    );
    assert_eq!(
        p.a.error(),
        Some(&ZmtpError::Peer(
            "peer socket type PUB is incompatible with our REQ".into()
        ))
    );
    assert!(p.a.is_closed() && p.b.is_closed());
}

#[test]
fn a_command_or_message_before_ready_is_a_protocol_error() {
    let now = Instant::now();
    let mut s = ZmtpSession::new(config(SocketType::Rep), now);
    let err = s
        .handle_input(
            now,
            &mut command_bytes(Command::Ping {
                ttl: 0,
                context: Bytes::new(),
            }),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ZMTP protocol error: command PING before READY"
    );

    let mut s = ZmtpSession::new(config(SocketType::Rep), now);
    let err = s
        .handle_input(now, &mut BytesMut::from(&b"\x00\x02hi"[..]))
        .unwrap_err();
    assert_eq!(err.to_string(), "ZMTP protocol error: message before READY");
    // The error goes out as an ERROR command, instead of READY (not sent yet).
    let wire = all_bytes(&mut s, now);
    assert_eq!(wire, &encoded_command(&Command::Error(err.to_string()))[..]);
}

#[test]
fn oversized_frames_and_messages_are_refused_at_the_header() {
    let now = Instant::now();
    let mut cfg = config(SocketType::Pull);
    cfg.max_message_size = 1000;
    let mut s = ZmtpSession::new(cfg.clone(), now);
    s.handle_input(
        now,
        &mut command_bytes(Command::Ready(Ready {
            socket_type: SocketType::Push,
            identity: Bytes::new(),
        })),
    )
    .unwrap();
    // Only the header of a 1001-byte frame: refused before its body arrives.
    let mut header = BytesMut::from(&[0x02, 0, 0, 0, 0, 0, 0, 0x03, 0xe9][..]);
    assert_eq!(
        s.handle_input(now, &mut header),
        Err(ZmtpError::MessageTooLarge {
            size: 1001,
            max: 1000
        })
    );

    // Two frames of 600 bytes: the message breaks the limit at the second header.
    let mut s = ZmtpSession::new(cfg, now);
    let mut input = command_bytes(Command::Ready(Ready {
        socket_type: SocketType::Push,
        identity: Bytes::new(),
    }));
    Frame::message(Bytes::from(vec![1u8; 600]), true).encode(&mut input);
    input.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 0, 0x02, 0x58]);
    assert_eq!(
        s.handle_input(now, &mut input),
        Err(ZmtpError::MessageTooLarge {
            size: 1200,
            max: 1000
        })
    );
}

#[test]
fn an_error_from_the_peer_ends_the_session_with_its_reason() {
    let now = Instant::now();
    let mut s = ready_session(SocketType::Req, SocketType::Rep, now);
    let mut input = command_bytes(Command::Error("go away".into()));
    Frame::message(Bytes::from_static(b"after"), false).encode(&mut input);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(s.poll_event(), Some(ZmtpEvent::Error("go away".into())));
    assert_eq!(s.error(), Some(&ZmtpError::Peer("go away".into())));
    assert!(s.is_closed());
    assert!(s.recv().is_none(), "nothing after ERROR counts");
    // And an ERROR instead of READY (how a NULL server refuses) works the same.
    let mut s = ZmtpSession::new(config(SocketType::Req), now);
    s.handle_input(now, &mut command_bytes(Command::Error("denied".into())))
        .unwrap();
    assert_eq!(s.poll_event(), Some(ZmtpEvent::Error("denied".into())));
}

#[test]
fn unknown_commands_are_ignored() {
    let now = Instant::now();
    let mut s = ready_session(SocketType::Pull, SocketType::Push, now);
    let mut input = BytesMut::new();
    Frame::command(Bytes::from_static(b"\x05HELLOsome data")).encode(&mut input);
    Frame::command(Bytes::from_static(b"\x00")).encode(&mut input);
    Frame::message(Bytes::from_static(b"msg"), false).encode(&mut input);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(recv_all(&mut s), [Message::from("msg")]);
    assert_eq!(s.error(), None);
}

#[test]
fn commands_inside_a_multi_frame_message_or_with_more_are_refused() {
    let now = Instant::now();
    let mut s = ready_session(SocketType::Pull, SocketType::Push, now);
    let mut input = BytesMut::new();
    Frame::message(Bytes::from_static(b"part"), true).encode(&mut input);
    input.extend_from_slice(&encoded_command(&Command::Pong(Bytes::new())));
    assert_eq!(
        s.handle_input(now, &mut input),
        Err(ZmtpError::Protocol(
            "command inside a multi-frame message".into()
        ))
    );
    let mut s = ready_session(SocketType::Pull, SocketType::Push, now);
    let mut input = BytesMut::from(&b"\x05\x05\x04PONG"[..]);
    assert_eq!(
        s.handle_input(now, &mut input),
        Err(ZmtpError::Protocol(
            "command frame with the MORE flag set".into()
        ))
    );
}

#[test]
fn a_second_ready_is_refused() {
    let now = Instant::now();
    let mut s = ready_session(SocketType::Pull, SocketType::Push, now);
    let err = s
        .handle_input(
            now,
            &mut command_bytes(Command::Ready(Ready {
                socket_type: SocketType::Push,
                identity: Bytes::new(),
            })),
        )
        .unwrap_err();
    assert_eq!(err, ZmtpError::Protocol("second READY".into()));
}

#[test]
fn input_past_the_recv_limit_stays_in_the_buffer_until_messages_are_read() {
    let now = Instant::now();
    let mut cfg = config(SocketType::Pull);
    cfg.recv_limit = 2;
    let mut s = ZmtpSession::new(cfg, now);
    let mut input = command_bytes(Command::Ready(Ready {
        socket_type: SocketType::Push,
        identity: Bytes::new(),
    }));
    for i in 0..5u8 {
        Frame::message(Bytes::from(vec![i]), false).encode(&mut input);
    }
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(input.len(), 3 * 3, "three messages left unconsumed");
    assert!(s.is_input_held_back());
    // Held back input is our slowness, not the peer's: no idle timeout meanwhile.
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(1)));
    assert_eq!(recv_all(&mut s).len(), 2);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(recv_all(&mut s).len(), 2);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(recv_all(&mut s).len(), 1);
    assert!(input.is_empty() && !s.is_input_held_back());
}

#[test]
fn large_messages_are_held_back_at_the_byte_limit_and_resumed_at_half() {
    let now = Instant::now();
    // Each message holds its 16,000 bytes and the 64 bytes a frame costs.
    const HELD: usize = 16_000 + limits::FRAME_OVERHEAD as usize;
    let mut cfg = config(SocketType::Pull);
    cfg.recv_bytes_limit = 4 * HELD;
    let mut s = ZmtpSession::new(cfg, now);
    let mut input = command_bytes(Command::Ready(Ready {
        socket_type: SocketType::Push,
        identity: Bytes::new(),
    }));
    for i in 0..10u8 {
        Frame::message(Bytes::from(vec![i; 16_000]), false).encode(&mut input);
    }
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(
        input.len(),
        6 * (9 + 16_000),
        "four messages fill the limit"
    );
    assert!(s.is_input_held_back());
    assert!(s.recv().is_some());
    assert!(!s.wants_input(), "three quarters buffered: not yet");
    assert!(s.recv().is_some());
    assert!(s.wants_input(), "drained to half");
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(input.len(), 4 * (9 + 16_000));
    let rest: Vec<u8> = recv_all(&mut s).iter().map(|m| m.frames()[0][0]).collect();
    assert_eq!(rest, [2, 3, 4, 5]);
    assert!(s.wants_input());
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(recv_all(&mut s).len(), 4);
    assert!(input.is_empty() && !s.is_input_held_back() && !s.wants_input());
}

#[test]
fn a_message_above_the_byte_limit_is_still_taken() {
    let now = Instant::now();
    let mut cfg = config(SocketType::Pull);
    cfg.recv_bytes_limit = 1000;
    let mut s = ZmtpSession::new(cfg, now);
    let mut input = command_bytes(Command::Ready(Ready {
        socket_type: SocketType::Push,
        identity: Bytes::new(),
    }));
    Frame::message(Bytes::from(vec![1u8; 5000]), true).encode(&mut input);
    Frame::message(Bytes::from(vec![2u8; 5000]), false).encode(&mut input);
    Frame::message(Bytes::from(vec![3u8; 10]), false).encode(&mut input);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(input.len(), 12, "the next message waits");
    assert_eq!(s.recv().map(|m| m.byte_len()), Some(10_000));
    assert!(s.wants_input());
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(s.recv().map(|m| m.byte_len()), Some(10));
}

#[test]
fn the_incomplete_frame_len_follows_the_frame_at_the_front() {
    let now = Instant::now();
    let mut s = ready_session(SocketType::Pull, SocketType::Push, now);
    let mut bytes = BytesMut::new();
    Frame::message(Bytes::from(vec![1u8; 100_000]), false).encode(&mut bytes);
    Frame::message(Bytes::from(vec![2u8; 300]), false).encode(&mut bytes);
    let mut input = BytesMut::from(&bytes[..5]);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(s.incomplete_frame_len(), 0, "header incomplete");
    input.extend_from_slice(&bytes[5..50_000]);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(s.incomplete_frame_len(), 100_009);
    input.extend_from_slice(&bytes[50_000..100_029]);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(s.incomplete_frame_len(), 309);
    input.extend_from_slice(&bytes[100_029..]);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(s.incomplete_frame_len(), 0);
    assert_eq!(recv_all(&mut s).len(), 2);
    // Over the limit: the session fails and nothing is announced.
    let mut cfg = config(SocketType::Pull);
    cfg.max_message_size = 1000;
    let mut s = ZmtpSession::new(cfg, now);
    let mut input = command_bytes(Command::Ready(Ready {
        socket_type: SocketType::Push,
        identity: Bytes::new(),
    }));
    input.extend_from_slice(&[0x02, 0, 0, 0, 0x80, 0, 0, 0, 0]);
    assert!(s.handle_input(now, &mut input).is_err());
    assert_eq!(s.incomplete_frame_len(), 0);
}

#[test]
fn close_flushes_queued_messages_then_ends() {
    let mut p = Pair::new(SocketType::Push, SocketType::Pull);
    p.a.send(Message::from("last"));
    p.a.close();
    p.a.send(Message::from("dropped"));
    p.drive();
    assert_eq!(recv_all(&mut p.b), [Message::from("last")]);
    assert_eq!(p.a.error(), Some(&ZmtpError::ClosedLocally));
    assert!(p.a.is_closed());
}

#[test]
fn ping_ttl_is_the_timeout_in_deciseconds_within_what_libzmq_reads_correctly() {
    let now = Instant::now();
    for (timeout, ttl) in [
        (Duration::from_millis(150), 2),
        (Duration::from_secs(3), 30),
        (Duration::from_millis(65_500), 655),
        (Duration::from_millis(65_600), 0),
    ] {
        let mut cfg = config(SocketType::Pair);
        cfg.heartbeat_timeout = timeout;
        cfg.heartbeat_interval = Some(Duration::from_millis(1));
        let mut s = ZmtpSession::new(cfg, now);
        all_bytes(&mut s, now);
        s.handle_input(
            now,
            &mut command_bytes(Command::Ready(Ready {
                socket_type: SocketType::Pair,
                identity: Bytes::new(),
            })),
        )
        .unwrap();
        let at = now + Duration::from_millis(1);
        s.handle_timeout(at);
        let expected = encoded_command(&Command::Ping {
            ttl,
            context: Bytes::new(),
        });
        assert_eq!(all_bytes(&mut s, at), &expected[..], "{timeout:?}");
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_into_a_session_never_panic(
        ready_first in any::<bool>(),
        chunks in proptest::collection::vec(proptest::collection::vec(
            prop_oneof![Just(0u8), Just(1), Just(2), Just(4), Just(0xff), any::<u8>()], 0..64), 0..8),
    ) {
        let now = Instant::now();
        let mut cfg = config(SocketType::Pub);
        cfg.max_message_size = 4096;
        let mut s = ZmtpSession::new(cfg, now);
        let mut input = BytesMut::new();
        if ready_first {
            input = command_bytes(Command::Ready(Ready { socket_type: SocketType::Sub, identity: Bytes::new() }));
        }
        for chunk in chunks {
            input.extend_from_slice(&chunk);
            let _ = s.handle_input(now, &mut input);
            prop_assert!(input.capacity() <= 2 * (9 + 64 * 1024) + 1024);
            all_bytes(&mut s, now);
            while s.poll_event().is_some() {}
            while s.recv().is_some() {}
        }
    }
}

#[test]
fn end_of_file_ends_the_session_without_an_error_command() {
    let now = Instant::now();
    let mut s = ready_session(SocketType::Pull, SocketType::Push, now);
    s.handle_eof("connection reset");
    assert_eq!(
        s.error().unwrap().to_string(),
        "connection closed by peer: connection reset"
    );
    assert!(s.is_closed());
    assert!(all_bytes(&mut s, now).is_empty());
}

/// Encodes message frames of these sizes (frame `i` filled with byte `i`).
fn encoded_frames(sizes: &[usize]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for (i, &len) in sizes.iter().enumerate() {
        frame::encode_header(&mut out, false, false, len);
        out.extend_from_slice(&vec![i as u8; len]);
    }
    out.to_vec()
}

/// Feeds `input` through `make_room` and reads of at most `piece` bytes (never past the
/// spare capacity, as a socket read), splitting whole frames off as the session does.
/// Returns the frames and, for each, how many times its first byte moved.
fn read_in_pieces(input: &[u8], piece: usize) -> Vec<(Bytes, usize)> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    let (mut moves, mut front) = (0, None::<usize>);
    while at < input.len() {
        let pending = frame::frame_len(&buf).unwrap_or(0);
        frame::make_room(&mut buf, pending);
        if front.is_some_and(|p| p != buf.as_ptr() as usize) {
            moves += 1;
        }
        // Room for a full read, or for the whole rest of the frame in progress.
        let spare = buf.capacity() - buf.len();
        let rest = pending.saturating_sub(buf.len());
        assert!(
            spare >= frame::MIN_READ || (rest > 0 && spare >= rest),
            "{spare} spare"
        );
        let n = piece.min(spare).min(input.len() - at);
        buf.extend_from_slice(&input[at..at + n]);
        at += n;
        while let Some(total) = frame::frame_len(&buf).filter(|&t| t <= buf.len()) {
            let header = if total - 2 > 255 { 9 } else { 2 };
            let mut frame = buf.split_to(total);
            out.push((frame.split_off(header).freeze(), moves));
            moves = 0;
        }
        front = (!buf.is_empty()).then(|| buf.as_ptr() as usize);
    }
    assert!(buf.is_empty());
    out
}

#[test]
fn a_large_frame_arriving_in_pieces_is_moved_at_most_once() {
    let sizes = [100_000, 64 * 1024, 300_000, 10, 64 * 1024, 1 << 20, 5];
    let input = encoded_frames(&sizes);
    for piece in [1000, 4096, 65_536, 100_003, 256 * 1024, usize::MAX] {
        let got = read_in_pieces(&input, piece);
        assert_eq!(got.len(), sizes.len());
        for (i, ((body, moves), &len)) in got.iter().zip(&sizes).enumerate() {
            assert_eq!(body.len(), len);
            assert!(body.iter().all(|&b| b == i as u8));
            assert!(
                *moves <= 1,
                "frame {i} moved {moves} times ({piece}-byte reads)"
            );
        }
    }
}

#[test]
fn a_huge_claim_gets_room_only_as_its_bytes_arrive() {
    let mut buf = BytesMut::from(&[0x02, 0x40, 0, 0, 0, 0, 0, 0, 0][..]);
    let claimed = frame::frame_len(&buf).unwrap();
    frame::make_room(&mut buf, claimed);
    assert!(buf.capacity() <= 9 + frame::MAX_RESERVE.max(crate::proto::limits::READ_CHUNK));
    // Filled up: the room doubles with what arrived, no more.
    while buf.len() < 8 * frame::MAX_RESERVE {
        let spare = buf.capacity() - buf.len();
        buf.extend_from_slice(&vec![0; spare]);
        let held = buf.len();
        frame::make_room(&mut buf, claimed);
        assert!(
            buf.capacity() <= 2 * held + crate::proto::limits::READ_CHUNK,
            "{} for {held}",
            buf.capacity()
        );
    }
}

#[test]
fn a_buffer_nobody_else_holds_is_reused() {
    let mut buf = BytesMut::new();
    frame::make_room(&mut buf, 0);
    let start = buf.as_ptr() as usize;
    let cap = buf.capacity();
    buf.extend_from_slice(&vec![1; cap - 10]);
    drop(buf.split_to(cap - 20).freeze()); // a frame read and dropped
    frame::make_room(&mut buf, 100);
    assert_eq!(
        buf.as_ptr() as usize,
        start,
        "moved to the front, not reallocated"
    );
    assert_eq!(buf.len(), 10);
}

// ----- hostile peers: what a connection can make us hold -----

#[test]
fn an_endless_message_of_empty_frames_is_refused_at_the_frame_limit_holding_little() {
    let now = Instant::now();
    let cfg = config(SocketType::Router);
    let max_frames = cfg.max_message_frames;
    let mut s = ready_session_with(cfg, SocketType::Dealer, now);
    // Up to a million empty frames with MORE (one message that never ends), fed 32 Ki
    // frames at a time. Each empty frame holds a handle: 64 bytes counted.
    let per_chunk = 32 * 1024;
    let chunk = [frame::MORE, 0].repeat(per_chunk);
    let bound = u64::from(max_frames) * limits::FRAME_OVERHEAD;
    let mut input = BytesMut::new();
    let (mut fed, mut result) = (0, Ok(()));
    while fed < 1_000_000 && result.is_ok() {
        input.extend_from_slice(&chunk);
        fed += per_chunk;
        result = s.handle_input(now, &mut input);
        assert!(s.held_bytes() <= bound, "{} bytes held", s.held_bytes());
    }
    let err = result.unwrap_err();
    assert_eq!(err, ZmtpError::TooManyFrames { max: max_frames });
    assert!(
        fed <= max_frames as usize + per_chunk,
        "refused after {fed} frames"
    );
    assert!(
        err.to_string().contains("more than 65536 frames")
            && err.to_string().contains("max_message_frames"),
        "{err}"
    );
    assert_eq!(s.held_bytes(), 0, "the partial message is dropped");
    assert!(s.recv().is_none());
    // The peer learns why, then the connection ends.
    assert_eq!(
        all_bytes(&mut s, now),
        &encoded_command(&Command::Error(err.to_string()))[..]
    );
    assert!(s.is_closed());
}

#[test]
fn a_message_of_exactly_max_message_frames_frames_is_taken() {
    let now = Instant::now();
    let mut cfg = config(SocketType::Pull);
    cfg.max_message_frames = 3;
    let mut s = ready_session_with(cfg, SocketType::Push, now);
    let mut input = BytesMut::from(&b"\x01\x00\x01\x01a\x00\x00"[..]);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(recv_all(&mut s), [Message::from(["", "a", ""])]);
    // The count starts again with the next message; a fourth frame is one too many.
    let mut input = BytesMut::from(&b"\x01\x00\x01\x00\x01\x00\x00"[..]);
    assert_eq!(
        s.handle_input(now, &mut input),
        Err(ZmtpError::TooManyFrames { max: 3 })
    );
    assert_eq!(input.len(), 1, "refused at the fourth frame's first byte");
}

/// A READY body from a DEALER with `n` more distinct properties (`X-0`, `X-1`, ...).
fn ready_with_many_properties(n: usize) -> Bytes {
    let mut body = ready_body(&[("Socket-Type", b"DEALER")]).to_vec();
    for i in 0..n {
        let name = format!("X-{i}");
        body.push(name.len() as u8);
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(&0u32.to_be_bytes());
    }
    Bytes::from(body)
}

#[test]
fn a_ready_of_200000_properties_is_refused_as_soon_as_its_header_arrives() {
    let now = Instant::now();
    let body = ready_with_many_properties(200_000);
    assert!(body.len() > 2_000_000);
    let mut wire = BytesMut::new();
    Frame::command(body).encode(&mut wire);
    let mut s = ZmtpSession::new(config(SocketType::Router), now);
    all_bytes(&mut s, now);
    // Part of the header: nothing to judge yet, and no room asked for.
    let mut input = BytesMut::from(&wire[..5]);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!((input.len(), s.incomplete_frame_len()), (5, 0));
    // The whole header: refused before any of the body is waited for.
    input.extend_from_slice(&wire[5..9]);
    let err = s.handle_input(now, &mut input).unwrap_err();
    let limit = MAX_COMMAND_LEN;
    assert_eq!(
        err,
        ZmtpError::Protocol(format!(
            "command of {} bytes before READY; a handshake command may have at most {limit} bytes",
            wire.len() - 9
        ))
    );
    assert_eq!(s.incomplete_frame_len(), 0);
    assert_eq!(
        all_bytes(&mut s, now),
        &encoded_command(&Command::Error(err.to_string()))[..]
    );
}

#[test]
fn a_ready_within_the_command_limit_asks_for_no_more_room_than_the_limit() {
    let now = Instant::now();
    // As many distinct properties as fit the limit.
    let fits = |n: usize| ready_with_many_properties(n).len() as u64 <= MAX_COMMAND_LEN;
    let n = (0..2000).take_while(|&n| fits(n)).last().unwrap();
    assert!(n > 500, "{n} properties");
    let body = ready_with_many_properties(n);
    let mut wire = BytesMut::new();
    Frame::command(body).encode(&mut wire);
    let mut s = ZmtpSession::new(config(SocketType::Router), now);
    let mut input = BytesMut::from(&wire[..100]);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(s.incomplete_frame_len(), wire.len());
    assert!(s.incomplete_frame_len() as u64 <= MAX_COMMAND_LEN + 9);
    input.extend_from_slice(&wire[100..]);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(s.peer().map(|r| r.socket_type), Some(SocketType::Dealer));
}

#[test]
fn ready_properties_are_checked_for_duplicates_ignoring_case_in_linear_time() {
    // 100,000 distinct names: a check that scans the names seen so far for each one
    // (5 * 10^9 comparisons) would not finish in the time of a test.
    assert_eq!(
        Command::decode(ready_with_many_properties(100_000)),
        Ok(Command::Ready(Ready {
            socket_type: SocketType::Dealer,
            identity: Bytes::new()
        }))
    );
    let mut body = ready_with_many_properties(10_000).to_vec();
    body.extend_from_slice(b"\x06x-9999\x00\x00\x00\x00");
    assert_eq!(
        Command::decode(Bytes::from(body)),
        Err(CommandError::DuplicateProperty("x-9999".into()))
    );
    let unknown_twice = ready_body(&[("Socket-Type", b"PUB"), ("X-a", b""), ("x-A", b"1")]);
    assert_eq!(
        Command::decode(unknown_twice),
        Err(CommandError::DuplicateProperty("x-A".into()))
    );
}

#[test]
fn a_message_frame_before_ready_is_refused_at_its_first_byte() {
    let now = Instant::now();
    let mut s = ZmtpSession::new(config(SocketType::Rep), now);
    let err = s
        .handle_input(now, &mut BytesMut::from(&[frame::LONG][..]))
        .unwrap_err();
    assert_eq!(err, ZmtpError::Protocol("message before READY".into()));
}

#[test]
fn subscribe_and_cancel_from_a_peer_that_is_not_a_subscriber_are_refused() {
    let now = Instant::now();
    for (local, peer) in [
        (SocketType::Router, SocketType::Dealer),
        (SocketType::Sub, SocketType::Pub),
        (SocketType::Pair, SocketType::Pair),
    ] {
        for (command, name) in [
            (Command::Subscribe(Bytes::from_static(b"x")), "SUBSCRIBE"),
            (Command::Cancel(Bytes::new()), "CANCEL"),
        ] {
            let mut s = ready_session(local, peer, now);
            let err = s
                .handle_input(now, &mut command_bytes(command))
                .unwrap_err();
            assert_eq!(
                err,
                ZmtpError::Protocol(format!(
                    "{name} from a {peer} peer; only a SUB or XSUB peer of a PUB or XPUB socket subscribes"
                ))
            );
            assert!(s.recv().is_none());
            assert_eq!(
                all_bytes(&mut s, now),
                &encoded_command(&Command::Error(err.to_string()))[..]
            );
        }
    }
    // A long one is refused as soon as its name arrives, before its prefix is buffered.
    let mut s = ready_session(SocketType::Router, SocketType::Dealer, now);
    let mut input = BytesMut::new();
    frame::encode_header(&mut input, false, true, 1 << 20);
    input.extend_from_slice(b"\x09SUBSCRI");
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(
        s.incomplete_frame_len(),
        0,
        "no room for an unknown command"
    );
    input.extend_from_slice(b"BE");
    assert!(matches!(
        s.handle_input(now, &mut input),
        Err(ZmtpError::Protocol(m)) if m.starts_with("SUBSCRIBE from a DEALER peer")
    ));
}

#[test]
fn oversized_commands_other_than_subscriptions_are_refused_once_their_name_is_seen() {
    let now = Instant::now();
    for (name, wire_name) in [("PING", &b"\x04PING"[..]), ("HELLO", b"\x05HELLO")] {
        let mut s = ready_session(SocketType::Pub, SocketType::Sub, now);
        let mut input = BytesMut::new();
        frame::encode_header(&mut input, false, true, 100_000);
        input.extend_from_slice(&wire_name[..3]);
        s.handle_input(now, &mut input).unwrap();
        assert_eq!(s.incomplete_frame_len(), 0);
        input.extend_from_slice(&wire_name[3..]);
        assert_eq!(
            s.handle_input(now, &mut input),
            Err(ZmtpError::Protocol(format!(
                "{name} command of 100000 bytes; commands other than SUBSCRIBE and CANCEL may have at most {MAX_COMMAND_LEN} bytes"
            )))
        );
    }
    // A SUBSCRIBE may carry a long prefix (up to max_message_size) from a SUB peer.
    let mut s = ready_session(SocketType::Pub, SocketType::Sub, now);
    let prefix = vec![7u8; 100_000];
    let wire = encoded_command(&Command::Subscribe(Bytes::from(prefix.clone())));
    let mut input = BytesMut::from(&wire[..20]);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(s.incomplete_frame_len(), wire.len());
    input.extend_from_slice(&wire[20..]);
    s.handle_input(now, &mut input).unwrap();
    let expected = [&[1u8][..], &prefix].concat();
    assert_eq!(recv_all(&mut s), [Message::from(expected)]);
    // But no longer than max_message_size, short or long.
    for len in [1001, 100_000] {
        let mut cfg = config(SocketType::Pub);
        cfg.max_message_size = 1000;
        let mut s = ready_session_with(cfg, SocketType::Sub, now);
        let wire = encoded_command(&Command::Cancel(Bytes::from(vec![7u8; len])));
        assert_eq!(
            s.handle_input(now, &mut BytesMut::from(&wire[..])),
            Err(ZmtpError::MessageTooLarge {
                size: len as u64,
                max: 1000
            }),
            "{len}-byte prefix"
        );
    }
}

#[test]
fn an_unread_subscription_flood_is_held_back_at_the_recv_limit_and_resumes_once_read() {
    let now = Instant::now();
    let mut cfg = config(SocketType::Pub);
    cfg.recv_limit = 100;
    let mut s = ready_session_with(cfg, SocketType::Sub, now);
    // SUBSCRIBE and CANCEL commands, with ZMTP 3.0 subscription messages in between.
    let mut input = BytesMut::new();
    let mut expected = Vec::new();
    for i in 0..1000 {
        let prefix = Bytes::from(format!("topic-{i}"));
        match i % 3 {
            0 => input.extend_from_slice(&encoded_command(&Command::Subscribe(prefix.clone()))),
            1 => input.extend_from_slice(&encoded_command(&Command::Cancel(prefix.clone()))),
            _ => Frame::message(Bytes::from(format!("\x01topic-{i}")), false).encode(&mut input),
        }
        let flag = if i % 3 == 1 { "\x00" } else { "\x01" };
        expected.push(Message::from(format!("{flag}topic-{i}")));
    }
    s.handle_input(now, &mut input).unwrap();
    assert!(s.is_input_held_back() && !input.is_empty());
    assert_eq!(s.poll_event(), Some(ZmtpEvent::Readable));
    assert_eq!(
        s.poll_event(),
        None,
        "subscriptions wait in the inbox, not as events"
    );
    let mut got = Vec::new();
    for _ in 0..20 {
        let batch = recv_all(&mut s);
        assert!(batch.len() <= 100, "{} taken at once", batch.len());
        got.extend(batch);
        if input.is_empty() {
            break;
        }
        assert!(s.wants_input());
        s.handle_input(now, &mut input).unwrap();
    }
    got.extend(recv_all(&mut s));
    assert_eq!(got, expected, "all of them, in order");
    assert!(!s.is_input_held_back());
}

#[test]
fn subscriptions_count_against_the_inbox_bytes_like_messages() {
    let now = Instant::now();
    let mut cfg = config(SocketType::Pub);
    cfg.recv_bytes_limit = 64 * 1024;
    let mut s = ready_session_with(cfg, SocketType::Sub, now);
    let mut input = BytesMut::new();
    for i in 0..100u8 {
        input.extend_from_slice(&encoded_command(&Command::Subscribe(Bytes::from(vec![
            i;
            4000
        ]))));
    }
    s.handle_input(now, &mut input).unwrap();
    let one = limits::held_cost(4001);
    assert!(s.is_input_held_back());
    assert!(s.held_bytes() >= 64 * 1024 && s.held_bytes() < 64 * 1024 + one);
    // Taken until they hold the limit, no further.
    assert_eq!(recv_all(&mut s).len() as u64, (64 * 1024u64).div_ceil(one));
}

#[test]
fn received_frames_count_what_they_really_hold() {
    let now = Instant::now();
    // Ten one-byte messages cost 10 * 65 bytes, not 10.
    let mut cfg = config(SocketType::Pull);
    cfg.recv_bytes_limit = 10 * 65;
    let mut s = ready_session_with(cfg, SocketType::Push, now);
    let mut input = BytesMut::from(&b"\x00\x01x".repeat(20)[..]);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(s.held_bytes(), 10 * 65);
    assert_eq!(input.len(), 10 * 3);
    assert_eq!(recv_all(&mut s).len(), 10);
    assert_eq!(s.held_bytes(), 0);
    // A sliced body counts the read buffer it may keep alive.
    let mut s = ready_session(SocketType::Pull, SocketType::Push, now);
    let mut input = BytesMut::new();
    Frame::message(Bytes::from(vec![1u8; limits::COPY_BELOW]), false).encode(&mut input);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(s.held_bytes(), limits::held_cost(limits::COPY_BELOW));
    assert!(s.held_bytes() > (limits::COPY_BELOW as u64) + limits::SLICE_PIN);
    // And so does the message still in progress.
    let mut input = BytesMut::from(&b"\x01\x00\x01\x00"[..]);
    s.handle_input(now, &mut input).unwrap();
    assert_eq!(
        s.held_bytes(),
        limits::held_cost(limits::COPY_BELOW) + 2 * limits::FRAME_OVERHEAD
    );
}

// ----- CURVE -----

mod curve {
    use std::sync::Arc;

    use super::*;
    use crate::curve::{client_random, server_random, KeyPair, PublicKey};
    use crate::options::SharedAuthorizer;
    use crate::proto::curve::{ClientConfig, CurveError, ServerConfig};

    fn server_setup(keys: &KeyPair, allow: Option<Vec<PublicKey>>) -> CurveSetup {
        CurveSetup::Server {
            config: ServerConfig {
                secret_key: keys.secret().as_crypto().clone(),
                public_key: *keys.public().as_bytes(),
                metadata: Bytes::new(),
            },
            random: server_random(),
            authorizer: allow.map(|keys| {
                let list: crate::curve::AllowList = keys.into_iter().collect();
                SharedAuthorizer(Arc::new(list))
            }),
        }
    }

    fn client_setup(keys: &KeyPair, server: &PublicKey) -> CurveSetup {
        CurveSetup::Client {
            config: ClientConfig {
                server_key: *server.as_bytes(),
                secret_key: keys.secret().as_crypto().clone(),
                public_key: *keys.public().as_bytes(),
                metadata: Bytes::new(),
            },
            random: client_random(),
        }
    }

    /// A CURVE client session `a` of type `a_type` and a server `b`, handshaken.
    fn curve_pair(a_type: SocketType, b_type: SocketType, a: CurveSetup, b: CurveSetup) -> Pair {
        let now = Instant::now();
        let mut pair = Pair {
            a: ZmtpSession::with_curve(config(a_type), a, now),
            b: ZmtpSession::with_curve(config(b_type), b, now),
            now,
            a_events: vec![],
            b_events: vec![],
            a_in: BytesMut::new(),
            b_in: BytesMut::new(),
            b_to_a: true,
        };
        pair.drive();
        pair
    }

    #[test]
    fn curve_sessions_handshake_then_carry_messages_and_subscriptions_only_in_boxes() {
        let (server, client) = (KeyPair::generate(), KeyPair::generate());
        let mut p = curve_pair(
            SocketType::Sub,
            SocketType::Pub,
            client_setup(&client, server.public()),
            server_setup(&server, Some(vec![*client.public()])),
        );
        assert!(p.a_events.contains(&ZmtpEvent::Ready {
            socket_type: SocketType::Pub,
            identity: Bytes::new()
        }));
        assert!(p.b_events.contains(&ZmtpEvent::Ready {
            socket_type: SocketType::Sub,
            identity: Bytes::new()
        }));
        // The subscription travels in a box: the publisher sees it, the wire does not.
        p.a.subscribe(Bytes::from_static(b"weather"));
        let mut t = Transmit::new();
        assert!(p.a.poll_transmit(p.now, &mut t));
        let wire = t.concat();
        assert!(
            !wire.windows(7).any(|w| w == b"weather"),
            "plaintext on the wire"
        );
        assert_eq!(
            wire[0], 0x00,
            "MESSAGE in a frame without COMMAND, as libzmq"
        );
        p.b_in.extend_from_slice(&wire);
        p.b.handle_input(p.now, &mut p.b_in).unwrap();
        assert_eq!(recv_all(&mut p.b), [Message::from(&b"\x01weather"[..])]);
        // A multi-frame message, and a large one (opened in place).
        p.b.send(Message::from(vec![
            Bytes::from_static(b"weather"),
            Bytes::from(vec![7u8; 100_000]),
        ]));
        p.drive();
        let got = recv_all(&mut p.a);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].frames()[0], Bytes::from_static(b"weather"));
        assert_eq!(got[0].frames()[1].len(), 100_000);
        // Heartbeats keep working inside boxes.
        p.advance_to_next_timer();
        assert!(p.a.error().is_none() && p.b.error().is_none());
    }

    #[test]
    fn a_client_not_on_the_allow_list_gets_error_400_and_the_server_names_its_key() {
        let (server, client) = (KeyPair::generate(), KeyPair::generate());
        let p = curve_pair(
            SocketType::Req,
            SocketType::Rep,
            client_setup(&client, server.public()),
            server_setup(&server, Some(vec![])),
        );
        assert_eq!(
            p.b.error(),
            Some(&ZmtpError::Curve(CurveError::Refused {
                client_key: client.public().to_string()
            }))
        );
        assert_eq!(
            p.a.error(),
            Some(&ZmtpError::Curve(CurveError::Peer {
                reason: "400".into()
            }))
        );
        assert!(p.a.is_closed() && p.b.is_closed());
    }

    #[test]
    fn a_client_with_the_wrong_server_key_is_told_its_hello_did_not_open() {
        let (server, client) = (KeyPair::generate(), KeyPair::generate());
        let p = curve_pair(
            SocketType::Req,
            SocketType::Rep,
            client_setup(&client, KeyPair::generate().public()),
            server_setup(&server, None),
        );
        assert_eq!(
            p.b.error(),
            Some(&ZmtpError::Curve(CurveError::BadBox("HELLO")))
        );
        let Some(ZmtpError::Curve(CurveError::Peer { reason })) = p.a.error() else {
            panic!("client error {:?}", p.a.error());
        };
        assert!(
            reason.contains("HELLO box failed authentication"),
            "{reason}"
        );
    }

    #[test]
    fn incompatible_socket_types_are_refused_after_the_handshake() {
        let (server, client) = (KeyPair::generate(), KeyPair::generate());
        let p = curve_pair(
            SocketType::Push,
            SocketType::Rep,
            client_setup(&client, server.public()),
            server_setup(&server, None),
        );
        assert!(matches!(
            p.b.error(),
            Some(ZmtpError::IncompatiblePeer { .. })
        ));
        assert!(p.a.error().is_some(), "the client hears the ERROR in a box");
    }

    #[test]
    fn a_modified_or_replayed_box_ends_the_connection_and_yields_nothing() {
        for replay in [false, true] {
            let (server, client) = (KeyPair::generate(), KeyPair::generate());
            let mut p = curve_pair(
                SocketType::Dealer,
                SocketType::Router,
                client_setup(&client, server.public()),
                server_setup(&server, None),
            );
            p.a.send(Message::from(&b"secret"[..]));
            let mut t = Transmit::new();
            p.a.poll_transmit(p.now, &mut t);
            let mut wire = t.concat();
            if replay {
                p.b_in.extend_from_slice(&wire);
                p.b.handle_input(p.now, &mut p.b_in).unwrap();
                assert_eq!(recv_all(&mut p.b).len(), 1);
            } else {
                let last = wire.len() - 1;
                wire[last] ^= 1;
            }
            p.b_in.extend_from_slice(&wire);
            let err = p.b.handle_input(p.now, &mut p.b_in).unwrap_err();
            if replay {
                assert!(matches!(
                    err,
                    ZmtpError::Curve(CurveError::ReplayedNonce { .. })
                ));
            } else {
                assert_eq!(err, ZmtpError::Curve(CurveError::BadBox("MESSAGE")));
            }
            assert!(recv_all(&mut p.b).is_empty());
        }
    }

    #[test]
    fn a_box_over_the_message_limit_is_refused_from_its_header_before_it_is_buffered() {
        let (server, client) = (KeyPair::generate(), KeyPair::generate());
        let mut p = curve_pair(
            SocketType::Dealer,
            SocketType::Router,
            client_setup(&client, server.public()),
            server_setup(&server, None),
        );
        let max = config(SocketType::Router).max_message_size;
        let mut header = BytesMut::new();
        frame::encode_header(&mut header, false, false, (max + 100) as usize);
        let err = p.b.handle_input(p.now, &mut header).unwrap_err();
        assert!(matches!(err, ZmtpError::MessageTooLarge { .. }), "{err}");
        assert_eq!(p.b.incomplete_frame_len(), 0, "nothing reserved for it");
    }
}
