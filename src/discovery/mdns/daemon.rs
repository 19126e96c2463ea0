//! One mDNS responder per process (per interface set), shared by every socket: it announces
//! the `mdns://` binds and keeps a catalog of the zocket instances on the network.
//!
//! `mdns-sd` keeps one browse per service type per daemon (a second one replaces the
//! first), so the daemon browses `_zocket._tcp.local.` once and every `mdns://` connect
//! watches the catalog it builds ([`Daemon::catalog`]).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use mdns_sd::{IfKind, ResolvedService, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::txt::Record;
use crate::warn_limit::WarnLimit;

/// The DNS-SD service type every zocket announcement uses.
pub(crate) const SERVICE_TYPE: &str = "_zocket._tcp.local.";

/// How long a suspected instance has to answer a query before it is dropped
/// (RFC 6762 §10.4 says ten seconds; peers on one LAN answer in milliseconds).
pub(crate) const VERIFY_TIMEOUT: Duration = Duration::from_secs(3);

/// Largest TXT record accepted, in bytes. Ours is about 100 (at most ~400 with a long
/// path); RFC 6763 §6.2 calls anything over 1300 a bad idea.
const MAX_TXT_LEN: usize = 1024;

/// Most instances the catalog holds: a flood of announcements cannot grow it further.
const MAX_INSTANCES: usize = 4096;

/// Most instances the catalog holds under one announced host name (the SRV target): one
/// zocket process announces all its binds under one host name.
const MAX_PER_HOST: usize = 64;

/// Most instances the catalog holds at one address: the processes of one machine.
const MAX_PER_ADDRESS: usize = 256;

/// Most instances the catalog holds for one service name (`mdns://chat`): a flood under
/// one name leaves room for the others.
const MAX_PER_NAME: usize = 256;

/// How long `close` waits for the goodbye packet to be sent.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// A zocket instance announced on the network, with a usable TXT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instance {
    /// The DNS-SD instance name (`chat-5f2c0e91a3b4d677._zocket._tcp.local.`).
    pub(crate) fullname: String,
    /// What its TXT record says.
    pub(crate) record: Record,
    /// The address to connect to.
    pub(crate) addr: SocketAddr,
    /// The host name it was announced under (the SRV record's target).
    pub(crate) host: String,
}

/// How many catalog instances each source holds, so that no one source can fill the
/// catalog (first come, first served would let 4,096 bogus announcements shut every real
/// one out).
///
/// mdns-sd does not say which address a packet came from; what a resolution gives is the
/// announced host name and addresses, and the TXT record's service name. Each has a quota
/// ([`MAX_PER_HOST`], [`MAX_PER_ADDRESS`], [`MAX_PER_NAME`]) under the catalog's
/// [`MAX_INSTANCES`]. A flood from one process (one host name) or one machine (one
/// address), or under one name, fills only its own quota; a sender forging a different host
/// name, address and name for every announcement is still bounded by `MAX_INSTANCES`
/// (mDNS has no authentication to do better with). See `DECISIONS.md`.
#[derive(Debug, Default)]
pub(crate) struct Census {
    hosts: HashMap<String, usize>,
    addrs: HashMap<IpAddr, usize>,
    names: HashMap<String, usize>,
    /// Refused announcements warn at most once a second; the others go to `debug`.
    refusals: WarnLimit,
}

impl Census {
    fn add(&mut self, i: &Instance) {
        *self.hosts.entry(i.host.clone()).or_default() += 1;
        *self.addrs.entry(i.addr.ip()).or_default() += 1;
        *self.names.entry(i.record.name.clone()).or_default() += 1;
    }

    fn remove(&mut self, i: &Instance) {
        fn down<K: Eq + Hash>(map: &mut HashMap<K, usize>, key: &K) {
            if let Some(n) = map.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
        down(&mut self.hosts, &i.host);
        down(&mut self.addrs, &i.addr.ip());
        down(&mut self.names, &i.record.name);
    }

    /// Why `i`, not in the catalog, may not join it, if it may not.
    fn refusal(&self, i: &Instance, total: usize) -> Option<String> {
        let count = |n: Option<&usize>| n.copied().unwrap_or(0);
        if total >= MAX_INSTANCES {
            Some(format!("{MAX_INSTANCES} zocket instances known already"))
        } else if count(self.hosts.get(&i.host)) >= MAX_PER_HOST {
            Some(format!(
                "host {} announces {MAX_PER_HOST} instances already",
                i.host
            ))
        } else if count(self.addrs.get(&i.addr.ip())) >= MAX_PER_ADDRESS {
            Some(format!(
                "address {} has {MAX_PER_ADDRESS} instances already",
                i.addr.ip()
            ))
        } else if count(self.names.get(&i.record.name)) >= MAX_PER_NAME {
            Some(format!(
                "name {:?} has {MAX_PER_NAME} instances already",
                i.record.name
            ))
        } else {
            None
        }
    }

    /// Logs a refused announcement: a warning at most once per [`WARN_INTERVAL`](crate::warn_limit::WARN_INTERVAL).
    fn refused(&mut self, fullname: &str, reason: &str) {
        match self.refusals.admit(Instant::now()) {
            Some(held_back) => warn!(
                instance = %fullname,
                %reason,
                held_back,
                "ignoring mDNS announcement"
            ),
            None => debug!(instance = %fullname, %reason, "ignoring mDNS announcement"),
        }
    }
}

/// Every usable instance, by DNS-SD instance name.
pub(crate) type Catalog = Arc<BTreeMap<String, Instance>>;

/// A running responder; dropping the last handle shuts it down.
pub(crate) struct Daemon {
    daemon: ServiceDaemon,
    catalog: watch::Receiver<Catalog>,
    interfaces: Vec<String>,
}

impl Daemon {
    /// The process's responder for `interfaces` (empty: all), started on first use.
    pub(crate) fn shared(interfaces: &[String]) -> io::Result<Arc<Daemon>> {
        static DAEMONS: OnceLock<Mutex<Vec<Weak<Daemon>>>> = OnceLock::new();
        let mut interfaces = interfaces.to_vec();
        interfaces.sort();
        interfaces.dedup();
        let mut daemons = DAEMONS
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        daemons.retain(|d| d.strong_count() > 0);
        if let Some(daemon) = daemons
            .iter()
            .filter_map(Weak::upgrade)
            .find(|d| d.interfaces == interfaces)
        {
            return Ok(daemon);
        }
        let daemon = Arc::new(Daemon::start(interfaces)?);
        daemons.push(Arc::downgrade(&daemon));
        Ok(daemon)
    }

    fn start(interfaces: Vec<String>) -> io::Result<Daemon> {
        let daemon = ServiceDaemon::new().map_err(mdns_error)?;
        // Commands run in order on the daemon's thread: the interface choice is applied
        // before the browse sends anything.
        if !interfaces.is_empty() {
            daemon.disable_interface(IfKind::All).map_err(mdns_error)?;
            daemon
                .enable_interface(
                    interfaces
                        .iter()
                        .map(|name| IfKind::Name(name.clone()))
                        .collect::<Vec<_>>(),
                )
                .map_err(mdns_error)?;
        }
        let events = daemon.browse(SERVICE_TYPE).map_err(mdns_error)?;
        let (tx, catalog) = watch::channel(Catalog::default());
        // A thread rather than a task: the daemon outlives any one runtime, and its
        // channel has a blocking receive.
        std::thread::Builder::new()
            .name("zocket-mdns".into())
            .spawn(move || {
                let mut census = Census::default();
                while let Ok(event) = events.recv() {
                    tx.send_if_modified(|catalog| apply(catalog, &mut census, event));
                }
                debug!("mDNS browse ended");
            })?;
        debug!(?interfaces, "mDNS responder started");
        Ok(Daemon {
            daemon,
            catalog,
            interfaces,
        })
    }

    /// The instances seen now, and every change from here on.
    pub(crate) fn catalog(&self) -> watch::Receiver<Catalog> {
        self.catalog.clone()
    }

    /// Announces `record` at `port` on `listen` (the listener's address: unspecified means
    /// every address of that family on the daemon's interfaces).
    pub(crate) async fn announce(
        self: &Arc<Self>,
        record: &Record,
        listen: IpAddr,
        port: u16,
    ) -> io::Result<Announcement> {
        let unique = crate::instance::unique();
        let label: String = record.name.chars().take(40).collect();
        let instance = format!("{label}-{unique:016x}");
        let id = crate::instance::id();
        let host = format!("zocket-{}.local.", crate::instance::hex(&id[..8]));
        let addrs: Vec<IpAddr> = if listen.is_unspecified() {
            Vec::new()
        } else {
            vec![listen]
        };
        let txt = record.to_txt();
        let mut info = ServiceInfo::new(SERVICE_TYPE, &instance, &host, &addrs[..], port, &txt[..])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("mDNS: {e}")))?;
        if listen.is_unspecified() {
            info = info.enable_addr_auto();
            // A listener on 0.0.0.0 takes IPv4 only: announce only addresses it serves.
            info.set_interfaces(vec![if listen.is_ipv4() {
                IfKind::IPv4
            } else {
                IfKind::All
            }]);
        }
        // The instance name carries 64 random bits: probing for a conflict would only
        // delay the announcement by three quarters of a second.
        info.set_requires_probe(false);
        let fullname = info.get_fullname().to_owned();
        with_room(|| self.daemon.register(info.clone()))
            .await
            .map_err(mdns_error)?;
        debug!(instance = %fullname, port, "announced");
        Ok(Announcement {
            daemon: self.clone(),
            fullname,
            withdrawn: false,
        })
    }

    /// Asks `fullname` to prove it is still there; if it does not answer within
    /// [`VERIFY_TIMEOUT`] it leaves the catalog (RFC 6762 §10.4).
    pub(crate) fn verify(&self, fullname: &str) {
        debug!(instance = %fullname, "verifying");
        if let Err(e) = self.daemon.verify(fullname.to_owned(), VERIFY_TIMEOUT) {
            debug!(instance = %fullname, error = %e, "cannot verify");
        }
    }
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("interfaces", &self.interfaces)
            .finish_non_exhaustive()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.daemon.shutdown();
    }
}

/// A registered instance; withdrawn (goodbye packet) by [`Announcement::withdraw`] or on drop.
#[derive(Debug)]
pub(crate) struct Announcement {
    daemon: Arc<Daemon>,
    fullname: String,
    withdrawn: bool,
}

impl Announcement {
    /// Withdraws the announcement and waits (up to a second) until the goodbye is sent.
    pub(crate) async fn withdraw(mut self) {
        self.withdrawn = true;
        match with_room(|| self.daemon.daemon.unregister(&self.fullname)).await {
            Ok(done) => {
                let _ = tokio::time::timeout(GOODBYE_TIMEOUT, done.recv_async()).await;
                debug!(instance = %self.fullname, "withdrawn");
            }
            Err(e) => debug!(instance = %self.fullname, error = %e, "cannot withdraw"),
        }
    }
}

impl Drop for Announcement {
    fn drop(&mut self) {
        if !self.withdrawn {
            let _ = self.daemon.daemon.unregister(&self.fullname);
        }
    }
}

/// Runs a daemon command, waiting for room when its command queue (100 deep) is full.
async fn with_room<T>(command: impl Fn() -> mdns_sd::Result<T>) -> mdns_sd::Result<T> {
    for _ in 0..200 {
        match command() {
            Err(mdns_sd::Error::Again) => tokio::time::sleep(Duration::from_millis(5)).await,
            other => return other,
        }
    }
    command()
}

/// Applies one browse event to the catalog, within the quotas `census` keeps; true if it
/// changed.
fn apply(catalog: &mut Catalog, census: &mut Census, event: ServiceEvent) -> bool {
    match event {
        ServiceEvent::ServiceResolved(service) => match instance(&service) {
            Ok(mut instance) => {
                let known = catalog.get(&instance.fullname).cloned();
                // An instance resolved again with more addresses keeps the one it had, so
                // its link is not moved for nothing.
                if let Some(known) = &known {
                    let still_there = service
                        .get_addresses()
                        .iter()
                        .any(|ip| ip.to_ip_addr() == known.addr.ip());
                    if still_there && known.addr.port() == instance.addr.port() {
                        instance.addr = known.addr;
                    }
                }
                if known.as_ref() == Some(&instance) {
                    return false;
                }
                // An update is judged as if it were new: it leaves its old place first.
                if let Some(known) = &known {
                    census.remove(known);
                }
                let others = catalog.len() - usize::from(known.is_some());
                if let Some(reason) = census.refusal(&instance, others) {
                    census.refused(&instance.fullname, &reason);
                    return known.is_some()
                        && Arc::make_mut(catalog).remove(&instance.fullname).is_some();
                }
                debug!(instance = %instance.fullname, addr = %instance.addr, name = %instance.record.name, "mDNS instance");
                census.add(&instance);
                Arc::make_mut(catalog).insert(instance.fullname.clone(), instance);
                true
            }
            Err(reason) => {
                census.refused(&service.fullname, &reason);
                match Arc::make_mut(catalog).remove(&service.fullname) {
                    Some(gone) => {
                        census.remove(&gone);
                        true
                    }
                    None => false,
                }
            }
        },
        ServiceEvent::ServiceRemoved(_, fullname) => {
            if !catalog.contains_key(&fullname) {
                return false;
            }
            debug!(instance = %fullname, "mDNS instance gone");
            if let Some(gone) = Arc::make_mut(catalog).remove(&fullname) {
                census.remove(&gone);
            }
            true
        }
        _ => false,
    }
}

/// The instance a resolved service describes, or why it is unusable.
fn instance(service: &ResolvedService) -> Result<Instance, String> {
    if service.ty_domain != SERVICE_TYPE {
        return Err(format!("service type {}", service.ty_domain));
    }
    let txt_len: usize = service
        .get_properties()
        .iter()
        .map(|p| 1 + p.key().len() + p.val().map_or(0, |v| 1 + v.len()))
        .sum();
    if txt_len > MAX_TXT_LEN {
        return Err(format!("TXT record of {txt_len} bytes, over {MAX_TXT_LEN}"));
    }
    let record = Record::from_txt(|key| service.get_property_val(key))
        .map_err(|e| format!("TXT record: {e}"))?;
    let ips: Vec<IpAddr> = service
        .get_addresses()
        .iter()
        .map(|ip| ip.to_ip_addr())
        .collect();
    let ip = preferred(&ips).ok_or_else(|| format!("no usable address in {ips:?}"))?;
    if service.port == 0 {
        return Err("port 0".into());
    }
    Ok(Instance {
        fullname: service.fullname.clone(),
        record,
        addr: SocketAddr::new(ip, service.port),
        host: service.host.clone(),
    })
}

/// The address to dial among an instance's: IPv4 first, then IPv6 that is not link-local
/// (a link-local one needs a scope an endpoint cannot carry); the lowest of a kind, so the
/// choice is stable.
pub(crate) fn preferred(ips: &[IpAddr]) -> Option<IpAddr> {
    let usable = |ip: &&IpAddr| match ip {
        IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_multicast(),
        IpAddr::V6(v6) => {
            !v6.is_unspecified() && !v6.is_multicast() && (v6.segments()[0] & 0xffc0) != 0xfe80
        }
    };
    // IpAddr orders every V4 before every V6.
    ips.iter().filter(usable).min().copied()
}

fn mdns_error(e: mdns_sd::Error) -> io::Error {
    io::Error::other(format!("mDNS: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(instance: &str, port: u16, txt: &[(&str, &str)]) -> ServiceEvent {
        let info =
            ServiceInfo::new(SERVICE_TYPE, instance, "h.local.", "127.0.0.1", port, txt).unwrap();
        ServiceEvent::ServiceResolved(Box::new(info.as_resolved_service()))
    }

    const GOOD: [(&str, &str); 4] = [("v", "1"), ("name", "chat"), ("type", "PUB"), ("node", "n")];

    #[test]
    fn the_catalog_follows_resolutions_and_removals() {
        let mut catalog = Catalog::default();
        let mut census = Census::default();
        assert!(apply(&mut catalog, &mut census, resolved("a", 5000, &GOOD)));
        let a = &catalog["a._zocket._tcp.local."];
        assert_eq!(a.addr, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(a.record.name, "chat");
        // The same again changes nothing; a new port does.
        assert!(!apply(
            &mut catalog,
            &mut census,
            resolved("a", 5000, &GOOD)
        ));
        assert!(apply(&mut catalog, &mut census, resolved("a", 5001, &GOOD)));
        // An update that breaks the TXT record takes the instance out.
        assert!(apply(
            &mut catalog,
            &mut census,
            resolved("a", 5001, &GOOD[..2])
        ));
        assert!(catalog.is_empty());
        // A bad record never gets in; a removal of something unknown is no change.
        assert!(!apply(
            &mut catalog,
            &mut census,
            resolved("b", 5000, &[("v", "1")])
        ));
        assert!(apply(&mut catalog, &mut census, resolved("c", 5000, &GOOD)));
        let removed =
            ServiceEvent::ServiceRemoved(SERVICE_TYPE.into(), "c._zocket._tcp.local.".into());
        assert!(apply(&mut catalog, &mut census, removed.clone()));
        assert!(!apply(&mut catalog, &mut census, removed));
        assert!(catalog.is_empty());
    }

    #[test]
    fn an_instance_keeps_its_address_while_it_still_has_it() {
        let mut catalog = Catalog::default();
        let mut census = Census::default();
        let resolved_at = |ips: &str| {
            let info =
                ServiceInfo::new(SERVICE_TYPE, "a", "h.local.", ips, 5000, &GOOD[..]).unwrap();
            ServiceEvent::ServiceResolved(Box::new(info.as_resolved_service()))
        };
        assert!(apply(&mut catalog, &mut census, resolved_at("10.0.0.9")));
        // A lower address appears: the link stays where it is.
        assert!(!apply(
            &mut catalog,
            &mut census,
            resolved_at("10.0.0.9,10.0.0.1")
        ));
        assert_eq!(
            catalog["a._zocket._tcp.local."].addr.ip().to_string(),
            "10.0.0.9"
        );
        // Its address goes: it moves to the best one left.
        assert!(apply(&mut catalog, &mut census, resolved_at("10.0.0.1")));
        assert_eq!(
            catalog["a._zocket._tcp.local."].addr.ip().to_string(),
            "10.0.0.1"
        );
    }

    #[test]
    fn an_oversized_txt_record_is_refused_with_its_size() {
        let padding = "x".repeat(200);
        let mut txt: Vec<(&str, &str)> = GOOD.to_vec();
        for key in ["p1", "p2", "p3", "p4", "p5"] {
            txt.push((key, &padding));
        }
        let mut catalog = Catalog::default();
        let mut census = Census::default();
        let info =
            ServiceInfo::new(SERVICE_TYPE, "big", "h.local.", "127.0.0.1", 5000, &txt[..]).unwrap();
        let err = instance(&info.as_resolved_service()).unwrap_err();
        assert!(err.contains("bytes, over 1024"), "{err}");
        txt.truncate(GOOD.len() + 3); // ~640 bytes: fine
        let info =
            ServiceInfo::new(SERVICE_TYPE, "big", "h.local.", "127.0.0.1", 5000, &txt[..]).unwrap();
        assert!(apply(
            &mut catalog,
            &mut census,
            ServiceEvent::ServiceResolved(Box::new(info.as_resolved_service()))
        ));
    }

    /// An announcement of `instance` by host `host` at `ip`, for the service `name`.
    fn announced(instance: &str, host: &str, ip: &str, name: &str) -> ServiceEvent {
        let txt = [("v", "1"), ("name", name), ("type", "PUB"), ("node", "n")];
        let info = ServiceInfo::new(SERVICE_TYPE, instance, host, ip, 5000, &txt[..]).unwrap();
        ServiceEvent::ServiceResolved(Box::new(info.as_resolved_service()))
    }

    /// The `i`th of many distinct sources: no quota but the total is reached.
    fn spread(i: usize) -> ServiceEvent {
        let ip = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
        announced(
            &format!("i{i}"),
            &format!("h{i}.local."),
            &ip,
            &format!("n{i}"),
        )
    }

    #[test]
    fn the_catalog_is_bounded() {
        let mut catalog = Catalog::default();
        let mut census = Census::default();
        for i in 0..MAX_INSTANCES {
            assert!(apply(&mut catalog, &mut census, spread(i)));
        }
        assert!(!apply(&mut catalog, &mut census, spread(MAX_INSTANCES)));
        assert_eq!(catalog.len(), MAX_INSTANCES);
        // Known instances still update; a removal makes room.
        assert!(apply(
            &mut catalog,
            &mut census,
            resolved("i0", 6000, &GOOD)
        ));
        let removed =
            ServiceEvent::ServiceRemoved(SERVICE_TYPE.into(), "i1._zocket._tcp.local.".into());
        assert!(apply(&mut catalog, &mut census, removed));
        assert!(apply(&mut catalog, &mut census, spread(MAX_INSTANCES)));
    }

    #[test]
    fn one_host_flooding_announcements_cannot_crowd_out_the_others() {
        let mut catalog = Catalog::default();
        let mut census = Census::default();
        // A flood from one host name, each announcement with its own address and name.
        for i in 0..MAX_INSTANCES + 100 {
            let ip = format!("10.9.{}.{}", i / 256, i % 256);
            apply(
                &mut catalog,
                &mut census,
                announced(&format!("bogus{i}"), "evil.local.", &ip, &format!("n{i}")),
            );
        }
        assert_eq!(catalog.len(), MAX_PER_HOST);
        // A real instance elsewhere still gets in.
        assert!(apply(
            &mut catalog,
            &mut census,
            announced("real", "good.local.", "10.0.0.1", "chat")
        ));
        assert!(catalog.contains_key("real._zocket._tcp.local."));
    }

    #[test]
    fn one_address_flooding_announcements_cannot_crowd_out_the_others() {
        let mut catalog = Catalog::default();
        let mut census = Census::default();
        // A flood from one address, under ever new host names and service names.
        for i in 0..MAX_INSTANCES + 100 {
            apply(
                &mut catalog,
                &mut census,
                announced(
                    &format!("bogus{i}"),
                    &format!("h{i}.local."),
                    "10.6.6.6",
                    &format!("n{i}"),
                ),
            );
        }
        assert_eq!(catalog.len(), MAX_PER_ADDRESS);
        assert!(apply(
            &mut catalog,
            &mut census,
            announced("real", "good.local.", "10.0.0.1", "chat")
        ));
    }

    #[test]
    fn a_flood_under_one_service_name_leaves_room_for_the_other_names() {
        let mut catalog = Catalog::default();
        let mut census = Census::default();
        for i in 0..MAX_INSTANCES + 100 {
            let ip = format!("10.9.{}.{}", i / 256, i % 256);
            apply(
                &mut catalog,
                &mut census,
                announced(&format!("bogus{i}"), &format!("h{i}.local."), &ip, "chat"),
            );
        }
        assert_eq!(catalog.len(), MAX_PER_NAME);
        assert!(apply(
            &mut catalog,
            &mut census,
            announced("real", "good.local.", "10.0.0.1", "rpc")
        ));
    }

    #[test]
    fn a_removed_or_moved_instance_gives_its_quota_back() {
        let mut catalog = Catalog::default();
        let mut census = Census::default();
        for i in 0..MAX_PER_HOST {
            let ip = format!("10.1.0.{i}");
            assert!(apply(
                &mut catalog,
                &mut census,
                announced(&format!("a{i}"), "busy.local.", &ip, &format!("n{i}"))
            ));
        }
        let one_more = || announced("late", "busy.local.", "10.1.1.1", "late");
        assert!(!apply(&mut catalog, &mut census, one_more()));
        // One moves to another host: its place under busy.local. is free.
        assert!(apply(
            &mut catalog,
            &mut census,
            announced("a0", "other.local.", "10.1.0.0", "n0")
        ));
        assert!(apply(&mut catalog, &mut census, one_more()));
        assert!(!apply(
            &mut catalog,
            &mut census,
            announced("later", "busy.local.", "10.1.1.2", "later")
        ));
        // One is removed: its place is free too.
        let removed =
            ServiceEvent::ServiceRemoved(SERVICE_TYPE.into(), "a1._zocket._tcp.local.".into());
        assert!(apply(&mut catalog, &mut census, removed));
        assert!(apply(
            &mut catalog,
            &mut census,
            announced("later", "busy.local.", "10.1.1.2", "later")
        ));
        assert_eq!(census.hosts["busy.local."], MAX_PER_HOST);
        assert_eq!(census.hosts["other.local."], 1);
    }

    #[test]
    fn ipv4_is_preferred_and_link_local_ipv6_skipped() {
        let ips: Vec<IpAddr> = ["fe80::1", "2001:db8::1", "10.0.0.2", "10.0.0.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(preferred(&ips), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(preferred(&ips[..2]), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(preferred(&ips[..1]), None);
        assert_eq!(preferred(&[]), None);
    }
}
