//! An ephemeral PostgreSQL cluster for one test or one demo run.
//!
//! `initdb` into a temporary directory, then `postgres` on a free port on
//! 127.0.0.1 with trust authentication and no Unix socket. Durability is off
//! (`fsync=off`): the cluster lives as long as the run. Postgres refuses to run
//! as root, so when we are root the cluster runs as the `postgres` user that
//! the OS package creates. The server binaries are found in `PG_BIN_DIR`, in
//! `/usr/lib/postgresql/<newest>/bin`, or on the PATH.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::{Uid, User};
use sqlx::Connection;

use crate::process::ChildGuard;
use crate::wait;

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error(
        "PostgreSQL server binaries (initdb, postgres) not found: run scripts/setup.sh, or set PG_BIN_DIR"
    )]
    NotInstalled,
    #[error(
        "running as root needs a 'postgres' user to own the cluster (the postgresql package creates it)"
    )]
    NoPostgresUser,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("initdb failed: {0}")]
    Initdb(String),
    #[error("postgres did not start: {0}\n{1}")]
    NotReady(wait::Timeout, String),
    #[error("postgres exited as it started ({0}):\n{1}")]
    Exited(String, String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    owner: Option<User>,
    log: PathBuf,
    process: Option<ChildGuard>,
}

/// The directory holding `initdb` and `postgres`.
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").exists() && d.join("postgres").exists())
    })
}

impl Cluster {
    /// Creates and starts a cluster on a free port; it is removed on drop.
    pub async fn start(log_dir: &Path) -> Result<Cluster, PostgresError> {
        let bin = bin_dir().ok_or(PostgresError::NotInstalled)?;
        let owner = if Uid::effective().is_root() {
            Some(
                User::from_name("postgres")
                    .ok()
                    .flatten()
                    .ok_or(PostgresError::NoPostgresUser)?,
            )
        } else {
            None
        };
        let dir = tempfile::Builder::new().prefix("pg-cluster-").tempdir()?;
        if let Some(user) = &owner {
            std::os::unix::fs::chown(dir.path(), Some(user.uid.as_raw()), Some(user.gid.as_raw()))?;
        }
        let mut cluster = Cluster {
            dir,
            bin,
            port: crate::free_port()?,
            owner,
            log: log_dir.join("postgres.log"),
            process: None,
        };
        let mut initdb = cluster.command("initdb");
        initdb.arg("-D").arg(cluster.data_dir()).args([
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        let out = initdb.output()?;
        if !out.status.success() {
            return Err(PostgresError::Initdb(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        cluster.start_server().await?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if let Some(user) = &self.owner {
            command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
            command.env("HOME", self.dir.path());
        }
        command
    }

    /// Starts the server (again, after `stop`) and waits until it accepts connections.
    pub async fn start_server(&mut self) -> Result<(), PostgresError> {
        let mut server = self.command("postgres");
        server.arg("-D").arg(self.data_dir()).args([
            "-p",
            &self.port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]);
        let url = self.admin_url();
        let process = self
            .process
            .insert(ChildGuard::spawn("postgres", server, &self.log)?);
        // `Ok(Err(_))`: the server exited (a port taken by someone else,
        // say), which no further waiting mends. Checking first also keeps
        // the probe from greeting whatever else listens on that port.
        let ready = wait::until(
            "postgres to accept connections",
            Duration::from_secs(30),
            || {
                let exited = process.try_wait();
                let url = url.clone();
                async move {
                    match exited {
                        Ok(None) => {}
                        Ok(Some(status)) => return Ok(Err(status.to_string())),
                        Err(e) => return Ok(Err(e.to_string())),
                    }
                    // Bounded, so that a probe that reached another
                    // listener before the server gave up looks again soon.
                    let connect = sqlx::PgConnection::connect(&url);
                    match tokio::time::timeout(Duration::from_secs(2), connect).await {
                        Ok(Ok(c)) => {
                            let _ = c.close().await;
                            Ok(Ok(()))
                        }
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("no answer to the startup message within 2 s".into()),
                    }
                }
            },
        )
        .await;
        match ready {
            Ok(Ok(())) => Ok(()),
            Ok(Err(exit)) => {
                let log = process.log_tail(20);
                self.process = None;
                Err(PostgresError::Exited(exit, log))
            }
            Err(timeout) => Err(PostgresError::NotReady(timeout, process.log_tail(20))),
        }
    }

    /// Stops the server (fast shutdown); the data stays for `start_server`.
    pub async fn stop_server(&mut self) -> Result<(), PostgresError> {
        if let Some(mut process) = self.process.take() {
            process
                .stop(Signal::SIGINT, Duration::from_secs(20))
                .await?;
        }
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid())
    }

    /// A superuser URL for the `postgres` database.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Stop the server before the temporary directory is removed.
        if let Some(process) = self.process.take() {
            let _ = process.signal(Signal::SIGQUIT);
            drop(process);
        }
    }
}

/// Creates a login role and a database it owns, for one service.
pub async fn create_database(
    admin_url: &str,
    database: &str,
    role: &str,
    password: &str,
) -> Result<String, PostgresError> {
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    let role_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(&mut conn)
            .await?;
    if !role_exists {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE \"{role}\" LOGIN PASSWORD '{}'",
            password.replace('\'', "''")
        )))
        .execute(&mut conn)
        .await?;
    }
    let db_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut conn)
            .await?;
    if !db_exists {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{database}\" OWNER \"{role}\""
        )))
        .execute(&mut conn)
        .await?;
    }
    conn.close().await?;
    let host = admin_url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("127.0.0.1:5432");
    Ok(format!("postgres://{role}:{password}@{host}/{database}"))
}

/// A fresh cluster with a pool on its admin database: for tests of one
/// service's SQL, which apply that service's migrations to it. The cluster is
/// removed when this is dropped.
pub struct ScratchDatabase {
    pub pool: sqlx::PgPool,
    _cluster: Cluster,
}

impl ScratchDatabase {
    pub async fn start() -> Result<ScratchDatabase, PostgresError> {
        let logs = tempfile::tempdir()?.keep();
        let cluster = Cluster::start(&logs).await?;
        let pool = sqlx::PgPool::connect(&cluster.admin_url()).await?;
        Ok(ScratchDatabase {
            pool,
            _cluster: cluster,
        })
    }
}
