//! The moto AWS emulator in server mode.
//!
//! moto runs from the project-local venv (`scripts/setup.sh` creates it), or
//! from the `moto_server` named by `MOTO_SERVER`. It keeps its state only in
//! memory: a restart erases every queue and topic, so chaos experiments pause
//! it (SIGSTOP/SIGCONT) rather than restart it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::process::ChildGuard;
use crate::wait;

pub struct Moto {
    process: ChildGuard,
    port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum MotoError {
    #[error("moto_server not found at {0}: run scripts/setup.sh, or set MOTO_SERVER")]
    NotInstalled(PathBuf),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("moto did not start: {0}\n{1}")]
    NotReady(wait::Timeout, String),
}

/// The `moto_server` executable to run.
pub fn server_binary() -> PathBuf {
    std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join(".venv/bin/moto_server"))
}

impl Moto {
    /// Starts moto on `port` (a free one when `None`) and waits until it answers.
    pub async fn start(port: Option<u16>, log_dir: &Path) -> Result<Moto, MotoError> {
        let binary = server_binary();
        if !binary.exists() {
            return Err(MotoError::NotInstalled(binary));
        }
        let port = match port {
            Some(p) => p,
            None => crate::free_port()?,
        };
        let mut command = Command::new(&binary);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let process = ChildGuard::spawn("moto", command, &log_dir.join("moto.log"))?;
        let moto = Moto { process, port };
        let http = reqwest::Client::new();
        let url = format!("{}/moto-api/", moto.endpoint());
        let ready = wait::until("moto to answer", Duration::from_secs(30), || {
            let request = http.get(&url).send();
            async move {
                match request.await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("HTTP {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await;
        match ready {
            Ok(()) => Ok(moto),
            Err(timeout) => Err(MotoError::NotReady(timeout, moto.process.log_tail(20))),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The value for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Freezes the emulator (state kept) until `resume`.
    pub fn pause(&self) -> nix::Result<()> {
        self.process.signal(Signal::SIGSTOP)
    }

    pub fn resume(&self) -> nix::Result<()> {
        self.process.signal(Signal::SIGCONT)
    }

    pub fn process(&mut self) -> &mut ChildGuard {
        &mut self.process
    }
}
