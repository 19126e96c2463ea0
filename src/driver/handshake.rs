//! The greeting exchange that opens every connection over a byte stream.
//!
//! The dialer sends its whole greeting at once and waits for the peer's. The listener waits
//! for the first byte (so it can tell ZMTP from SP from garbage), then sends its greeting
//! and reads the rest of the peer's. Which protocol follows is decided by the two
//! greetings: both carry the zocket marker → native; otherwise ZMTP.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::proto::greeting::{Greeting, Mechanism, GREETING_LEN, NATIVE_VERSION};
use crate::proto::sniff::{sniff, Sniffed};
use crate::Error;

/// What the greetings agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Negotiated {
    /// Both are zocket: the native multiplexed wire follows.
    Native,
    /// The peer is a plain ZMTP peer (libzmq and friends); its greeting is given.
    Zmtp(Greeting),
}

/// Runs the dialer's side of the greeting, within `timeout`.
///
/// # Errors
/// `Error::Timeout`, `Error::Io`, or `Error::Protocol` when the peer's greeting is not one
/// we can speak.
pub(crate) async fn dial<T>(
    io: &mut T,
    timeout: Duration,
    ours: &Greeting,
) -> Result<Negotiated, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(timeout, async {
        io.write_all(&ours.encode()).await?;
        io.flush().await?;
        let mut theirs = [0u8; GREETING_LEN];
        io.read_exact(&mut theirs).await?;
        negotiate(&theirs, ours)
    })
    .await
    .map_err(|_| Error::Timeout)?
}

/// Runs the listener's side of the greeting, within `timeout`.
///
/// # Errors
/// As [`dial`]; an SP peer or bytes of no known protocol are `Error::Protocol`.
pub(crate) async fn accept<T>(
    io: &mut T,
    timeout: Duration,
    ours: &Greeting,
) -> Result<Negotiated, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(timeout, async {
        let mut theirs = [0u8; GREETING_LEN];
        let mut have = 0;
        loop {
            match sniff(&theirs[..have]) {
                Sniffed::Greeting => break,
                Sniffed::NeedMore => {}
                Sniffed::Sp => {
                    return Err(Error::Protocol(
                        "peer speaks nanomsg SP, which zocket does not support yet".into(),
                    ))
                }
                Sniffed::Unknown => {
                    return Err(Error::Protocol(format!(
                        "peer is not a zocket or ZeroMQ peer (first bytes {:02x?})",
                        &theirs[..have]
                    )))
                }
            }
            let n = io.read(&mut theirs[have..have + 1]).await?;
            if n == 0 {
                return Err(Error::Protocol("peer closed before its greeting".into()));
            }
            have += n;
        }
        io.write_all(&ours.encode()).await?;
        io.flush().await?;
        io.read_exact(&mut theirs[have..]).await?;
        negotiate(&theirs, ours)
    })
    .await
    .map_err(|_| Error::Timeout)?
}

/// Both sides of a symmetric exchange (the public multiplexer over any byte stream): send
/// ours, read theirs.
pub(crate) async fn exchange<T>(io: &mut T, timeout: Duration) -> Result<Negotiated, Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    dial(io, timeout, &Greeting::zocket()).await
}

/// The native wire only when both greetings offer it; plain ZMTP otherwise.
fn negotiate(theirs: &[u8; GREETING_LEN], ours: &Greeting) -> Result<Negotiated, Error> {
    let greeting = Greeting::decode(theirs).map_err(|e| Error::Protocol(e.to_string()))?;
    let offered = if ours.native.is_some() {
        greeting.native
    } else {
        None
    };
    if greeting.mechanism != ours.mechanism {
        return Err(Error::Protocol(format!(
            "security mismatch: the peer greets with the ZMTP mechanism {}, this socket with \
             {} (both sides need the same: Options::curve_server / curve_client, or neither)",
            greeting.mechanism, ours.mechanism
        )));
    }
    if greeting.mechanism == Mechanism::CURVE && ours.as_server && greeting.as_server {
        return Err(Error::Protocol(
            "both peers are CURVE servers (as-server 1 in both greetings); one side needs \
             Options::curve_client"
                .into(),
        ));
    }
    match offered {
        Some((major, _)) if major == NATIVE_VERSION.0 => {
            if greeting.mechanism == Mechanism::CURVE && !ours.as_server && !greeting.as_server {
                // (libzmq's as-server flag says nothing, but a zocket peer's does.)
                return Err(Error::Protocol(
                    "both peers are CURVE clients (as-server 0 in both zocket greetings); one \
                     side needs Options::curve_server"
                        .into(),
                ));
            }
            Ok(Negotiated::Native)
        }
        Some((major, minor)) => Err(Error::Protocol(format!(
            "peer speaks zocket native protocol {major}.{minor}, this build speaks {}.{}",
            NATIVE_VERSION.0, NATIVE_VERSION.1
        ))),
        None => Ok(Negotiated::Zmtp(greeting)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_zocket_peers_negotiate_native() {
        let (mut a, mut b) = tokio::io::duplex(256);
        let t = Duration::from_secs(5);
        let z = Greeting::zocket();
        let (x, y) = tokio::join!(dial(&mut a, t, &z), accept(&mut b, t, &z));
        assert_eq!(x.unwrap(), Negotiated::Native);
        assert_eq!(y.unwrap(), Negotiated::Native);
    }

    #[tokio::test]
    async fn garbage_and_sp_are_refused_by_the_listener() {
        for (bytes, needle) in [
            (&b"GET / HTTP/1.1\r\n"[..], "not a zocket or ZeroMQ peer"),
            (
                &[0x00, b'S', b'P', 0x00, 0x00, 0x10, 0, 0][..],
                "nanomsg SP",
            ),
        ] {
            let (mut a, mut b) = tokio::io::duplex(256);
            a.write_all(bytes).await.unwrap();
            let err = accept(&mut b, Duration::from_secs(5), &Greeting::zocket())
                .await
                .unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn silent_peer_times_out() {
        let (_a, mut b) = tokio::io::duplex(256);
        let err = accept(&mut b, Duration::from_secs(1), &Greeting::zocket())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout));
    }

    #[tokio::test]
    async fn null_meeting_curve_is_refused_on_both_sides_naming_both_mechanisms() {
        let t = Duration::from_secs(5);
        for (dialer, listener) in [
            (Greeting::zocket(), Greeting::curve(true)),
            (Greeting::curve(false), Greeting::zocket()),
        ] {
            let (mut a, mut b) = tokio::io::duplex(256);
            let (x, y) = tokio::join!(dial(&mut a, t, &dialer), accept(&mut b, t, &listener));
            for err in [x.unwrap_err(), y.unwrap_err()] {
                let text = err.to_string();
                assert!(text.contains("NULL") && text.contains("CURVE"), "{text}");
            }
        }
    }

    #[tokio::test]
    async fn curve_client_and_server_greetings_agree_on_zmtp() {
        let t = Duration::from_secs(5);
        let (client, server) = (Greeting::curve(false), Greeting::curve(true));
        let (mut a, mut b) = tokio::io::duplex(256);
        let (x, y) = tokio::join!(dial(&mut a, t, &client), accept(&mut b, t, &server));
        assert!(matches!(x.unwrap(), Negotiated::Zmtp(g) if g.as_server));
        assert!(matches!(y.unwrap(), Negotiated::Zmtp(g) if !g.as_server));
        let (mut a, mut b) = tokio::io::duplex(256);
        let (x, _) = tokio::join!(dial(&mut a, t, &server), accept(&mut b, t, &server));
        assert!(x
            .unwrap_err()
            .to_string()
            .contains("both peers are CURVE servers"));
    }

    #[tokio::test]
    async fn zocket_curve_greetings_with_the_marker_negotiate_native_and_two_clients_are_refused() {
        let t = Duration::from_secs(5);
        let marked = |as_server| {
            let mut g = Greeting::curve(as_server);
            g.native = Some(NATIVE_VERSION);
            g
        };
        let (client, server) = (marked(false), marked(true));
        let (mut a, mut b) = tokio::io::duplex(256);
        let (x, y) = tokio::join!(dial(&mut a, t, &client), accept(&mut b, t, &server));
        assert_eq!(x.unwrap(), Negotiated::Native);
        assert_eq!(y.unwrap(), Negotiated::Native);
        let (mut a, mut b) = tokio::io::duplex(256);
        let (x, _) = tokio::join!(dial(&mut a, t, &client), accept(&mut b, t, &client));
        assert!(x
            .unwrap_err()
            .to_string()
            .contains("both peers are CURVE clients"));
    }

    #[tokio::test]
    async fn plain_zmtp_greeting_is_recognised() {
        let (mut a, mut b) = tokio::io::duplex(256);
        let mut g = Greeting::zocket();
        g.native = None;
        a.write_all(&g.encode()).await.unwrap();
        assert!(matches!(
            accept(&mut b, Duration::from_secs(5), &Greeting::zocket())
                .await
                .unwrap(),
            Negotiated::Zmtp(_)
        ));
    }
}
