//! A TCP proxy that puts network faults between a client and a server.
//!
//! Chaos experiments put it between one service and the emulator: that
//! service alone sees the fault while everything else talks to the emulator
//! directly. The fault can change at any time and applies to the connections
//! already open as well as to new ones:
//!
//! - `Pass`: bytes flow untouched;
//! - `Latency(d)`: every chunk waits `d` before it is forwarded, both ways;
//! - `Reset`: new connections are closed with a TCP reset right after they
//!   are accepted, open ones are closed;
//! - `Blackhole`: connections stay open and nothing is forwarded: the client
//!   waits until its own timeout. When the fault ends they are closed.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the proxy does to the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetFault {
    Pass,
    Latency(Duration),
    Reset,
    Blackhole,
}

impl std::fmt::Display for NetFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetFault::Pass => f.write_str("no fault"),
            NetFault::Latency(d) => write!(f, "{} ms added latency", d.as_millis()),
            NetFault::Reset => f.write_str("connection resets"),
            NetFault::Blackhole => f.write_str("black hole"),
        }
    }
}

pub struct FaultProxy {
    addr: SocketAddr,
    fault: watch::Sender<NetFault>,
    stop: CancellationToken,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (fault, faults) = watch::channel(NetFault::Pass);
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, upstream, faults, stop.clone()));
        Ok(FaultProxy { addr, fault, stop })
    }

    /// `http://127.0.0.1:<port>`, for a client's endpoint setting.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: NetFault) {
        self.fault.send_replace(fault);
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
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, _)) => {
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
        NetFault::Pass | NetFault::Latency(_) => {}
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Either direction ending (a close, an error, or a fault that cuts the
    // connection) drops all four halves, which closes both sockets.
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = pump(client_read, server_write, faults.clone()) => {}
        _ = pump(server_read, client_write, faults.clone()) => {}
    }
}

/// Copies one direction, applying the current fault to each chunk, until the
/// connection closes or a fault cuts it: a reset closes at once, a black hole
/// holds the connection, forwarding nothing, until the fault changes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut faults: watch::Receiver<NetFault>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = faults.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = *faults.borrow_and_update();
                match now {
                    NetFault::Reset => return,
                    NetFault::Blackhole => return hold(&mut faults).await,
                    NetFault::Pass | NetFault::Latency(_) => continue,
                }
            }
        };
        let fault = *faults.borrow();
        match fault {
            NetFault::Pass => {}
            NetFault::Latency(d) => tokio::time::sleep(d).await,
            NetFault::Reset => return,
            NetFault::Blackhole => return hold(&mut faults).await,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
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
        let started = tokio::time::Instant::now();
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
}
