//! Subscriptions on the wire between a Sub (or XSub) and a Pub (or XPub).
//!
//! A Sub's first message on a new native stream or inproc pipe is a *snapshot*: frame `02`, then one frame per
//! subscribed prefix (a Sub with more prefixes than fit in one snapshot message sends the
//! rest first, as subscribe messages). After it, each change is one single-frame message: `01` + prefix to
//! subscribe, `00` + prefix to cancel (ZMTP 3.0's subscription messages). The Pub holds a
//! native stream from a Sub unaccepted until the snapshot is applied, so once a Sub sees its
//! stream accepted, the Pub filters for it: no "slow joiner" loss. A ZMTP link gets no
//! snapshot, one subscribe message per prefix instead ([`snapshot_for`]). An XPub applies
//! them in [`xpub`](super::xpub), which also tells its owner.

use bytes::{BufMut, Bytes, BytesMut};

use crate::pattern::fan_out::{FanOut, OverBudget, Subscriptions};
use crate::pattern::PeerId;
use crate::Message;

const SNAPSHOT: u8 = 0x02;
const SUBSCRIBE: u8 = 0x01;
const CANCEL: u8 = 0x00;

/// The most prefixes one snapshot message carries.
const SNAPSHOT_MAX_PREFIXES: usize = 1024;
/// The most prefix bytes one snapshot message carries.
const SNAPSHOT_MAX_BYTES: usize = 64 * 1024;

/// The snapshot of `subs`, as the messages to send in order.
///
/// One message `02` + prefixes when they fit in [`SNAPSHOT_MAX_PREFIXES`] frames and
/// [`SNAPSHOT_MAX_BYTES`]; otherwise the prefixes that do not fit go first, each as a
/// subscribe message (`01` + prefix), so that no snapshot message comes near a publisher's
/// message limits (`max_message_frames`, `max_message_size`) however many subscriptions a
/// Sub has: its subscription budget is what bounds them.
pub(super) fn snapshot(subs: &Subscriptions) -> Vec<Message> {
    let prefixes = subs.prefixes();
    let mut split = prefixes.len();
    let mut bytes = 0;
    while split > 0
        && prefixes.len() - split < SNAPSHOT_MAX_PREFIXES
        && bytes + prefixes[split - 1].len() <= SNAPSHOT_MAX_BYTES
    {
        split -= 1;
        bytes += prefixes[split].len();
    }
    let mut messages: Vec<Message> = prefixes[..split]
        .iter()
        .map(|prefix| command(true, prefix))
        .collect();
    let mut frames = vec![Bytes::from_static(&[SNAPSHOT])];
    frames.extend_from_slice(&prefixes[split..]);
    messages.push(Message::from(frames));
    messages
}

/// The snapshot of `subs` for a publisher over `link`: [`snapshot`]'s messages on a native
/// stream or an inproc pipe; one subscribe message per prefix on a ZMTP connection, which
/// has no snapshot (the driver turns them into SUBSCRIBE commands).
pub(super) fn snapshot_for(link: &super::Link, subs: &Subscriptions) -> Vec<Message> {
    match link {
        super::Link::Zmtp(_) => subs
            .prefixes()
            .iter()
            .map(|prefix| command(true, prefix))
            .collect(),
        _ => snapshot(subs),
    }
}

/// The message that subscribes to (or cancels) `prefix`.
pub(super) fn command(subscribe: bool, prefix: &[u8]) -> Message {
    let mut frame = BytesMut::with_capacity(1 + prefix.len());
    frame.put_u8(if subscribe { SUBSCRIBE } else { CANCEL });
    frame.extend_from_slice(prefix);
    Message::from(vec![frame.freeze()])
}

/// What a publisher sends an inproc subscriber once it applied its snapshot (native
/// streams use the stream's ACCEPT instead): a snapshot frame alone.
pub(super) fn acknowledgement() -> Message {
    Message::from(vec![Bytes::from_static(&[SNAPSHOT])])
}

/// Whether `msg` is a snapshot (or, from a publisher, the acknowledgement of one).
pub(super) fn is_snapshot(msg: &Message) -> bool {
    msg.first().is_some_and(|f| f.as_ref() == [SNAPSHOT])
}

/// Applies a message from subscriber `peer`; returns whether it was a snapshot. Anything
/// that is not a subscription message is ignored.
///
/// # Errors
/// [`OverBudget`] when the peer's subscriptions would go over the publisher's budget
/// (`Options::max_subscription_bytes`); the caller drops the peer. What the message held
/// up to that point was applied.
pub(super) fn apply(fanout: &mut FanOut, peer: PeerId, msg: &Message) -> Result<bool, OverBudget> {
    let Some(first) = msg.first() else {
        return Ok(false);
    };
    if first.as_ref() == [SNAPSHOT] {
        for prefix in &msg.frames()[1..] {
            fanout.subscribe(peer, prefix)?;
        }
        return Ok(true);
    }
    if msg.len() == 1 {
        match first.first() {
            Some(&SUBSCRIBE) => {
                fanout.subscribe(peer, &first[1..])?;
            }
            Some(&CANCEL) => {
                fanout.unsubscribe(peer, &first[1..]);
            }
            _ => {}
        }
    }
    Ok(false)
}

/// Whether a Sub wants `msg` (publishers filter too; this catches messages that were in
/// flight when a subscription was cancelled).
pub(super) fn wanted(subs: &Subscriptions, msg: &Message) -> bool {
    subs.matches(msg.first().map_or(&[][..], |f| f.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_and_commands_drive_the_fan_out() {
        let mut subs = Subscriptions::new();
        subs.subscribe(b"a.");
        subs.subscribe(b"");
        let mut fanout = FanOut::new(usize::MAX);
        let peer = PeerId(1);
        fanout.add_peer(peer);
        let snapshot = snapshot(&subs);
        assert_eq!(snapshot.len(), 1);
        assert_eq!(apply(&mut fanout, peer, &snapshot[0]), Ok(true));
        let mut out = vec![];
        fanout.matching(b"zzz", &mut out);
        assert_eq!(out, vec![peer], "the empty prefix matches everything");
        assert_eq!(apply(&mut fanout, peer, &command(false, b"")), Ok(false));
        fanout.matching(b"zzz", &mut out);
        assert!(out.is_empty());
        fanout.matching(b"a.x", &mut out);
        assert_eq!(out, vec![peer]);
        assert_eq!(
            apply(
                &mut fanout,
                peer,
                &Message::from(vec![Bytes::from_static(b"junk"), Bytes::new()])
            ),
            Ok(false)
        );
    }

    #[test]
    fn a_large_snapshot_sends_what_does_not_fit_first_as_subscribe_messages() {
        let mut subs = Subscriptions::new();
        for i in 0..3000 {
            subs.subscribe(format!("topic.{i}").as_bytes());
        }
        subs.subscribe(&[7u8; 70 * 1024]); // alone over the byte limit
        let messages = snapshot(&subs);
        let (last, before) = messages.split_last().unwrap();
        assert!(is_snapshot(last));
        assert!(last.len() <= 1 + SNAPSHOT_MAX_PREFIXES);
        assert!(last.iter().map(Bytes::len).sum::<usize>() <= 1 + SNAPSHOT_MAX_BYTES);
        assert!(before
            .iter()
            .all(|m| m.len() == 1 && m.frames()[0][0] == SUBSCRIBE));
        let mut fanout = FanOut::new(usize::MAX);
        let peer = PeerId(1);
        fanout.add_peer(peer);
        let applied: Vec<bool> = messages
            .iter()
            .map(|m| apply(&mut fanout, peer, m).unwrap())
            .collect();
        assert_eq!(
            applied.iter().filter(|&&s| s).count(),
            1,
            "one snapshot, last"
        );
        assert_eq!(applied.last(), Some(&true));
        let mut out = Vec::new();
        for topic in [&b"topic.0"[..], b"topic.2999", &[7u8; 70 * 1024]] {
            fanout.matching(topic, &mut out);
            assert_eq!(out, [peer]);
        }
    }
}
