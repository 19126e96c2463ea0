//! An `mdns://name[/path]` connect's view of the catalog: the instances it should be
//! connected to, and the changes to that set as the catalog changes.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{debug, warn};

use super::daemon::{Catalog, Daemon};
use crate::curve::PublicKey;
use crate::discovery::Change;
use crate::SocketType;

/// The same instance is verified at most this often, however often its link fails.
const VERIFY_AGAIN_AFTER: Duration = Duration::from_secs(10);

/// What an `mdns://` connect looks for.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    /// The logical name.
    pub(crate) name: String,
    /// The path, which must match too.
    pub(crate) path: Option<String>,
    /// The connecting socket's type: only compatible peers are wanted.
    pub(crate) socket_type: SocketType,
    /// The connecting socket's node: its own announcements are skipped.
    pub(crate) node: String,
    /// The CURVE server key the connecting socket trusts (a CURVE client); `None` for any
    /// other socket. Only instances announcing exactly this key (or, for `None`, no key)
    /// are wanted: an announced key is never trusted on first use.
    pub(crate) curve: Option<PublicKey>,
}

/// The instances of `catalog` that `filter` wants, by address (and their instance names).
/// An instance refused for a reason the user should hear of (an incompatible socket type)
/// is logged once: `warned` remembers which.
pub(crate) fn select(
    catalog: &Catalog,
    filter: &Filter,
    warned: &mut HashSet<String>,
) -> BTreeMap<SocketAddr, String> {
    warned.retain(|fullname| catalog.contains_key(fullname));
    let mut wanted = BTreeMap::new();
    for instance in catalog.values() {
        let record = &instance.record;
        if record.name != filter.name || record.path != filter.path {
            continue; // another service's instance: not ours to judge
        }
        if record.node == filter.node {
            continue; // our own node: never connect to ourselves
        }
        if !filter.socket_type.is_compatible(record.socket_type) {
            if warned.insert(instance.fullname.clone()) {
                warn!(
                    instance = %instance.fullname,
                    local = %filter.socket_type,
                    remote = %record.socket_type,
                    "ignoring mDNS announcement: incompatible socket type"
                );
            }
            continue;
        }
        if record.curve != filter.curve {
            if warned.insert(instance.fullname.clone()) {
                let why = match (&filter.curve, &record.curve) {
                    (Some(_), Some(_)) => {
                        "ignoring mDNS announcement: its CURVE server key is not the one this socket trusts"
                    }
                    (Some(_), None) => {
                        "ignoring mDNS announcement: not a CURVE server, and this socket is a CURVE client"
                    }
                    _ => "ignoring mDNS announcement: a CURVE server, and this socket is not its CURVE client",
                };
                warn!(
                    instance = %instance.fullname,
                    announced = ?record.curve,
                    trusted = ?filter.curve,
                    "{why}"
                );
            }
            continue;
        }
        wanted.insert(instance.addr, instance.fullname.clone());
    }
    wanted
}

/// Follows the catalog for one filter and reports what to connect to and drop.
#[derive(Debug)]
pub(crate) struct Browser {
    daemon: Arc<Daemon>,
    catalog: watch::Receiver<Catalog>,
    filter: Filter,
    /// What was reported as added and not yet as removed.
    current: BTreeMap<SocketAddr, String>,
    pending: VecDeque<Change>,
    warned: HashSet<String>,
    verified: HashMap<String, Instant>,
}

impl Browser {
    /// Starts following `daemon`'s catalog; the first changes describe what is there now.
    pub(crate) fn new(daemon: Arc<Daemon>, filter: Filter) -> Browser {
        let mut catalog = daemon.catalog();
        catalog.mark_changed();
        Browser {
            daemon,
            catalog,
            filter,
            current: BTreeMap::new(),
            pending: VecDeque::new(),
            warned: HashSet::new(),
            verified: HashMap::new(),
        }
    }

    /// The next change; waits for the catalog to change. `None` once the responder is gone.
    /// Cancel-safe.
    pub(crate) async fn next(&mut self) -> Option<Change> {
        loop {
            if let Some(change) = self.pending.pop_front() {
                return Some(change);
            }
            self.catalog.changed().await.ok()?;
            let catalog = self.catalog.borrow_and_update().clone();
            let wanted = select(&catalog, &self.filter, &mut self.warned);
            for (addr, fullname) in &self.current {
                if wanted.get(addr) != Some(fullname) {
                    self.pending.push_back(Change::Removed(*addr));
                }
            }
            for (addr, fullname) in &wanted {
                if self.current.get(addr) != Some(fullname) {
                    self.pending.push_back(Change::Added(*addr));
                }
            }
            self.verified.retain(|name, _| catalog.contains_key(name));
            self.current = wanted;
        }
    }

    /// The link to `addr` failed: ask its instance whether it is still there, so a peer
    /// that died without a goodbye is dropped in seconds, not when its records expire.
    pub(crate) fn suspect(&mut self, addr: SocketAddr) {
        let Some(fullname) = self.current.get(&addr) else {
            return;
        };
        let now = Instant::now();
        match self.verified.get(fullname) {
            Some(at) if now.duration_since(*at) < VERIFY_AGAIN_AFTER => {
                debug!(instance = %fullname, "verified recently");
            }
            _ => {
                self.verified.insert(fullname.clone(), now);
                self.daemon.verify(fullname);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::mdns::daemon::Instance;
    use crate::discovery::mdns::txt::Record;

    fn instance(
        fullname: &str,
        name: &str,
        socket_type: SocketType,
        node: &str,
        port: u16,
    ) -> Instance {
        Instance {
            fullname: fullname.into(),
            record: Record {
                name: name.into(),
                path: None,
                socket_type,
                node: node.into(),
                curve: None,
            },
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            host: format!("{node}.local."),
        }
    }

    fn catalog(instances: Vec<Instance>) -> Catalog {
        Arc::new(
            instances
                .into_iter()
                .map(|i| (i.fullname.clone(), i))
                .collect(),
        )
    }

    #[test]
    fn only_compatible_instances_of_the_name_from_other_nodes_are_wanted() {
        let filter = Filter {
            name: "chat".into(),
            path: None,
            socket_type: SocketType::Sub,
            node: "me".into(),
            curve: None,
        };
        let all = catalog(vec![
            instance("a", "chat", SocketType::Pub, "other", 1),
            instance("b", "chat", SocketType::Pub, "me", 2),
            instance("c", "news", SocketType::Pub, "other", 3),
            instance("d", "chat", SocketType::Push, "other", 4),
            instance("e", "chat", SocketType::Pub, "third", 5),
        ]);
        let mut warned = HashSet::new();
        let wanted = select(&all, &filter, &mut warned);
        let ports: Vec<u16> = wanted.keys().map(|a| a.port()).collect();
        assert_eq!(ports, vec![1, 5]);
        assert_eq!(warned, HashSet::from(["d".to_owned()]));
        // Warned once; forgotten when the instance leaves the catalog.
        select(&all, &filter, &mut warned);
        assert_eq!(warned.len(), 1);
        select(&catalog(vec![]), &filter, &mut warned);
        assert!(warned.is_empty());
    }

    #[test]
    fn the_path_must_match() {
        let mut with_path = instance("a", "chat", SocketType::Pub, "other", 1);
        with_path.record.path = Some("events".into());
        let all = catalog(vec![with_path]);
        let mut filter = Filter {
            name: "chat".into(),
            path: None,
            socket_type: SocketType::Sub,
            node: "me".into(),
            curve: None,
        };
        assert!(select(&all, &filter, &mut HashSet::new()).is_empty());
        filter.path = Some("events".into());
        assert_eq!(select(&all, &filter, &mut HashSet::new()).len(), 1);
    }

    #[test]
    fn a_curve_client_wants_only_instances_announcing_the_key_it_trusts() {
        let trusted = *crate::curve::KeyPair::generate().public();
        let other = *crate::curve::KeyPair::generate().public();
        let mut good = instance("good", "chat", SocketType::Rep, "a", 1);
        good.record.curve = Some(trusted);
        let mut impostor = instance("impostor", "chat", SocketType::Rep, "b", 2);
        impostor.record.curve = Some(other);
        let plain = instance("plain", "chat", SocketType::Rep, "c", 3);
        let all = catalog(vec![good, impostor, plain]);
        let mut client = Filter {
            name: "chat".into(),
            path: None,
            socket_type: SocketType::Req,
            node: "me".into(),
            curve: Some(trusted),
        };
        let mut warned = HashSet::new();
        let ports: Vec<u16> = select(&all, &client, &mut warned)
            .keys()
            .map(|a| a.port())
            .collect();
        assert_eq!(
            ports,
            vec![1],
            "only the instance announcing the trusted key"
        );
        assert_eq!(
            warned,
            HashSet::from(["impostor".to_owned(), "plain".to_owned()]),
            "the other key and the NULL instance are logged"
        );
        // A NULL client takes only the NULL instance, and logs the CURVE ones.
        client.curve = None;
        let mut warned = HashSet::new();
        let ports: Vec<u16> = select(&all, &client, &mut warned)
            .keys()
            .map(|a| a.port())
            .collect();
        assert_eq!(ports, vec![3]);
        assert_eq!(
            warned,
            HashSet::from(["good".to_owned(), "impostor".to_owned()])
        );
        // A client trusting a key nobody announces connects to nothing.
        client.curve = Some(*crate::curve::KeyPair::generate().public());
        assert!(select(&all, &client, &mut HashSet::new()).is_empty());
    }
}
