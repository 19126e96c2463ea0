//! The CURVE cores against libzmq 4.3 (through pyzmq) over real loopback TCP: our client
//! core against a pyzmq CURVE REP server, our server core against a pyzmq CURVE REQ
//! client. The framing around the cores (greeting, ZMTP frames) is the few lines below;
//! wiring the cores into the drivers is the next increment of issue 13.
//!
//! Without python3 and pyzmq the tests say so and pass (with `CI` set they fail).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::{client_random, server_random, KeyPair, PublicKey};
use crate::proto::curve::{
    ClientConfig, CurveClient, CurveCodec, CurveEvent, CurveServer, ServerConfig, FLAG_MORE,
};
use crate::proto::zmtp::frame::Frame;

/// Every blocking read and write gives up after this.
const T: Duration = Duration::from_secs(15);

fn have_pyzmq_curve() -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import zmq, sys; sys.exit(0 if zmq.has('curve') else 1)",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "pyzmq with CURVE is missing: .ci/run installs it (pip install pyzmq)"
        );
        eprintln!("skipping: python3 with pyzmq (libzmq with CURVE) is not installed");
    }
    ok
}

/// A python child whose stdout we read line by line; killed on drop.
struct Python {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Python {
    fn spawn(script: &str, args: &[&str]) -> Python {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Python { child, stdout }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A ZMTP 3.1 greeting with mechanism CURVE (no zocket marker: plain ZMTP).
fn greeting(as_server: bool) -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = 3;
    g[11] = 1;
    g[12..17].copy_from_slice(b"CURVE");
    g[32] = u8::from(as_server);
    g
}

/// Sends our greeting (as-server as the RFC says: 1 from the CURVE server), reads the
/// peer's and checks it says CURVE.
fn exchange_greetings(tcp: &mut TcpStream, as_server: bool) {
    tcp.write_all(&greeting(as_server)).unwrap();
    let mut peer = [0u8; 64];
    tcp.read_exact(&mut peer).unwrap();
    assert_eq!(peer[0], 0xFF);
    assert_eq!(&peer[12..32], b"CURVE\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
    // libzmq 4.3 writes as-server 0 whatever its role (it zeroes the 32 bytes after the
    // mechanism) and ignores the peer's.
    assert_eq!(peer[32], 0, "libzmq's as-server byte");
}

/// Reads more bytes into `buf`.
fn read_more(tcp: &mut TcpStream, buf: &mut BytesMut) {
    let mut chunk = [0u8; 4096];
    let n = tcp.read(&mut chunk).unwrap();
    assert!(n > 0, "peer closed the connection");
    buf.extend_from_slice(&chunk[..n]);
}

/// Encoded ZMTP metadata with one Socket-Type property.
fn socket_type(name: &str) -> Bytes {
    let mut p = vec![11];
    p.extend_from_slice(b"Socket-Type");
    p.extend_from_slice(&(name.len() as u32).to_be_bytes());
    p.extend_from_slice(name.as_bytes());
    Bytes::from(p)
}

/// Whether ZMTP metadata has the property `Socket-Type` = `name`.
fn names(metadata: &[u8], name: &str) -> bool {
    let property = [&socket_type(name)[..]].concat();
    metadata.windows(property.len()).any(|w| w == property)
}

/// Sends a message (frames in order) as MESSAGE frames.
fn send(tcp: &mut TcpStream, codec: &mut CurveCodec, frames: &[&[u8]]) {
    let mut out = BytesMut::new();
    for (i, frame) in frames.iter().enumerate() {
        let flags = if i + 1 < frames.len() { FLAG_MORE } else { 0 };
        codec.encrypt_frame(flags, frame, &mut out).unwrap();
    }
    tcp.write_all(&out).unwrap();
}

/// Receives one whole message (MESSAGE frames until one without MORE).
fn recv(tcp: &mut TcpStream, buf: &mut BytesMut, codec: &mut CurveCodec) -> Vec<Bytes> {
    let mut frames = Vec::new();
    for _ in 0..64 {
        match Frame::decode(buf, 1 << 20).unwrap() {
            Some(frame) => {
                let plain = codec.decrypt(&frame.body).unwrap();
                frames.push(plain.data);
                if plain.flags & FLAG_MORE == 0 {
                    return frames;
                }
            }
            None => read_more(tcp, buf),
        }
    }
    panic!("no whole message after 64 reads");
}

const REP_SERVER: &str = r#"
import zmq
ctx = zmq.Context()
public, secret = zmq.curve_keypair()
rep = ctx.socket(zmq.REP)
rep.curve_server = True
rep.curve_secretkey = secret
rep.rcvtimeo = 15000
port = rep.bind_to_random_port("tcp://127.0.0.1")
print(port, public.decode(), flush=True)
request = rep.recv()
rep.send(b"echo:" + request)
print("done", flush=True)
"#;

#[test]
fn our_client_core_talks_to_a_libzmq_curve_rep_server() {
    if !have_pyzmq_curve() {
        return;
    }
    let mut py = Python::spawn(REP_SERVER, &[]);
    let first = py.line();
    let (port, server_key) = first.split_once(' ').expect("port and key");
    let server_key: PublicKey = server_key.parse().unwrap();
    let mut tcp = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    tcp.set_read_timeout(Some(T)).unwrap();
    tcp.set_write_timeout(Some(T)).unwrap();
    exchange_greetings(&mut tcp, false);

    let ours = KeyPair::generate();
    let mut client = CurveClient::new(
        ClientConfig {
            server_key: *server_key.as_bytes(),
            secret_key: ours.secret().as_crypto().clone(),
            public_key: *ours.public().as_bytes(),
            metadata: socket_type("REQ"),
        },
        client_random(),
    );
    let mut buf = BytesMut::new();
    for _ in 0..16 {
        let mut out = BytesMut::new();
        while client.poll_transmit(&mut out) {}
        tcp.write_all(&out).unwrap();
        if client.is_done() {
            break;
        }
        read_more(&mut tcp, &mut buf);
        client.handle_input(&mut buf).unwrap();
    }
    let Some(CurveEvent::Ready { metadata, peer_key }) = client.poll_event() else {
        panic!("handshake did not complete");
    };
    assert_eq!(peer_key, *server_key.as_bytes());
    assert!(
        names(&metadata, "REP"),
        "READY metadata names REP: {metadata:?}"
    );
    let mut codec = client.take_codec().unwrap();
    // REQ envelope: an empty delimiter, then the body.
    send(&mut tcp, &mut codec, &[b"", b"hello"]);
    let reply = recv(&mut tcp, &mut buf, &mut codec);
    assert_eq!(reply, [Bytes::new(), Bytes::from_static(b"echo:hello")]);
    assert_eq!(py.line(), "done");
}

const REQ_CLIENT: &str = r#"
import sys, zmq
ctx = zmq.Context()
public, secret = zmq.curve_keypair()
print(public.decode(), flush=True)
req = ctx.socket(zmq.REQ)
req.curve_serverkey = sys.argv[2].encode()
req.curve_publickey = public
req.curve_secretkey = secret
req.rcvtimeo = 15000
req.linger = 0
req.connect("tcp://127.0.0.1:" + sys.argv[1])
req.send(b"ping")
print(req.recv().decode(), flush=True)
"#;

/// Runs our server core on an accepted connection; `authorize` answers the authorizer.
/// Returns the client's key and the codec (or `None` when refused).
fn serve(
    tcp: &mut TcpStream,
    ours: &KeyPair,
    buf: &mut BytesMut,
    authorize: impl Fn(&[u8; 32]) -> bool,
) -> Option<([u8; 32], CurveCodec)> {
    tcp.set_read_timeout(Some(T)).unwrap();
    tcp.set_write_timeout(Some(T)).unwrap();
    exchange_greetings(tcp, true);
    let mut server = CurveServer::new(
        ServerConfig {
            secret_key: ours.secret().as_crypto().clone(),
            public_key: *ours.public().as_bytes(),
            metadata: socket_type("REP"),
        },
        server_random(),
    );
    let mut client_key = None;
    for _ in 0..16 {
        while let Some(event) = server.poll_event() {
            match event {
                CurveEvent::Authorize { client_key: key } => {
                    client_key = Some(key);
                    if authorize(&key) {
                        assert!(server.accept());
                    } else {
                        assert!(server.refuse());
                    }
                }
                CurveEvent::Ready { metadata, peer_key } => {
                    assert_eq!(Some(peer_key), client_key);
                    assert!(names(&metadata, "REQ"), "INITIATE metadata: {metadata:?}");
                }
            }
        }
        let mut out = BytesMut::new();
        while server.poll_transmit(&mut out) {}
        tcp.write_all(&out).unwrap();
        if server.is_done() {
            return Some((client_key?, server.take_codec()?));
        }
        if server.error().is_some() {
            return None;
        }
        read_more(tcp, buf);
        server.handle_input(buf).unwrap();
    }
    panic!("handshake did not complete in 16 reads");
}

#[test]
fn our_server_core_answers_a_libzmq_curve_req_client() {
    if !have_pyzmq_curve() {
        return;
    }
    let ours = KeyPair::generate();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let key = ours.public().to_string();
    let mut py = Python::spawn(REQ_CLIENT, &[&port, &key]);
    let client_public: PublicKey = py.line().parse().unwrap();
    let (mut tcp, _) = listener.accept().unwrap();
    let mut buf = BytesMut::new();
    let (client_key, mut codec) = serve(&mut tcp, &ours, &mut buf, |key| {
        key == client_public.as_bytes()
    })
    .unwrap();
    assert_eq!(&client_key, client_public.as_bytes());
    let request = recv(&mut tcp, &mut buf, &mut codec);
    assert_eq!(request, [Bytes::new(), Bytes::from_static(b"ping")]);
    send(&mut tcp, &mut codec, &[b"", b"pong"]);
    assert_eq!(py.line(), "pong");
}

#[test]
fn a_libzmq_client_refused_by_our_authorizer_gets_error_and_no_reply() {
    if !have_pyzmq_curve() {
        return;
    }
    let ours = KeyPair::generate();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let key = ours.public().to_string();
    let mut py = Python::spawn(REQ_CLIENT, &[&port, &key]);
    let _ = py.line();
    let (mut tcp, _) = listener.accept().unwrap();
    let mut buf = BytesMut::new();
    assert!(serve(&mut tcp, &ours, &mut buf, |_| false).is_none());
    // libzmq closes the connection after our ERROR.
    let mut rest = [0u8; 64];
    match tcp.read(&mut rest) {
        Ok(n) => assert_eq!(n, 0, "libzmq sends nothing after our ERROR"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}
