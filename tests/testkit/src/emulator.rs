//! The AWS emulator the local stack talks to, as a child process.
//!
//! Five kinds, chosen per run (`STACK_EMULATOR`, or the demo's, chaos and
//! bench commands' `--emulator`); the services and the tests do not care which
//! one answers, they only see `AWS_ENDPOINT_URL`:
//!
//! - `ministack` (the default): MiniStack 1.5.33 from a venv of its own
//!   (`.venv-ministack`: it pins a botocore that moto's venv cannot share),
//!   run as released. The default because it passes every test with nothing
//!   worked around, and spends less CPU per call than moto (docs/emulators.md).
//! - `moto`: moto 5.2.5 from the project's venv, started through
//!   `infra/emulator/moto_launcher.py`, which applies narrow fixes (two for
//!   moto's slowdown under a backlog, one for its FIFO receive race; see that
//!   file) and refuses to run on a moto version it was not written for.
//! - `moto-stock`: the same moto without the fixes, for comparison.
//! - `fakecloud`: the fakecloud binary (`FAKECLOUD_BIN`, or `fakecloud` on the
//!   PATH), when it is installed; it is never a build dependency.
//! - `localstack`: LocalStack's community core 2026.3.0 from `.venv-localstack`
//!   (Python 3.13; `SETUP_LOCALSTACK=1 scripts/setup.sh --for-tests`), run with no token,
//!   no DNS server, no analytics and its files in the run's log folder.
//!
//! moto, fakecloud and LocalStack's core keep their state in memory only: a
//! restart erases every queue and topic, so chaos experiments pause them
//! (SIGSTOP/SIGCONT) instead. MiniStack runs with `PERSIST_STATE=1` and its
//! `STATE_DIR` in the run's log folder, emptied when it starts: it writes its
//! state there when it stops gracefully (SIGTERM; not on SIGKILL) and reads
//! it back when it starts again, so `stop` and `start_again` restart the
//! broker itself with its queues, messages, topics, rules and archive kept.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::process::ChildGuard;
use crate::wait;

/// Which emulator to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmulatorKind {
    /// moto with the backlog fixes of `moto_launcher.py`.
    Moto,
    /// moto as released.
    MotoStock,
    /// fakecloud, an external binary.
    Fakecloud,
    /// MiniStack, from `.venv-ministack`: the default.
    #[default]
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

    /// Whether a graceful stop and a start on the same port keep the
    /// emulator's state (queues, messages, topics, rules): only MiniStack's.
    pub fn keeps_state_across_restart(self) -> bool {
        self == EmulatorKind::Ministack
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EmulatorKind::Moto => "moto",
            EmulatorKind::MotoStock => "moto-stock",
            EmulatorKind::Fakecloud => "fakecloud",
            EmulatorKind::Ministack => "ministack",
            EmulatorKind::Localstack => "localstack",
        }
    }

    /// The kind named by `STACK_EMULATOR`, the default (`ministack`) when unset.
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
    #[error("{0} not found: run scripts/setup.sh")]
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
    log_dir: PathBuf,
}

/// MiniStack's state folder: its files are written on a graceful stop and
/// read on the next start.
fn ministack_state_dir(log_dir: &Path) -> PathBuf {
    log_dir.join("ministack-state")
}

/// The command that runs `kind` on `port`, and the path that answers 200
/// once it is ready.
fn command(
    kind: EmulatorKind,
    port: u16,
    log_dir: &Path,
) -> Result<(Command, &'static str), EmulatorError> {
    Ok(match kind {
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
            // Its access log (a line per request at INFO) is off, as moto's
            // is. Its state goes to a folder of this run (its default is one
            // shared /tmp folder), only on a graceful stop.
            command
                .env("BIND_HOST", "127.0.0.1")
                .env("GATEWAY_PORT", port.to_string())
                .env("LOG_LEVEL", "WARNING")
                .env("PERSIST_STATE", "1")
                .env("STATE_DIR", ministack_state_dir(log_dir));
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
    })
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
        if kind == EmulatorKind::Ministack {
            // A fresh emulator: nothing from an earlier run in this folder.
            if let Err(e) = std::fs::remove_dir_all(ministack_state_dir(log_dir))
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(e.into());
            }
        }
        let (command, health_path) = command(kind, port, log_dir)?;
        let process = ChildGuard::spawn(kind.as_str(), command, &log_dir.join("emulator.log"))?;
        let mut emulator = Emulator {
            kind,
            process,
            port,
            log_dir: log_dir.to_path_buf(),
        };
        emulator.wait_ready(health_path).await?;
        Ok(emulator)
    }

    /// Waits until the emulator answers `health_path`, or exits.
    async fn wait_ready(&mut self, health_path: &str) -> Result<(), EmulatorError> {
        let kind = self.kind;
        // LocalStack loads its whole service catalogue before it answers.
        let startup = match kind {
            EmulatorKind::Localstack => Duration::from_secs(90),
            _ => Duration::from_secs(30),
        };
        let http = reqwest::Client::new();
        let url = format!("{}{health_path}", self.endpoint());
        let process = &mut self.process;
        let ready = wait::until(&format!("{kind} to answer"), startup, || {
            let exited = process.try_wait();
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
        ready.map_err(|timeout| EmulatorError::NotReady(kind, timeout, self.process.log_tail(20)))
    }

    /// Stops the emulator gracefully (SIGTERM; SIGKILL after `timeout`) and
    /// returns how it exited. MiniStack writes its state on the way out.
    pub async fn stop(&mut self, timeout: Duration) -> std::io::Result<ExitStatus> {
        // A frozen process must be continued to act on SIGTERM.
        let _ = self.process.signal(Signal::SIGCONT);
        self.process.stop(Signal::SIGTERM, timeout).await
    }

    /// Starts the stopped emulator again on the same port and waits until
    /// it answers. Only an emulator that `keeps_state_across_restart` comes
    /// back with its queues; the others come back empty, so this refuses them.
    pub async fn start_again(&mut self) -> Result<(), EmulatorError> {
        if !self.kind.keeps_state_across_restart() {
            return Err(EmulatorError::Config(format!(
                "{} keeps its state in memory only: started again, it would have no queue or topic",
                self.kind
            )));
        }
        if self.process.try_wait()?.is_none() {
            return Err(EmulatorError::Config(format!(
                "{} is still running: stop it first",
                self.kind
            )));
        }
        let (command, health_path) = command(self.kind, self.port, &self.log_dir)?;
        self.process = ChildGuard::spawn(
            self.kind.as_str(),
            command,
            &self.log_dir.join("emulator.log"),
        )?;
        self.wait_ready(health_path).await
    }

    /// The emulator `STACK_EMULATOR` names (MiniStack when unset) on a free port:
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

    #[test]
    fn the_default_is_ministack_and_only_it_keeps_its_state_across_a_restart() {
        assert_eq!(EmulatorKind::default(), EmulatorKind::Ministack);
        for kind in EmulatorKind::ALL {
            assert_eq!(
                kind.keeps_state_across_restart(),
                kind == EmulatorKind::Ministack,
                "{kind}"
            );
        }
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
