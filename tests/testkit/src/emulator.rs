//! The AWS emulator the local stack talks to, as a child process.
//!
//! Five kinds, chosen per run (`STACK_EMULATOR`, or the demo's, chaos and
//! bench commands' `--emulator`); the services and the tests do not care which
//! one answers, they only see `AWS_ENDPOINT_URL`:
//!
//! - `moto` (the default): moto 5.2.5 from the project's venv, started through
//!   `infra/emulator/moto_launcher.py`, which applies narrow fixes (two for
//!   moto's slowdown under a backlog, one for its FIFO receive race; see that
//!   file) and refuses to run on a moto version it was not written for.
//! - `moto-stock`: the same moto without the fixes, for comparison.
//! - `fakecloud`: the fakecloud binary (`FAKECLOUD_BIN`, or `fakecloud` on the
//!   PATH), when it is installed; it is never a build dependency.
//! - `ministack`: MiniStack 1.5.33 from a venv of its own (`.venv-ministack`:
//!   it pins a botocore that moto's venv cannot share), run as released.
//! - `localstack`: LocalStack's community core 2026.3.0 from `.venv-localstack`
//!   (Python 3.13; `SETUP_LOCALSTACK=1 scripts/setup.sh --for-tests`), run with no token,
//!   no DNS server, no analytics and its files in the run's log folder.
//!
//! Emulators keep their state in memory only: a restart erases every queue
//! and topic, so chaos experiments pause them (SIGSTOP/SIGCONT) instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::process::ChildGuard;
use crate::wait;

/// Which emulator to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmulatorKind {
    /// moto with the backlog fixes of `moto_launcher.py`.
    #[default]
    Moto,
    /// moto as released.
    MotoStock,
    /// fakecloud, an external binary.
    Fakecloud,
    /// MiniStack, from `.venv-ministack`.
    Ministack,
    /// LocalStack's community core, from `.venv-localstack`.
    Localstack,
}

impl EmulatorKind {
    /// The variable that picks the emulator for tests and the local stack.
    pub const VARIABLE: &str = "STACK_EMULATOR";

    pub const ALL: [EmulatorKind; 5] = [
        EmulatorKind::Moto,
        EmulatorKind::MotoStock,
        EmulatorKind::Fakecloud,
        EmulatorKind::Ministack,
        EmulatorKind::Localstack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EmulatorKind::Moto => "moto",
            EmulatorKind::MotoStock => "moto-stock",
            EmulatorKind::Fakecloud => "fakecloud",
            EmulatorKind::Ministack => "ministack",
            EmulatorKind::Localstack => "localstack",
        }
    }

    /// The kind named by `STACK_EMULATOR`, `moto` when unset.
    pub fn from_env() -> Result<EmulatorKind, String> {
        match std::env::var(Self::VARIABLE) {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse()
                .map_err(|e| format!("{}: {e}", Self::VARIABLE)),
            _ => Ok(EmulatorKind::default()),
        }
    }
}

impl std::str::FromStr for EmulatorKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        EmulatorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("'{s}' is not one of moto, moto-stock, fakecloud, ministack, localstack")
            })
    }
}

impl std::fmt::Display for EmulatorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("{0} not found: run scripts/setup.sh")]
    MotoNotInstalled(PathBuf),
    #[error("the fakecloud binary was not found: set FAKECLOUD_BIN or put fakecloud on the PATH")]
    FakecloudNotInstalled,
    #[error("{0} not found: run scripts/setup.sh --for-tests")]
    MinistackNotInstalled(PathBuf),
    #[error(
        "{0} not found: run SETUP_LOCALSTACK=1 scripts/setup.sh --for-tests (it needs a Python 3.13)"
    )]
    LocalstackNotInstalled(PathBuf),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error("{0} did not start: {1}\n{2}")]
    NotReady(EmulatorKind, wait::Timeout, String),
}

/// The project venv's Python, which has moto.
pub fn python() -> PathBuf {
    crate::workspace_root().join(".venv/bin/python")
}

/// The launcher that starts moto with (or without) the backlog fixes.
pub fn moto_launcher() -> PathBuf {
    crate::workspace_root().join("infra/emulator/moto_launcher.py")
}

/// MiniStack's entry point in its own venv.
pub fn ministack() -> PathBuf {
    crate::workspace_root().join(".venv-ministack/bin/ministack")
}

/// The Python of LocalStack's venv.
pub fn localstack_python() -> PathBuf {
    crate::workspace_root().join(".venv-localstack/bin/python")
}

/// The fakecloud binary, when one is installed.
pub fn fakecloud_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("FAKECLOUD_BIN") {
        let bin = PathBuf::from(bin);
        return bin.exists().then_some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("fakecloud"))
            .find(|p| p.exists())
    })
}

pub struct Emulator {
    kind: EmulatorKind,
    process: ChildGuard,
    port: u16,
}

impl Emulator {
    /// Starts an emulator of `kind` on `port` (a free one when `None`) and
    /// waits until it answers.
    pub async fn start(
        kind: EmulatorKind,
        port: Option<u16>,
        log_dir: &Path,
    ) -> Result<Emulator, EmulatorError> {
        let port = match port {
            Some(p) => p,
            None => crate::free_port()?,
        };
        let (command, health_path) = match kind {
            EmulatorKind::Moto | EmulatorKind::MotoStock => {
                let python = python();
                if !python.exists() {
                    return Err(EmulatorError::MotoNotInstalled(python));
                }
                let mut command = Command::new(python);
                command.arg(moto_launcher());
                if kind == EmulatorKind::MotoStock {
                    command.arg("--stock");
                }
                command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
                (command, "/moto-api/")
            }
            EmulatorKind::Fakecloud => {
                let binary = fakecloud_binary().ok_or(EmulatorError::FakecloudNotInstalled)?;
                let mut command = Command::new(binary);
                command.args([
                    "--addr",
                    &format!("127.0.0.1:{port}"),
                    "--log-level",
                    "warn",
                ]);
                (command, "/_fakecloud/health")
            }
            EmulatorKind::Ministack => {
                let ministack = ministack();
                if !ministack.exists() {
                    return Err(EmulatorError::MinistackNotInstalled(ministack));
                }
                let mut command = Command::new(ministack);
                // Its access log (a line per request at INFO) is off, as moto's is.
                command
                    .env("BIND_HOST", "127.0.0.1")
                    .env("GATEWAY_PORT", port.to_string())
                    .env("LOG_LEVEL", "WARNING");
                (command, "/_ministack/health")
            }
            EmulatorKind::Localstack => {
                let python = localstack_python();
                if !python.exists() {
                    return Err(EmulatorError::LocalstackNotInstalled(python));
                }
                // Its volume and temporary files under the run's log folder,
                // so two stacks never share them; no DNS server (port 53), no
                // analytics and no certificate download (this network has none).
                let files = log_dir.join("localstack");
                std::fs::create_dir_all(files.join("tmp"))?;
                let mut command = Command::new(python);
                command
                    .args(["-m", "localstack.runtime.main"])
                    .env("GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
                    .env("LOCALSTACK_VOLUME_DIR", files.join("volume"))
                    .env("TMPDIR", files.join("tmp"))
                    .env("DNS_ADDRESS", "0")
                    .env("DISABLE_EVENTS", "1")
                    .env("SKIP_SSL_CERT_DOWNLOAD", "1");
                (command, "/_localstack/health")
            }
        };
        // LocalStack loads its whole service catalogue before it answers.
        let startup = match kind {
            EmulatorKind::Localstack => Duration::from_secs(90),
            _ => Duration::from_secs(30),
        };
        let process = ChildGuard::spawn(kind.as_str(), command, &log_dir.join("emulator.log"))?;
        let mut emulator = Emulator {
            kind,
            process,
            port,
        };
        let http = reqwest::Client::new();
        let url = format!("{}{health_path}", emulator.endpoint());
        let ready = wait::until(&format!("{kind} to answer"), startup, || {
            let exited = emulator.process.try_wait();
            let request = http.get(&url).send();
            async move {
                if let Ok(Some(status)) = exited {
                    return Err(format!("it exited with {status}"));
                }
                match request.await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(format!("HTTP {}", r.status())),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await;
        match ready {
            Ok(()) => Ok(emulator),
            Err(timeout) => Err(EmulatorError::NotReady(
                kind,
                timeout,
                emulator.process.log_tail(20),
            )),
        }
    }

    /// The emulator `STACK_EMULATOR` names (moto when unset) on a free port:
    /// what the tests start.
    pub async fn start_default(log_dir: &Path) -> Result<Emulator, EmulatorError> {
        let kind = EmulatorKind::from_env().map_err(EmulatorError::Config)?;
        Emulator::start(kind, None, log_dir).await
    }

    pub fn kind(&self) -> EmulatorKind {
        self.kind
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_from_their_names_and_nothing_else() {
        for kind in EmulatorKind::ALL {
            assert_eq!(kind.as_str().parse::<EmulatorKind>(), Ok(kind));
        }
        assert!("MiniStack".parse::<EmulatorKind>().is_err());
    }

    /// Fails when the installed moto is not the version and code the launcher's
    /// fixes were written for, or when the fixed queue attributes differ from
    /// stock moto's on any kind of queue.
    #[test]
    fn the_moto_fixes_apply_to_the_pinned_moto_and_answer_as_stock_does() {
        let out = Command::new(python())
            .arg(moto_launcher())
            .arg("--verify")
            .output()
            .expect("the venv's python runs (scripts/setup.sh creates it)");
        assert!(
            out.status.success(),
            "moto_launcher --verify failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
