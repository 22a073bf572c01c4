//! The database an oms test runs on, from one place, so that the same
//! tests run on both backends (DESIGN §10: "with the same tests").
//!
//! `OMS_TEST_BACKEND` picks the backend for a whole test run: `sqlite` (the
//! default) gives every test a database file in a temporary directory;
//! `postgres` gives it a fresh database `oms_test_…` on the cluster whose
//! URL `OMS_TEST_PG` holds (`scripts/pg start` prints it), dropped again
//! when the test ends. Asking for PostgreSQL without `OMS_TEST_PG` is a
//! failure, not a skip: CI sets both, and a run that silently tested
//! nothing would prove nothing.
//!
//! Tests about SQLite itself (its files, the `sqlite3` shell, its WAL) ask
//! [`sqlite_only`] first and return early on PostgreSQL, saying so.
//!
//! The PostgreSQL administration (creating and dropping databases) uses the
//! synchronous `postgres` crate, which runs a runtime of its own: it is
//! always called on a thread of its own, so a test may create or drop a
//! [`TestDb`] anywhere, inside a tokio runtime too.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oms_core::{Db, Location};
use tempfile::TempDir;

/// Which backend the tests run on: `sqlite` (default) or `postgres`.
pub const BACKEND_VAR: &str = "OMS_TEST_BACKEND";
/// The URL of the PostgreSQL cluster the tests create their databases on,
/// e.g. `postgres://postgres@127.0.0.1:5432/postgres`.
pub const PG_VAR: &str = "OMS_TEST_PG";
/// When set, a file every [`sqlite_only`] skip appends a line to, so that
/// `scripts/test` can say how many tests a PostgreSQL run skipped.
pub const SKIPS_VAR: &str = "OMS_TEST_SKIPS";

/// Prefix of every test database's name (and of nothing else).
const PREFIX: &str = "oms_test_";

/// A storage backend of oms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(text: &str) -> Result<Backend, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" | "pg" => Ok(Backend::Postgres),
            other => Err(format!(
                "{BACKEND_VAR}={other:?}: expected `sqlite` or `postgres`"
            )),
        }
    }
}

/// The backend of this test run, from `OMS_TEST_BACKEND` (default SQLite).
///
/// # Panics
/// On a value other than `sqlite` or `postgres`: a typo must not quietly
/// run everything on SQLite.
pub fn backend() -> Backend {
    static BACKEND: OnceLock<Backend> = OnceLock::new();
    *BACKEND.get_or_init(|| {
        let text = std::env::var(BACKEND_VAR).unwrap_or_default();
        text.parse().unwrap_or_else(|e: String| panic!("{e}"))
    })
}

/// Whether a test about SQLite itself may run: true on SQLite; on
/// PostgreSQL prints `skipped on postgres: REASON` (and records it in
/// `OMS_TEST_SKIPS`) and answers false, so the test returns:
///
/// ```no_run
/// if !oms_testdb::sqlite_only("the sqlite3 shell tampers with the file") {
///     return;
/// }
/// ```
pub fn sqlite_only(reason: &str) -> bool {
    if backend() == Backend::Sqlite {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    eprintln!("skipped on postgres: {reason}");
    if let Some(file) = std::env::var_os(SKIPS_VAR) {
        let line = format!("{test}: {reason}\n");
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = appended {
            eprintln!("cannot record the skip in {}: {e}", file.to_string_lossy());
        }
    }
    false
}

/// One test's database, removed when dropped: a SQLite file in a temporary
/// directory, or a PostgreSQL database of its own. Either way it comes with
/// a scratch directory ([`TestDb::dir`]) for the test's other files.
#[derive(Debug)]
pub struct TestDb {
    kind: Kind,
    // Last: for SQLite the file lives in it.
    dir: TempDir,
}

#[derive(Debug)]
enum Kind {
    Sqlite { path: PathBuf },
    Postgres(PgDatabase),
}

impl TestDb {
    /// A database of the run's backend (`OMS_TEST_BACKEND`).
    ///
    /// # Panics
    /// When PostgreSQL is asked for and `OMS_TEST_PG` is unset, or the
    /// database cannot be created.
    pub fn from_env() -> TestDb {
        match backend() {
            Backend::Sqlite => TestDb::sqlite(),
            Backend::Postgres => TestDb::postgres(),
        }
    }

    /// A SQLite database: `oms.db` in a new temporary directory (oms
    /// creates the file on first use).
    pub fn sqlite() -> TestDb {
        let dir = scratch_dir();
        let path = dir.path().join("oms.db");
        TestDb {
            kind: Kind::Sqlite { path },
            dir,
        }
    }

    /// A new, empty PostgreSQL database on the `OMS_TEST_PG` cluster.
    ///
    /// # Panics
    /// When `OMS_TEST_PG` is unset or malformed, or the database cannot be
    /// created: the message says how to start a cluster.
    pub fn postgres() -> TestDb {
        let server = match pg_server() {
            Some(Ok(server)) => server,
            Some(Err(e)) => panic!("{e}"),
            None => panic!(
                "{BACKEND_VAR}=postgres needs {PG_VAR}, the URL of a PostgreSQL cluster \
                 (`eval \"$(scripts/pg start)\"` starts one and prints it)"
            ),
        };
        let database = PgDatabase::create(server).unwrap_or_else(|e| panic!("{e}"));
        TestDb {
            kind: Kind::Postgres(database),
            dir: scratch_dir(),
        }
    }

    pub fn backend(&self) -> Backend {
        match self.kind {
            Kind::Sqlite { .. } => Backend::Sqlite,
            Kind::Postgres(_) => Backend::Postgres,
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.backend() == Backend::Postgres
    }

    /// Where oms finds it.
    pub fn location(&self) -> Location {
        match &self.kind {
            Kind::Sqlite { path } => Location::File(path.clone()),
            Kind::Postgres(database) => Location::Postgres(database.url.clone()),
        }
    }

    /// What `--db` / `OMS_DB` takes: the file's path or the database's URL.
    pub fn url_or_path(&self) -> String {
        match &self.kind {
            Kind::Sqlite { path } => path.to_string_lossy().into_owned(),
            Kind::Postgres(database) => database.url.clone(),
        }
    }

    /// The database file, on SQLite.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Sqlite { path } => Some(path),
            Kind::Postgres(_) => None,
        }
    }

    /// The database's name, on PostgreSQL.
    pub fn postgres_name(&self) -> Option<&str> {
        match &self.kind {
            Kind::Sqlite { .. } => None,
            Kind::Postgres(database) => Some(&database.name),
        }
    }

    /// A temporary directory for the test's other files (removed on drop;
    /// on SQLite it also holds the database file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs SQL on the PostgreSQL database behind oms's back (to forge or
    /// inspect what a test is about); `None` on SQLite.
    ///
    /// # Panics
    /// When the statements fail.
    pub fn pg_execute(&self, sql: &str) -> Option<()> {
        let Kind::Postgres(database) = &self.kind else {
            return None;
        };
        let url = url::Url::parse(&database.url).unwrap_or_else(|e| panic!("{e}"));
        administer(&url, |client| client.batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        Some(())
    }

    /// The first column of the one row `sql` answers on the PostgreSQL
    /// database, as `i64`; `None` on SQLite.
    ///
    /// # Panics
    /// When the query fails or answers no row or no `bigint`.
    pub fn pg_number(&self, sql: &str) -> Option<i64> {
        let Kind::Postgres(database) = &self.kind else {
            return None;
        };
        let url = url::Url::parse(&database.url).unwrap_or_else(|e| panic!("{e}"));
        let number = administer(&url, |client| {
            client
                .query_one(sql, &[])
                .map(|row| row.try_get::<_, i64>(0))
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
        Some(number)
    }

    /// Opens (creating and migrating on first use) the shop, as a command
    /// would: [`Db::open`] of [`TestDb::location`].
    pub fn open(&self) -> oms_core::Result<Db> {
        Db::open(&self.location())
    }
}

/// A [`Db`] on a [`TestDb`] of its own, which it keeps until dropped (the
/// handle first). Dereferences to the [`Db`], so it stands in for one.
pub struct TestStore {
    // First: the handle closes before its database goes.
    store: Db,
    database: TestDb,
}

impl TestStore {
    /// A fresh shop on the run's backend.
    ///
    /// # Panics
    /// When the database cannot be created or opened.
    pub fn new() -> TestStore {
        let database = TestDb::from_env();
        let store = database
            .open()
            .unwrap_or_else(|e| panic!("open the test database {}: {e}", database.location()));
        TestStore { store, database }
    }

    pub fn database(&self) -> &TestDb {
        &self.database
    }
}

impl Default for TestStore {
    fn default() -> Self {
        TestStore::new()
    }
}

impl std::ops::Deref for TestStore {
    type Target = Db;

    fn deref(&self) -> &Db {
        &self.store
    }
}

impl std::ops::DerefMut for TestStore {
    fn deref_mut(&mut self) -> &mut Db {
        &mut self.store
    }
}

fn scratch_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("oms-test-")
        .tempdir()
        .unwrap_or_else(|e| panic!("create a temporary directory: {e}"))
}

/// The cluster of `OMS_TEST_PG`: `None` when unset.
fn pg_server() -> Option<Result<url::Url, String>> {
    let text = std::env::var(PG_VAR)
        .ok()
        .filter(|t| !t.trim().is_empty())?;
    Some(parse_server(&text))
}

fn parse_server(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| format!("{PG_VAR}: {e}"))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "{PG_VAR} must be a postgres:// URL, not {:?}",
            url.scheme()
        ));
    }
    Ok(url)
}

/// A database created for one test on the `OMS_TEST_PG` cluster and
/// dropped (with its connections) when this is dropped.
#[derive(Debug)]
struct PgDatabase {
    /// The cluster's URL, whose database administers the others.
    server: url::Url,
    name: String,
    /// The URL of this database: the server's, with the name as its path.
    url: String,
}

impl PgDatabase {
    fn create(server: url::Url) -> Result<PgDatabase, String> {
        static JANITOR: OnceLock<()> = OnceLock::new();
        JANITOR.get_or_init(|| drop_abandoned(&server));

        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{PREFIX}{}_{}_{:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        // template0 is never connected to (template1 may be, and then
        // CREATE DATABASE fails), and the locale is spelled out so lower()
        // folds beyond ASCII whatever the cluster's default.
        let create = format!(
            "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' \
             LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
        );
        administer(&server, |client| client.batch_execute(&create))
            .map_err(|e| format!("create the test database {name}: {e}"))?;
        let mut url = server.clone();
        url.set_path(&format!("/{name}"));
        Ok(PgDatabase {
            server,
            name,
            url: url.to_string(),
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Never panic here: this may run while a failed test unwinds.
        if let Err(e) = administer(&self.server, |client| client.batch_execute(&drop)) {
            eprintln!("cannot drop the test database {}: {e}", self.name);
        }
    }
}

/// Runs `work` on a new administrative connection to the cluster, on a
/// thread of its own (the sync client must not run on a runtime's thread).
fn administer<T: Send>(
    server: &url::Url,
    work: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error> + Send,
) -> Result<T, String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut config = postgres::Config::from_str(server.as_str())
                    .map_err(|e| format!("{PG_VAR}: {e}"))?;
                config
                    .connect_timeout(Duration::from_secs(10))
                    .application_name("oms-testdb");
                let mut client = config.connect(postgres::NoTls).map_err(|e| {
                    format!(
                        "cannot connect to {PG_VAR}={} ({e}); is the cluster running? \
                         (scripts/pg start)",
                        server
                    )
                })?;
                work(&mut client).map_err(|e| e.to_string())
            })
            .join()
            .unwrap_or_else(|_| Err("the database administration thread panicked".to_string()))
    })
}

/// Drops test databases left behind by test processes that were killed
/// before they could drop them (an interrupted `cargo test`), once per
/// process. Only on a cluster on this machine, whose processes it can see:
/// a database is abandoned when the process named in it no longer exists.
/// A database somebody is still connected to is left alone (no FORCE).
fn drop_abandoned(server: &url::Url) {
    let local = matches!(
        server.host_str(),
        None | Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    );
    if !local || !Path::new("/proc/self").exists() {
        return;
    }
    let names = administer(server, |client| {
        let rows = client.query(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
            &[&PREFIX],
        )?;
        Ok(rows
            .iter()
            .map(|row| row.get::<_, String>(0))
            .collect::<Vec<_>>())
    })
    .unwrap_or_default();
    let abandoned: Vec<String> = names
        .into_iter()
        .filter(|name| {
            let pid = name[PREFIX.len()..].split('_').next().unwrap_or_default();
            pid.parse::<u32>()
                .is_ok_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .collect();
    if abandoned.is_empty() {
        return;
    }
    let _ = administer(server, |client| {
        for name in &abandoned {
            // Names are ours: `oms_test_` and digits, letters, underscores.
            if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"));
            }
        }
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use oms_core::prelude::*;

    use super::*;

    #[test]
    fn backend_names_parse() {
        assert_eq!("".parse(), Ok(Backend::Sqlite));
        assert_eq!("sqlite".parse(), Ok(Backend::Sqlite));
        assert_eq!("Postgres".parse(), Ok(Backend::Postgres));
        assert!("mysql".parse::<Backend>().is_err());
    }

    #[test]
    fn the_server_url_must_be_postgres() {
        assert!(parse_server("postgres://postgres@127.0.0.1:5432/postgres").is_ok());
        assert!(parse_server("postgresql://u@h/db").is_ok());
        assert!(parse_server("mysql://u@h/db").is_err());
        assert!(parse_server("not a url").is_err());
    }

    #[test]
    fn a_sqlite_database_is_a_file_in_its_scratch_directory() {
        let db = TestDb::sqlite();
        let path = db.sqlite_path().expect("a file").to_path_buf();
        assert!(path.starts_with(db.dir()));
        assert_eq!(db.location(), Location::File(path.clone()));
        assert_eq!(db.url_or_path(), path.to_string_lossy());
        assert!(!db.is_postgres());
        let store = db.open().expect("open");
        assert_eq!(store.last_seq().expect("seq").get(), 0);
        drop(store);
        let dir = db.dir().to_path_buf();
        assert!(path.exists());
        drop(db);
        assert!(!dir.exists(), "the directory goes with the database");
    }

    /// Creates a database, checks what the tests rely on (its own URL,
    /// UTF-8 with a locale whose lower() folds non-ASCII), and checks that
    /// dropping it removes it even while a connection is still open.
    #[test]
    fn a_postgres_database_is_created_and_dropped() {
        let Some(server) = pg_server() else {
            eprintln!("skipped: {PG_VAR} is unset (scripts/pg start)");
            return;
        };
        let server = server.expect("a postgres:// URL");
        let started = std::time::Instant::now();
        let db = TestDb::postgres();
        let created = started.elapsed();
        let name = db.postgres_name().expect("a name").to_string();
        assert!(name.starts_with(PREFIX), "{name}");
        assert!(db.is_postgres());
        assert_eq!(db.location(), Location::Postgres(db.url_or_path()));
        assert!(db.url_or_path().ends_with(&format!("/{name}")), "{db:?}");
        assert!(db.sqlite_path().is_none());
        assert!(db.dir().is_dir());

        let url = url::Url::parse(&db.url_or_path()).expect("a URL");
        let (encoding, lowered) = administer(&url, |client| {
            let row = client.query_one(
                "SELECT pg_encoding_to_char(encoding), lower('ÀÉÎ Σ'), current_database() \
                 FROM pg_database WHERE datname = current_database()",
                &[],
            )?;
            assert_eq!(row.get::<_, String>(2), name);
            Ok((row.get::<_, String>(0), row.get::<_, String>(1)))
        })
        .expect("connect to the test database");
        assert_eq!(encoding, "UTF8");
        assert_eq!(lowered, "àéî σ");

        // A connection still open does not keep the database alive.
        let (opened_tx, opened_rx) = std::sync::mpsc::channel();
        let (close_tx, close_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let client = postgres::Client::connect(url.as_str(), postgres::NoTls);
            opened_tx.send(client.is_ok()).expect("report");
            let _ = close_rx.recv();
            drop(client);
        });
        assert!(opened_rx.recv().expect("the holder reports"));
        let started = std::time::Instant::now();
        drop(db);
        let dropped = started.elapsed();
        let _ = close_tx.send(());
        holder.join().expect("the holder ends");

        let left = administer(&server, |client| {
            let row = client.query_one(
                "SELECT count(*) FROM pg_database WHERE datname = $1",
                &[&name],
            )?;
            Ok(row.get::<_, i64>(0))
        })
        .expect("ask the cluster");
        assert_eq!(left, 0, "{name} is still there");
        println!("created in {created:?}, dropped in {dropped:?}");
    }

    #[test]
    fn sqlite_only_answers_for_the_run() {
        assert_eq!(
            sqlite_only("a test of the helper"),
            backend() == Backend::Sqlite
        );
    }
}
