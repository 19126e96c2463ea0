//! ipc:// — Unix domain sockets, with stale socket files replaced and cleaned up.
//!
//! A process that dies leaves its socket file behind, and binding over it fails. So a bind
//! that finds a socket file probes it: if nobody answers, the file is stale and is replaced;
//! if someone does, the address is in use. A listener removes its own file when dropped (and
//! only its own: a file that was replaced in the meantime is left alone).
//!
//! Probing and replacing is a check-then-act: two processes that find the same stale file at
//! once would both remove it and bind, and the first would silently get nothing. So a bind
//! first takes an exclusive `flock` on a lock file beside the socket file (`<file>.lock`),
//! held for the listener's life and removed with it; a second zocket binder fails at once
//! with `AddrInUse`. The kernel drops the lock when a process dies, so a lock file left
//! behind is never stale. (The connect probe still guards against binders that take no lock,
//! libzmq for one.)

use std::fs::{File, OpenOptions, TryLockError};
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
    /// The locked `<file>.lock`, held while we listen (dropped after the socket file is
    /// removed).
    _lock: BindLock,
}

/// An exclusive `flock` on `<file>.lock`; dropping it removes the lock file, then unlocks.
#[derive(Debug)]
struct BindLock {
    path: PathBuf,
    file: File,
}

/// How many times a bind retries taking a lock file that a departing listener removed
/// between our open and our lock (each retry means some other listener made progress).
const LOCK_ATTEMPTS: usize = 16;

impl BindLock {
    /// Takes the lock for the socket file `socket`.
    ///
    /// # Errors
    ///
    /// [`Error::AddrInUse`] when another listener holds it; [`Error::Io`] when the lock file
    /// cannot be created.
    fn take(socket: &Path) -> Result<BindLock> {
        let mut path = socket.as_os_str().to_owned();
        path.push(".lock");
        let path = PathBuf::from(path);
        for _ in 0..LOCK_ATTEMPTS {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::AddrInUse {
                        endpoint: format!("ipc://{}", socket.display()),
                    })
                }
                Err(TryLockError::Error(e)) => return Err(Error::Io(e)),
            }
            // A listener that was leaving may have removed the file between our open and
            // our lock: then we hold a lock on a file nobody else will open. Only a lock on
            // the file that is at `path` now counts.
            let held = file.metadata()?;
            match std::fs::metadata(&path) {
                Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => {
                    return Ok(BindLock { path, file });
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        Err(Error::Io(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "{}: the lock file kept being replaced; giving up",
                path.display()
            ),
        )))
    }
}

impl Drop for BindLock {
    fn drop(&mut self) {
        // Removed while still locked, so whoever opens the path next creates a new file
        // (and checks, after locking it, that it is the one at the path).
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::debug!(file = %self.path.display(), error = %e, "could not remove ipc lock file");
        }
        let _ = self.file.unlock();
    }
}

impl IpcListener {
    /// Binds a Unix domain socket at `file`, replacing a stale socket file left there by a
    /// process that is gone; holds `<file>.lock` locked meanwhile (see the module docs).
    ///
    /// # Errors
    ///
    /// [`Error::AddrInUse`] when a live socket listens at `file` or another listener holds
    /// its lock; [`Error::Io`] with `AlreadyExists` when `file` exists and is not a socket
    /// (it is never removed), and for any other I/O error (missing directory, permissions).
    pub(crate) async fn bind(file: &Path) -> Result<IpcListener> {
        let endpoint = || format!("ipc://{}", file.display());
        let lock = BindLock::take(file)?;
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
            _lock: lock,
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
        // `lock` is dropped after this: the socket file is gone before the next binder
        // can take the lock.
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

    /// Two binders that find the same stale file at the same moment: exactly one gets the
    /// address, the other `AddrInUse`, and a client reaches the winner.
    #[test]
    fn two_binders_racing_on_a_stale_file_never_both_win() {
        for round in 0..500 {
            let file = ipc_path("race");
            drop(std::os::unix::net::UnixListener::bind(&file).unwrap());
            let start = std::sync::Arc::new(std::sync::Barrier::new(2));
            let binders: Vec<_> = (0..2)
                .map(|_| {
                    let (file, start) = (file.clone(), start.clone());
                    std::thread::spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .unwrap();
                        start.wait();
                        // The winner is handed back with its runtime, which it needs.
                        let bound = rt.block_on(IpcListener::bind(&file));
                        (rt, bound)
                    })
                })
                .collect();
            let results: Vec<_> = binders.into_iter().map(|t| t.join().unwrap()).collect();
            let (mut winners, mut losers) = (Vec::new(), 0);
            for (rt, bound) in results {
                match bound {
                    Ok(listener) => winners.push((rt, listener)),
                    Err(Error::AddrInUse { .. }) => losers += 1,
                    Err(e) => panic!("round {round}: unexpected error {e:?}"),
                }
            }
            assert_eq!(
                (winners.len(), losers),
                (1, 1),
                "round {round}: both binders won"
            );
            let (rt, listener) = winners.pop().unwrap();
            rt.block_on(async {
                let (accepted, dialed) = timeout(WAIT, async {
                    tokio::join!(listener.accept(), connect(&file))
                })
                .await
                .unwrap();
                accepted.unwrap();
                dialed.unwrap();
            });
            drop(listener);
            assert!(!file.exists());
        }
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
        // Someone (taking no lock) replaces the file while we listen.
        std::fs::remove_file(&file).unwrap();
        let replacement = std::os::unix::net::UnixListener::bind(&file).unwrap();
        drop(old);
        assert!(
            file.exists(),
            "the replacement file survives the old listener"
        );
        drop(replacement);
        std::fs::remove_file(&file).unwrap();
    }

    #[tokio::test]
    async fn a_second_binder_is_refused_while_the_lock_is_held_even_without_a_socket_file() {
        let file = ipc_path("locked");
        let first = IpcListener::bind(&file).await.unwrap();
        std::fs::remove_file(&file).unwrap();
        assert!(matches!(
            IpcListener::bind(&file).await,
            Err(Error::AddrInUse { .. })
        ));
        drop(first);
        let mut lock = file.as_os_str().to_owned();
        lock.push(".lock");
        assert!(!PathBuf::from(lock).exists(), "the lock file is removed");
        let again = IpcListener::bind(&file).await.unwrap();
        drop(again);
    }
}
