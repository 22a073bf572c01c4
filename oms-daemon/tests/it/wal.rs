//! The WAL after a long reader: while an analyst's `sqlite3` shell holds a
//! read transaction, placements go on and the WAL grows (SQLite cannot
//! reuse frames the reader may need); once the reader lets go, the WAL
//! returns under `oms_core::WAL_SIZE_LIMIT` within seconds, whether the
//! daemon stays busy or goes idle, and it is gone after a clean shutdown.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{Server, order_body};

/// The size the README promises the WAL returns under once a long reader
/// has let go (oms-core's SQLite engine: `journal_size_limit`, and the
/// checkpointer's truncation when idle).
const WAL_SIZE_LIMIT: u64 = 32 * 1024 * 1024;

/// A `sqlite3` shell inside `BEGIN; SELECT ...;`: it holds a read snapshot
/// until [`Reader::leave`].
struct Reader {
    child: Child,
    stdin: ChildStdin,
}

impl Reader {
    /// `None` (saying so) where the sqlite3 shell is missing.
    fn hold(db: &std::path::Path) -> Option<Reader> {
        let spawned = Command::new("sqlite3")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                eprintln!("skipped: the sqlite3 shell cannot run ({e}); .ci/run installs it");
                return None;
            }
        };
        let mut stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        stdin
            .write_all(b"BEGIN;\nSELECT count(*) FROM orders;\n")
            .expect("write to sqlite3");
        stdin.flush().expect("flush");
        // The count is printed once the snapshot is taken.
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read from sqlite3");
        assert!(line.trim().parse::<u64>().is_ok(), "sqlite3 said {line:?}");
        Some(Reader { child, stdin })
    }

    fn leave(mut self) {
        self.stdin
            .write_all(b"COMMIT;\n.quit\n")
            .expect("write to sqlite3");
        drop(self.stdin);
        let status = self.child.wait().expect("sqlite3 exits");
        assert!(status.success(), "sqlite3: {status}");
    }
}

fn wal_bytes(server: &Server) -> u64 {
    let wal = format!("{}-wal", server.db_path().display());
    std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

/// Places orders from 8 clients until `until` says stop; panics past
/// `max` orders. Returns how many were placed.
fn place_until(server: &Server, max: usize, until: impl Fn() -> bool + Sync) -> usize {
    let placed = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                while !until() {
                    let n = placed.fetch_add(1, Ordering::Relaxed);
                    assert!(n < max, "placed {max} orders and the condition never held");
                    server
                        .post("/api/orders")
                        .token(&server.alice.token)
                        .json(&order_body(None, &[("WAL", 1)]))
                        .send()
                        .expect_status(201);
                }
            });
        }
    });
    placed.into_inner()
}

/// Polls until the WAL is at most the limit; returns how long it took.
fn wal_returns_under_the_limit(server: &Server, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let size = wal_bytes(server);
        if size <= WAL_SIZE_LIMIT {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "the WAL is still {size} bytes {within:?} after the reader left"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_wal_shrinks_once_a_long_reader_leaves() {
    if !oms_testdb::sqlite_only("SQLite's WAL file and the sqlite3 shell") {
        return;
    }
    let server = Server::start_with(|config| config.read_pool = 2);
    server.add_product("WAL", "1.00", 1_000_000);
    let grown = WAL_SIZE_LIMIT + WAL_SIZE_LIMIT / 4;

    // Idle afterwards: the daemon's checkpointer truncates it.
    let Some(reader) = Reader::hold(server.db_path()) else {
        return;
    };
    let orders = place_until(&server, 200_000, || wal_bytes(&server) > grown);
    let peak = wal_bytes(&server);
    reader.leave();
    let idle = wal_returns_under_the_limit(&server, Duration::from_secs(5));

    // Busy afterwards: the next commits start the WAL over and truncate it.
    let reader = Reader::hold(server.db_path()).expect("sqlite3 ran before");
    place_until(&server, 200_000, || wal_bytes(&server) > grown);
    reader.leave();
    let busy_start = Instant::now();
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut busy = Duration::ZERO;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            place_until(&server, 200_000, || done.load(Ordering::Relaxed));
        });
        busy = wal_returns_under_the_limit(&server, Duration::from_secs(5));
        // And it stays there while commits go on.
        std::thread::sleep(Duration::from_millis(300));
        done.store(true, Ordering::Relaxed);
    });
    assert!(wal_bytes(&server) <= WAL_SIZE_LIMIT);
    println!(
        "wal figure: orders_while_held={orders} peak_bytes={peak} limit_bytes={WAL_SIZE_LIMIT} \
         idle_return_ms={} busy_return_ms={} busy_total_ms={}",
        idle.as_millis(),
        busy.as_millis(),
        busy_start.elapsed().as_millis()
    );
}
