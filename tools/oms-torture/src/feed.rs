//! The change feed on PostgreSQL: writers in several processes, readers
//! resuming from random cursors.
//!
//! Two daemons, A and B, serve one PostgreSQL database. Writers in four
//! kinds of process overlap: HTTP buyers on A and on B (short group-commit
//! transactions), a loop of `oms order import` processes (each import one
//! long transaction), and a loop of CLI processes alternating `oms order
//! place` and `oms product restock`. They write on disjoint products, so
//! that a build whose writers do not take turns really lets their
//! transactions overlap. Meanwhile readers, clients of daemon B, poll
//! `/api/changes?after=N` rapidly with random page sizes, keep some of the
//! cursors they are handed (cursors taken while writes are in flight), and
//! now and then start over from a kept cursor or a random one; one reader
//! follows `/api/changes/stream` (SSE) from a kept cursor through
//! `Last-Event-ID` while the writes go on. Once `--changes` changes are in
//! the log, the writes stop; every reader follows its cursor to the end,
//! more sessions resume from kept cursors (long-poll and SSE), and the log
//! is read whole with `oms changes`.
//!
//! The check, for every session that started after cursor `c` and read up
//! to seq `m`: it saw exactly the seqs of the final log in `(c, m]`, each
//! once, in increasing order (no gap, no repeat, no reordering); a session
//! that ran after the writes reached the log's last seq. A seq handed out
//! by a transaction that commits after a reader moved past it shows up as
//! a gap.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use tokio::task::JoinHandle;

use crate::client::{Call, Client, connect};
use crate::oms::{Daemon, Store, customer, path_str, sku};
use crate::oversell::{Outcome, order_body, place_http};
use crate::{Common, Result, Verdict, note};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// A `postgres://` URL of an empty database (the harness creates the
    /// shop in it).
    #[arg(long)]
    pub db: String,
    /// Changes to write in all before the writes stop.
    #[arg(long, default_value_t = 10_000)]
    pub changes: i64,
    /// HTTP buyers on each of the two daemons.
    #[arg(long, default_value_t = 3)]
    pub buyers: usize,
    /// Lines of each `oms order import` (orders of 1-3 lines).
    #[arg(long, default_value_t = 600)]
    pub import_lines: usize,
    /// Pause between two imports, in ms (each import holds the write turn
    /// while it runs; the pause lets the other writers in).
    #[arg(long, default_value_t = 300)]
    pub import_pause_ms: u64,
    /// Readers of daemon B's long-poll during the writes.
    #[arg(long, default_value_t = 3)]
    pub readers: usize,
    /// Long-poll sessions resumed from kept cursors after the writes.
    #[arg(long, default_value_t = 20)]
    pub resumes: usize,
    /// SSE sessions resumed (`Last-Event-ID`) from kept cursors after the
    /// writes (one more runs during them).
    #[arg(long, default_value_t = 3)]
    pub sse_resumes: usize,
    /// Give up (and fail) when the changes are not written within this.
    #[arg(long, default_value_t = 300)]
    pub max_secs: u64,
}

/// Products of each writer (disjoint, so that overlapping transactions do
/// not wait for each other's row locks).
const IMPORT_SKUS: (usize, usize) = (0, 50);
const HTTP_A_SKUS: (usize, usize) = (50, 100);
const HTTP_B_SKUS: (usize, usize) = (100, 150);
const CLI_SKUS: (usize, usize) = (150, 190);
const RESTOCK_SKUS: (usize, usize) = (190, 200);
const SKUS: usize = 200;
const CUSTOMERS: usize = 100;

/// What one reading session saw: the cursor it started after, and the
/// seqs in the order they arrived.
#[derive(Debug, Clone)]
struct Session {
    how: &'static str,
    start: i64,
    seen: Vec<i64>,
    /// Ran after the writes stopped: must reach the end of the log.
    after_writes: bool,
}

/// What the readers share.
struct Shared {
    /// Writers stop.
    stop: AtomicBool,
    /// The log's last seq once the writes are over and it was read (0
    /// before); readers then follow their cursor up to it and end.
    last: AtomicI64,
    /// Cursors handed out while the writes were in flight.
    kept: Mutex<Vec<i64>>,
    /// The highest seq any reader saw.
    highest: AtomicI64,
}

#[derive(Debug, Default)]
struct WriteTally {
    ok: u64,
    failed: u64,
    first_error: Option<String>,
}

impl WriteTally {
    fn add(&mut self, other: WriteTally) {
        self.ok += other.ok;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn failed(&mut self, why: String) {
        self.failed += 1;
        self.first_error.get_or_insert(why);
    }
}

pub async fn run(args: Args) -> Result<Verdict> {
    let work = &args.common.work;
    tokio::fs::create_dir_all(work).await?;
    let oms = Store {
        db: Some(args.db.clone()),
        daemons: 2,
    }
    .oms(&args.common.oms, work, "")?;
    oms.shop(work, SKUS, 100_000_000, CUSTOMERS).await?;
    let token = oms.admin_token().await?;
    let a = Daemon::start(&oms, &work.join("feed-daemon-a.log"), &[]).await?;
    let b = Daemon::start(&oms, &work.join("feed-daemon-b.log"), &[]).await?;
    let (addr_a, addr_b) = (a.addr, b.addr);
    note(format!(
        "feed-pg: {} changes; {} buyers on A {addr_a} and B {addr_b}, imports of {} lines, CLI place/restock; {} readers on B",
        args.changes, args.buyers, args.import_lines, args.readers
    ));
    let mut verdict = Verdict::new("feed-pg");
    let started = Instant::now();
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        last: AtomicI64::new(0),
        kept: Mutex::new(Vec::new()),
        highest: AtomicI64::new(0),
    });

    // Writers.
    let mut http: Vec<JoinHandle<WriteTally>> = Vec::new();
    for (d, addr, skus) in [(0, addr_a, HTTP_A_SKUS), (1, addr_b, HTTP_B_SKUS)] {
        for w in 0..args.buyers {
            let (token, shared) = (token.clone(), Arc::clone(&shared));
            let mut rng =
                fastrand::Rng::with_seed(args.common.seed ^ ((d * 64 + w + 1) as u64) << 8);
            http.push(tokio::spawn(async move {
                let mut client = Client::new(addr);
                let mut tally = WriteTally::default();
                let mut n = 0;
                while !shared.stop.load(Ordering::Relaxed) {
                    let cart = cart_in(&mut rng, skus);
                    let body = order_body(rng.usize(1..=CUSTOMERS), &cart, false);
                    let key = format!("feed-{d}-{w}-{n}");
                    n += 1;
                    match place_http(&mut client, &token, &key, body, Duration::from_secs(30)).await
                    {
                        Outcome::Ok(_) => tally.ok += 1,
                        other => tally.failed(format!("HTTP placement on daemon {d}: {other:?}")),
                    }
                }
                tally
            }));
        }
    }
    let imports = {
        let (oms, shared, work) = (oms.clone(), Arc::clone(&shared), work.clone());
        let (lines, mut rng) = (
            args.import_lines,
            fastrand::Rng::with_seed(args.common.seed ^ 0x1b),
        );
        let pause = Duration::from_millis(args.import_pause_ms);
        tokio::spawn(async move {
            let mut tally = WriteTally::default();
            let mut k = 0;
            while !shared.stop.load(Ordering::Relaxed) {
                let file = work.join(format!("feed-import-{k}.csv"));
                let result = async {
                    let orders = write_import(&file, k, lines, &mut rng)?;
                    let run = oms
                        .run(
                            &["order", "import", path_str(&file)?],
                            Duration::from_secs(120),
                        )
                        .await?;
                    Ok::<_, crate::Error>((orders, run))
                }
                .await;
                match result {
                    Ok((orders, run)) if run.ok() => tally.ok += orders as u64,
                    Ok((_, run)) => tally.failed(format!(
                        "oms order import exited {:?}: {}",
                        run.code,
                        run.error_line()
                    )),
                    Err(e) => tally.failed(format!("oms order import: {e}")),
                }
                let _ = tokio::fs::remove_file(&file).await;
                k += 1;
                tokio::time::sleep(pause).await;
            }
            tally
        })
    };
    let cli = {
        let (oms, shared) = (oms.clone(), Arc::clone(&shared));
        let mut rng = fastrand::Rng::with_seed(args.common.seed ^ 0xc1);
        tokio::spawn(async move {
            let (mut places, mut restocks) = (WriteTally::default(), WriteTally::default());
            let mut n = 0;
            while !shared.stop.load(Ordering::Relaxed) {
                let (args, tally) = if n % 2 == 0 {
                    let item = format!(
                        "{}:{}",
                        sku(rng.usize(CLI_SKUS.0..CLI_SKUS.1)),
                        rng.i64(1..=3)
                    );
                    let who = customer(rng.usize(1..=CUSTOMERS));
                    let args = ["-q", "order", "place", "--customer", &who, "--item", &item]
                        .map(String::from)
                        .to_vec();
                    (args, &mut places)
                } else {
                    let product = sku(rng.usize(RESTOCK_SKUS.0..RESTOCK_SKUS.1));
                    let args = ["-q", "product", "restock", &product, "--add", "1"]
                        .map(String::from)
                        .to_vec();
                    (args, &mut restocks)
                };
                n += 1;
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                match oms.run(&args, Duration::from_secs(60)).await {
                    Ok(run) if run.ok() => tally.ok += 1,
                    Ok(run) => tally.failed(format!(
                        "oms {} exited {:?}: {}",
                        args[1..3].join(" "),
                        run.code,
                        run.error_line()
                    )),
                    Err(e) => tally.failed(e.to_string()),
                }
            }
            (places, restocks)
        })
    };

    // Readers of daemon B, during the writes and until they catch up.
    let mut readers = Vec::new();
    for r in 0..args.readers {
        let (token, shared) = (token.clone(), Arc::clone(&shared));
        let mut rng = fastrand::Rng::with_seed(args.common.seed ^ ((r + 1) as u64) << 32);
        readers.push(tokio::spawn(async move {
            read_randomly(addr_b, &token, &shared, &mut rng).await
        }));
    }
    // One SSE session during the writes, from a kept cursor.
    let sse_during = {
        let (token, shared) = (token.clone(), Arc::clone(&shared));
        let target = args.changes;
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            // Wait for a kept cursor a third of the way in.
            let start = loop {
                if shared.stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                    return Err("the writes ended before the SSE session started".to_string());
                }
                if shared.highest.load(Ordering::Relaxed) >= target / 3
                    && let Some(c) = shared.kept.lock().ok().and_then(|k| k.last().copied())
                {
                    break c;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let seen = sse(addr_b, &token, start, None, Duration::from_secs(2)).await?;
            Ok(Session {
                how: "SSE during the writes",
                start,
                seen,
                after_writes: false,
            })
        })
    };

    // Stop once the log holds the changes asked for (or give up).
    let mut probe = Client::new(addr_a);
    let give_up = started + Duration::from_secs(args.max_secs);
    let probe_path = format!("/api/changes?after={}&limit=1", args.changes - 1);
    loop {
        match probe
            .send(&Call::get(&probe_path, &token), Duration::from_secs(10))
            .await
        {
            Ok(r)
                if r.json()
                    .is_some_and(|v| v["changes"].as_array().is_some_and(|c| !c.is_empty())) =>
            {
                break;
            }
            _ => {}
        }
        if Instant::now() >= give_up {
            verdict.fail(format!(
                "the writers did not write {} changes within {} s",
                args.changes, args.max_secs
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    let write_secs = started.elapsed().as_secs_f64();
    let mut tally_http = WriteTally::default();
    for h in http {
        tally_http.add(h.await?);
    }
    let tally_import = imports.await?;
    let (tally_place, tally_restock) = cli.await?;
    for (what, t) in [
        ("HTTP placements", &tally_http),
        ("imports", &tally_import),
        ("CLI placements", &tally_place),
        ("restocks", &tally_restock),
    ] {
        if t.failed > 0 {
            note(format!(
                "{what}: {} failed; first: {}",
                t.failed,
                t.first_error.clone().unwrap_or_default()
            ));
        }
        verdict.check(t.ok > 0, || {
            format!(
                "no {what} succeeded: {}",
                t.first_error.clone().unwrap_or_default()
            )
        });
    }

    // The log, whole.
    let log = oms
        .run(&["changes", "--limit", "0"], Duration::from_secs(120))
        .await?;
    if !log.ok() {
        return Err(format!("oms changes failed: {}", log.error_line()).into());
    }
    let mut final_log = Vec::new();
    for line in log.stdout.lines().filter(|l| !l.trim().is_empty()) {
        let seq = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["seq"].as_i64())
            .ok_or_else(|| format!("oms changes printed a line without a seq: {line:.200}"))?;
        final_log.push(seq);
    }
    let last = final_log.last().copied().unwrap_or(0);
    shared.last.store(last.max(1), Ordering::Relaxed);

    let mut sessions = Vec::new();
    let mut polls = 0u64;
    for r in readers {
        let (s, p) = r.await??;
        sessions.extend(s);
        polls += p;
    }
    match sse_during.await? {
        Ok(s) => sessions.push(s),
        Err(e) => verdict.fail(format!("SSE during the writes: {e}")),
    }
    // Resumes from cursors kept while the writes were in flight.
    let kept = shared.kept.lock().map(|k| k.clone()).unwrap_or_default();
    let in_flight_cursors = kept.len();
    verdict.check(!kept.is_empty(), || {
        "no cursor was kept during the writes".into()
    });
    let mut rng = fastrand::Rng::with_seed(args.common.seed ^ 0x5e);
    if !kept.is_empty() {
        let mut client = Client::new(addr_b);
        for _ in 0..args.resumes {
            let start = kept[rng.usize(0..kept.len())];
            let (seen, p) = follow(&mut client, &token, start, last, &mut rng).await?;
            polls += p;
            sessions.push(Session {
                how: "long-poll resumed after the writes",
                start,
                seen,
                after_writes: true,
            });
        }
        for _ in 0..args.sse_resumes {
            let start = kept[rng.usize(0..kept.len())];
            match sse(addr_b, &token, start, Some(last), Duration::from_secs(60)).await {
                Ok(seen) => sessions.push(Session {
                    how: "SSE resumed (Last-Event-ID) after the writes",
                    start,
                    seen,
                    after_writes: true,
                }),
                Err(e) => verdict.fail(format!("SSE from Last-Event-ID {start}: {e}")),
            }
        }
    }

    // Every session against the log.
    let (mut missed, mut repeated, mut bad_sessions) = (0usize, 0usize, 0usize);
    let mut seen_total = 0usize;
    let sse_sessions = sessions.iter().filter(|s| s.how.starts_with("SSE")).count();
    for s in &sessions {
        seen_total += s.seen.len();
        let problem = compare(&final_log, s, last);
        if let Some((why, m, r)) = problem {
            missed += m;
            repeated += r;
            bad_sessions += 1;
            if bad_sessions <= 5 {
                verdict.fail(format!("{} from cursor {}: {why}", s.how, s.start));
            }
        }
    }
    verdict.check(bad_sessions <= 5, || {
        format!(
            "{bad_sessions} of {} sessions disagreed with the log",
            sessions.len()
        )
    });
    let holes = final_log.windows(2).filter(|w| w[1] != w[0] + 1).count()
        + usize::from(final_log.first().is_some_and(|f| *f != 1));

    for (name, d) in [("A", a), ("B", b)] {
        let (code, _) = d.term(Duration::from_secs(20)).await?;
        verdict.check(code == Some(0), || {
            format!("daemon {name} exited {code:?} after SIGTERM")
        });
    }
    verdict.figure("changes", final_log.len());
    verdict.figure("last_seq", last);
    verdict.figure("log_holes", holes);
    verdict.figure("http_orders", tally_http.ok);
    verdict.figure("import_orders", tally_import.ok);
    verdict.figure("cli_orders", tally_place.ok);
    verdict.figure("restocks", tally_restock.ok);
    verdict.figure(
        "write_errors",
        tally_http.failed + tally_import.failed + tally_place.failed + tally_restock.failed,
    );
    verdict.figure("sessions", sessions.len());
    verdict.figure("sse_sessions", sse_sessions);
    verdict.figure("in_flight_cursors", in_flight_cursors);
    verdict.figure("polls", polls);
    verdict.figure("seqs_read", seen_total);
    verdict.figure("missed", missed);
    verdict.figure("repeated_or_reordered", repeated);
    verdict.figure("write_secs", format!("{write_secs:.1}"));
    verdict.figure("secs", format!("{:.1}", started.elapsed().as_secs_f64()));
    Ok(verdict)
}

/// Holds a session against the final log: `None` when it saw exactly the
/// log's seqs in `(start, its last]` (up to the log's end after the
/// writes); else why not, with the counts of missed and repeated or
/// reordered seqs.
fn compare(log: &[i64], s: &Session, last: i64) -> Option<(String, usize, usize)> {
    let mut repeated = 0;
    let mut first_bad = None;
    let mut prev = s.start;
    for &q in &s.seen {
        if q <= prev {
            repeated += 1;
            first_bad.get_or_insert_with(|| format!("seq {q} came after {prev}"));
        }
        prev = prev.max(q);
    }
    let upto = if s.after_writes {
        last
    } else {
        s.seen.iter().copied().max().unwrap_or(s.start)
    };
    let lo = log.partition_point(|&q| q <= s.start);
    let hi = log.partition_point(|&q| q <= upto);
    let expected = &log[lo..hi.max(lo)];
    let mut got: Vec<i64> = s.seen.clone();
    got.sort_unstable();
    got.dedup();
    let have: std::collections::HashSet<i64> = got.iter().copied().collect();
    let missing: Vec<i64> = expected
        .iter()
        .copied()
        .filter(|q| !have.contains(q))
        .collect();
    let logged: std::collections::HashSet<i64> = expected.iter().copied().collect();
    let unknown: Vec<i64> = got
        .iter()
        .copied()
        .filter(|q| !logged.contains(q))
        .collect();
    if missing.is_empty() && unknown.is_empty() && repeated == 0 {
        return None;
    }
    let mut why = Vec::new();
    if let Some(&q) = missing.first() {
        // What the session saw around the gap.
        let before = s.seen.iter().copied().filter(|&x| x < q).max();
        let after = s.seen.iter().copied().filter(|&x| x > q).min();
        why.push(format!(
            "missed {} seq(s) of the log in ({}, {upto}], first {q} (saw {before:?} then {after:?})",
            missing.len(),
            s.start
        ));
    }
    if let Some(q) = unknown.first() {
        why.push(format!(
            "saw {} seq(s) the log does not hold, first {q}",
            unknown.len()
        ));
    }
    if let Some(b) = first_bad {
        why.push(format!("{repeated} repeated or out of order: {b}"));
    }
    Some((why.join("; "), missing.len(), repeated))
}

/// A reader of daemon B during the writes: polls from its cursor with
/// random page sizes, keeps some cursors, and now and then starts a new
/// session from a kept or random cursor; once the log's end is known,
/// follows its cursor there and ends. Returns its sessions and polls.
async fn read_randomly(
    addr: std::net::SocketAddr,
    token: &str,
    shared: &Shared,
    rng: &mut fastrand::Rng,
) -> Result<(Vec<Session>, u64)> {
    let mut client = Client::new(addr);
    let mut sessions = Vec::new();
    let mut current = Session {
        how: "long-poll during writes",
        start: 0,
        seen: Vec::new(),
        after_writes: false,
    };
    let mut cursor = 0;
    let mut polls = 0u64;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let last = shared.last.load(Ordering::Relaxed);
        if last > 0 && cursor >= last {
            break;
        }
        if Instant::now() >= deadline {
            return Err("a reader did not reach the end of the log in 900 s".into());
        }
        let limit = [1, 2, 5, 20, 100, 500][rng.usize(0..6)];
        let path = format!("/api/changes?after={cursor}&limit={limit}&wait=1");
        let reply = client
            .send(&Call::get(&path, token), Duration::from_secs(30))
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        polls += 1;
        if reply.status != 200 {
            return Err(format!("GET {path}: HTTP {}", reply.status).into());
        }
        let body = reply.json().ok_or("the feed answered no JSON")?;
        for c in body["changes"].as_array().into_iter().flatten() {
            let seq = c["seq"].as_i64().ok_or("a change without a seq")?;
            current.seen.push(seq);
        }
        cursor = body["next"].as_i64().ok_or("the feed answered no next")?;
        shared.highest.fetch_max(cursor, Ordering::Relaxed);
        if shared.last.load(Ordering::Relaxed) == 0 {
            if rng.u8(0..8) == 0
                && let Ok(mut kept) = shared.kept.lock()
            {
                kept.push(cursor);
            }
            // Start over from a kept cursor or a random one.
            if rng.u8(0..16) == 0 {
                let start = match shared.kept.lock() {
                    Ok(kept) if !kept.is_empty() && rng.bool() => kept[rng.usize(0..kept.len())],
                    _ => rng.i64(0..=cursor.max(0)),
                };
                sessions.push(std::mem::replace(
                    &mut current,
                    Session {
                        how: "long-poll during writes",
                        start,
                        seen: Vec::new(),
                        after_writes: false,
                    },
                ));
                cursor = start;
            }
        }
    }
    // The last session ran to the end of the log.
    current.after_writes = true;
    sessions.push(current);
    Ok((sessions, polls))
}

/// Follows the long-poll from `start` to `last`; returns the seqs seen and
/// the polls made.
async fn follow(
    client: &mut Client,
    token: &str,
    start: i64,
    last: i64,
    rng: &mut fastrand::Rng,
) -> Result<(Vec<i64>, u64)> {
    let (mut cursor, mut seen, mut polls) = (start, Vec::new(), 0u64);
    let deadline = Instant::now() + Duration::from_secs(300);
    while cursor < last {
        if Instant::now() >= deadline {
            return Err(format!("a resumed session did not reach seq {last} in 300 s").into());
        }
        let limit = [7, 50, 1000][rng.usize(0..3)];
        let path = format!("/api/changes?after={cursor}&limit={limit}&wait=1");
        let reply = client
            .send(&Call::get(&path, token), Duration::from_secs(30))
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        polls += 1;
        let body = reply.json().ok_or("the feed answered no JSON")?;
        for c in body["changes"].as_array().into_iter().flatten() {
            seen.push(c["seq"].as_i64().ok_or("a change without a seq")?);
        }
        cursor = body["next"].as_i64().ok_or("the feed answered no next")?;
    }
    Ok((seen, polls))
}

/// Reads `/api/changes/stream` with `Last-Event-ID: start` until the event
/// with seq `until` (or, without it, for `limit`); returns the seqs of the
/// events, checking that each event's `id` is its change's seq.
async fn sse(
    addr: std::net::SocketAddr,
    token: &str,
    start: i64,
    until: Option<i64>,
    limit: Duration,
) -> Result<Vec<i64>, String> {
    let mut sender = connect(addr).await.map_err(|e| e.to_string())?;
    let req = Request::get("/api/changes/stream")
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {token}"))
        .header("last-event-id", start.to_string())
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| "no answer head in 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    if response.status() != 200 {
        return Err(format!("HTTP {}", response.status()));
    }
    let mut body = response.into_body();
    let deadline = tokio::time::Instant::now() + limit;
    let (mut buf, mut seen) = (String::new(), Vec::new());
    loop {
        // (A cursor kept at the very end has nothing to wait for.)
        if until.is_some_and(|u| seen.last().copied().unwrap_or(start) >= u) {
            return Ok(seen);
        }
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) if until.is_none() => return Ok(seen),
            Err(_) => {
                return Err(format!(
                    "the stream did not reach seq {} in {limit:?} (at {:?})",
                    until.unwrap_or(0),
                    seen.last()
                ));
            }
            Ok(None) => return Err("the stream ended".into()),
            Ok(Some(Err(e))) => return Err(format!("the stream broke: {e}")),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let (mut id, mut payload) = (None, None);
            for line in event.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse::<i64>().ok();
                } else if let Some(v) = line.strip_prefix("data:") {
                    payload = Some(v.trim().to_string());
                }
            }
            let Some(payload) = payload else { continue };
            let seq = serde_json::from_str::<serde_json::Value>(&payload)
                .ok()
                .and_then(|v| v["seq"].as_i64())
                .ok_or_else(|| format!("an event without a seq: {payload:.200}"))?;
            if id != Some(seq) {
                return Err(format!("event id {id:?} for the change with seq {seq}"));
            }
            seen.push(seq);
        }
    }
}

/// A cart of 1-3 lines of distinct products in `[lo, hi)`.
fn cart_in(rng: &mut fastrand::Rng, (lo, hi): (usize, usize)) -> Vec<(String, i64)> {
    let first = rng.usize(lo..hi);
    (0..rng.usize(1..=3))
        .map(|j| (sku(lo + (first - lo + j) % (hi - lo)), rng.i64(1..=3)))
        .collect()
}

/// Writes import `k` of `lines` lines (orders of 1-3 lines on the import's
/// products); returns its orders.
fn write_import(
    path: &std::path::Path,
    k: usize,
    lines: usize,
    rng: &mut fastrand::Rng,
) -> Result<usize> {
    let mut csv = String::from("order_ref,customer_email,sku,quantity\n");
    let (mut written, mut orders) = (0, 0);
    while written < lines {
        let who = customer(rng.usize(1..=CUSTOMERS));
        for (product, qty) in cart_in(rng, IMPORT_SKUS).into_iter().take(lines - written) {
            csv.push_str(&format!("feed{k}-{orders},{who},{product},{qty}\n"));
            written += 1;
        }
        orders += 1;
    }
    std::fs::write(path, csv)?;
    Ok(orders)
}
