//! The ZMTP codecs and session core, driven in memory with virtual time.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::command::{Command, CommandError, Ready, MAX_PING_CONTEXT};
use super::frame;
use super::frame::{Frame, FrameError};
use crate::SocketType;

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

/// Decodes until the input runs out or fails; the buffer never grows past what a frame
/// within `max` needs (allowing the allocator's doubling), and an error reserves nothing.
fn check_decoder_bounds(mut buf: BytesMut, max: u64) -> Result<(), TestCaseError> {
    let start_cap = buf.capacity();
    loop {
        let cap = buf.capacity();
        let len = buf.len();
        match Frame::decode(&mut buf, max) {
            Ok(Some(frame)) => prop_assert!(frame.body.len() as u64 <= max),
            Ok(None) => break,
            Err(_) => {
                prop_assert_eq!((buf.len(), buf.capacity()), (len, cap));
                break;
            }
        }
    }
    let limit = usize::try_from(max)
        .unwrap_or(usize::MAX)
        .min(frame::MAX_RESERVE);
    let bound = start_cap.max(limit.saturating_add(9).saturating_mul(2));
    prop_assert!(
        buf.capacity() <= bound,
        "capacity {} > {}",
        buf.capacity(),
        bound
    );
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
fn a_huge_claim_under_a_huge_limit_reserves_a_bounded_amount() {
    let mut buf = BytesMut::from(&[0x02, 0x40, 0, 0, 0, 0, 0, 0, 0][..]);
    assert_eq!(Frame::decode(&mut buf, u64::MAX), Ok(None));
    assert!(buf.capacity() <= 2 * (9 + frame::MAX_RESERVE));
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
fn a_body_is_split_off_without_copying() {
    let mut buf = BytesMut::new();
    Frame::message(Bytes::from(vec![9u8; 1000]), false).encode(&mut buf);
    let body_at = buf.as_ptr() as usize + 9;
    let frame = Frame::decode(&mut buf, 1000).unwrap().unwrap();
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
fn ready_ignores_unknown_properties_and_reads_xsub_as_sub() {
    let body = ready_body(&[
        ("X-Custom", b"value"),
        ("socket-type", b"XSUB"),
        ("IDENTITY", b"me"),
    ]);
    assert_eq!(
        Command::decode(body).unwrap(),
        Command::Ready(Ready {
            socket_type: SocketType::Sub,
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
