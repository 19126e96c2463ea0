//! ipc:// — Unix domain sockets, with stale socket files replaced and cleaned up.
//!
//! A process that dies leaves its socket file behind, and binding over it fails. So a bind
//! that finds a socket file probes it: if nobody answers, the file is stale and is replaced;
//! if someone does, the address is in use. A listener removes its own file when dropped (and
//! only its own: a file that was replaced in the meantime is left alone).

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

use crate::{Error, Result};

/// A bound Unix domain socket that removes its socket file when dropped.
#[derive(Debug)]
pub(crate) struct IpcListener {
    inner: UnixListener,
    file: PathBuf,
    /// Device and inode of the socket file we created, so that drop removes only that one.
    created: Option<(u64, u64)>,
}

impl IpcListener {
    /// Binds a Unix domain socket at `file`, replacing a stale socket file left there by a
    /// process that is gone.
    ///
    /// # Errors
    ///
    /// [`Error::AddrInUse`] when a live socket listens at `file`; [`Error::Io`] with
    /// `AlreadyExists` when `file` exists and is not a socket (it is never removed), and for
    /// any other I/O error (missing directory, permissions).
    pub(crate) async fn bind(file: &Path) -> Result<IpcListener> {
        let endpoint = || format!("ipc://{}", file.display());
        let inner = match UnixListener::bind(file) {
            Ok(inner) => inner,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                let meta = std::fs::symlink_metadata(file)?;
                if !meta.file_type().is_socket() {
                    return Err(Error::Io(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} exists and is not a socket", file.display()),
                    )));
                }
                match UnixStream::connect(file).await {
                    Ok(_probe) => {
                        return Err(Error::AddrInUse {
                            endpoint: endpoint(),
                        })
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        tracing::info!(file = %file.display(), "replacing stale ipc socket file");
                        std::fs::remove_file(file)?;
                        UnixListener::bind(file).map_err(|e| {
                            if e.kind() == io::ErrorKind::AddrInUse {
                                Error::AddrInUse {
                                    endpoint: endpoint(),
                                }
                            } else {
                                Error::Io(e)
                            }
                        })?
                    }
                    Err(e) => return Err(Error::Io(e)),
                }
            }
            Err(e) => return Err(Error::Io(e)),
        };
        let created = std::fs::symlink_metadata(file)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        tracing::debug!(file = %file.display(), "ipc listener bound");
        Ok(IpcListener {
            inner,
            file: file.to_owned(),
            created,
        })
    }

    /// Accepts one connection.
    ///
    /// # Errors
    ///
    /// The accept error (`EMFILE`, ...); the listener stays usable.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, like [`UnixListener::accept`].
    pub(crate) async fn accept(&self) -> io::Result<UnixStream> {
        let (stream, _addr) = self.inner.accept().await?;
        Ok(stream)
    }

    #[cfg(test)]
    /// The socket file.
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }
}

impl Drop for IpcListener {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.file)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == self.created {
            if let Err(e) = std::fs::remove_file(&self.file) {
                tracing::debug!(file = %self.file.display(), error = %e, "could not remove ipc socket file");
            }
        }
    }
}

/// Connects to the Unix domain socket at `file`.
///
/// # Errors
///
/// `NotFound` when nothing is bound there, `ConnectionRefused` when the file is stale, and
/// other I/O errors.
///
/// # Cancel safety
///
/// Dropping the future drops any half-made connection.
pub(crate) async fn connect(file: &Path) -> io::Result<UnixStream> {
    UnixStream::connect(file).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::timeout;

    use super::*;
    use crate::transport::test_util::ipc_path;

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn stale_socket_file_is_replaced() {
        let file = ipc_path("stale");
        drop(std::os::unix::net::UnixListener::bind(&file).unwrap());
        assert!(file.exists(), "std leaves the socket file behind");

        let listener = IpcListener::bind(&file).await.unwrap();
        let (accepted, dialed) = timeout(WAIT, async {
            tokio::join!(listener.accept(), connect(&file))
        })
        .await
        .unwrap();
        accepted.unwrap();
        dialed.unwrap();
    }

    #[tokio::test]
    async fn live_socket_is_addr_in_use() {
        let file = ipc_path("live");
        let _listener = IpcListener::bind(&file).await.unwrap();
        match IpcListener::bind(&file).await {
            Err(Error::AddrInUse { endpoint }) => {
                assert_eq!(endpoint, format!("ipc://{}", file.display()));
            }
            other => panic!("expected AddrInUse, got {other:?}"),
        }
        assert!(file.exists(), "the live listener's file is kept");
    }

    #[tokio::test]
    async fn regular_file_is_never_removed() {
        let file = ipc_path("regular");
        std::fs::write(&file, b"precious").unwrap();
        let err = IpcListener::bind(&file).await.unwrap_err();
        assert!(
            matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::AlreadyExists),
            "{err:?}"
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"precious");
        std::fs::remove_file(&file).unwrap();
    }

    #[tokio::test]
    async fn socket_file_is_removed_on_drop() {
        let file = ipc_path("drop");
        let listener = IpcListener::bind(&file).await.unwrap();
        assert_eq!(listener.file(), file);
        assert!(file.exists());
        drop(listener);
        assert!(!file.exists());
    }

    #[tokio::test]
    async fn drop_leaves_a_replacement_file_alone() {
        let file = ipc_path("replaced");
        let old = IpcListener::bind(&file).await.unwrap();
        std::fs::remove_file(&file).unwrap();
        let new = IpcListener::bind(&file).await.unwrap();
        drop(old);
        assert!(
            file.exists(),
            "the new listener's file survives the old listener"
        );
        drop(new);
        assert!(!file.exists());
    }
}
