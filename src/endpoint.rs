//! Endpoints: where a socket binds or connects.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;

use crate::{Error, Result};

/// The longest `ipc://` file path accepted, in bytes: a Unix socket address holds 108 bytes
/// including the terminating NUL on Linux.
const MAX_IPC_PATH_LEN: usize = 107;

/// The host part of a `tcp://` endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A literal IPv4 or IPv6 address (`*` parses as `0.0.0.0`).
    Ip(IpAddr),
    /// A DNS name, resolved when dialing or binding.
    Name(String),
}

/// A parsed endpoint, from strings such as `tcp://127.0.0.1:5555/events`.
///
/// Parse one with [`Endpoint::parse`] or [`str::parse`]; [`Display`](fmt::Display) writes the
/// canonical form, which parses back to the same value.
///
/// | form | rules |
/// |---|---|
/// | `tcp://host:port[/path]` | `host` is an IPv4 address, an IPv6 address in brackets (`[::1]`), `*` (all interfaces, the same as `0.0.0.0`) or a DNS name; `port` is 0-65535 (0: bind picks a free port) |
/// | `ipc://file[#path]` | `file` is a non-empty absolute or relative filesystem path of at most 107 bytes (the Unix socket address limit), without `#` or control characters |
/// | `inproc://name` | `name` is non-empty, without control characters |
/// | `dns://host:port[/path]` | `host` is a DNS name or an IP address (IPv6 in brackets); `port` is 1-65535 |
/// | `mdns://name[/path]` | `name` is 1-63 letters, digits, `-` or `_` |
///
/// A DNS name is made of ASCII letters, digits, `-` and `.`: at most 253 characters, labels of
/// 1-63 characters that neither start nor end with `-`, and a last label that is not all
/// digits (so `10.0.0.256` is a bad IPv4 address, not a name). International names must be
/// given in their `xn--` form.
///
/// A `path` names one socket on a shared listener. It is everything after the first `/`
/// following the port (or the name, for `mdns://`; the first `#` for `ipc://`), must be
/// printable ASCII without spaces, and may itself contain `/`. An empty path
/// (`tcp://host:1/`) is the same as no path.
///
/// Schemes are lower case. Nothing is trimmed: surrounding spaces make an endpoint invalid.
///
/// # Errors
///
/// Parsing fails with [`Error::InvalidEndpoint`], whose `input` is the string as given and
/// whose `expected` names the form expected for that scheme and the part that was wrong.
///
/// # Example
///
/// ```
/// use zocket::{Endpoint, Host};
///
/// let ep: Endpoint = "tcp://*:5555/events".parse()?;
/// assert_eq!(
///     ep,
///     Endpoint::Tcp { host: Host::Ip([0, 0, 0, 0].into()), port: 5555, path: Some("events".into()) }
/// );
/// assert_eq!(ep.to_string(), "tcp://0.0.0.0:5555/events");
///
/// let err = Endpoint::parse("tcp://localhost:99999").unwrap_err();
/// assert!(err.to_string().contains("port 0-65535"));
/// # Ok::<(), zocket::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// `tcp://host:port[/path]`
    Tcp {
        /// Address or name to bind or dial.
        host: Host,
        /// TCP port; 0 when binding picks a free one.
        port: u16,
        /// The socket's path on a shared listener; `None` is the listener's default socket.
        path: Option<String>,
    },
    /// `ipc:///file/system/path[#path]`
    Ipc {
        /// Filesystem path of the Unix domain socket.
        file: PathBuf,
        /// The socket's path on a shared listener.
        path: Option<String>,
    },
    /// `inproc://name`
    Inproc {
        /// Process-wide name.
        name: String,
    },
    /// `dns://host:port[/path]`
    Dns {
        /// DNS name whose A/AAAA records are all dialed, or an IP address literal (stored
        /// without brackets, `::1` rather than `[::1]`, so it can be handed to a resolver).
        host: String,
        /// TCP port.
        port: u16,
        /// The socket's path on the peers' listeners.
        path: Option<String>,
    },
    /// `mdns://name[/path]`
    Mdns {
        /// Logical service name announced or browsed.
        name: String,
        /// The socket's path.
        path: Option<String>,
    },
}

impl Endpoint {
    /// Parses an endpoint string; the same as `s.parse::<Endpoint>()`.
    ///
    /// See [`Endpoint`] for the accepted forms.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEndpoint`] quoting `s` and saying what was expected.
    pub fn parse(s: &str) -> Result<Endpoint> {
        s.parse()
    }

    /// The socket path carried by the endpoint, if any.
    pub fn path(&self) -> Option<&str> {
        match self {
            Endpoint::Tcp { path, .. }
            | Endpoint::Ipc { path, .. }
            | Endpoint::Dns { path, .. }
            | Endpoint::Mdns { path, .. } => path.as_deref(),
            Endpoint::Inproc { .. } => None,
        }
    }
}

/// What each kind of failure expected: the `expected` text of `Error::InvalidEndpoint`.
mod expected {
    pub(super) const SCHEME: &str = "an endpoint of the form tcp://host:port[/path], \
        ipc://file[#path], inproc://name, dns://host:port[/path] or mdns://name[/path]";

    pub(super) const TCP_HOST: &str = "tcp://host:port[/path] with host an IPv4 address, \
        an IPv6 address in brackets like [::1], * for all interfaces, or a DNS name \
        (letters, digits, '-' and '.', labels of 1-63 characters, at most 253 characters)";
    pub(super) const TCP_PORT: &str = "tcp://host:port[/path] with port 0-65535";
    pub(super) const TCP_PATH: &str =
        "tcp://host:port[/path] with path printable ASCII characters without spaces";

    pub(super) const IPC_FILE: &str =
        "ipc://file[#path] with file a non-empty filesystem path without '#' or control characters";
    pub(super) const IPC_FILE_LEN: &str =
        "ipc://file[#path] with file at most 107 bytes long (the Unix socket address limit)";
    pub(super) const IPC_PATH: &str =
        "ipc://file[#path] with path printable ASCII characters without spaces";

    pub(super) const INPROC_NAME: &str =
        "inproc://name with name non-empty and without control characters";

    pub(super) const DNS_HOST: &str = "dns://host:port[/path] with host a DNS name \
        (letters, digits, '-' and '.', labels of 1-63 characters, at most 253 characters) \
        or an IP address, IPv6 in brackets like [::1]";
    pub(super) const DNS_PORT: &str = "dns://host:port[/path] with port 1-65535";
    pub(super) const DNS_PATH: &str =
        "dns://host:port[/path] with path printable ASCII characters without spaces";

    pub(super) const MDNS_NAME: &str =
        "mdns://name[/path] with name 1-63 letters, digits, '-' or '_'";
    pub(super) const MDNS_PATH: &str =
        "mdns://name[/path] with path printable ASCII characters without spaces";
}

impl FromStr for Endpoint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        parse_endpoint(s).map_err(|expected| Error::invalid_endpoint(s, expected))
    }
}

impl TryFrom<&str> for Endpoint {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self, Error> {
        s.parse()
    }
}

impl TryFrom<String> for Endpoint {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

/// Parses `input`, or says what was expected.
fn parse_endpoint(input: &str) -> Result<Endpoint, &'static str> {
    let (scheme, rest) = input.split_once("://").ok_or(expected::SCHEME)?;
    match scheme {
        "tcp" => parse_tcp(rest),
        "ipc" => parse_ipc(rest),
        "inproc" => parse_inproc(rest),
        "dns" => parse_dns(rest),
        "mdns" => parse_mdns(rest),
        _ => Err(expected::SCHEME),
    }
}

fn parse_tcp(rest: &str) -> Result<Endpoint, &'static str> {
    let (authority, path) = split_once_opt(rest, '/');
    let (host, port) = split_host_port(authority).ok_or(expected::TCP_HOST)?;
    let host = match host {
        RawHost::V6(text) => Host::Ip(IpAddr::V6(
            text.parse::<Ipv6Addr>().map_err(|_| expected::TCP_HOST)?,
        )),
        RawHost::Plain("*") => Host::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        RawHost::Plain(text) => match text.parse::<Ipv4Addr>() {
            Ok(ip) => Host::Ip(IpAddr::V4(ip)),
            Err(_) if is_dns_name(text) => Host::Name(text.to_owned()),
            Err(_) => return Err(expected::TCP_HOST),
        },
    };
    let port = port.and_then(parse_port).ok_or(expected::TCP_PORT)?;
    let path = parse_path(path).ok_or(expected::TCP_PATH)?;
    Ok(Endpoint::Tcp { host, port, path })
}

fn parse_ipc(rest: &str) -> Result<Endpoint, &'static str> {
    let (file, path) = split_once_opt(rest, '#');
    if file.is_empty() || file.chars().any(char::is_control) {
        return Err(expected::IPC_FILE);
    }
    if file.len() > MAX_IPC_PATH_LEN {
        return Err(expected::IPC_FILE_LEN);
    }
    let path = parse_path(path).ok_or(expected::IPC_PATH)?;
    Ok(Endpoint::Ipc {
        file: PathBuf::from(file),
        path,
    })
}

fn parse_inproc(name: &str) -> Result<Endpoint, &'static str> {
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(expected::INPROC_NAME);
    }
    Ok(Endpoint::Inproc {
        name: name.to_owned(),
    })
}

fn parse_dns(rest: &str) -> Result<Endpoint, &'static str> {
    let (authority, path) = split_once_opt(rest, '/');
    let (host, port) = split_host_port(authority).ok_or(expected::DNS_HOST)?;
    let host = match host {
        RawHost::V6(text) => text
            .parse::<Ipv6Addr>()
            .map_err(|_| expected::DNS_HOST)?
            .to_string(),
        RawHost::Plain(text) => match text.parse::<Ipv4Addr>() {
            Ok(ip) => ip.to_string(),
            Err(_) if is_dns_name(text) => text.to_owned(),
            Err(_) => return Err(expected::DNS_HOST),
        },
    };
    let port = port
        .and_then(parse_port)
        .filter(|&p| p != 0)
        .ok_or(expected::DNS_PORT)?;
    let path = parse_path(path).ok_or(expected::DNS_PATH)?;
    Ok(Endpoint::Dns { host, port, path })
}

fn parse_mdns(rest: &str) -> Result<Endpoint, &'static str> {
    let (name, path) = split_once_opt(rest, '/');
    let name_ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(expected::MDNS_NAME);
    }
    let path = parse_path(path).ok_or(expected::MDNS_PATH)?;
    Ok(Endpoint::Mdns {
        name: name.to_owned(),
        path,
    })
}

/// `s` split at the first `sep`: what comes before, and what comes after if `sep` occurs.
fn split_once_opt(s: &str, sep: char) -> (&str, Option<&str>) {
    match s.split_once(sep) {
        Some((head, tail)) => (head, Some(tail)),
        None => (s, None),
    }
}

/// A host as written, before validation.
enum RawHost<'a> {
    /// The text between `[` and `]`.
    V6(&'a str),
    /// Anything else.
    Plain(&'a str),
}

/// Splits `host[:port]`, where host may be `[ipv6]`. `None` when the brackets are malformed.
///
/// An unbracketed host is split at the last `:`, so `::1:5555` gives the host `::1`, which
/// is then rejected as a host (with a hint at brackets) rather than as a port.
fn split_host_port(authority: &str) -> Option<(RawHost<'_>, Option<&str>)> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (inner, after) = bracketed.split_once(']')?;
        if after.is_empty() {
            Some((RawHost::V6(inner), None))
        } else {
            Some((RawHost::V6(inner), Some(after.strip_prefix(':')?)))
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => Some((RawHost::Plain(host), Some(port))),
            None => Some((RawHost::Plain(authority), None)),
        }
    }
}

/// A port: one or more decimal digits (no sign), at most 65535.
fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A socket path: absent or empty is `None`; otherwise printable ASCII without spaces.
/// The outer `None` means invalid.
fn parse_path(raw: Option<&str>) -> Option<Option<String>> {
    match raw {
        None | Some("") => Some(None),
        Some(p) if p.bytes().all(|b| b.is_ascii_graphic()) => Some(Some(p.to_owned())),
        Some(_) => None,
    }
}

/// Whether `s` is a DNS host name: letters, digits, `-` and `.`; at most 253 characters;
/// labels of 1-63 characters not starting or ending with `-`; a last label not all digits.
fn is_dns_name(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let labels_ok = s.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let last_not_numeric = s
        .rsplit('.')
        .next()
        .is_some_and(|last| !last.bytes().all(|b| b.is_ascii_digit()));
    labels_ok && last_not_numeric
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port, path } => {
                write!(f, "tcp://{host}:{port}")?;
                if let Some(p) = path {
                    write!(f, "/{p}")?;
                }
                Ok(())
            }
            Endpoint::Ipc { file, path } => {
                write!(f, "ipc://{}", file.display())?;
                if let Some(p) = path {
                    write!(f, "#{p}")?;
                }
                Ok(())
            }
            Endpoint::Inproc { name } => write!(f, "inproc://{name}"),
            Endpoint::Dns { host, port, path } => {
                // An IPv6 literal is stored bare and written in brackets.
                if host.contains(':') {
                    write!(f, "dns://[{host}]:{port}")?;
                } else {
                    write!(f, "dns://{host}:{port}")?;
                }
                if let Some(p) = path {
                    write!(f, "/{p}")?;
                }
                Ok(())
            }
            Endpoint::Mdns { name, path } => {
                write!(f, "mdns://{name}")?;
                if let Some(p) = path {
                    write!(f, "/{p}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::expected::*;
    use super::*;
    use proptest::prelude::*;

    fn ok(s: &str) -> Endpoint {
        match s.parse() {
            Ok(ep) => ep,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    /// Asserts that `s` is rejected with an `InvalidEndpoint` quoting it, and returns `expected`.
    fn bad(s: &str) -> String {
        match Endpoint::parse(s) {
            Err(Error::InvalidEndpoint { input, expected }) => {
                assert_eq!(input, s);
                expected
            }
            other => panic!("{s:?} should be an invalid endpoint, got {other:?}"),
        }
    }

    fn tcp(host: Host, port: u16, path: Option<&str>) -> Endpoint {
        Endpoint::Tcp {
            host,
            port,
            path: path.map(str::to_owned),
        }
    }

    fn name(s: &str) -> Host {
        Host::Name(s.to_owned())
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> Host {
        Host::Ip(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
    }

    fn v6(s: &str) -> Host {
        Host::Ip(IpAddr::V6(s.parse().unwrap()))
    }

    #[test]
    fn tcp_endpoints_with_every_kind_of_host_parse() {
        assert_eq!(
            ok("tcp://127.0.0.1:5555"),
            tcp(v4(127, 0, 0, 1), 5555, None)
        );
        assert_eq!(ok("tcp://*:0"), tcp(v4(0, 0, 0, 0), 0, None));
        assert_eq!(
            ok("tcp://[::1]:5555/events"),
            tcp(v6("::1"), 5555, Some("events"))
        );
        assert_eq!(
            ok("tcp://[::ffff:1.2.3.4]:1"),
            tcp(v6("::ffff:1.2.3.4"), 1, None)
        );
        assert_eq!(ok("tcp://localhost:1"), tcp(name("localhost"), 1, None));
        assert_eq!(
            ok("tcp://My-Host.example.com:65535"),
            tcp(name("My-Host.example.com"), 65535, None)
        );
        assert_eq!(
            ok("tcp://xn--bcher-kva.de:80"),
            tcp(name("xn--bcher-kva.de"), 80, None)
        );
        assert_eq!(ok("tcp://h1:007"), tcp(name("h1"), 7, None));
    }

    #[test]
    fn tcp_path_is_everything_after_the_first_slash_and_empty_means_none() {
        assert_eq!(ok("tcp://h:1/"), tcp(name("h"), 1, None));
        assert_eq!(ok("tcp://h:1/rpc"), tcp(name("h"), 1, Some("rpc")));
        assert_eq!(ok("tcp://h:1/a/b:c#d"), tcp(name("h"), 1, Some("a/b:c#d")));
        assert_eq!(ok("tcp://h:1//x"), tcp(name("h"), 1, Some("/x")));
        assert_eq!(ok("tcp://h:1/rpc").path(), Some("rpc"));
        assert_eq!(ok("tcp://h:1").path(), None);
    }

    #[test]
    fn longest_dns_name_and_label_are_accepted() {
        let label63 = "a".repeat(63);
        assert_eq!(
            ok(&format!("tcp://{label63}:1")),
            tcp(name(&label63), 1, None)
        );
        let long = format!("{}bcd", "a.".repeat(125));
        assert_eq!(long.len(), 253);
        assert_eq!(ok(&format!("tcp://{long}:1")), tcp(name(&long), 1, None));
    }

    #[test]
    fn malformed_tcp_endpoints_say_which_part_was_wrong() {
        for s in [
            "tcp://",
            "tcp://:5",
            "tcp://ho st:1",
            "tcp://[::1:5",
            "tcp://[::1]5",
            "tcp://[]:5",
            "tcp://[1.2.3.4]:5",
            "tcp://[fe80::1%eth0]:5",
            "tcp://::1:5",
            "tcp://a..b:1",
            "tcp://.a:1",
            "tcp://a.:1",
            "tcp://-a:1",
            "tcp://a-:1",
            "tcp://a_b:1",
            "tcp://256.0.0.1:1",
            "tcp://1.2.3:1",
            "tcp://123:1",
            "tcp://bücher.de:1",
            "tcp://**:1",
        ] {
            assert_eq!(bad(s), TCP_HOST, "{s:?}");
        }
        for s in [
            "tcp://host",
            "tcp://host:",
            "tcp://host:99999",
            "tcp://host:65536",
            "tcp://host:-1",
            "tcp://host:+1",
            "tcp://host:1 ",
            "tcp://host:0x10",
            "tcp://host:99999999999999999999999",
            "tcp://[::1]",
            "tcp://[::1]:",
            "tcp://host/path",
        ] {
            assert_eq!(bad(s), TCP_PORT, "{s:?}");
        }
        for s in [
            "tcp://h:1/a b",
            "tcp://h:1/ ",
            "tcp://h:1/\tx",
            "tcp://h:1/é",
        ] {
            assert_eq!(bad(s), TCP_PATH, "{s:?}");
        }
        assert_eq!(bad(&format!("tcp://{}:1", "a".repeat(64))), TCP_HOST);
        let too_long = format!("{}bcde", "a.".repeat(125));
        assert_eq!(too_long.len(), 254);
        assert_eq!(bad(&format!("tcp://{too_long}:1")), TCP_HOST);
    }

    #[test]
    fn unknown_or_missing_schemes_list_the_forms() {
        for s in [
            "",
            "foo://x",
            "tcp//x:1",
            "tcp:/x:1",
            "TCP://x:1",
            " tcp://x:1",
            "://x",
            "127.0.0.1:5555",
        ] {
            assert_eq!(bad(s), SCHEME, "{s:?}");
        }
    }

    #[test]
    fn ipc_endpoints_parse() {
        assert_eq!(
            ok("ipc:///tmp/x.sock"),
            Endpoint::Ipc {
                file: "/tmp/x.sock".into(),
                path: None
            }
        );
        assert_eq!(
            ok("ipc://x.sock"),
            Endpoint::Ipc {
                file: "x.sock".into(),
                path: None
            }
        );
        assert_eq!(
            ok("ipc:///run/app.sock#rpc"),
            Endpoint::Ipc {
                file: "/run/app.sock".into(),
                path: Some("rpc".into())
            }
        );
        assert_eq!(
            ok("ipc:///run/my app.sock#"),
            Endpoint::Ipc {
                file: "/run/my app.sock".into(),
                path: None
            }
        );
        assert_eq!(ok("ipc://a#b#c").path(), Some("b#c"));
        let longest = format!("/{}", "s".repeat(106));
        assert_eq!(
            ok(&format!("ipc://{longest}")),
            Endpoint::Ipc {
                file: longest.into(),
                path: None
            }
        );
    }

    #[test]
    fn malformed_ipc_endpoints_are_rejected() {
        for s in ["ipc://", "ipc://#rpc", "ipc://a\nb", "ipc://a\0b"] {
            assert_eq!(bad(s), IPC_FILE, "{s:?}");
        }
        assert_eq!(bad(&format!("ipc:///{}", "s".repeat(107))), IPC_FILE_LEN);
        // The limit is in bytes, not characters.
        assert_eq!(bad(&format!("ipc://{}", "é".repeat(54))), IPC_FILE_LEN);
        assert_eq!(bad("ipc:///tmp/x#a b"), IPC_PATH);
    }

    #[test]
    fn inproc_endpoints_parse() {
        assert_eq!(
            ok("inproc://workers"),
            Endpoint::Inproc {
                name: "workers".into()
            }
        );
        let ep = ok("inproc://a/b:c d");
        assert_eq!(
            ep,
            Endpoint::Inproc {
                name: "a/b:c d".into()
            }
        );
        assert_eq!(ep.path(), None);
        assert_eq!(bad("inproc://"), INPROC_NAME);
        assert_eq!(bad("inproc://a\u{7}"), INPROC_NAME);
    }

    #[test]
    fn dns_endpoints_parse_and_keep_literals_bare() {
        assert_eq!(
            ok("dns://svc.example.com:5555/rpc"),
            Endpoint::Dns {
                host: "svc.example.com".into(),
                port: 5555,
                path: Some("rpc".into())
            }
        );
        assert_eq!(
            ok("dns://10.0.0.1:1/"),
            Endpoint::Dns {
                host: "10.0.0.1".into(),
                port: 1,
                path: None
            }
        );
        assert_eq!(
            ok("dns://[0:0::1]:65535"),
            Endpoint::Dns {
                host: "::1".into(),
                port: 65535,
                path: None
            }
        );
    }

    #[test]
    fn malformed_dns_endpoints_are_rejected() {
        for s in [
            "dns://h",
            "dns://h:",
            "dns://h:0",
            "dns://h:65536",
            "dns://h:x",
        ] {
            assert_eq!(bad(s), DNS_PORT, "{s:?}");
        }
        for s in [
            "dns://",
            "dns://:5",
            "dns://*:5",
            "dns://[::1:5",
            "dns://a b:5",
        ] {
            assert_eq!(bad(s), DNS_HOST, "{s:?}");
        }
        assert_eq!(bad("dns://h:1/ x"), DNS_PATH);
    }

    #[test]
    fn mdns_endpoints_parse() {
        assert_eq!(
            ok("mdns://my_service-1"),
            Endpoint::Mdns {
                name: "my_service-1".into(),
                path: None
            }
        );
        assert_eq!(
            ok("mdns://svc/events"),
            Endpoint::Mdns {
                name: "svc".into(),
                path: Some("events".into())
            }
        );
        assert_eq!(ok("mdns://svc/").path(), None);
        let name63 = "n".repeat(63);
        assert_eq!(
            ok(&format!("mdns://{name63}")),
            Endpoint::Mdns {
                name: name63,
                path: None
            }
        );
    }

    #[test]
    fn malformed_mdns_endpoints_are_rejected() {
        for s in [
            "mdns://",
            "mdns:///x",
            "mdns://a.b",
            "mdns://a b",
            "mdns://é",
        ] {
            assert_eq!(bad(s), MDNS_NAME, "{s:?}");
        }
        assert_eq!(bad(&format!("mdns://{}", "n".repeat(64))), MDNS_NAME);
        assert_eq!(bad("mdns://svc/a b"), MDNS_PATH);
    }

    #[test]
    fn error_message_quotes_the_input_and_the_expected_form() {
        let err = Endpoint::parse("tcp://host:99999").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"tcp://host:99999\""), "{text}");
        assert!(
            text.contains("tcp://host:port[/path] with port 0-65535"),
            "{text}"
        );
    }

    #[test]
    fn try_from_and_parse_agree_with_from_str() {
        let s = "tcp://127.0.0.1:5555/rpc";
        let a = Endpoint::try_from(s).unwrap();
        let b = Endpoint::try_from(s.to_owned()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, Endpoint::parse(s).unwrap());
        assert!(Endpoint::try_from("nope").is_err());
    }

    #[test]
    fn display_writes_canonical_forms() {
        for s in [
            "tcp://127.0.0.1:5555",
            "tcp://[::1]:5555/events",
            "tcp://localhost:0/a/b",
            "ipc:///tmp/x.sock#rpc",
            "ipc://x.sock",
            "inproc://workers",
            "dns://svc.local:5555/rpc",
            "dns://[::1]:5",
            "mdns://svc/events",
        ] {
            assert_eq!(ok(s).to_string(), s);
        }
        assert_eq!(ok("tcp://*:1").to_string(), "tcp://0.0.0.0:1");
        assert_eq!(ok("tcp://h:1/").to_string(), "tcp://h:1");
        assert_eq!(ok("tcp://[0::1]:01").to_string(), "tcp://[::1]:1");
    }

    /// Parsing never panics; a failure quotes the input; a success round-trips through Display.
    fn check_any_input(s: &str) -> std::result::Result<(), TestCaseError> {
        match Endpoint::parse(s) {
            Ok(ep) => {
                let shown = ep.to_string();
                let again = Endpoint::parse(&shown);
                prop_assert!(again.is_ok(), "{s:?} -> {shown:?} -> {again:?}");
                let again = again.unwrap();
                prop_assert_eq!(&again, &ep);
                prop_assert_eq!(again.to_string(), shown);
            }
            Err(Error::InvalidEndpoint { input, expected }) => {
                prop_assert_eq!(input, s);
                prop_assert!(!expected.is_empty());
            }
            Err(other) => prop_assert!(false, "{s:?}: unexpected error {other:?}"),
        }
        Ok(())
    }

    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "tcp://",
                "ipc://",
                "inproc://",
                "dns://",
                "mdns://",
                "://",
                "tcp",
                ":/",
                "[",
                "]",
                ":",
                "/",
                "#",
                "*",
                "::1",
                "::",
                "127.0.0.1",
                "255.255.255.255",
                "0",
                "65535",
                "65536",
                "99999",
                "-1",
                "+1",
                "-",
                "_",
                ".",
                "..",
                " ",
                "\0",
                "\n",
                "é",
                "%",
                "xn--",
                "@",
            ])
            .prop_map(str::to_owned),
            "[a-zA-Z0-9]{0,6}",
            "[a-z]{60,70}",
            "(a\\.){120,130}",
            any::<char>().prop_map(String::from),
        ]
    }

    fn dns_name() -> impl Strategy<Value = String> {
        // Any labels, then a last label that starts with a letter (so it is not all digits).
        "([a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?\\.){0,3}[a-zA-Z]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?"
    }

    fn socket_path() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[!-~]{1,16}")
    }

    fn valid_endpoint() -> impl Strategy<Value = Endpoint> {
        let host = prop_oneof![
            any::<Ipv4Addr>().prop_map(|ip| Host::Ip(IpAddr::V4(ip))),
            any::<Ipv6Addr>().prop_map(|ip| Host::Ip(IpAddr::V6(ip))),
            dns_name().prop_map(Host::Name),
        ];
        let dns_host = prop_oneof![
            any::<Ipv4Addr>().prop_map(|ip| ip.to_string()),
            any::<Ipv6Addr>().prop_map(|ip| ip.to_string()),
            dns_name(),
        ];
        let ipc_file =
            "\\PC{1,40}".prop_filter("ipc file rules", |f| f.len() <= 107 && !f.contains('#'));
        prop_oneof![
            (host, any::<u16>(), socket_path()).prop_map(|(host, port, path)| Endpoint::Tcp {
                host,
                port,
                path
            }),
            (ipc_file, socket_path()).prop_map(|(file, path)| Endpoint::Ipc {
                file: file.into(),
                path
            }),
            "\\PC{1,40}".prop_map(|name| Endpoint::Inproc { name }),
            (dns_host, 1..=u16::MAX, socket_path()).prop_map(|(host, port, path)| Endpoint::Dns {
                host,
                port,
                path
            }),
            ("[a-zA-Z0-9_-]{1,63}", socket_path())
                .prop_map(|(name, path)| Endpoint::Mdns { name, path }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn arbitrary_strings_never_panic(s in any::<String>()) {
            check_any_input(&s)?;
        }

        #[test]
        fn endpoint_like_strings_never_panic(
            parts in prop::collection::vec(fragment(), 0..10),
        ) {
            check_any_input(&parts.concat())?;
        }

        #[test]
        fn display_of_a_valid_endpoint_parses_back_to_it(ep in valid_endpoint()) {
            let shown = ep.to_string();
            let parsed = Endpoint::parse(&shown);
            prop_assert!(parsed.is_ok(), "{ep:?} -> {shown:?} -> {parsed:?}");
            prop_assert_eq!(parsed.unwrap(), ep);
        }
    }
}
