//! `limits`: resource-limit attacks on a release daemon (issue 5, item 8).
//!
//! Each attack runs while a probe times `GET /healthz` on fresh connections
//! (the daemon must keep answering, each check within 5 s), and is judged by
//! the answer it gets and by the daemon's peak resident set (VmHWM from
//! /proc/PID/status), which may grow by at most a stated allowance: a fixed
//! 32 MiB of slack, plus a per-connection allowance (32 KiB by default;
//! hyper's buffers and a task cost about 16-25 KiB) for the attacks that
//! hold connections. The attacks, in order:
//!
//! 1. a 100 MB body with `Content-Length`: 413 at once, nothing buffered;
//! 2. a 100 MB chunked body (no length): 413 after the first MiB;
//! 3. JSON nested 10,000 deep (arrays and objects) on three write
//!    endpoints: a 4xx, no crash;
//! 4. `limit=1000000000` on every list: clamped (500, the feed 1000) or 400;
//! 5. slowloris: clients dripping a header byte a second, cut by the
//!    header read timeout (10 s);
//! 6. keep-alive connections that go silent after one request: cut the
//!    same way (5 and 6 complete one request first, so the daemon has
//!    surely accepted each connection: one still in the kernel's listen
//!    queue is not the daemon's to cut);
//! 7. idle long-poll connections held, then released;
//! 8. long-polls up to the waiter cap (12,000) and more: those beyond get
//!    503 with `Retry-After`, a poll with news still gets 200.
//!
//! Prints one table row per attack and a summary line
//! `limits: attacks=N passed=N failed=N peak_rss_mb=X healthz_p99_max_ms=Y`;
//! the exit status is non-zero when any attack failed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::timeout;

use crate::daemon::{self, CONNECTING, HealthProbe, check_open_files, hwm_mib, rss_mib};
use crate::http::{self, Conn};
use crate::{LimitsArgs, Result};

/// The daemon's header read timeout.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after the header timeout a dripping client may still be open.
const CUT_MARGIN: Duration = Duration::from_secs(10);
/// A 413 must come at least this fast.
const PROMPT: Duration = Duration::from_secs(5);
/// Health checks while an attack runs: one every this long.
const PROBE_EVERY: Duration = Duration::from_millis(20);
/// Health checks go on at least this long, however short the attack.
const MIN_PROBING: Duration = Duration::from_secs(1);

/// What one attack got.
struct Outcome {
    answer: String,
    ok: bool,
}

impl Outcome {
    fn new(ok: bool, answer: impl Into<String>) -> Outcome {
        Outcome {
            answer: answer.into(),
            ok,
        }
    }
}

/// The daemon under attack: one this run started, or one it was given.
struct Target {
    addr: SocketAddr,
    token: String,
    pid: u32,
    /// Whether the catalogue and change log are known to exceed the list
    /// caps (true for a daemon this run seeded).
    seeded: bool,
    child: Mutex<Option<Child>>,
    dir: Option<PathBuf>,
}

impl Target {
    fn from_args(args: &LimitsArgs) -> Result<Target> {
        if let Some(oms) = &args.oms {
            return Target::start(oms);
        }
        let (Some(url), Some(token), Some(pid)) = (&args.url, &args.token, args.pid) else {
            return Err("give --oms PATH to start a daemon, or --url, --token and --pid".into());
        };
        Ok(Target {
            addr: http::loopback_addr(url)?,
            token: token.clone(),
            pid,
            seeded: false,
            child: Mutex::new(None),
            dir: None,
        })
    }

    /// Starts `oms serve` on a fresh demo database with 1,200 more products
    /// (so the list caps are reached), on a free loopback port.
    fn start(oms: &PathBuf) -> Result<Target> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!("oms-limits-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut target = Target {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: String::new(),
            pid: 0,
            seeded: true,
            child: Mutex::new(None),
            dir: Some(dir.clone()),
        };
        let db = dir.join("limits.db");
        let run = |args: &[&str]| -> Result<String> {
            let out = Command::new(oms).arg("--db").arg(&db).args(args).output()?;
            if !out.status.success() {
                return Err(format!(
                    "oms {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                )
                .into());
            }
            Ok(String::from_utf8(out.stdout)?)
        };
        run(&["init", "--demo"])?;
        let mut csv = String::from("sku,name,price,stock_on_hand\n");
        for i in 0..1200 {
            csv.push_str(&format!("LIM-{i:05},Limits product {i},1.00,10\n"));
        }
        let products = dir.join("products.csv");
        std::fs::write(&products, csv)?;
        run(&["product", "import", &products.to_string_lossy()])?;
        target.token = run(&[
            "token",
            "create",
            "--email",
            "admin@example.com",
            "--ttl",
            "2h",
        ])?
        .trim()
        .to_string();
        let log = dir.join("daemon.log");
        let child = Command::new(oms)
            .arg("--db")
            .arg(&db)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("OMS_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        target.pid = child.id();
        target.child = Mutex::new(Some(child));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(port) = text
                .split("oms serving http://127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .and_then(|p| p.parse::<u16>().ok())
            {
                target.addr = SocketAddr::from(([127, 0, 0, 1], port));
                return Ok(target);
            }
            if !target.alive() || Instant::now() > deadline {
                return Err(format!("the daemon did not start: {}", text.trim()).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the daemon process still runs.
    fn alive(&self) -> bool {
        let Ok(mut child) = self.child.lock() else {
            return false;
        };
        match child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => std::path::Path::new(&format!("/proc/{}", self.pid)).exists(),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock()
            && let Some(child) = child.as_mut()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Sends a request head and then `total` body bytes as fast as the daemon
/// takes them, while waiting for its answer. Returns the answer, how long
/// it took and how many body bytes had been sent when it came.
async fn send_big_body(
    addr: SocketAddr,
    token: &str,
    total: u64,
    chunked: bool,
) -> Result<(http::Response, Duration, u64)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {total}")
    };
    let head = format!(
        "POST /api/products HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\n{framing}\r\n\r\n"
    );
    let sent = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&sent);
    let writer = tokio::spawn(async move {
        // A valid product followed by spaces: a daemon that buffered it all
        // would even create the product.
        let mut first = br#"{"sku":"LIMITS-BIG","name":"Big","price":"1.00"}"#.to_vec();
        const CHUNK: usize = 64 * 1024;
        first.resize(CHUNK, b' ');
        let spaces = vec![b' '; CHUNK];
        write.write_all(head.as_bytes()).await?;
        let mut done = 0u64;
        while done < total {
            let n = (total - done).min(CHUNK as u64) as usize;
            let data = if done == 0 { &first[..n] } else { &spaces[..n] };
            if chunked {
                write.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                write.write_all(data).await?;
                write.write_all(b"\r\n").await?;
            } else {
                write.write_all(data).await?;
            }
            done += n as u64;
            counter.store(done, Ordering::Relaxed);
        }
        if chunked {
            write.write_all(b"0\r\n\r\n").await?;
        }
        Ok::<_, std::io::Error>(write)
    });
    let started = Instant::now();
    let mut reader = BufReader::new(read);
    let answer = timeout(Duration::from_secs(60), http::read_response(&mut reader)).await;
    let took = started.elapsed();
    let at_answer = sent.load(Ordering::Relaxed);
    writer.abort();
    let response = answer.map_err(|_| "no answer within 60 s")??;
    Ok((response, took, at_answer))
}

async fn big_body(target: &Target, mb: u64, chunked: bool) -> Result<Outcome> {
    let total = mb * 1_000_000;
    let (response, took, at_answer) =
        send_big_body(target.addr, &target.token, total, chunked).await?;
    let ok = response.status == 413 && took <= PROMPT && at_answer < total;
    Ok(Outcome::new(
        ok,
        format!(
            "{} after {:.2} s, {:.1} MB of {mb} MB sent",
            response.status,
            took.as_secs_f64(),
            at_answer as f64 / 1e6
        ),
    ))
}

async fn deep_json(target: &Target, depth: usize) -> Result<Outcome> {
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let addr = target.addr;
    let token = target.token.as_str();
    let mut conn = Conn::connect(addr).await?;
    let mut statuses = Vec::new();
    let mut ok = true;
    for (path, who) in [
        ("/api/products", Some(token)),
        ("/api/orders", Some(token)),
        ("/auth/register", None),
    ] {
        for body in [&arrays, &objects] {
            let req = http::request("POST", path, addr, who, Some(body));
            let resp = match conn.call(&req, Duration::from_secs(10)).await {
                Ok(r) => r,
                Err(_) => {
                    // The daemon closed the connection: try once more on a
                    // fresh one so a crash is told from a close.
                    conn = Conn::connect(addr).await?;
                    conn.call(&req, Duration::from_secs(10)).await?
                }
            };
            ok &= (400..500).contains(&resp.status) && resp.status != 413;
            statuses.push(format!("{} {}", path, resp.status));
        }
    }
    statuses.dedup();
    Ok(Outcome::new(ok, statuses.join(", ")))
}

async fn huge_limit(target: &Target) -> Result<Outcome> {
    let addr = target.addr;
    let mut conn = Conn::connect(addr).await?;
    let mut parts = Vec::new();
    let mut ok = true;
    // (path, list field, cap, whether the seeded data exceeds the cap)
    let lists = [
        ("/api/products?limit=1000000000", "items", 500, true),
        ("/api/orders?limit=1000000000", "items", 500, false),
        ("/api/customers?limit=1000000000", "items", 500, false),
        (
            "/api/changes?after=0&limit=1000000000",
            "changes",
            1000,
            true,
        ),
        (
            "/api/products?limit=18446744073709551615",
            "items",
            500,
            true,
        ),
    ];
    for (path, field, cap, full) in lists {
        let req = http::request("GET", path, addr, Some(&target.token), None);
        let resp = conn.call(&req, Duration::from_secs(30)).await?;
        let count = if resp.status == 200 {
            resp.json()?[field].as_array().map_or(usize::MAX, Vec::len)
        } else {
            0
        };
        let good = match resp.status {
            200 => count <= cap && (!full || !target.seeded || count == cap),
            400 => true,
            _ => false,
        };
        ok &= good;
        let name = path.split('?').next().unwrap_or(path);
        parts.push(if resp.status == 200 {
            format!("{name} {count}")
        } else {
            format!("{name} {}", resp.status)
        });
    }
    for path in [
        "/api/orders?limit=99999999999999999999999",
        "/api/changes?limit=-1",
    ] {
        let req = http::request("GET", path, addr, Some(&target.token), None);
        let resp = conn.call(&req, Duration::from_secs(30)).await?;
        ok &= resp.status == 400;
        parts.push(format!("overflow {}", resp.status));
    }
    parts.dedup();
    Ok(Outcome::new(ok, parts.join(", ")))
}

/// One client that completes one `GET /healthz` (so the daemon has surely
/// accepted the connection: a connection still in the listen queue cannot
/// be cut by it), then sends the start of a second request head and one
/// more header byte every `drip` (or, for `None`, nothing at all) until the
/// daemon closes the connection. Returns how long after the first answer
/// the daemon cut it, `None` if it was still open at `give_up`.
async fn drip_client(
    addr: SocketAddr,
    drip: Option<Duration>,
    give_up: Duration,
    gate: Arc<Semaphore>,
) -> Result<Option<Duration>> {
    let (mut read, mut write) = {
        let _permit = gate.acquire_owned().await?;
        let stream = timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out")??;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let first = http::request("GET", "/healthz", addr, None, None);
        write.write_all(&first).await?;
        let answer = timeout(Duration::from_secs(10), http::read_response(&mut read))
            .await
            .map_err(|_| "no answer to the first request")??;
        if answer.status != 200 {
            return Err(format!("the first GET /healthz answered {}", answer.status).into());
        }
        (read, write)
    };
    let started = Instant::now();
    if drip.is_some() {
        write
            .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Drip: ").as_bytes())
            .await?;
    }
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + give_up;
    loop {
        let tick = async {
            match drip {
                Some(every) => tokio::time::sleep(every).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = read.read(&mut buf) => match n {
                // Closed, or an answer (e.g. 408) followed by a close.
                Ok(0) | Err(_) => return Ok(Some(started.elapsed())),
                Ok(_) => {}
            },
            () = tick => {
                if write.write_all(b"a").await.is_err() {
                    return Ok(Some(started.elapsed()));
                }
            }
            () = tokio::time::sleep_until(deadline) => return Ok(None),
        }
    }
}

async fn slowloris(target: &Target, clients: usize, drip: Option<Duration>) -> Result<Outcome> {
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let give_up = HEADER_TIMEOUT + CUT_MARGIN;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..clients {
        set.spawn(drip_client(target.addr, drip, give_up, gate.clone()));
    }
    let mut cut = Vec::new();
    let mut open = 0;
    let mut errors = 0;
    while let Some(done) = set.join_next().await {
        match done? {
            Ok(Some(t)) => cut.push(t.as_secs_f64()),
            Ok(None) => open += 1,
            Err(_) => errors += 1,
        }
    }
    cut.sort_by(f64::total_cmp);
    let slowest = cut.last().copied().unwrap_or(0.0);
    let fastest = cut.first().copied().unwrap_or(0.0);
    // Cut by the header timeout: not before it (minus scheduling slack),
    // and not left open.
    let ok = open == 0 && errors == 0 && cut.len() == clients && fastest >= 5.0;
    Ok(Outcome::new(
        ok,
        format!(
            "{} of {clients} cut after {fastest:.1}-{slowest:.1} s, {open} still open, {errors} failed to connect",
            cut.len()
        ),
    ))
}

async fn idle_long_polls(target: &Target, count: usize) -> Result<Outcome> {
    let addr = target.addr;
    let mut control = Conn::connect(addr).await?;
    let baseline = http::feed_waiters(&mut control, addr).await?;
    let started = Instant::now();
    let held = daemon::hold_long_polls(addr, &target.token, count).await?;
    http::await_waiters(
        &mut control,
        addr,
        baseline + count as u64,
        Duration::from_secs(60),
    )
    .await?;
    let open_s = started.elapsed().as_secs_f64();
    let rss = rss_mib(target.pid)?;
    // Held a while, so the health probe samples it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(held);
    let left = released(&mut control, addr, baseline).await?;
    Ok(Outcome::new(
        left == 0,
        format!(
            "{count} held (opened in {open_s:.1} s, RSS {rss:.0} MB), {left} left after release"
        ),
    ))
}

/// Waits up to 20 s for the waiter gauge to fall back to `baseline`;
/// returns how many are left above it.
async fn released(control: &mut Conn, addr: SocketAddr, baseline: u64) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = http::feed_waiters(control, addr).await?;
        if now <= baseline || Instant::now() > deadline {
            return Ok(now.saturating_sub(baseline));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn over_cap(target: &Target, cap: usize, extra: usize) -> Result<Outcome> {
    let addr = target.addr;
    let mut control = Conn::connect(addr).await?;
    let baseline = http::feed_waiters(&mut control, addr).await?;
    let fill = cap.saturating_sub(baseline as usize);
    let held = daemon::hold_long_polls(addr, &target.token, fill).await?;
    http::await_waiters(&mut control, addr, cap as u64, Duration::from_secs(60)).await?;
    let path = format!("/api/changes?after={}&wait=30", daemon::FAR_AFTER);
    let req = Arc::new(http::request("GET", &path, addr, Some(&target.token), None));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..extra {
        let req = Arc::clone(&req);
        set.spawn(async move {
            let started = Instant::now();
            let mut conn = Conn::connect(addr).await?;
            let resp = conn.call(&req, Duration::from_secs(10)).await?;
            let retry = resp.header("retry-after").is_some();
            Ok::<_, crate::Error>((resp.status, retry, started.elapsed()))
        });
    }
    let mut refused = 0;
    let mut other = Vec::new();
    let mut slowest = Duration::ZERO;
    while let Some(done) = set.join_next().await {
        match done? {
            Ok((503, true, took)) => {
                refused += 1;
                slowest = slowest.max(took);
            }
            Ok((status, retry, _)) => other.push(format!("{status} (retry-after: {retry})")),
            Err(e) => other.push(e.to_string()),
        }
    }
    // A poll with news needs no slot.
    let news = http::request(
        "GET",
        "/api/changes?after=0&limit=1&wait=5",
        addr,
        Some(&target.token),
        None,
    );
    let news_status = control.call(&news, Duration::from_secs(10)).await?.status;
    drop(held);
    let left = released(&mut control, addr, baseline).await?;
    other.dedup();
    let ok = refused == extra && slowest <= PROMPT && news_status == 200 && left == 0;
    Ok(Outcome::new(
        ok,
        format!(
            "{refused} of {extra} over the cap got 503 + Retry-After (slowest {:.2} s){}; a poll with news {news_status}; {left} left after release",
            slowest.as_secs_f64(),
            if other.is_empty() {
                String::new()
            } else {
                format!(", others: {}", other.join(", "))
            }
        ),
    ))
}

/// One row of the table.
struct Row {
    attack: String,
    outcome: Outcome,
    healthz_n: usize,
    healthz_p99: f64,
    healthz_failure: Option<String>,
    hwm: f64,
    bound: f64,
    alive: bool,
}

impl Row {
    fn passed(&self) -> bool {
        self.outcome.ok && self.healthz_failure.is_none() && self.hwm <= self.bound && self.alive
    }
}

/// Runs one attack with the health probe and the memory bound.
async fn attack<F>(target: &Target, name: String, allowance_mib: f64, run: F) -> Result<Row>
where
    F: std::future::Future<Output = Result<Outcome>>,
{
    eprintln!("== {name}");
    let hwm_before = hwm_mib(target.pid)?;
    let probe = HealthProbe::start(target.addr, PROBE_EVERY);
    let started = Instant::now();
    let outcome = run
        .await
        .unwrap_or_else(|e| Outcome::new(false, format!("attack failed: {e}")));
    // Short attacks: keep probing a moment, so the figure has samples.
    if let Some(rest) = MIN_PROBING.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let (mut samples, healthz_failure) = probe.finish().await?;
    let alive = target.alive();
    let hwm = if alive {
        hwm_mib(target.pid)?
    } else {
        f64::NAN
    };
    let row = Row {
        attack: name,
        outcome,
        healthz_n: samples.len(),
        healthz_p99: samples.percentile(99.0),
        healthz_failure,
        hwm,
        bound: hwm_before + allowance_mib,
        alive,
    };
    print_row(&row);
    Ok(row)
}

fn print_row(row: &Row) {
    let verdict = if row.passed() { "ok" } else { "FAILED" };
    let mut answer = row.outcome.answer.clone();
    if let Some(f) = &row.healthz_failure {
        answer.push_str(&format!("; {f}"));
    }
    if !row.alive {
        answer.push_str("; the daemon died");
    }
    println!(
        "| {} | {} | {:.2} ms (n={}) | {:.0} MB (bound {:.0} MB) | {verdict} |",
        row.attack, answer, row.healthz_p99, row.healthz_n, row.hwm, row.bound
    );
}

pub async fn run(args: &LimitsArgs) -> Result<bool> {
    let target = Target::from_args(args)?;
    let quick = args.quick;
    let slowloris_n = args.slowloris.unwrap_or(if quick { 200 } else { 1000 });
    let idle_n = args.idle.unwrap_or(if quick { 2000 } else { 10_000 });
    let per_conn = args.conn_kib / 1024.0;
    let slack = args.slack_mib;
    check_open_files(idle_n.max(args.waiter_cap + args.over_cap).max(slowloris_n))?;
    eprintln!(
        "attacking the daemon at {} (pid {}); VmHWM bound: +{slack} MiB, +{} KiB per held connection",
        target.addr, target.pid, args.conn_kib
    );
    let base_rss = rss_mib(target.pid)?;
    println!("| attack | answer | /healthz p99 during | peak RSS (VmHWM) | verdict |");
    println!("|---|---|---|---|---|");
    let t = &target;
    let mb = args.body_mb;
    let held = |n: usize| slack + per_conn * n as f64;
    let (cap, extra) = (args.waiter_cap, args.over_cap);
    let rows = [
        attack(
            t,
            format!("{mb} MB body with Content-Length"),
            slack,
            big_body(t, mb, false),
        )
        .await?,
        attack(
            t,
            format!("{mb} MB chunked body, no length"),
            slack,
            big_body(t, mb, true),
        )
        .await?,
        attack(
            t,
            format!("JSON nested {} deep", args.depth),
            slack,
            deep_json(t, args.depth),
        )
        .await?,
        attack(
            t,
            "limit=1000000000 on every list".into(),
            slack,
            huge_limit(t),
        )
        .await?,
        attack(
            t,
            format!("slowloris: {slowloris_n} clients dripping a header byte a second"),
            held(slowloris_n),
            slowloris(t, slowloris_n, Some(Duration::from_secs(1))),
        )
        .await?,
        attack(
            t,
            format!("{slowloris_n} idle keep-alive connections that send nothing"),
            held(slowloris_n),
            slowloris(t, slowloris_n, None),
        )
        .await?,
        attack(
            t,
            format!("{idle_n} idle long-poll connections"),
            held(idle_n),
            idle_long_polls(t, idle_n),
        )
        .await?,
        attack(
            t,
            format!("{cap} long-polls (the cap) + {extra} more"),
            held(cap + extra),
            over_cap(t, cap, extra),
        )
        .await?,
    ];

    let passed = rows.iter().filter(|r| r.passed()).count();
    let failed = rows.len() - passed;
    let peak = if target.alive() {
        hwm_mib(target.pid)?
    } else {
        f64::NAN
    };
    let p99_max = rows.iter().map(|r| r.healthz_p99).fold(0.0, f64::max);
    println!(
        "limits: attacks={} passed={passed} failed={failed} base_rss_mb={base_rss:.0} peak_rss_mb={peak:.0} healthz_p99_max_ms={p99_max:.2}",
        rows.len()
    );
    Ok(failed == 0)
}
