//! Subscriptions on the wire between a Sub and a Pub.
//!
//! A Sub's first message on a new link is a *snapshot*: frame `02`, then one frame per
//! subscribed prefix. After it, each change is one single-frame message: `01` + prefix to
//! subscribe, `00` + prefix to cancel (ZMTP 3.0's subscription messages). The Pub holds a
//! native stream from a Sub unaccepted until the snapshot is applied, so once a Sub sees its
//! stream accepted, the Pub filters for it: no "slow joiner" loss.

use bytes::{BufMut, Bytes, BytesMut};

use crate::pattern::fan_out::{FanOut, OverBudget, Subscriptions};
use crate::pattern::PeerId;
use crate::Message;

const SNAPSHOT: u8 = 0x02;
const SUBSCRIBE: u8 = 0x01;
const CANCEL: u8 = 0x00;

/// The snapshot message for `subs`.
pub(super) fn snapshot(subs: &Subscriptions) -> Message {
    let mut frames = vec![Bytes::from_static(&[SNAPSHOT])];
    frames.extend(subs.prefixes());
    Message::from(frames)
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
        assert_eq!(apply(&mut fanout, peer, &snapshot(&subs)), Ok(true));
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
}
