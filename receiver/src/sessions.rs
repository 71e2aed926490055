//! Who holds a connection, and for how long: the receiver's slots.
//!
//! The receiver's port is open to the whole outside network, so a peer that has not
//! authenticated must not be able to keep anyone else out. Every connection is
//! registered here from accept to close:
//!
//! - **Unauthenticated** (before an accepted HELLO): at most
//!   [`MAX_UNAUTHENTICATED_PER_PEER`] per peer address and `max_unauthenticated` in
//!   total. A new connection over either cap closes the *oldest* unauthenticated one (of
//!   that address first), so a stranger holding idle connections is pushed out by the
//!   next arrival instead of shutting the real sender out; and the HELLO deadline
//!   (`[link] hello_timeout`) ends every such connection soon anyway.
//! - **Authenticated** (a node's HELLO verified): no longer counted against the caps
//!   above; at most [`MAX_SESSIONS_PER_NODE`] per node, the oldest closed first (a
//!   sender that reconnects after a fault leaves its old connection waiting for its
//!   idle timeout; the new one wins).
//!
//! Closing means `shutdown` of a clone of the victim's socket: its thread's next read
//! fails and it ends, removing its part file on the way out.

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Unauthenticated connections one peer address may hold at once (the oldest is
/// closed when it opens another).
pub const MAX_UNAUTHENTICATED_PER_PEER: usize = 4;

/// Authenticated connections one node may hold at once.
pub const MAX_SESSIONS_PER_NODE: usize = 4;

/// An unauthenticated connection younger than this is not closed to make room when
/// every address holds a single slot (its HELLO may be on its way).
pub const MIN_AGE: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug)]
struct Slot {
    ip: IpAddr,
    since: Instant,
    node: Option<String>,
    /// The node has `[[trust]]` keys (false: admitted by `insecure`).
    keyed: bool,
    /// A clone of the connection's socket, to close it.
    stream: TcpStream,
}

/// The registry of open connections (see the module docs).
#[derive(Debug)]
pub struct Sessions {
    slots: Mutex<HashMap<u64, Slot>>,
    next_id: AtomicU64,
    max_unauthenticated: usize,
    /// Connections closed or refused for room, not yet reported.
    evicted: AtomicU64,
}

/// Counts for `status` and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionCounts {
    pub unauthenticated: usize,
    pub authenticated: usize,
}

impl Sessions {
    pub fn new(max_unauthenticated: usize) -> Sessions {
        Sessions {
            slots: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            max_unauthenticated: max_unauthenticated.max(1),
            evicted: AtomicU64::new(0),
        }
    }

    /// Registers a new, unauthenticated connection, making room under the caps:
    /// - per address: the oldest unauthenticated connection of the same address closes;
    /// - in total: one of the address holding the most unauthenticated slots closes
    ///   (its oldest), so a flood from a few addresses never pushes out the one pending
    ///   connection of another address (the device's); when every address holds a
    ///   single slot, a connection younger than [`MIN_AGE`] is not closed and the
    ///   newcomer is refused instead.
    ///
    /// Returns the connection id; an error means the caller drops the connection
    /// (refused, or the socket could not be cloned).
    pub fn admit(&self, stream: &TcpStream, ip: IpAddr) -> std::io::Result<u64> {
        let clone = stream.try_clone()?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let Ok(mut slots) = self.slots.lock() else {
            return Ok(id);
        };
        let close = |slots: &mut HashMap<u64, Slot>, victim: u64| {
            if let Some(s) = slots.remove(&victim) {
                tracing::debug!(peer = %s.ip, held_for = ?s.since.elapsed(), "closing an unauthenticated connection to make room for a new one");
                self.evicted.fetch_add(1, Ordering::SeqCst);
                // Already closed by the peer is as good.
                let _ = s.stream.shutdown(Shutdown::Both);
            }
        };
        // Per address.
        loop {
            let mine: Vec<(u64, Instant)> = slots
                .iter()
                .filter(|(_, s)| s.node.is_none() && s.ip == ip)
                .map(|(id, s)| (*id, s.since))
                .collect();
            if mine.len() < MAX_UNAUTHENTICATED_PER_PEER {
                break;
            }
            match mine.into_iter().min_by_key(|(_, since)| *since) {
                Some((victim, _)) => close(&mut slots, victim),
                None => break,
            }
        }
        // In total: from the address holding the most.
        loop {
            let mut per_ip: HashMap<IpAddr, Vec<(u64, Instant)>> = HashMap::new();
            for (id, s) in slots.iter().filter(|(_, s)| s.node.is_none()) {
                per_ip.entry(s.ip).or_default().push((*id, s.since));
            }
            let total: usize = per_ip.values().map(Vec::len).sum();
            if total < self.max_unauthenticated {
                break;
            }
            let Some(most) = per_ip.values().map(Vec::len).max() else {
                break;
            };
            let Some((victim, since)) = per_ip
                .values()
                .filter(|v| v.len() == most)
                .flatten()
                .copied()
                .min_by_key(|(_, since)| *since)
            else {
                break;
            };
            if most == 1 && since.elapsed() < MIN_AGE {
                self.evicted.fetch_add(1, Ordering::SeqCst);
                return Err(std::io::Error::other(
                    "too many unauthenticated connections: refused",
                ));
            }
            close(&mut slots, victim);
        }
        slots.insert(
            id,
            Slot {
                ip,
                since: Instant::now(),
                node: None,
                keyed: false,
                stream: clone,
            },
        );
        Ok(id)
    }

    /// Connections closed or refused to make room since the last call (for a summary
    /// log line instead of one line each: a flood must not drown the alarms).
    pub fn take_evicted(&self) -> u64 {
        self.evicted.swap(0, Ordering::SeqCst)
    }

    /// Connection `id` authenticated as `node`: it leaves the unauthenticated caps;
    /// older connections of `node` beyond [`MAX_SESSIONS_PER_NODE`] are closed.
    /// Returns false if the connection was closed meanwhile (evicted).
    ///
    /// Sessions of nodes without keys (admitted by `insecure` under any name) are also
    /// capped together at `max_unauthenticated`, oldest closed first: new names must
    /// not buy a stranger unlimited threads.
    pub fn authenticated(&self, id: u64, node: &str, keyed: bool) -> bool {
        let Ok(mut slots) = self.slots.lock() else {
            return false;
        };
        let Some(slot) = slots.get_mut(&id) else {
            return false;
        };
        slot.node = Some(node.to_owned());
        slot.keyed = keyed;
        slot.since = Instant::now();
        loop {
            let mine: Vec<(u64, Instant)> = slots
                .iter()
                .filter(|(_, s)| {
                    s.node.as_deref() == Some(node) || (!keyed && s.node.is_some() && !s.keyed)
                })
                .map(|(id, s)| (*id, s.since))
                .collect();
            let cap = if keyed {
                MAX_SESSIONS_PER_NODE
            } else {
                self.max_unauthenticated.max(MAX_SESSIONS_PER_NODE)
            };
            let own = slots
                .values()
                .filter(|s| s.node.as_deref() == Some(node))
                .count();
            if mine.len() <= cap && own <= MAX_SESSIONS_PER_NODE {
                return true;
            }
            let Some((victim, _)) = mine.into_iter().min_by_key(|(_, since)| *since) else {
                return true;
            };
            if let Some(s) = slots.remove(&victim) {
                tracing::info!(%node, peer = %s.ip, "closing the oldest connection of the node: it opened a newer one");
                // Already closed by the peer is as good.
                let _ = s.stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Closes every open connection (the service stops or reloads): a sender that was
    /// waiting for RESULT connects again and asks, and is answered from the ledger.
    pub fn close_all(&self) {
        if let Ok(mut slots) = self.slots.lock() {
            for (_, s) in slots.drain() {
                // Already closed by the peer is as good.
                let _ = s.stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Connection `id` ended.
    pub fn leave(&self, id: u64) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(&id);
        }
    }

    pub fn counts(&self) -> SessionCounts {
        let Ok(slots) = self.slots.lock() else {
            return SessionCounts::default();
        };
        let authenticated = slots.values().filter(|s| s.node.is_some()).count();
        SessionCounts {
            unauthenticated: slots.len() - authenticated,
            authenticated,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    fn pair(l: &TcpListener) -> (TcpStream, TcpStream) {
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s)
    }

    fn is_closed(c: &mut TcpStream) -> bool {
        c.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        matches!(c.read(&mut [0u8; 1]), Ok(0) | Err(_))
            && c.read(&mut [0u8; 1]).map(|n| n == 0).unwrap_or(true)
    }

    #[test]
    fn the_oldest_unauthenticated_connection_of_a_peer_makes_room() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let reg = Sessions::new(16);
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let mut held = Vec::new();
        for _ in 0..MAX_UNAUTHENTICATED_PER_PEER {
            let (c, s) = pair(&l);
            reg.admit(&s, ip).unwrap();
            held.push((c, s));
        }
        assert_eq!(reg.counts().unauthenticated, MAX_UNAUTHENTICATED_PER_PEER);
        let (_c, s) = pair(&l);
        reg.admit(&s, ip).unwrap();
        assert_eq!(reg.counts().unauthenticated, MAX_UNAUTHENTICATED_PER_PEER);
        assert!(is_closed(&mut held[0].0), "the oldest was closed");
        // Another address is not affected by this one's cap.
        let (_c2, s2) = pair(&l);
        reg.admit(&s2, "10.0.0.10".parse().unwrap()).unwrap();
        assert_eq!(
            reg.counts().unauthenticated,
            MAX_UNAUTHENTICATED_PER_PEER + 1
        );
    }

    #[test]
    fn authenticated_sessions_leave_the_caps_and_are_bounded_per_node() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let reg = Sessions::new(2);
        let mut held = Vec::new();
        for i in 0..(MAX_SESSIONS_PER_NODE + 1) {
            let (c, s) = pair(&l);
            let id = reg
                .admit(&s, format!("10.0.1.{i}").parse().unwrap())
                .unwrap();
            assert!(reg.authenticated(id, "plant1", true));
            held.push((c, s));
        }
        let n = reg.counts();
        assert_eq!(n.authenticated, MAX_SESSIONS_PER_NODE);
        assert_eq!(n.unauthenticated, 0);
        assert!(
            is_closed(&mut held[0].0),
            "the node's oldest session was closed"
        );
        // The total cap of unauthenticated connections closes the oldest of the address holding the most.
        let (mut a, sa) = pair(&l);
        reg.admit(&sa, "10.0.2.1".parse().unwrap()).unwrap();
        let (_b, sb) = pair(&l);
        reg.admit(&sb, "10.0.2.1".parse().unwrap()).unwrap();
        let (_c, sc) = pair(&l);
        reg.admit(&sc, "10.0.2.3".parse().unwrap()).unwrap();
        assert_eq!(reg.counts().unauthenticated, 2);
        assert!(is_closed(&mut a));
        assert_eq!(reg.counts().authenticated, MAX_SESSIONS_PER_NODE);
    }
}

#[cfg(test)]
mod fairness_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::TcpListener;

    fn pair(l: &TcpListener) -> (TcpStream, TcpStream) {
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s)
    }

    /// A flood from a few addresses fills the total cap: the one pending connection of
    /// another address (the device's) is never the one closed, and when every address
    /// holds a single young slot, the newcomer is refused instead.
    #[test]
    fn the_total_cap_closes_from_the_address_holding_the_most() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let reg = Sessions::new(6);
        let (_dc, ds) = pair(&l);
        let device = reg.admit(&ds, "10.9.9.9".parse().unwrap()).unwrap();
        let mut held = Vec::new();
        for i in 0..40 {
            let (c, s) = pair(&l);
            let ip: IpAddr = format!("10.0.0.{}", i % 4).parse().unwrap();
            reg.admit(&s, ip).unwrap();
            held.push((c, s));
        }
        assert_eq!(reg.counts().unauthenticated, 6);
        assert!(
            reg.authenticated(device, "plant1", true),
            "the device's connection survived the flood"
        );
        assert!(reg.take_evicted() > 0);

        let reg = Sessions::new(2);
        let (_a, sa) = pair(&l);
        reg.admit(&sa, "10.1.0.1".parse().unwrap()).unwrap();
        let (_b, sb) = pair(&l);
        reg.admit(&sb, "10.1.0.2".parse().unwrap()).unwrap();
        let (_c, sc) = pair(&l);
        assert!(
            reg.admit(&sc, "10.1.0.3".parse().unwrap()).is_err(),
            "single young slots are not closed: the newcomer is refused"
        );
    }

    /// Nodes without keys (insecure) cannot buy unlimited sessions with new names.
    #[test]
    fn sessions_of_nodes_without_keys_are_capped_together() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let reg = Sessions::new(4);
        let mut held = Vec::new();
        for i in 0..12 {
            let (c, s) = pair(&l);
            let id = reg
                .admit(&s, format!("10.2.0.{i}").parse().unwrap())
                .unwrap();
            assert!(reg.authenticated(id, &format!("anon{i}"), false));
            held.push((c, s));
        }
        assert_eq!(reg.counts().authenticated, 4);
        // A keyed node's session is not counted with them.
        let (_k, sk) = pair(&l);
        let id = reg.admit(&sk, "10.3.0.1".parse().unwrap()).unwrap();
        assert!(reg.authenticated(id, "plant1", true));
        assert_eq!(reg.counts().authenticated, 5);
    }
}
