//! Endpoints: where a socket binds or connects.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::Error;

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
/// (Stub: parsing lands with the core-types work.)
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
        /// DNS name whose A/AAAA records are all dialed.
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

impl FromStr for Endpoint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Err(Error::invalid_endpoint(s, "(parser not written yet)"))
    }
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
                write!(f, "dns://{host}:{port}")?;
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
