//! Real parts for tests and the local stack, started as plain processes.
//!
//! - `process`: a child process that is killed when its guard drops, and also
//!   when the owning process dies (so a killed test run leaves nothing behind).
//! - `postgres`: an ephemeral PostgreSQL cluster in a temporary directory, on a
//!   free port, run as an unprivileged user when we are root.
//! - `emulator`: the AWS emulator (moto with backlog fixes, stock moto, or
//!   fakecloud) in server mode.
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

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// The workspace root, where `.venv` and `target` live.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
