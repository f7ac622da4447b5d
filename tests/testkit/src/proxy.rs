//! A TCP proxy that puts network faults between a client and a server.
//!
//! Chaos experiments put it between one service and the emulator: that
//! service alone sees the fault while everything else talks to the emulator
//! directly. The benchmark puts it between every service (and its own bare
//! client) and the emulator to measure the system at a network's round trip.
//! The fault can change at any time and applies to the connections already
//! open as well as to new ones:
//!
//! - `Pass`: bytes flow untouched;
//! - `Latency(d)`: every chunk is forwarded `d` after it was read, both ways;
//! - `RoundTrip(rtt)`: a network with that round-trip time: every chunk is
//!   forwarded `rtt / 2` after it was read, both ways, so each request and
//!   response exchange on a kept-alive connection costs `rtt` more; and a new
//!   connection's first bytes wait one round trip more, the TCP handshake a
//!   real network costs (the client's own connect to the proxy is local);
//! - `Reset`: new connections are closed with a TCP reset right after they
//!   are accepted, open ones are closed;
//! - `Blackhole`: connections stay open and nothing is forwarded: the client
//!   waits until its own timeout. When the fault ends they are closed.
//!
//! A delay is a delay line, not a pause: each direction's reader keeps
//! reading and stamps every chunk with the time it is due, and its writer
//! forwards each chunk at that time. Chunks in flight overlap as packets on a
//! wire do, so a delay adds latency without capping a connection's
//! throughput at one chunk per delay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the proxy does to the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetFault {
    Pass,
    Latency(Duration),
    RoundTrip(Duration),
    Reset,
    Blackhole,
}

impl NetFault {
    /// How long a chunk read now waits before it is forwarded, if the fault
    /// forwards at all.
    fn one_way(self) -> Option<Duration> {
        match self {
            NetFault::Pass => Some(Duration::ZERO),
            NetFault::Latency(d) => Some(d),
            NetFault::RoundTrip(rtt) => Some(rtt / 2),
            NetFault::Reset | NetFault::Blackhole => None,
        }
    }

    /// What opening a connection costs before its first bytes can travel.
    fn handshake(self) -> Duration {
        match self {
            NetFault::RoundTrip(rtt) => rtt,
            _ => Duration::ZERO,
        }
    }
}

impl std::fmt::Display for NetFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetFault::Pass => f.write_str("no fault"),
            NetFault::Latency(d) => write!(f, "{} ms added latency", d.as_millis()),
            NetFault::RoundTrip(d) => write!(f, "{} ms round trip", d.as_millis()),
            NetFault::Reset => f.write_str("connection resets"),
            NetFault::Blackhole => f.write_str("black hole"),
        }
    }
}

pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<NetFault>,
    connections: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (fault, faults) = watch::channel(NetFault::Pass);
        let stop = CancellationToken::new();
        let connections = Arc::new(AtomicU64::new(0));
        tokio::spawn(accept_loop(
            listener,
            upstream,
            faults,
            connections.clone(),
            stop.clone(),
        ));
        Ok(FaultProxy {
            addr,
            fault,
            connections,
            stop,
        })
    }

    /// `http://127.0.0.1:<port>`, for a client's endpoint setting.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: NetFault) {
        self.fault.send_replace(fault);
    }

    /// Connections accepted so far: set beside the calls made, it tells
    /// whether the clients keep their connections alive.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    faults: watch::Receiver<NetFault>,
    connections: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, _)) => {
                connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(carry(client, upstream, faults.clone(), stop.clone()));
            }
            Err(e) => {
                // Out of descriptors, say: wait a little rather than spin.
                tracing::warn!(error = %e, "proxy accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Closes `stream` with a TCP reset rather than an orderly close.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn carry(
    client: TcpStream,
    upstream: SocketAddr,
    mut faults: watch::Receiver<NetFault>,
    stop: CancellationToken,
) {
    let accepted = Instant::now();
    let fault = *faults.borrow_and_update();
    match fault {
        NetFault::Reset => return reset(client),
        NetFault::Blackhole => {
            // Hold the connection, forward nothing, until the fault changes.
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = faults.changed() => {}
            }
            return reset(client);
        }
        NetFault::Pass | NetFault::Latency(_) | NetFault::RoundTrip(_) => {}
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // The client's first bytes reach the server no sooner than a handshake
    // after it connected; the server speaks only after them.
    let handshake_done = accepted + fault.handshake();
    // Either direction ending (a close, an error, or a fault that cuts the
    // connection) drops all four halves, which closes both sockets.
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = pump(client_read, server_write, faults.clone(), handshake_done) => {}
        _ = pump(server_read, client_write, faults.clone(), accepted) => {}
    }
}

/// How a direction's reader stopped.
enum End {
    /// The sender closed: forward what is still on the line, then close.
    Closed,
    /// A fault cut the connection.
    Cut,
}

/// Chunks on the line of one direction, at most: beyond that the reader
/// waits, as a sender does on a full window.
const LINE_CHUNKS: usize = 1024;

/// Copies one direction through a delay line, applying the current fault to
/// each chunk as it is read, until the connection closes or a fault cuts it:
/// a reset closes at once, a black hole holds the connection, forwarding
/// nothing, until the fault changes. No chunk leaves before `not_before`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut faults: watch::Receiver<NetFault>,
    not_before: Instant,
) {
    let (line, mut due) = mpsc::channel::<(Instant, Vec<u8>)>(LINE_CHUNKS);
    let writer_faults = faults.clone();
    let reader = async move {
        let end = read_into(&mut from, &line, &mut faults, not_before).await;
        // The writer sees the line close once it has forwarded what is on it.
        drop(line);
        end
    };
    let writer = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            // A chunk due while the connection is cut is not forwarded.
            if writer_faults.borrow().one_way().is_none() {
                return std::future::pending().await;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        // The sender closed and the line is empty: pass the close on.
        let _ = to.shutdown().await;
    };
    tokio::pin!(reader, writer);
    tokio::select! {
        end = &mut reader => match end {
            // The line's sender was dropped with the reader: the writer
            // forwards what is left and closes.
            End::Closed => writer.await,
            End::Cut => {}
        },
        () = &mut writer => {}
    }
}

/// Reads chunks and puts each on the line stamped with the time it is due.
async fn read_into(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    line: &mpsc::Sender<(Instant, Vec<u8>)>,
    faults: &mut watch::Receiver<NetFault>,
    not_before: Instant,
) -> End {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return End::Closed,
                Ok(n) => n,
            },
            changed = faults.changed() => {
                if changed.is_err() {
                    return End::Cut;
                }
                let now = *faults.borrow_and_update();
                match now {
                    NetFault::Reset => return End::Cut,
                    NetFault::Blackhole => {
                        hold(faults).await;
                        return End::Cut;
                    }
                    NetFault::Pass | NetFault::Latency(_) | NetFault::RoundTrip(_) => continue,
                }
            }
        };
        let fault = *faults.borrow();
        let Some(delay) = fault.one_way() else {
            if fault == NetFault::Blackhole {
                hold(faults).await;
            }
            return End::Cut;
        };
        let at = Instant::now().max(not_before) + delay;
        if line.send((at, buf[..n].to_vec())).await.is_err() {
            return End::Cut;
        }
    }
}

/// Forwards nothing until the fault changes (or the proxy stops).
async fn hold(faults: &mut watch::Receiver<NetFault>) {
    let _ = faults.changed().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on a free port.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(proxy: &FaultProxy, within: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        let attempt = async {
            let mut s = TcpStream::connect(proxy.addr)
                .await
                .map_err(|e| e.to_string())?;
            s.write_all(b"ping").await.map_err(|e| e.to_string())?;
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            if &buf == b"ping" {
                Ok(started.elapsed())
            } else {
                Err(format!("got {buf:?}"))
            }
        };
        tokio::time::timeout(within, attempt)
            .await
            .map_err(|_| "no answer".to_string())?
    }

    #[tokio::test]
    async fn each_fault_does_what_it_says_and_passing_again_heals() {
        let proxy = FaultProxy::start(echo().await).await.expect("proxy");
        assert!(round_trip(&proxy, Duration::from_secs(2)).await.is_ok());

        proxy.set(NetFault::Latency(Duration::from_millis(150)));
        let slow = round_trip(&proxy, Duration::from_secs(2))
            .await
            .expect("slow answer");
        assert!(
            slow >= Duration::from_millis(300),
            "two delayed chunks: {slow:?}"
        );

        proxy.set(NetFault::Reset);
        assert!(round_trip(&proxy, Duration::from_secs(2)).await.is_err());

        // A connection opened before the black hole hangs too, it is not closed.
        proxy.set(NetFault::Pass);
        let mut open = TcpStream::connect(proxy.addr).await.expect("connect");
        open.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        open.read_exact(&mut buf)
            .await
            .expect("echo before the fault");
        proxy.set(NetFault::Blackhole);
        assert_eq!(
            round_trip(&proxy, Duration::from_millis(500)).await,
            Err("no answer".to_string())
        );
        let _ = open.write_all(b"ping").await;
        let silent = tokio::time::timeout(Duration::from_millis(500), open.read(&mut buf)).await;
        assert!(
            silent.is_err(),
            "an open connection must hang, got {silent:?}"
        );

        proxy.set(NetFault::Pass);
        assert!(round_trip(&proxy, Duration::from_secs(2)).await.is_ok());
    }

    #[tokio::test]
    async fn a_round_trip_costs_each_exchange_one_round_trip_and_a_new_connection_one_more() {
        let proxy = FaultProxy::start(echo().await).await.expect("proxy");
        let rtt = Duration::from_millis(100);
        proxy.set(NetFault::RoundTrip(rtt));
        let before = proxy.connections();
        let started = Instant::now();
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        let mut buf = [0u8; 4];
        s.write_all(b"ping").await.expect("write");
        s.read_exact(&mut buf).await.expect("first echo");
        let first = started.elapsed();
        assert!(first >= 2 * rtt, "handshake and one exchange: {first:?}");
        let again = Instant::now();
        s.write_all(b"pong").await.expect("write");
        s.read_exact(&mut buf).await.expect("second echo");
        assert_eq!(&buf, b"pong");
        let kept_alive = again.elapsed();
        assert!(kept_alive >= rtt, "one exchange: {kept_alive:?}");
        assert_eq!(proxy.connections() - before, 1);
    }

    /// Chunks written one after the other overlap on the line: all of them
    /// arrive about one delay after they were sent, where a proxy that slept
    /// before forwarding each would take a delay per chunk.
    #[tokio::test]
    async fn a_delay_does_not_serialise_a_connection() {
        let proxy = FaultProxy::start(echo().await).await.expect("proxy");
        let delay = Duration::from_millis(100);
        proxy.set(NetFault::Latency(delay));
        let chunks = 40u32;
        let s = TcpStream::connect(proxy.addr).await.expect("connect");
        let _ = s.set_nodelay(true);
        let (mut read, mut write) = s.into_split();
        let started = Instant::now();
        let sender = tokio::spawn(async move {
            for i in 0..chunks {
                write.write_all(&[i as u8; 8]).await.expect("write");
                // Apart in time, so the proxy reads them as separate chunks.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            write
        });
        let mut echoed = vec![0u8; 8 * chunks as usize];
        read.read_exact(&mut echoed)
            .await
            .expect("every chunk echoed");
        let took = started.elapsed();
        let _write = sender.await.expect("sender");
        assert!(took >= 2 * delay, "each chunk waits both ways: {took:?}");
        // Serialised, the 40 chunks would wait 40 delays each way (8 s).
        assert!(
            took < delay * chunks / 2,
            "the delay serialised the connection: {took:?}"
        );
        let expected: Vec<u8> = (0..chunks).flat_map(|i| [i as u8; 8]).collect();
        assert_eq!(echoed, expected, "order kept");
    }
}
