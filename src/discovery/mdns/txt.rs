//! What a zocket mDNS announcement says about its socket, and its TXT record (pure).
//!
//! An instance of `_zocket._tcp.local.` carries these TXT keys:
//!
//! | key    | value                                                        |
//! |--------|--------------------------------------------------------------|
//! | `v`    | `1`, the format of these keys                                |
//! | `name` | the logical name of `mdns://name[/path]`                     |
//! | `path` | the path, absent when the endpoint has none                  |
//! | `type` | the socket type, as ZMTP names it (`PUB`, `ROUTER`, ...)     |
//! | `node` | the node that announced it (by default the process's id)     |
//! | `curve`| a CURVE server's public key (Z85), absent for any other socket |
//!
//! Anything else in the record is ignored, so later versions can add keys.

use std::fmt;

use crate::curve::PublicKey;
use crate::{Endpoint, SocketType};

/// Value of the `v` key this version writes and reads.
pub(crate) const VERSION: &str = "1";

/// Longest `node` value accepted (a 128-bit id in hex is 32).
pub(crate) const MAX_NODE_LEN: usize = 64;

/// The socket behind one announced instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The logical name (`chat` in `mdns://chat/events`).
    pub(crate) name: String,
    /// The path (`events`), if the endpoint has one.
    pub(crate) path: Option<String>,
    /// The announcing socket's type.
    pub(crate) socket_type: SocketType,
    /// The node that announced it: a socket never connects to its own node.
    pub(crate) node: String,
    /// The public key of a CURVE server; `None` for a NULL socket (or a CURVE client).
    /// Only a hint for choosing instances: a client still connects only to the key it trusts,
    /// and the handshake proves the server holds that key.
    pub(crate) curve: Option<PublicKey>,
}

/// Why a TXT record is not a zocket announcement we can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TxtError {
    /// A key we need is not there.
    Missing(&'static str),
    /// A key's value is not what the key allows (the key and why).
    Invalid(&'static str, &'static str),
    /// Written by a version of this format we do not read.
    Version(String),
}

impl fmt::Display for TxtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxtError::Missing(key) => write!(f, "no `{key}` key"),
            TxtError::Invalid(key, why) => write!(f, "`{key}` is {why}"),
            TxtError::Version(v) => write!(f, "format version {v:?}, expected {VERSION:?}"),
        }
    }
}

impl Record {
    /// The TXT key/value pairs announcing this record.
    pub(crate) fn to_txt(&self) -> Vec<(String, String)> {
        let mut txt = vec![
            ("v".to_owned(), VERSION.to_owned()),
            ("name".to_owned(), self.name.clone()),
            ("type".to_owned(), self.socket_type.as_str().to_owned()),
            ("node".to_owned(), self.node.clone()),
        ];
        if let Some(path) = &self.path {
            txt.push(("path".to_owned(), path.clone()));
        }
        if let Some(key) = &self.curve {
            txt.push(("curve".to_owned(), key.to_string()));
        }
        txt
    }

    /// Reads a record from TXT values; `get(key)` is the value of `key` (`None` when the
    /// key is absent, `Some(None)` when it has no value).
    pub(crate) fn from_txt<'a>(
        get: impl Fn(&str) -> Option<Option<&'a [u8]>>,
    ) -> Result<Record, TxtError> {
        let text = |key: &'static str| -> Result<Option<&'a str>, TxtError> {
            match get(key) {
                None => Ok(None),
                Some(None) => Err(TxtError::Invalid(key, "empty")),
                Some(Some(bytes)) => std::str::from_utf8(bytes)
                    .map(Some)
                    .map_err(|_| TxtError::Invalid(key, "not UTF-8")),
            }
        };
        let required = |key: &'static str| text(key)?.ok_or(TxtError::Missing(key));

        let version = required("v")?;
        if version != VERSION {
            return Err(TxtError::Version(version.chars().take(16).collect()));
        }
        let name = required("name")?;
        let path = text("path")?;
        // The endpoint parser is the one place that knows what a name and a path may be.
        let endpoint = match path {
            Some(path) => format!("mdns://{name}/{path}"),
            None => format!("mdns://{name}"),
        };
        let (name, path) = match endpoint.parse::<Endpoint>() {
            Ok(Endpoint::Mdns { name, path }) => (name, path),
            _ if path.is_some() && format!("mdns://{name}").parse::<Endpoint>().is_ok() => {
                return Err(TxtError::Invalid(
                    "path",
                    "not printable ASCII without spaces",
                ))
            }
            _ => {
                return Err(TxtError::Invalid(
                    "name",
                    "not 1-63 letters, digits, '-' or '_'",
                ))
            }
        };
        let socket_type = SocketType::from_name(required("type")?.as_bytes())
            .ok_or(TxtError::Invalid("type", "not a socket type"))?;
        let node = required("node")?;
        if node.len() > MAX_NODE_LEN || node.chars().any(|c| !c.is_ascii_graphic()) {
            return Err(TxtError::Invalid(
                "node",
                "longer than 64 characters or not printable ASCII",
            ));
        }
        let curve = match text("curve")? {
            None => None,
            Some(key) => Some(key.parse::<PublicKey>().map_err(|_| {
                TxtError::Invalid("curve", "not a CURVE public key (40 Z85 characters)")
            })?),
        };
        Ok(Record {
            name,
            path,
            socket_type,
            node: node.to_owned(),
            curve,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, Option<&str>)]) -> Result<Record, TxtError> {
        let map: HashMap<String, Option<Vec<u8>>> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(|v| v.as_bytes().to_vec())))
            .collect();
        Record::from_txt(|key| map.get(key).map(|v| v.as_deref()))
    }

    fn good() -> Vec<(&'static str, Option<&'static str>)> {
        vec![
            ("v", Some("1")),
            ("name", Some("chat")),
            ("path", Some("events")),
            ("type", Some("PUB")),
            ("node", Some("0123abcd")),
        ]
    }

    fn with(
        key: &'static str,
        value: Option<&'static str>,
    ) -> Vec<(&'static str, Option<&'static str>)> {
        let mut pairs: Vec<_> = good().into_iter().filter(|(k, _)| *k != key).collect();
        pairs.push((key, value));
        pairs
    }

    fn without(key: &str) -> Vec<(&'static str, Option<&'static str>)> {
        good().into_iter().filter(|(k, _)| *k != key).collect()
    }

    #[test]
    fn a_record_round_trips_through_its_txt() {
        let key = *crate::curve::KeyPair::generate().public();
        for (path, curve) in [(None, None), (Some("events".to_owned()), Some(key))] {
            let record = Record {
                name: "chat".into(),
                path,
                socket_type: SocketType::Router,
                node: "node-1".into(),
                curve,
            };
            let txt: HashMap<String, String> = record.to_txt().into_iter().collect();
            let back = Record::from_txt(|k| txt.get(k).map(|v| Some(v.as_bytes())));
            assert_eq!(back, Ok(record));
        }
    }

    #[test]
    fn missing_keys_are_named() {
        for key in ["v", "name", "type", "node"] {
            assert_eq!(parse(&without(key)), Err(TxtError::Missing(key)), "{key}");
        }
        assert_eq!(parse(&without("path")).unwrap().path, None);
        assert_eq!(
            parse(&good()).unwrap().curve,
            None,
            "no `curve`: not a CURVE server"
        );
    }

    #[test]
    fn a_curve_server_announces_its_public_key_in_z85() {
        let keys = crate::curve::KeyPair::generate();
        let record = Record {
            name: "chat".into(),
            path: None,
            socket_type: SocketType::Rep,
            node: "n".into(),
            curve: Some(*keys.public()),
        };
        let txt = record.to_txt();
        assert!(txt.contains(&("curve".to_owned(), keys.public().to_string())));
        assert!(
            !txt.iter().any(|(_, v)| *v == keys.secret().to_string()),
            "never the secret"
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        let long_name = Box::leak("n".repeat(64).into_boxed_str());
        let long_node = Box::leak("n".repeat(65).into_boxed_str());
        let cases = [
            (with("v", Some("2")), "version"),
            (with("name", Some(long_name)), "name"),
            (with("name", Some("a.b")), "name"),
            (with("name", None), "name"),
            (with("path", Some("a b")), "path"),
            (with("type", Some("STREAM")), "type"),
            (with("type", Some("pub")), "type"),
            (with("node", Some(long_node)), "node"),
            (with("node", Some("a b")), "node"),
            (with("curve", Some("short")), "curve"),
            (
                with("curve", Some("~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~")),
                "curve",
            ),
            (with("curve", None), "curve"),
        ];
        for (pairs, key) in cases {
            let err = parse(&pairs).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(key) || matches!(err, TxtError::Version(_)) && key == "version",
                "{pairs:?}: {text}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let mut pairs = good();
        pairs.push(("future", Some("x")));
        assert!(parse(&pairs).is_ok());
    }

    #[test]
    fn non_utf8_is_refused() {
        let err = Record::from_txt(|k| match k {
            "v" => Some(Some(b"1".as_slice())),
            "name" => Some(Some(b"\xff".as_slice())),
            _ => None,
        });
        assert_eq!(err, Err(TxtError::Invalid("name", "not UTF-8")));
    }
}
