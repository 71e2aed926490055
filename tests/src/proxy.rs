//! A TCP proxy that can cut a connection, and the plant schema (`plant`).

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::*;

// ------------------------------------------------------------------------ TCP proxy

/// A plain TCP forwarder on `127.0.0.1:<port>` to an upstream address (e.g. a database
/// server between the receiver and its target), with an outage switch:
/// [`cut`](TcpProxy::cut) closes the listening socket (new connections are refused)
/// and every forwarded connection (both ends see the connection end at once);
/// [`restore`](TcpProxy::restore) listens on the same port again.
///
/// Dropping it cuts everything.
#[derive(Debug)]
pub struct TcpProxy {
    pub(crate) addr: SocketAddr,
    pub(crate) inner: Arc<ProxyInner>,
    pub(crate) accept: Option<JoinHandle<()>>,
}

#[derive(Debug)]
pub(crate) struct ProxyInner {
    pub(crate) upstream: String,
    pub(crate) stop: AtomicBool,
    pub(crate) listener: Mutex<Option<TcpListener>>,
    pub(crate) conns: Mutex<Vec<TcpStream>>,
    pub(crate) accepted: AtomicU64,
}

impl TcpProxy {
    /// Listen on a free port of 127.0.0.1 and forward every connection to `upstream`.
    pub fn start(upstream: &str) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: bind");
        let addr = listener.local_addr().expect("proxy: local_addr");
        listener
            .set_nonblocking(true)
            .expect("proxy: set_nonblocking");
        let inner = Arc::new(ProxyInner {
            upstream: upstream.to_owned(),
            stop: AtomicBool::new(false),
            listener: Mutex::new(Some(listener)),
            conns: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
        });
        let accept = {
            let inner = Arc::clone(&inner);
            std::thread::spawn(move || proxy_accept_loop(&inner))
        };
        TcpProxy {
            addr,
            inner,
            accept: Some(accept),
        }
    }

    /// The port the proxy listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted (and forwarded) so far.
    pub fn accepted(&self) -> u64 {
        self.inner.accepted.load(Ordering::SeqCst)
    }

    /// Outage: stop listening (connection attempts are refused) and close every
    /// forwarded connection, both ends.
    pub fn cut(&self) {
        if let Ok(mut l) = self.inner.listener.lock() {
            l.take();
        }
        if let Ok(mut all) = self.inner.conns.lock() {
            for s in all.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// End of the outage: listen on the same port again.
    pub fn restore(&self) {
        let start = Instant::now();
        let listener = loop {
            match TcpListener::bind(self.addr) {
                Ok(l) => break l,
                Err(_) if start.elapsed() < secs(5) => std::thread::sleep(ms(50)),
                Err(e) => panic!("proxy: cannot listen on {} again: {e}", self.addr),
            }
        };
        listener
            .set_nonblocking(true)
            .expect("proxy: set_nonblocking");
        if let Ok(mut l) = self.inner.listener.lock() {
            *l = Some(listener);
        }
    }
}

pub(crate) fn proxy_accept_loop(inner: &ProxyInner) {
    while !inner.stop.load(Ordering::SeqCst) {
        let accepted = match inner.listener.lock() {
            Ok(l) => l.as_ref().map(TcpListener::accept),
            Err(_) => return,
        };
        let Some(Ok((client, _))) = accepted else {
            std::thread::sleep(ms(5));
            continue;
        };
        let _ = client.set_nonblocking(false);
        let Ok(up) = inner
            .upstream
            .parse::<SocketAddr>()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|a| TcpStream::connect_timeout(&a, secs(5)))
        else {
            continue; // upstream down: the client sees its connection closed
        };
        let _ = client.set_nodelay(true);
        let _ = up.set_nodelay(true);
        let pairs = (
            client.try_clone(),
            up.try_clone(),
            client.try_clone(),
            up.try_clone(),
        );
        let (Ok(c_read), Ok(u_write), Ok(c_write), Ok(u_read)) = pairs else {
            continue;
        };
        if let Ok(mut all) = inner.conns.lock() {
            all.push(client);
            all.push(up);
        }
        inner.accepted.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || proxy_pump(c_read, u_write));
        std::thread::spawn(move || proxy_pump(u_read, c_write));
    }
}

pub(crate) fn proxy_pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.cut();
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// Schema of the plant-like tables used by the demo and several tests.
pub mod plant {
    use super::Rng;
    use rusqlite::{Connection, params};

    /// `meter_reading(id INTEGER PRIMARY KEY, meter TEXT, value REAL, quality INTEGER,
    /// at TEXT)`.
    pub const METER_READING: &str = "CREATE TABLE meter_reading(id INTEGER PRIMARY KEY, \
        meter TEXT NOT NULL, value REAL, quality INTEGER, at TEXT)";
    /// `breaker_state(breaker TEXT PRIMARY KEY, closed INTEGER, changed_at TEXT)`.
    pub const BREAKER_STATE: &str = "CREATE TABLE breaker_state(breaker TEXT PRIMARY KEY, \
        closed INTEGER NOT NULL, changed_at TEXT)";
    /// `alarm(id INTEGER PRIMARY KEY, text TEXT, raw BLOB)`.
    pub const ALARM: &str = "CREATE TABLE alarm(id INTEGER PRIMARY KEY, text TEXT, raw BLOB)";

    /// Meter names (Chinese, as on real plants).
    pub const METERS: &[&str] = &[
        "1号主变 高压侧",
        "1号主变 低压侧",
        "2号主变 高压侧",
        "#3机组 出口",
        "220kV 母线 A相",
        "厂用电 6kV I段",
    ];

    /// Breaker names.
    pub const BREAKERS: &[&str] = &[
        "2201开关",
        "2202开关",
        "2211开关",
        "6kV 1A进线",
        "6kV 1B进线",
        "#1机出口断路器",
        "母联2212",
        "kV'quote\"breaker",
    ];

    /// Alarm texts.
    pub const ALARMS: &[&str] = &[
        "母线电压越限",
        "主变油温高 (85°C)",
        "通信中断: RTU 3",
        "line1\nline2 多行告警",
        "quote ' and backslash \\ 🔥",
    ];

    /// A timestamp-like text for step `n`.
    pub fn at(n: u64) -> String {
        format!(
            "2026-01-01T{:02}:{:02}:{:02}.{:03}Z",
            (n / 3600) % 24,
            (n / 60) % 60,
            n % 60,
            n % 1000
        )
    }

    /// Insert `n` meter readings with ids `first..first+n` in one transaction.
    pub fn seed_meter_readings(conn: &Connection, first: i64, n: i64, rng: &mut Rng) {
        let tx = conn.unchecked_transaction().expect("begin");
        {
            let mut st = tx
                .prepare("INSERT INTO meter_reading(id, meter, value, quality, at) VALUES (?1, ?2, ?3, ?4, ?5)")
                .expect("prepare");
            for id in first..first + n {
                st.execute(params![
                    id,
                    *rng.pick(METERS),
                    rng.unit() * 1000.0 - 100.0,
                    rng.range(0, 3),
                    at(id as u64)
                ])
                .expect("insert meter_reading");
            }
        }
        tx.commit().expect("commit");
    }

    /// One random change to `meter_reading`: insert (new id from `next_id`), update of
    /// value/quality, primary-key change, or delete; ids are picked in `lo..=hi` for
    /// updates and deletes (missing ids simply change nothing).
    pub fn meter_step(
        conn: &Connection,
        rng: &mut Rng,
        next_id: &mut i64,
        lo: i64,
        hi: i64,
    ) -> rusqlite::Result<()> {
        let pick = rng.range(lo, hi);
        match rng.below(100) {
            0..=44 => {
                let id = *next_id;
                *next_id += 1;
                conn.execute(
                    "INSERT INTO meter_reading(id, meter, value, quality, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, *rng.pick(METERS), rng.unit() * 500.0, rng.range(0, 3), at(id as u64)],
                )?;
            }
            45..=79 => {
                conn.execute(
                    "UPDATE meter_reading SET value = ?2, quality = ?3 WHERE id = ?1",
                    params![pick, rng.unit() * 500.0, rng.range(0, 3)],
                )?;
            }
            80..=87 => {
                let id = *next_id;
                *next_id += 1;
                conn.execute(
                    "UPDATE meter_reading SET id = ?2 WHERE id = ?1",
                    params![pick, id],
                )?;
            }
            _ => {
                conn.execute("DELETE FROM meter_reading WHERE id = ?1", params![pick])?;
            }
        }
        Ok(())
    }
}
