//! A forward isolation device emulator ("gap"): a frame-aware TCP relay between a
//! gapsync sender and a receiver, used by the tests and, through the `gapsync-gap`
//! binary, by hand for site acceptance tests.
//!
//! For every accepted sender connection the gap connects to the receiver and then, per
//! frame: reads the 74-byte header and the payload (length: u32 big-endian at bytes
//! 54..58), waits the one-way latency and the bandwidth limit, forwards the frame, reads
//! exactly one answer byte from the receiver and passes it back only if it is `0x00` or
//! `0xFF`. Any other answer byte closes both sides and is logged. The gap does not check
//! checksums: it is a device, not a peer.
//!
//! Faults, drawn from a seeded xorshift PRNG on about one frame in `fault_every`:
//!
//! - `reset`: forwards the frame up to a random byte, then closes both connections;
//! - `flip`: flips one bit of one byte of the forwarded frame;
//! - `swallow`: forwards the frame but drops the receiver's answer (the sender times
//!   out);
//! - `stall`: forwards the frame up to a random byte, stops for `3 × stall`, then goes on.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Frame header length.
pub const HEADER: usize = 74;
/// Largest payload the gap relays (bigger declared lengths close both sides).
pub const MAX_PAYLOAD: usize = 64 << 20;

/// A fault the gap can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Reset,
    Flip,
    Swallow,
    Stall,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Reset => "reset",
            Fault::Flip => "flip",
            Fault::Swallow => "swallow",
            Fault::Stall => "stall",
        }
    }

    /// Parse a comma-separated list (`reset,flip,swallow,stall`; empty: none).
    pub fn parse_list(s: &str) -> Result<Vec<Fault>, String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Fault::from_str)
            .collect()
    }
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Fault, String> {
        match s {
            "reset" => Ok(Fault::Reset),
            "flip" => Ok(Fault::Flip),
            "swallow" => Ok(Fault::Swallow),
            "stall" => Ok(Fault::Stall),
            other => Err(format!(
                "unknown fault {other:?} (expected reset, flip, swallow, stall)"
            )),
        }
    }
}

/// Settings of a gap.
#[derive(Debug, Clone)]
pub struct GapConfig {
    /// Where senders connect (`127.0.0.1:0`: a free port, see [`Gap::addr`]).
    pub listen: String,
    /// The receiver.
    pub forward: String,
    /// One-way latency added to every forwarded frame.
    pub latency: Duration,
    /// Forward bandwidth limit in bytes per second (None: unlimited).
    pub bandwidth: Option<u64>,
    /// Faults to inject (empty: none).
    pub faults: Vec<Fault>,
    /// A fault on about one frame in this many (0 is taken as 1).
    pub fault_every: u64,
    /// PRNG seed.
    pub seed: u64,
    /// A stall lasts three times this.
    pub stall: Duration,
}

impl GapConfig {
    pub fn new(listen: &str, forward: &str) -> GapConfig {
        GapConfig {
            listen: listen.to_owned(),
            forward: forward.to_owned(),
            latency: Duration::ZERO,
            bandwidth: None,
            faults: Vec::new(),
            fault_every: 100,
            seed: 1,
            stall: Duration::from_millis(5000),
        }
    }
}

/// xorshift64* PRNG.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n = 0` gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// Counters of a running gap.
#[derive(Debug, Default)]
pub struct GapStats {
    pub connections: AtomicU64,
    pub frames: AtomicU64,
    pub answers: AtomicU64,
    pub resets: AtomicU64,
    pub flips: AtomicU64,
    pub swallows: AtomicU64,
    pub stalls: AtomicU64,
    pub garbage: AtomicU64,
}

/// A running gap; dropping it stops it and closes every connection.
#[derive(Debug)]
pub struct Gap {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<GapStats>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl Gap {
    /// Bind and start relaying in background threads.
    pub fn start(cfg: GapConfig) -> io::Result<Gap> {
        let listener = TcpListener::bind(&cfg.listen)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(GapStats::default());
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        tracing::info!(
            addr = %addr,
            forward = %cfg.forward,
            latency_ms = cfg.latency.as_millis() as u64,
            bandwidth = cfg.bandwidth.unwrap_or(0),
            faults = %cfg.faults.iter().map(|f| f.name()).collect::<Vec<_>>().join(","),
            fault_every = cfg.fault_every,
            seed = cfg.seed,
            stall_ms = cfg.stall.as_millis() as u64,
            "gap listening"
        );
        let accept = {
            let (stop, stats, conns) = (Arc::clone(&stop), Arc::clone(&stats), Arc::clone(&conns));
            std::thread::spawn(move || accept_loop(&listener, &cfg, &stop, &stats, &conns))
        };
        Ok(Gap {
            addr,
            stop,
            stats,
            conns,
            accept: Some(accept),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> &GapStats {
        &self.stats
    }

    /// Block until the accept thread ends (it does not, unless stopped).
    pub fn wait(mut self) {
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Gap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(all) = self.conns.lock() {
            for c in all.iter() {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    cfg: &GapConfig,
    stop: &Arc<AtomicBool>,
    stats: &Arc<GapStats>,
    conns: &Arc<Mutex<Vec<TcpStream>>>,
) {
    let mut rng = XorShift::new(cfg.seed);
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let (sender, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let conn = n;
        n += 1;
        stats.connections.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = sender.set_nonblocking(false) {
            tracing::warn!(conn, error = %e, "set_nonblocking failed");
            continue;
        }
        let receiver = match TcpStream::connect(&cfg.forward) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(conn, forward = %cfg.forward, error = %e, "receiver unreachable, closing the sender");
                continue;
            }
        };
        let _ = sender.set_nodelay(true);
        let _ = receiver.set_nodelay(true);
        if let Ok(mut all) = conns.lock() {
            all.retain(|c| c.peer_addr().is_ok());
            all.extend(sender.try_clone().ok());
            all.extend(receiver.try_clone().ok());
        }
        tracing::info!(conn, peer = %peer, "connection");
        let relay = Relay {
            conn,
            cfg: cfg.clone(),
            rng: XorShift::new(rng.next_u64()),
            stop: Arc::clone(stop),
            stats: Arc::clone(stats),
        };
        std::thread::spawn(move || relay.run(sender, receiver));
    }
}

struct Relay {
    conn: u64,
    cfg: GapConfig,
    rng: XorShift,
    stop: Arc<AtomicBool>,
    stats: Arc<GapStats>,
}

/// Why a connection ended.
enum End {
    SenderClosed,
    Io(&'static str, io::Error),
    Fault(&'static str),
    Garbage(u8),
    ReceiverClosed,
    TooLong(usize),
}

impl Relay {
    fn run(mut self, mut sender: TcpStream, mut receiver: TcpStream) {
        let end = self.relay(&mut sender, &mut receiver);
        let conn = self.conn;
        match end {
            End::SenderClosed => tracing::info!(conn, "sender closed"),
            End::Io(side, e) => tracing::info!(conn, side, error = %e, "connection lost"),
            End::Fault(f) => tracing::info!(conn, fault = f, "closed by fault"),
            End::Garbage(b) => {
                self.stats.garbage.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(
                    conn,
                    byte = %format!("0x{b:02X}"),
                    "garbage answer from the receiver: closing both sides"
                );
            }
            End::ReceiverClosed => tracing::info!(conn, "receiver closed"),
            End::TooLong(n) => {
                tracing::warn!(conn, length = n, "frame too long: closing both sides");
            }
        }
        let _ = sender.shutdown(Shutdown::Both);
        let _ = receiver.shutdown(Shutdown::Both);
    }

    fn draw_fault(&mut self) -> Option<Fault> {
        if self.cfg.faults.is_empty() || self.rng.below(self.cfg.fault_every.max(1)) != 0 {
            return None;
        }
        let i = self.rng.below(self.cfg.faults.len() as u64) as usize;
        self.cfg.faults.get(i).copied()
    }

    /// Sleep `d`, waking early when the gap stops.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= until {
                return;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    fn relay(&mut self, sender: &mut TcpStream, receiver: &mut TcpStream) -> End {
        let conn = self.conn;
        loop {
            let mut frame = vec![0u8; HEADER];
            // Header: a clean EOF before its first byte ends the connection.
            match sender.read(&mut frame[..1]) {
                Ok(0) => return End::SenderClosed,
                Ok(_) => {}
                Err(e) => return End::Io("sender", e),
            }
            if let Err(e) = sender.read_exact(&mut frame[1..]) {
                return End::Io("sender", e);
            }
            let mut len_be = [0u8; 4];
            len_be.copy_from_slice(&frame[54..58]);
            let len = u32::from_be_bytes(len_be) as usize;
            if len > MAX_PAYLOAD {
                return End::TooLong(len);
            }
            frame.resize(HEADER + len, 0);
            if let Err(e) = sender.read_exact(&mut frame[HEADER..]) {
                return End::Io("sender", e);
            }
            let kind = frame[4];
            let mut seq_be = [0u8; 8];
            seq_be.copy_from_slice(&frame[38..46]);
            let seq = u64::from_be_bytes(seq_be);
            self.stats.frames.fetch_add(1, Ordering::SeqCst);

            // One-way latency and bandwidth.
            let mut delay = self.cfg.latency;
            if let Some(bw) = self.cfg.bandwidth.filter(|b| *b > 0) {
                let nanos = (frame.len() as u128 * 1_000_000_000) / u128::from(bw);
                delay += Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
            }
            self.sleep(delay);

            let fault = self.draw_fault();
            let flen = frame.len() as u64;
            match fault {
                Some(Fault::Reset) => {
                    let at = self.rng.below(flen) as usize;
                    self.stats.resets.fetch_add(1, Ordering::SeqCst);
                    tracing::info!(conn, kind, seq, at, len = flen, "fault: reset");
                    let _ = receiver.write_all(&frame[..at]);
                    return End::Fault("reset");
                }
                Some(Fault::Flip) => {
                    let at = self.rng.below(flen) as usize;
                    let bit = self.rng.below(8) as u8;
                    self.stats.flips.fetch_add(1, Ordering::SeqCst);
                    tracing::info!(conn, kind, seq, at, bit, "fault: flip");
                    frame[at] ^= 1 << bit;
                    if let Err(e) = receiver.write_all(&frame) {
                        return End::Io("receiver", e);
                    }
                }
                Some(Fault::Stall) => {
                    let at = self.rng.below(flen) as usize;
                    let d = self.cfg.stall.saturating_mul(3);
                    self.stats.stalls.fetch_add(1, Ordering::SeqCst);
                    tracing::info!(
                        conn,
                        kind,
                        seq,
                        at,
                        stall_ms = d.as_millis() as u64,
                        "fault: stall"
                    );
                    if let Err(e) = receiver.write_all(&frame[..at]) {
                        return End::Io("receiver", e);
                    }
                    self.sleep(d);
                    if let Err(e) = receiver.write_all(&frame[at..]) {
                        return End::Io("receiver", e);
                    }
                }
                Some(Fault::Swallow) | None => {
                    if let Err(e) = receiver.write_all(&frame) {
                        return End::Io("receiver", e);
                    }
                }
            }

            // Exactly one answer byte back.
            let mut answer = [0u8; 1];
            match receiver.read(&mut answer) {
                Ok(0) => return End::ReceiverClosed,
                Ok(_) => {}
                Err(e) => return End::Io("receiver", e),
            }
            let byte = answer[0];
            if byte != 0x00 && byte != 0xFF {
                return End::Garbage(byte);
            }
            if fault == Some(Fault::Swallow) {
                self.stats.swallows.fetch_add(1, Ordering::SeqCst);
                tracing::info!(conn, kind, seq, answer = %format!("0x{byte:02X}"), "fault: swallow");
                continue;
            }
            if let Err(e) = sender.write_all(&answer) {
                return End::Io("sender", e);
            }
            self.stats.answers.fetch_add(1, Ordering::SeqCst);
            tracing::debug!(conn, kind, seq, len = flen, answer = %format!("0x{byte:02X}"), "frame");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_list_parses() {
        assert_eq!(
            Fault::parse_list("reset, flip,swallow,stall").ok(),
            Some(vec![
                Fault::Reset,
                Fault::Flip,
                Fault::Swallow,
                Fault::Stall
            ])
        );
        assert_eq!(Fault::parse_list("").ok(), Some(vec![]));
        assert!(Fault::parse_list("boom").is_err());
    }

    #[test]
    fn xorshift_is_seeded() {
        let a: Vec<u64> = (0..5)
            .scan(XorShift::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..5)
            .scan(XorShift::new(7), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
    }
}
