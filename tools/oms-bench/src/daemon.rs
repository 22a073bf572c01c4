//! The daemon under test, seen from outside: its memory from /proc, timed
//! `GET /healthz` requests, and held long-poll connections. Shared by
//! `idle-conns` and `limits`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};

use crate::Result;
use crate::http::{self, Conn};
use crate::stats::Samples;

/// A cursor past any real change, so long-polls stay idle even if
/// something commits meanwhile.
pub const FAR_AFTER: i64 = 1 << 60;
/// Connections being opened at once (stays under the listen backlog).
pub const CONNECTING: usize = 256;
/// How long one health check may take before the daemon counts as not
/// answering.
pub const HEALTHZ_LIMIT: Duration = Duration::from_secs(5);

/// A field of /proc/PID/status in MiB (`VmRSS`, `VmHWM`).
pub fn proc_status_mib(pid: u32, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(kib / 1024.0)
}

/// The daemon's resident set in MiB.
pub fn rss_mib(pid: u32) -> Result<f64> {
    proc_status_mib(pid, "VmRSS")
}

/// The daemon's peak resident set so far in MiB.
pub fn hwm_mib(pid: u32) -> Result<f64> {
    proc_status_mib(pid, "VmHWM")
}

/// The soft limit on open files of this process, from /proc/self/limits.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Refuses to start when `connections` sockets (plus a margin) would not
/// fit under the open-files limit.
pub fn check_open_files(connections: usize) -> Result<()> {
    if let Some(limit) = open_files_limit() {
        let need = connections as u64 + 64;
        if limit < need {
            return Err(format!(
                "holding {connections} connections needs {need} open files, the limit is {limit} (ulimit -n)"
            )
            .into());
        }
    }
    Ok(())
}

/// `n` sequential `GET /healthz` on one keep-alive connection.
pub async fn healthz(addr: SocketAddr, n: usize) -> Result<Samples> {
    let mut conn = Conn::connect(addr).await?;
    let req = http::request("GET", "/healthz", addr, None, None);
    let mut samples = Samples::default();
    for _ in 0..n {
        let t = Instant::now();
        let resp = conn.call(&req, Duration::from_secs(10)).await?;
        samples.push(t.elapsed());
        if resp.status != 200 {
            return Err(format!("GET /healthz answered {}", resp.status).into());
        }
    }
    Ok(samples)
}

/// Health checks timed while an attack runs: each on a fresh connection
/// (so the accept path is measured too), one every `every`, until told to
/// stop. Returns the samples and the first failure, if any.
pub struct HealthProbe {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<(Samples, Option<String>)>,
}

impl HealthProbe {
    pub fn start(addr: SocketAddr, every: Duration) -> HealthProbe {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let req = http::request("GET", "/healthz", addr, None, None);
            let mut samples = Samples::default();
            loop {
                let t = Instant::now();
                let answer = async {
                    let mut conn = Conn::connect(addr).await?;
                    conn.call(&req, HEALTHZ_LIMIT).await
                };
                match tokio::time::timeout(HEALTHZ_LIMIT, answer).await {
                    Ok(Ok(resp)) if resp.status == 200 => samples.push(t.elapsed()),
                    Ok(Ok(resp)) => {
                        return (
                            samples,
                            Some(format!("GET /healthz answered {}", resp.status)),
                        );
                    }
                    Ok(Err(e)) => return (samples, Some(format!("GET /healthz failed: {e}"))),
                    Err(_) => {
                        return (
                            samples,
                            Some(format!("GET /healthz took more than {HEALTHZ_LIMIT:?}")),
                        );
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return (samples, None),
                }
            }
        });
        HealthProbe { stop, task }
    }

    pub async fn finish(self) -> Result<(Samples, Option<String>)> {
        let _ = self.stop.send(true);
        Ok(self.task.await?)
    }
}

async fn open_idle(addr: SocketAddr, req: Arc<Vec<u8>>, gate: Arc<Semaphore>) -> Result<TcpStream> {
    let _permit = gate.acquire_owned().await?;
    let mut conn = Conn::connect(addr).await?;
    conn.send(&req).await?;
    Ok(conn.into_inner())
}

/// Opens `count` connections, each sending one `GET /api/changes` long-poll
/// that will find nothing, and returns the sockets (drop them to close).
pub async fn hold_long_polls(
    addr: SocketAddr,
    token: &str,
    count: usize,
) -> Result<Vec<TcpStream>> {
    let path = format!("/api/changes?after={FAR_AFTER}&wait=60");
    hold_requests(addr, token, count, &path).await
}

/// Opens `count` event streams (`GET /api/changes/stream`) that see no
/// change, and returns the sockets (drop them to close).
pub async fn hold_streams(addr: SocketAddr, token: &str, count: usize) -> Result<Vec<TcpStream>> {
    hold_requests(addr, token, count, "/api/changes/stream").await
}

async fn hold_requests(
    addr: SocketAddr,
    token: &str,
    count: usize,
    path: &str,
) -> Result<Vec<TcpStream>> {
    let req = Arc::new(http::request("GET", path, addr, Some(token), None));
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..count {
        opening.spawn(open_idle(addr, req.clone(), gate.clone()));
    }
    let mut held = Vec::with_capacity(count);
    while let Some(conn) = opening.join_next().await {
        held.push(conn??);
    }
    Ok(held)
}
