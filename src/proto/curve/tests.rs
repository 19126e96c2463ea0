//! The CURVE cores driven against each other in memory, and against hostile bytes.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::proto::zmtp::frame::Frame;

/// Deterministic "random" bytes for one connection.
fn bytes32(seed: u8, salt: u8) -> [u8; 32] {
    std::array::from_fn(|i| {
        seed.wrapping_mul(31)
            .wrapping_add(salt)
            .wrapping_add(i as u8 * 7)
    })
}

fn bytes16(seed: u8, salt: u8) -> [u8; 16] {
    std::array::from_fn(|i| {
        seed.wrapping_mul(17)
            .wrapping_add(salt)
            .wrapping_add(i as u8 * 3)
    })
}

/// The server's long-term secret of these tests.
fn server_secret() -> crypto_box::SecretKey {
    crypto_box::SecretKey::from(bytes32(200, 1))
}

fn client_secret() -> crypto_box::SecretKey {
    crypto_box::SecretKey::from(bytes32(100, 2))
}

/// Encoded ZMTP properties, as the ZMTP session would supply them.
fn properties(socket_type: &str) -> Bytes {
    let mut p = Vec::new();
    p.push(11);
    p.extend_from_slice(b"Socket-Type");
    p.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
    p.extend_from_slice(socket_type.as_bytes());
    Bytes::from(p)
}

fn client_with(server_key: KeyBytes, seed: u8) -> CurveClient {
    CurveClient::new(
        ClientConfig {
            server_key,
            secret_key: client_secret(),
            public_key: *client_secret().public_key().as_bytes(),
            metadata: properties("REQ"),
        },
        ClientRandom {
            short_secret: bytes32(seed, 3),
            vouch_nonce: bytes16(seed, 4),
        },
    )
}

fn client(seed: u8) -> CurveClient {
    client_with(*server_secret().public_key().as_bytes(), seed)
}

fn server(seed: u8) -> CurveServer {
    CurveServer::new(
        ServerConfig {
            secret_key: server_secret(),
            public_key: *server_secret().public_key().as_bytes(),
            metadata: properties("REP"),
        },
        ServerRandom {
            short_secret: bytes32(seed, 5),
            cookie_key: bytes32(seed, 6),
            cookie_nonce: bytes16(seed, 7),
            welcome_nonce: bytes16(seed, 8),
        },
    )
}

/// Everything a core has to transmit, as wire bytes.
fn drain_client(c: &mut CurveClient) -> BytesMut {
    let mut out = BytesMut::new();
    while c.poll_transmit(&mut out) {}
    out
}

fn drain_server(s: &mut CurveServer) -> BytesMut {
    let mut out = BytesMut::new();
    while s.poll_transmit(&mut out) {}
    out
}

/// The body of the single command frame in `wire`.
fn body_of(wire: &BytesMut) -> Bytes {
    let mut buf = wire.clone();
    let frame = Frame::decode(&mut buf, u64::MAX).unwrap().unwrap();
    assert!(frame.command, "handshake commands travel in COMMAND frames");
    assert!(buf.is_empty(), "one frame");
    frame.body
}

/// A command body framed as a COMMAND frame.
fn framed(body: &[u8]) -> BytesMut {
    let mut out = BytesMut::new();
    put_command_frame(&mut out, body);
    out
}

/// The four handshake commands of one connection, as bodies.
struct Transcript {
    hello: Bytes,
    welcome: Bytes,
    initiate: Bytes,
    ready: Bytes,
}

/// Runs a whole handshake (the server accepts) and returns both codecs and the bodies.
fn handshake(c: &mut CurveClient, s: &mut CurveServer) -> (CurveCodec, CurveCodec, Transcript) {
    let hello = drain_client(c);
    s.handle_input(&mut hello.clone()).unwrap();
    let welcome = drain_server(s);
    c.handle_input(&mut welcome.clone()).unwrap();
    let initiate = drain_client(c);
    s.handle_input(&mut initiate.clone()).unwrap();
    assert_eq!(
        s.poll_event(),
        Some(CurveEvent::Authorize {
            client_key: *client_secret().public_key().as_bytes()
        })
    );
    assert!(
        drain_server(s).is_empty(),
        "nothing is sent before the authorizer answers"
    );
    assert!(s.accept());
    let ready = drain_server(s);
    c.handle_input(&mut ready.clone()).unwrap();
    let transcript = Transcript {
        hello: body_of(&hello),
        welcome: body_of(&welcome),
        initiate: body_of(&initiate),
        ready: body_of(&ready),
    };
    (c.take_codec().unwrap(), s.take_codec().unwrap(), transcript)
}

#[test]
fn full_handshake_exchanges_metadata_keys_and_commands_of_libzmq_sizes() {
    let (mut c, mut s) = (client(1), server(1));
    let (_, _, t) = handshake(&mut c, &mut s);
    assert_eq!(t.hello.len(), 200);
    assert_eq!(&t.hello[..8], b"\x05HELLO\x01\x00");
    assert!(
        t.hello[8..80].iter().all(|&b| b == 0),
        "72 bytes of padding"
    );
    assert_eq!(t.welcome.len(), 168);
    let md = properties("REQ").len();
    assert_eq!(t.initiate.len(), 257 + md);
    assert_eq!(t.ready.len(), 30 + properties("REP").len());
    assert_eq!(
        s.poll_event(),
        Some(CurveEvent::Ready {
            metadata: properties("REQ"),
            peer_key: *client_secret().public_key().as_bytes(),
        })
    );
    assert_eq!(
        c.poll_event(),
        Some(CurveEvent::Ready {
            metadata: properties("REP"),
            peer_key: *server_secret().public_key().as_bytes(),
        })
    );
    assert!(c.is_done() && s.is_done());
    assert_eq!(c.take_codec().map(|_| ()), None, "the codec is taken once");
}

#[test]
fn nonces_continue_from_the_handshake_in_both_directions() {
    let (mut c, mut s) = (client(2), server(2));
    let (mut cc, mut sc, t) = handshake(&mut c, &mut s);
    assert_eq!(&t.hello[112..120], &1u64.to_be_bytes(), "HELLO is 1");
    assert_eq!(&t.initiate[105..113], &2u64.to_be_bytes(), "INITIATE is 2");
    assert_eq!(&t.ready[6..14], &1u64.to_be_bytes(), "READY is 1");
    assert_eq!((cc.next_nonce(), cc.peer_nonce()), (3, 1));
    assert_eq!((sc.next_nonce(), sc.peer_nonce()), (2, 2));

    for i in 0..3u64 {
        let mut body = BytesMut::new();
        cc.encrypt(FLAG_MORE, format!("request {i}").as_bytes(), &mut body)
            .unwrap();
        assert_eq!(&body[..8], b"\x07MESSAGE");
        assert_eq!(&body[8..16], &(3 + i).to_be_bytes());
        assert_eq!(body.len(), MESSAGE_OVERHEAD + 9);
        let got = sc.decrypt(&body).unwrap();
        assert_eq!(got.flags, FLAG_MORE);
        assert_eq!(got.data, format!("request {i}").as_bytes());

        let mut body = BytesMut::new();
        sc.encrypt(FLAG_COMMAND, b"\x04PING\x00\x00", &mut body)
            .unwrap();
        assert_eq!(&body[8..16], &(2 + i).to_be_bytes());
        let got = cc.decrypt_in_place(body).unwrap();
        assert_eq!(
            (got.flags, &got.data[..]),
            (FLAG_COMMAND, &b"\x04PING\x00\x00"[..])
        );
    }
    // Empty payloads are boxes too.
    let mut body = BytesMut::new();
    cc.encrypt(0, b"", &mut body).unwrap();
    assert_eq!(
        sc.decrypt(&body).unwrap(),
        Plaintext {
            flags: 0,
            data: Bytes::new()
        }
    );
}

#[test]
fn message_frames_carry_no_flags_on_the_zmtp_frame() {
    let (mut c, mut s) = (client(3), server(3));
    let (mut cc, mut sc, _) = handshake(&mut c, &mut s);
    let mut wire = BytesMut::new();
    cc.encrypt_frame(FLAG_MORE, b"part", &mut wire).unwrap();
    assert_eq!(
        wire[0], 0x00,
        "libzmq sends MESSAGE without MORE or COMMAND"
    );
    let frame = Frame::decode(&mut wire, u64::MAX).unwrap().unwrap();
    assert!(!frame.command && !frame.more);
    assert_eq!(sc.decrypt(&frame.body).unwrap().flags, FLAG_MORE);
}

#[test]
fn handshake_survives_every_split_of_the_input_and_leaves_what_follows() {
    let (mut c, mut s) = (client(4), server(4));
    // Feed the server HELLO one byte at a time.
    let hello = drain_client(&mut c);
    let mut buf = BytesMut::new();
    for &b in hello.iter() {
        buf.extend_from_slice(&[b]);
        s.handle_input(&mut buf).unwrap();
    }
    assert!(buf.is_empty());
    // WELCOME in two pieces, split in the header, the name, each field and the box, to
    // fresh clients of the same keys.
    let welcome = drain_server(&mut s);
    for split in [0, 1, 2, 3, 9, 10, 25, 26, 27, 100, 169, 170] {
        let mut c2 = client(4);
        let _ = drain_client(&mut c2);
        let mut buf = BytesMut::from(&welcome[..split]);
        c2.handle_input(&mut buf).unwrap();
        buf.extend_from_slice(&welcome[split..]);
        c2.handle_input(&mut buf).unwrap();
        assert!(c2.error().is_none());
        assert_eq!(
            body_of(&drain_client(&mut c2))[..9],
            *b"\x08INITIATE",
            "split at {split}"
        );
    }
    c.handle_input(&mut welcome.clone()).unwrap();
    let initiate = drain_client(&mut c);
    s.handle_input(&mut initiate.clone()).unwrap();
    assert!(s.accept());
    // READY followed by a MESSAGE frame in one read: the MESSAGE stays in the buffer.
    let mut sc = s.take_codec().unwrap();
    let mut wire = drain_server(&mut s);
    sc.encrypt_frame(0, b"after", &mut wire).unwrap();
    c.handle_input(&mut wire).unwrap();
    let frame = Frame::decode(&mut wire, u64::MAX).unwrap().unwrap();
    let mut cc = c.take_codec().unwrap();
    assert_eq!(cc.decrypt(&frame.body).unwrap().data, "after");
}

#[test]
fn a_client_with_the_wrong_server_key_is_refused_at_hello() {
    let other = *crypto_box::SecretKey::from([9; 32]).public_key().as_bytes();
    let (mut c, mut s) = (client_with(other, 5), server(5));
    let err = s.handle_input(&mut drain_client(&mut c)).unwrap_err();
    assert_eq!(err, CurveError::BadBox("HELLO"));
    assert!(err.to_string().contains("another server key"));
    assert!(drain_server(&mut s).is_empty(), "no WELCOME");
    assert_eq!(s.error(), Some(&err));
}

#[test]
fn a_client_refuses_a_welcome_it_cannot_open() {
    let (mut c, mut s) = (client(6), server(6));
    s.handle_input(&mut drain_client(&mut c)).unwrap();
    let mut welcome = drain_server(&mut s);
    let last = welcome.len() - 1;
    welcome[last] ^= 1;
    let err = c.handle_input(&mut welcome).unwrap_err();
    assert_eq!(err, CurveError::BadBox("WELCOME"));
    assert!(drain_client(&mut c).is_empty(), "no INITIATE");
}

#[test]
fn a_client_refused_by_the_authorizer_gets_error_400() {
    let (mut c, mut s) = (client(7), server(7));
    s.handle_input(&mut drain_client(&mut c)).unwrap();
    c.handle_input(&mut drain_server(&mut s)).unwrap();
    s.handle_input(&mut drain_client(&mut c)).unwrap();
    assert!(matches!(s.poll_event(), Some(CurveEvent::Authorize { .. })));
    assert!(s.refuse());
    assert!(!s.accept(), "refused is final");
    let client_key = z85::encode_key(client_secret().public_key().as_bytes());
    assert_eq!(s.error(), Some(&CurveError::Refused { client_key }));
    assert!(s.take_codec().is_none());
    let error = drain_server(&mut s);
    assert_eq!(&body_of(&error)[..], b"\x05ERROR\x03400");
    let err = c.handle_input(&mut error.clone()).unwrap_err();
    assert_eq!(
        err,
        CurveError::Peer {
            reason: "400".into()
        }
    );
    assert!(c.take_codec().is_none());
}

#[test]
fn accept_and_refuse_do_nothing_before_the_client_is_known() {
    let mut s = server(8);
    assert!(!s.accept());
    assert!(!s.refuse());
    assert!(drain_server(&mut s).is_empty());
    assert!(s.error().is_none());
}

#[test]
fn a_replayed_or_reordered_message_is_refused() {
    let (mut c, mut s) = (client(9), server(9));
    let (mut cc, mut sc, _) = handshake(&mut c, &mut s);
    let mut first = BytesMut::new();
    cc.encrypt(0, b"one", &mut first).unwrap();
    let mut second = BytesMut::new();
    cc.encrypt(0, b"two", &mut second).unwrap();
    assert_eq!(sc.decrypt(&first).unwrap().data, "one");
    assert_eq!(
        sc.decrypt(&first),
        Err(CurveError::ReplayedNonce {
            command: "MESSAGE",
            nonce: 3,
            last: 3
        })
    );
    assert_eq!(sc.decrypt(&second).unwrap().data, "two");
    let mut third = BytesMut::new();
    cc.encrypt(0, b"three", &mut third).unwrap();
    let mut fourth = BytesMut::new();
    cc.encrypt(0, b"four", &mut fourth).unwrap();
    assert_eq!(sc.decrypt(&fourth).unwrap().data, "four");
    assert_eq!(
        sc.decrypt(&third),
        Err(CurveError::ReplayedNonce {
            command: "MESSAGE",
            nonce: 5,
            last: 6
        })
    );
    // A server MESSAGE with nonce 1 (the READY's) is a replay too.
    let mut body = BytesMut::new();
    sc.encrypt(0, b"x", &mut body).unwrap();
    body[8..16].copy_from_slice(&1u64.to_be_bytes());
    assert!(matches!(
        cc.decrypt(&body),
        Err(CurveError::ReplayedNonce {
            nonce: 1,
            last: 1,
            ..
        })
    ));
}

#[test]
fn every_modified_byte_of_a_message_is_refused_and_changes_nothing() {
    let (mut c, mut s) = (client(10), server(10));
    let (mut cc, mut sc, _) = handshake(&mut c, &mut s);
    let mut body = BytesMut::new();
    cc.encrypt(FLAG_MORE, b"secret payload", &mut body).unwrap();
    for i in 0..body.len() {
        for bit in [0x01, 0x80] {
            let mut bad = body.clone();
            bad[i] ^= bit;
            let err = sc.decrypt(&bad).unwrap_err();
            match i {
                0..=7 => assert!(
                    matches!(err, CurveError::UnexpectedCommand { .. }),
                    "{i}: {err}"
                ),
                _ => assert!(
                    matches!(
                        err,
                        CurveError::BadBox("MESSAGE") | CurveError::ReplayedNonce { .. }
                    ),
                    "{i}: {err}"
                ),
            }
            assert_eq!(sc.peer_nonce(), 2, "a refused box moves no nonce");
        }
    }
    assert_eq!(sc.decrypt(&body).unwrap().data, "secret payload");
}

#[test]
fn truncated_and_oversized_commands_are_refused_by_size() {
    // HELLO one byte short.
    let mut c = client(11);
    let hello = body_of(&drain_client(&mut c));
    let err = server(11)
        .handle_input(&mut framed(&hello[..199]))
        .unwrap_err();
    assert_eq!(
        err,
        CurveError::WrongSize {
            command: "HELLO",
            size: 199,
            expected: "exactly",
            limit: 200
        }
    );
    // A frame header claiming more than the handshake limit: refused before its body.
    let mut header = BytesMut::new();
    crate::proto::zmtp::frame::encode_header(&mut header, false, true, 1 << 20);
    let err = server(11).handle_input(&mut header).unwrap_err();
    assert!(matches!(err, CurveError::Frame(_)), "{err}");
    // INITIATE one byte short of its minimum.
    let mut s = server(11);
    s.handle_input(&mut framed(&hello)).unwrap();
    let mut short = b"\x08INITIATE".to_vec();
    short.resize(256, 0);
    assert_eq!(
        s.handle_input(&mut framed(&short)).unwrap_err(),
        CurveError::WrongSize {
            command: "INITIATE",
            size: 256,
            expected: "at least",
            limit: 257
        }
    );
    // WELCOME one byte long, READY and MESSAGE too short, ERROR whose reason overruns.
    let mut c = client(12);
    let _ = drain_client(&mut c);
    let mut long = b"\x07WELCOME".to_vec();
    long.resize(169, 0);
    assert!(matches!(
        c.handle_command(&long),
        Err(CurveError::WrongSize { size: 169, .. })
    ));
    let mut c = client(12);
    assert!(matches!(
        c.handle_command(b"\x05ERROR\x09short"),
        Err(CurveError::WrongSize {
            command: "ERROR",
            ..
        })
    ));
    let (mut c, mut s) = (client(13), server(13));
    let (mut cc, _, _) = handshake(&mut c, &mut s);
    assert!(matches!(
        cc.decrypt(&[b"\x07MESSAGE".as_slice(), &[0; 24]].concat()),
        Err(CurveError::WrongSize {
            command: "MESSAGE",
            size: 32,
            ..
        })
    ));
}

#[test]
fn commands_out_of_order_are_refused_by_name() {
    // The server expects HELLO first.
    let mut s = server(14);
    let mut initiate = b"\x08INITIATE".to_vec();
    initiate.resize(300, 0);
    assert_eq!(
        s.handle_input(&mut framed(&initiate)).unwrap_err(),
        CurveError::UnexpectedCommand {
            expected: "HELLO",
            got: "INITIATE".into()
        }
    );
    // A second HELLO where INITIATE belongs.
    let (mut c, mut s) = (client(15), server(15));
    let hello = drain_client(&mut c);
    s.handle_input(&mut hello.clone()).unwrap();
    assert_eq!(
        s.handle_input(&mut hello.clone()).unwrap_err(),
        CurveError::UnexpectedCommand {
            expected: "INITIATE",
            got: "HELLO".into()
        }
    );
    // The client expects WELCOME first, not READY.
    let mut c = client(16);
    let mut ready = b"\x05READY".to_vec();
    ready.resize(40, 0);
    assert_eq!(
        c.handle_command(&ready).unwrap_err(),
        CurveError::UnexpectedCommand {
            expected: "WELCOME",
            got: "READY".into()
        }
    );
    // Handshake commands only in COMMAND frames.
    let mut c = client(17);
    let mut s = server(17);
    let hello = body_of(&drain_client(&mut c));
    let mut wire = BytesMut::new();
    crate::proto::zmtp::frame::encode_header(&mut wire, false, false, hello.len());
    wire.extend_from_slice(&hello);
    assert_eq!(
        s.handle_input(&mut wire).unwrap_err(),
        CurveError::NotACommand
    );
    // A failed core stays failed.
    assert_eq!(
        s.handle_input(&mut framed(&hello)).unwrap_err(),
        CurveError::NotACommand
    );
}

#[test]
fn a_version_other_than_1_0_is_refused() {
    let mut c = client(18);
    let mut hello = body_of(&drain_client(&mut c)).to_vec();
    hello[7] = 1;
    assert_eq!(
        server(18).handle_command(&hello).unwrap_err(),
        CurveError::Version { major: 1, minor: 1 }
    );
}

#[test]
fn an_initiate_replayed_on_another_connection_fails_on_its_cookie() {
    // Connection A completes its handshake; its INITIATE is replayed to connection B of
    // the same server key (B has its own cookie key, as in libzmq).
    let (mut c, mut s) = (client(19), server(19));
    let (_, _, t) = handshake(&mut c, &mut s);
    let mut b = server(20);
    b.handle_command(&t.hello).unwrap();
    assert_eq!(
        b.handle_command(&t.initiate).unwrap_err(),
        CurveError::BadBox("cookie")
    );
}

#[test]
fn an_initiate_whose_nonce_does_not_follow_hello_is_refused() {
    let (mut c, mut s) = (client(21), server(21));
    s.handle_input(&mut drain_client(&mut c)).unwrap();
    c.handle_input(&mut drain_server(&mut s)).unwrap();
    let mut initiate = body_of(&drain_client(&mut c)).to_vec();
    initiate[105..113].copy_from_slice(&1u64.to_be_bytes());
    assert_eq!(
        s.handle_command(&initiate).unwrap_err(),
        CurveError::ReplayedNonce {
            command: "INITIATE",
            nonce: 1,
            last: 1
        }
    );
}

/// The transcript of one handshake of `client(32)` and `server(32)`, computed once (an
/// X25519 operation takes milliseconds in a debug build).
fn transcript() -> &'static Transcript {
    static ONCE: std::sync::OnceLock<Transcript> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| handshake(&mut client(32), &mut server(32)).2)
}

/// Positions worth modifying in a command of `len` bytes: the name, the edges of every
/// field (`cuts`), and a stride through the rest.
fn positions(len: usize, cuts: &[usize]) -> Vec<usize> {
    let mut at: Vec<usize> = (0..len).step_by(13).collect();
    for &c in cuts {
        at.extend([c.saturating_sub(1), c].into_iter().filter(|&i| i < len));
    }
    at.extend([len - 1]);
    at.sort_unstable();
    at.dedup();
    at
}

#[test]
fn modified_bytes_of_every_handshake_command_are_refused() {
    let t = transcript();
    // HELLO: bytes 8..80 are padding, which libzmq does not check either.
    for i in positions(t.hello.len(), &[6, 8, 80, 112, 120, 136]) {
        if (8..80).contains(&i) {
            continue;
        }
        let mut bad = t.hello.to_vec();
        bad[i] ^= 0x20;
        assert!(server(32).handle_command(&bad).is_err(), "HELLO byte {i}");
    }
    for i in positions(t.welcome.len(), &[8, 24, 40]) {
        let mut bad = t.welcome.to_vec();
        bad[i] ^= 0x20;
        assert!(client(32).handle_command(&bad).is_err(), "WELCOME byte {i}");
    }
    for i in positions(t.initiate.len(), &[9, 25, 105, 113, 129]) {
        let mut bad = t.initiate.to_vec();
        bad[i] ^= 0x20;
        let mut s = server(32);
        s.handle_command(&t.hello).unwrap();
        assert!(s.handle_command(&bad).is_err(), "INITIATE byte {i}");
        assert!(
            s.poll_event().is_none(),
            "no Authorize for a modified INITIATE"
        );
    }
    let mut c = client(32);
    c.handle_command(&t.welcome).unwrap();
    for i in positions(t.ready.len(), &[6, 14, 30]) {
        let mut bad = t.ready.to_vec();
        bad[i] ^= 0x20;
        // A refused READY fails the core: try each on a copy of the state.
        let mut c = client(32);
        c.handle_command(&t.welcome).unwrap();
        assert!(c.handle_command(&bad).is_err(), "READY byte {i}");
        assert!(c.poll_event().is_none(), "no Ready for a modified READY");
    }
    assert!(
        c.handle_command(&t.ready).is_ok(),
        "the genuine READY opens"
    );
}

thread_local! {
    /// A client and a server codec of one connection, shared by the cases of a property
    /// test (a handshake per case would cost seconds in a debug build); each case
    /// continues the nonces of the last.
    static CODECS: std::cell::RefCell<(CurveCodec, CurveCodec)> = std::cell::RefCell::new({
        let c_short = crypto_box::SecretKey::from(bytes32(33, 3));
        let s_short = crypto_box::SecretKey::from(bytes32(33, 5));
        (
            CurveCodec::new(salsa_box(s_short.public_key().as_bytes(), &c_short), true, 3, 1),
            CurveCodec::new(salsa_box(c_short.public_key().as_bytes(), &s_short), false, 2, 2),
        )
    });
}

/// Length fields biased to the edges, as STYLE.md asks.
fn edge_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(1),
        Just(6),
        Just(7),
        Just(29),
        Just(30),
        Just(32),
        Just(33),
        Just(167),
        Just(168),
        Just(169),
        Just(199),
        Just(200),
        Just(201),
        Just(256),
        Just(257),
        0usize..400,
    ]
}

/// A command body of `len` bytes starting with one of the CURVE names (or none).
fn command_body() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            Just(&b""[..]),
            Just(command::HELLO),
            Just(command::WELCOME),
            Just(command::INITIATE),
            Just(command::READY),
            Just(command::ERROR),
            Just(command::MESSAGE),
        ],
        edge_len(),
        any::<u64>(),
    )
        .prop_map(|(name, len, seed)| {
            let mut body = name.to_vec();
            let mut x = seed;
            while body.len() < len {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                body.push((x >> 56) as u8);
            }
            body.truncate(len); // a name cut short when len is below its length
            body
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_frames_never_panic_either_core(
        bodies in proptest::collection::vec(command_body(), 1..4),
        raw in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut s = server(30);
        let mut c = client(30);
        for body in &bodies {
            let _ = s.handle_input(&mut framed(body));
            let _ = c.handle_input(&mut framed(body));
            prop_assert!(s.poll_event().is_none(), "no Authorize from random bytes");
            prop_assert!(c.poll_event().is_none(), "no Ready from random bytes");
        }
        let _ = server(31).handle_input(&mut BytesMut::from(&raw[..]));
        let _ = client(31).handle_input(&mut BytesMut::from(&raw[..]));
    }

    #[test]
    fn mutated_handshakes_never_panic_and_never_complete(
        which in 0usize..4,
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let t = transcript();
        let original = [&t.hello, &t.welcome, &t.initiate, &t.ready][which];
        let mut bad = original.to_vec();
        if truncate {
            bad.truncate(cut.index(bad.len()));
        } else {
            let i = at.index(bad.len());
            if which == 0 && (8..80).contains(&i) {
                return Ok(()); // HELLO padding is not checked (as in libzmq)
            }
            bad[i] ^= xor;
        }
        let completed = match which {
            0 => {
                let mut s = server(32);
                s.handle_command(&bad).is_ok()
            }
            1 => client(32).handle_command(&bad).is_ok(),
            2 => {
                let mut s = server(32);
                s.handle_command(&t.hello).unwrap();
                let ok = s.handle_command(&bad).is_ok();
                ok || s.poll_event().is_some()
            }
            _ => {
                let mut c = client(32);
                c.handle_command(&t.welcome).unwrap();
                let _ = drain_client(&mut c);
                let ok = c.handle_command(&bad).is_ok();
                ok || c.take_codec().is_some()
            }
        };
        prop_assert!(!completed, "a mutated {} was accepted", which);
    }

    #[test]
    fn mutated_messages_never_yield_plaintext(
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        random in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        CODECS.with_borrow_mut(|(cc, sc)| {
        let mut body = BytesMut::new();
        cc.encrypt(0, &payload, &mut body).unwrap();
        let mut bad = body.to_vec();
        if truncate {
            bad.truncate(cut.index(bad.len()));
        } else {
            let i = at.index(bad.len());
            bad[i] ^= xor;
        }
        prop_assert!(sc.decrypt(&bad).is_err());
        let mut forged = b"\x07MESSAGE".to_vec();
        forged.extend_from_slice(&random);
        prop_assert!(sc.decrypt(&forged).is_err());
        prop_assert!(sc.decrypt(&random).is_err());
        // The genuine box still opens: refused input moved no nonce.
        prop_assert_eq!(&sc.decrypt(&body).unwrap().data[..], &payload[..]);
        Ok(())
        })?;
    }
}

#[test]
fn the_server_reads_nothing_past_initiate_until_the_authorizer_answers() {
    let (mut c, mut s) = (client(40), server(40));
    s.handle_input(&mut drain_client(&mut c)).unwrap();
    c.handle_input(&mut drain_server(&mut s)).unwrap();
    let mut wire = drain_client(&mut c);
    // A client that sends a MESSAGE right behind INITIATE (it has not seen READY).
    wire.extend_from_slice(&framed(b"\x07MESSAGE and more"));
    let behind = framed(b"\x07MESSAGE and more").len();
    s.handle_input(&mut wire).unwrap();
    assert_eq!(
        wire.len(),
        behind,
        "the frame after INITIATE stays in the buffer"
    );
    assert!(!s.wants_input());
    s.handle_input(&mut wire).unwrap();
    assert_eq!(
        wire.len(),
        behind,
        "still unread while the authorizer decides"
    );
    assert!(matches!(s.poll_event(), Some(CurveEvent::Authorize { .. })));
    assert!(s.accept());
    assert!(!s.wants_input(), "after READY, input is the codec's");
}
