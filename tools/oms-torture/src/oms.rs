//! The binary under test: CLI runs with a deadline, the daemon (started,
//! SIGKILLed, SIGTERMed), and the shop every harness starts from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

use crate::Result;

/// A 40-byte `OMS_JWT_SECRET` shared by the daemon and `oms token create`.
const SECRET: &str = "torture-secret-0123456789abcdefghijklmnop";

/// The admin every harness acts as.
pub const ADMIN: &str = "admin@torture.test";

/// How long the daemon may take to print its address.
const STARTUP: Duration = Duration::from_secs(30);

/// `oms --db DB ...` on one database: a file, or a `postgres://` URL
/// (kept as a path too: it is only ever passed on as an argument).
#[derive(Debug, Clone)]
pub struct Oms {
    pub bin: PathBuf,
    pub db: PathBuf,
}

/// Where a harness keeps its shop, and how many daemons serve it: the
/// `--db` and `--daemons` flags of the harnesses that run on PostgreSQL.
#[derive(Debug, Clone, clap::Args)]
pub struct Store {
    /// A `postgres://` URL of an empty database to use instead of a file
    /// under --work (the harness creates the shop in it).
    #[arg(long)]
    pub db: Option<String>,
    /// `oms serve` processes on the database, the load spread over them
    /// (more than one needs --db).
    #[arg(long, default_value_t = 1)]
    pub daemons: usize,
}

impl Store {
    /// The `oms` of a harness: on `--db`, else on `WORK/FILE`.
    pub fn oms(&self, bin: &Path, work: &Path, file: &str) -> Result<Oms> {
        if self.daemons == 0 {
            return Err("--daemons must be at least 1".into());
        }
        match &self.db {
            Some(url) => {
                if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
                    return Err(format!("--db {url:?} is not a postgres:// URL").into());
                }
                Ok(Oms::new(bin, PathBuf::from(url)))
            }
            None if self.daemons > 1 => {
                Err("--daemons above 1 needs --db postgres://... (a file has one daemon)".into())
            }
            None => Ok(Oms::new(bin, work.join(file))),
        }
    }

    /// The name of the run's backend, for the summary line.
    pub fn backend(&self) -> &'static str {
        if self.db.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }
}

/// The outcome of one CLI process.
#[derive(Debug)]
pub struct CliRun {
    /// `None` when killed by a signal or by the deadline.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl CliRun {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The last stderr line (the `error: ...` line on failure).
    pub fn error_line(&self) -> &str {
        self.stderr.lines().last().unwrap_or("")
    }

    /// Whether stderr mentions a busy or locked database.
    pub fn mentions_lock(&self) -> bool {
        let text = self.stderr.to_ascii_lowercase();
        text.contains("locked") || text.contains("busy")
    }
}

impl Oms {
    pub fn new(bin: &Path, db: PathBuf) -> Oms {
        Oms {
            bin: bin.to_path_buf(),
            db,
        }
    }

    /// `oms --db DB ARGS...`, with the secret and quiet logs.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--db")
            .arg(&self.db)
            .args(args)
            .env("OMS_JWT_SECRET", SECRET)
            .env("OMS_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs a CLI process to its end, or kills it at `limit`.
    pub async fn run(&self, args: &[&str], limit: Duration) -> Result<CliRun> {
        let started = Instant::now();
        let child = self
            .command(args)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        Ok(finish(child, started, limit).await)
    }

    /// Runs a CLI process that must succeed; returns its stdout.
    pub async fn must(&self, args: &[&str]) -> Result<String> {
        let run = self.run(args, Duration::from_secs(120)).await?;
        if !run.ok() {
            return Err(format!(
                "oms {} failed (exit {:?}): {}",
                args.join(" "),
                run.code,
                run.stderr.trim()
            )
            .into());
        }
        Ok(run.stdout)
    }

    /// An admin token from `oms token create`.
    pub async fn admin_token(&self) -> Result<String> {
        self.token(ADMIN).await
    }

    pub async fn token(&self, email: &str) -> Result<String> {
        Ok(self
            .must(&["token", "create", "--email", email, "--ttl", "1d"])
            .await?
            .trim()
            .to_string())
    }

    /// Creates the shop: `skus` products `SKU-000..` with `units` each,
    /// customers `c1..cN@torture.test` and the admin user.
    pub async fn shop(&self, work: &Path, skus: usize, units: i64, customers: usize) -> Result<()> {
        let mut products = String::from("sku,name,price,stock_on_hand\n");
        for i in 0..skus {
            products.push_str(&format!(
                "{},Product {i},{}.50,{units}\n",
                sku(i),
                1 + i % 50
            ));
        }
        let mut people = String::from("name,email\n");
        for i in 1..=customers {
            people.push_str(&format!("Customer {i},{}\n", customer(i)));
        }
        let products_csv = work.join("products.csv");
        let customers_csv = work.join("customers.csv");
        tokio::fs::write(&products_csv, products).await?;
        tokio::fs::write(&customers_csv, people).await?;
        self.must(&["init"]).await?;
        self.must(&["product", "import", path_str(&products_csv)?])
            .await?;
        self.must(&["customer", "import", path_str(&customers_csv)?])
            .await?;
        self.must(&[
            "user",
            "add",
            "--email",
            ADMIN,
            "--name",
            "Torture Admin",
            "--role",
            "admin",
        ])
        .await?;
        Ok(())
    }
}

/// The `i`th SKU of the shop.
pub fn sku(i: usize) -> String {
    format!("SKU-{i:03}")
}

/// The `i`th customer's e-mail (1-based, as their ids).
pub fn customer(i: usize) -> String {
    format!("c{i}@torture.test")
}

pub fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| format!("{} is not valid UTF-8", path.display()).into())
}

async fn finish(mut child: Child, started: Instant, limit: Duration) -> CliRun {
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let read = async {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let o = async {
            if let Some(o) = out.as_mut() {
                let _ = tokio::io::AsyncReadExt::read_to_end(o, &mut stdout).await;
            }
        };
        let e = async {
            if let Some(e) = err.as_mut() {
                let _ = tokio::io::AsyncReadExt::read_to_end(e, &mut stderr).await;
            }
        };
        tokio::join!(o, e);
        let status = child.wait().await;
        (status, stdout, stderr)
    };
    match timeout(limit, read).await {
        Ok((status, stdout, stderr)) => CliRun {
            code: status.ok().and_then(|s| s.code()),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            timed_out: false,
            elapsed: started.elapsed(),
        },
        Err(_) => CliRun {
            // Dropping the child (kill_on_drop) kills it.
            code: None,
            stdout: String::new(),
            stderr: format!("killed after {limit:?}: no exit"),
            timed_out: true,
            elapsed: started.elapsed(),
        },
    }
}

/// Starts `n` daemons on `oms`'s database, logging to `WORK/NAME-daemon-I.log`
/// (`NAME-daemon.log` when `n` is 1, as before there were several).
pub async fn start_daemons(oms: &Oms, work: &Path, name: &str, n: usize) -> Result<Vec<Daemon>> {
    let mut daemons = Vec::with_capacity(n);
    for i in 0..n {
        daemons.push(Daemon::start(oms, &daemon_log(work, name, n, i), &[]).await?);
    }
    Ok(daemons)
}

/// The log file of daemon `i` of `n`.
pub fn daemon_log(work: &Path, name: &str, n: usize, i: usize) -> PathBuf {
    if n == 1 {
        work.join(format!("{name}-daemon.log"))
    } else {
        work.join(format!("{name}-daemon-{i}.log"))
    }
}

/// A running `oms serve` on `127.0.0.1:0`, killed if dropped.
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
}

impl Daemon {
    /// Starts the daemon and waits for the line naming its address; its
    /// stderr is appended to `log`.
    pub async fn start(oms: &Oms, log: &Path, extra: &[&str]) -> Result<Daemon> {
        Daemon::start_with_env(oms, log, extra, &[]).await
    }

    /// [`Daemon::start`] with more environment variables.
    pub async fn start_with_env(
        oms: &Oms,
        log: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Daemon> {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut cmd = oms.command(&args);
        cmd.env("OMS_LOG", "warn").stdout(Stdio::null());
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn()?;
        let pid = child.id().ok_or("the daemon exited at once")?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Drains stderr until it closes, so the daemon never blocks on it.
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut tx = Some(tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("oms serving http://")
                    && let Some(addr) = rest.split('/').next()
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.to_string());
                }
                let _ = file.write_all(format!("{line}\n").as_bytes()).await;
            }
        });
        let addr = match timeout(STARTUP, rx).await {
            Ok(Ok(addr)) => addr,
            _ => {
                let _ = child.start_kill();
                return Err(format!(
                    "oms serve did not print its address within {STARTUP:?}; see {}",
                    log.display()
                )
                .into());
            }
        };
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| format!("oms serve printed a bad address {addr:?}"))?;
        if !addr.ip().is_loopback() {
            return Err(format!("oms serve listens on {addr}, not loopback").into());
        }
        Ok(Daemon { child, addr, pid })
    }

    /// SIGKILL, and reap it.
    pub async fn kill9(mut self) -> Result<()> {
        self.child.start_kill()?;
        timeout(Duration::from_secs(30), self.child.wait())
            .await
            .map_err(|_| "the daemon outlived SIGKILL for 30 s")??;
        Ok(())
    }

    /// SIGTERM, then waits up to `limit` for the exit; returns the exit
    /// code (`None`: a signal, or still running at `limit`, then killed) and
    /// how long the exit took.
    pub async fn term(mut self, limit: Duration) -> Result<(Option<i32>, Duration)> {
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await?;
        if !sent.success() {
            return Err(format!("kill -TERM {} failed", self.pid).into());
        }
        match timeout(limit, self.child.wait()).await {
            Ok(status) => Ok((status?.code(), started.elapsed())),
            Err(_) => {
                let _ = self.child.start_kill();
                let _ = timeout(Duration::from_secs(30), self.child.wait()).await;
                Ok((None, started.elapsed()))
            }
        }
    }
}
