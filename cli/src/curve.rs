//! The CURVE flags of every socket command and of `zocket perf`, and `zocket keygen`.
//!
//! A secret key is read from `--curve-secret KEY`, `--curve-secret-file PATH` or the
//! `ZOCKET_CURVE_SECRET` environment variable (in that order; the first two conflict). A bad
//! secret is reported without echoing it.

use std::fmt;
use std::path::PathBuf;

use clap::Args;
use zocket::curve::{KeyPair, PublicKey, SecretKey};
use zocket::Options;

use crate::Fail;

/// The environment variable that holds a secret key when no flag gives one.
pub const SECRET_ENV: &str = "ZOCKET_CURVE_SECRET";

/// CURVE security: encryption and authentication (keys are 40 Z85 characters, from `zocket keygen`;
/// Z85 has no `'`, so single quotes always keep a key whole in a shell).
#[derive(Debug, Clone, Args)]
pub struct CurveArgs {
    /// This socket's CURVE secret key. Alone: a CURVE server; with --curve-server-key: a client's
    /// own key. Visible in `ps`: prefer --curve-secret-file or ZOCKET_CURVE_SECRET.
    #[arg(
        long,
        value_name = "KEY",
        allow_hyphen_values = true,
        conflicts_with = "curve_secret_file",
        help_heading = "Security (CURVE)"
    )]
    pub curve_secret: Option<SecretText>,
    /// Read this socket's CURVE secret key from PATH (the key alone, or `zocket keygen` output).
    #[arg(long, value_name = "PATH", help_heading = "Security (CURVE)")]
    pub curve_secret_file: Option<PathBuf>,
    /// Be a CURVE client of the server whose public key is KEY (own key: the secret given, or a
    /// fresh one).
    #[arg(long, value_name = "KEY", value_parser = public_key, allow_hyphen_values = true, help_heading = "Security (CURVE)")]
    pub curve_server_key: Option<PublicKey>,
    /// CURVE server: accept only the client whose public key is KEY (repeatable; without it any
    /// client that knows the server key is accepted).
    #[arg(long, value_name = "KEY", value_parser = public_key, allow_hyphen_values = true, help_heading = "Security (CURVE)")]
    pub curve_allow: Vec<PublicKey>,
}

/// A secret key's text as given on the command line; `Debug` does not show it.
#[derive(Clone)]
pub struct SecretText(String);

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(<hidden>)")
    }
}

impl From<String> for SecretText {
    fn from(text: String) -> SecretText {
        SecretText(text)
    }
}

/// A public key for `--curve-server-key` and `--curve-allow`.
fn public_key(input: &str) -> Result<PublicKey, String> {
    input
        .parse::<PublicKey>()
        .map_err(|e| format!("not a CURVE public key: {e}"))
}

/// What the flags make of a socket.
#[derive(Debug)]
pub enum Security {
    /// No CURVE flag: the NULL mechanism (plaintext).
    Null,
    /// A CURVE server, accepting the listed clients (any client when the list is empty).
    Server {
        /// The server's key pair.
        keys: KeyPair,
        /// `--curve-allow` keys.
        allow: Vec<PublicKey>,
    },
    /// A CURVE client of the server with this public key.
    Client {
        /// The server's public key.
        server: PublicKey,
        /// The client's own key pair.
        keys: KeyPair,
    },
}

impl CurveArgs {
    /// Reads the secret (flag, file or environment) and decides the socket's role; usage
    /// errors name the flag (or variable) that was wrong.
    pub fn security(&self) -> Result<Security, Fail> {
        self.security_with_env(std::env::var_os(SECRET_ENV))
    }

    fn security_with_env(&self, env: Option<std::ffi::OsString>) -> Result<Security, Fail> {
        let secret = self.secret(env)?;
        match (self.curve_server_key, secret) {
            (Some(_), _) if !self.curve_allow.is_empty() => Err(Fail::Usage(
                "--curve-allow makes no sense with --curve-server-key: a CURVE client checks the server's key; --curve-allow is for a server (--curve-secret alone)".to_owned(),
            )),
            (Some(server), secret) => Ok(Security::Client {
                server,
                keys: secret.map_or_else(KeyPair::generate, KeyPair::from_secret),
            }),
            (None, Some(secret)) => Ok(Security::Server {
                keys: KeyPair::from_secret(secret),
                allow: self.curve_allow.clone(),
            }),
            (None, None) if !self.curve_allow.is_empty() => Err(Fail::Usage(format!(
                "--curve-allow needs a server secret key: expected --curve-secret KEY, --curve-secret-file PATH or {SECRET_ENV}"
            ))),
            (None, None) => Ok(Security::Null),
        }
    }

    fn secret(&self, env: Option<std::ffi::OsString>) -> Result<Option<SecretKey>, Fail> {
        let bad = |source: &str, e: zocket::curve::ParseKeyError| {
            Fail::Usage(format!(
                "{source}: not a CURVE secret key: {e} (make a key pair with `zocket keygen`)"
            ))
        };
        if let Some(SecretText(text)) = &self.curve_secret {
            return text.parse().map(Some).map_err(|e| bad("--curve-secret", e));
        }
        if let Some(path) = &self.curve_secret_file {
            let source = format!("--curve-secret-file {}", path.display());
            let text = std::fs::read_to_string(path)
                .map_err(|e| Fail::Usage(format!("{source}: cannot read the file: {e}")))?;
            return secret_in_file(&text).map(Some).map_err(|e| bad(&source, e));
        }
        match env {
            None => Ok(None),
            Some(value) if value.is_empty() => Ok(None),
            Some(value) => {
                let text = value.into_string().map_err(|_| {
                    Fail::Usage(format!("{SECRET_ENV}: not a CURVE secret key: not UTF-8"))
                })?;
                text.parse().map(Some).map_err(|e| bad(SECRET_ENV, e))
            }
        }
    }
}

/// The secret key in a file: the `secret:` line of `zocket keygen` output, else the whole
/// text (surrounding whitespace ignored).
fn secret_in_file(text: &str) -> Result<SecretKey, zocket::curve::ParseKeyError> {
    let line = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("secret:"))
        .unwrap_or(text);
    line.trim().parse()
}

impl Security {
    /// `options` with this security applied; a server without an allow-list says on stderr
    /// (unless `quiet`) that it authenticates nobody.
    pub fn apply(self, options: Options, quiet: bool) -> Options {
        match self {
            Security::Null => options,
            Security::Server { keys, allow } if allow.is_empty() => {
                if !quiet {
                    eprintln!(
                        "CURVE server {}: no --curve-allow, so any client that knows this key is accepted (encrypted, not authenticated)",
                        keys.public()
                    );
                }
                options.curve_server(keys.secret().clone())
            }
            Security::Server { keys, allow } => options
                .curve_server(keys.secret().clone())
                .curve_allow(allow),
            Security::Client { server, keys } => options.curve_client(server, keys),
        }
    }
}

/// `zocket keygen`: a fresh key pair, as `public: <Z85>` and `secret: <Z85>`.
pub fn keygen() -> String {
    let keys = KeyPair::generate();
    format!("public: {}\nsecret: {}\n", keys.public(), keys.secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(secret: Option<&str>, server: Option<PublicKey>, allow: Vec<PublicKey>) -> CurveArgs {
        CurveArgs {
            curve_secret: secret.map(|s| SecretText(s.to_owned())),
            curve_secret_file: None,
            curve_server_key: server,
            curve_allow: allow,
        }
    }

    fn usage(result: Result<Security, Fail>) -> String {
        match result {
            Err(Fail::Usage(message)) => message,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn the_flags_make_a_null_socket_a_server_or_a_client() {
        let server = KeyPair::generate();
        let secret = server.secret().to_string();
        assert!(matches!(
            args(None, None, vec![]).security_with_env(None),
            Ok(Security::Null)
        ));
        match args(Some(&secret), None, vec![]).security_with_env(None) {
            Ok(Security::Server { keys, allow }) => {
                assert_eq!(keys.public(), server.public());
                assert!(allow.is_empty());
            }
            other => panic!("expected a server, got {other:?}"),
        }
        match args(None, Some(*server.public()), vec![]).security_with_env(None) {
            Ok(Security::Client { server: s, .. }) => assert_eq!(&s, server.public()),
            other => panic!("expected a client, got {other:?}"),
        }
        // The environment gives the secret when no flag does.
        match args(None, None, vec![]).security_with_env(Some(secret.clone().into())) {
            Ok(Security::Server { keys, .. }) => assert_eq!(keys.public(), server.public()),
            other => panic!("expected a server from the environment, got {other:?}"),
        }
    }

    #[test]
    fn bad_secrets_and_misplaced_allow_lists_are_usage_errors_naming_the_flag() {
        let key = *KeyPair::generate().public();
        let message = usage(args(Some("not-a-key"), None, vec![]).security_with_env(None));
        assert!(
            message.starts_with("--curve-secret: not a CURVE secret key"),
            "{message}"
        );
        assert!(
            !message.contains("not-a-key"),
            "the secret is echoed: {message}"
        );
        let message = usage(args(None, None, vec![]).security_with_env(Some("short".into())));
        assert!(
            message.starts_with("ZOCKET_CURVE_SECRET: not a CURVE secret key"),
            "{message}"
        );
        let message = usage(args(None, None, vec![key]).security_with_env(None));
        assert!(
            message.starts_with("--curve-allow needs a server secret key"),
            "{message}"
        );
        let message = usage(args(None, Some(key), vec![key]).security_with_env(None));
        assert!(
            message.starts_with("--curve-allow makes no sense with --curve-server-key"),
            "{message}"
        );
    }

    #[test]
    fn a_key_file_holds_the_key_alone_or_keygen_output() {
        let keys = KeyPair::generate();
        let alone = format!("  {}\n", keys.secret());
        assert_eq!(secret_in_file(&alone).unwrap(), *keys.secret());
        let keygen = format!("public: {}\nsecret: {}\n", keys.public(), keys.secret());
        assert_eq!(secret_in_file(&keygen).unwrap(), *keys.secret());
        assert!(secret_in_file("public: only\n").is_err());
    }
}
