//! Real parts for tests and the local stack, started as plain processes.
//!
//! - `process`: a child process that is killed when its guard drops, and also
//!   when the owning process dies (so a killed test run leaves nothing behind).
//! - `postgres`: an ephemeral PostgreSQL cluster in a temporary directory, on a
//!   free port, run as an unprivileged user when we are root.
//! - `emulator`: the AWS emulator (MiniStack by default, moto with backlog
//!   fixes, stock moto, fakecloud or LocalStack's core) in server mode.
//! - `otlp`: an OTLP/HTTP receiver that keeps the spans services export.
//! - `proxy`: a TCP proxy that injects latency, resets or a black hole.
//! - `wait`: waiting on a condition with a deadline, never a fixed sleep.

pub mod emulator;
pub mod otlp;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod wait;

use std::path::PathBuf;

/// A port that was free a moment ago on 127.0.0.1, and that this process
/// has not handed out before.
///
/// The port is released before its user binds it, and the kernel may offer
/// the same free port to the next bind: a stack that asked for the
/// emulator's port and then a database's got the same one twice, and the
/// database failed to start. Remembering what was handed out closes that
/// race within the process.
pub fn free_port() -> std::io::Result<u16> {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..100 {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
            .local_addr()?
            .port();
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no port that was not handed out already in 100 tries",
    ))
}

/// The workspace root, where `.venv` and `target` live.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..500)
            .map(|_| super::free_port().expect("a free port"))
            .collect();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len());
    }
}
