//! Helpers shared by every CLI test: a throw-away database with a
//! temporary directory beside it and a way to run the real `oms` binary
//! against it.
//!
//! The database comes from `oms_testdb::TestDb::from_env()`: a SQLite file,
//! or with `OMS_TEST_BACKEND=postgres` a PostgreSQL database of its own
//! (`--db` then gets its URL), so every test here runs on either backend.

use std::path::Path;
use std::process::Output;

use oms_testdb::TestDb;
use serde_json::Value;

/// Exit codes of the command line contract (DESIGN.md §5).
pub const OK: i32 = 0;
pub const INTERNAL: i32 = 1;
pub const USAGE: i32 = 2;
pub const NOT_FOUND: i32 = 3;
pub const CONFLICT: i32 = 4;
pub const INVALID: i32 = 5;

/// The `oms` binary cargo built for this test run.
pub fn oms_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_oms"))
}

/// What one run of `oms` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(output: Output) -> Run {
        Run {
            // A signal (no code) is never a contract exit code.
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
        }
    }
}

/// A test database (with a scratch directory), removed on drop.
pub struct Db {
    database: TestDb,
}

impl Db {
    /// A database oms has not touched yet (it creates the shop on first
    /// use): a file that does not exist, or an empty PostgreSQL database.
    pub fn empty() -> Db {
        Db {
            database: TestDb::from_env(),
        }
    }

    /// A fresh database created with `oms init` (USD).
    pub fn new() -> Db {
        let db = Db::empty();
        db.ok(&["init"]);
        db
    }

    /// A database loaded with the demo data (`oms init --demo`).
    pub fn demo() -> Db {
        let db = Db::empty();
        db.ok(&["init", "--demo"]);
        db
    }

    /// What `--db` takes for it: the file's path or the database's URL.
    pub fn location(&self) -> String {
        self.database.url_or_path()
    }

    /// Whether this run is on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.database.is_postgres()
    }

    /// Whether oms has created the shop: the file exists, or the
    /// PostgreSQL database has tables.
    pub fn is_created(&self) -> bool {
        match self.database.sqlite_path() {
            Some(path) => path.exists(),
            None => {
                let tables = "SELECT count(*) FROM pg_tables \
                              WHERE schemaname NOT IN ('pg_catalog', 'information_schema')";
                self.sql(tables).trim() != "0"
            }
        }
    }

    /// A scratch directory (on SQLite it also holds the database file).
    pub fn dir(&self) -> &Path {
        self.database.dir()
    }

    /// Writes a scratch file in [`Db::dir`] and returns its path.
    pub fn file(&self, name: &str, contents: &str) -> String {
        let path = self.dir().join(name);
        std::fs::write(&path, contents).expect("write scratch file");
        path.to_str().expect("UTF-8 temp path").to_string()
    }

    /// `oms --db <database> ARGS...`, isolated from the caller's environment
    /// and working directory.
    pub fn cmd(&self, args: &[&str]) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.std_cmd(args))
    }

    /// The same command as a plain `std::process::Command`, for tests that
    /// start many processes before waiting for any.
    pub fn std_cmd(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(oms_bin());
        cmd.env_remove("OMS_DB")
            .env_remove("OMS_LOG")
            .env_remove("OMS_SMTP_URL")
            .current_dir(self.dir())
            .arg("--db")
            .arg(self.location())
            .args(args);
        cmd
    }

    /// Runs `oms` with `args` and returns what happened.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from_output(self.cmd(args).output().expect("run oms"))
    }

    /// Runs `oms` with `stdin` fed in.
    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Run {
        Run::from_output(
            self.cmd(args)
                .write_stdin(stdin.to_string())
                .output()
                .expect("run oms"),
        )
    }

    /// Runs `oms`, asserts exit 0, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(
            run.code, OK,
            "oms {args:?} should succeed\nstdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );
        run.stdout
    }

    /// Runs `oms ... --format json`, asserts exit 0 and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("oms {all:?} printed invalid JSON ({e}): {out}"))
    }

    /// Runs `oms`, asserts it fails with `code` and prints exactly one
    /// `error: ...` line on stderr (and nothing on stdout); returns that line.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let run = self.run(args);
        assert_failed(&run, code, args);
        run.stderr
    }

    /// Like [`Db::fails`] with `stdin` fed in.
    pub fn fails_stdin(&self, args: &[&str], stdin: &str, code: i32) -> String {
        let run = self.run_stdin(args, stdin);
        assert_failed(&run, code, args);
        run.stderr
    }

    /// Runs a usage error: exit 2 and an `error:` message from the parser.
    pub fn usage_error(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(
            run.code, USAGE,
            "oms {args:?} should be a usage error\nstdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );
        assert!(
            run.stderr.starts_with("error:"),
            "usage error message: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "stdout on error: {}", run.stdout);
        run.stderr
    }

    /// Runs SQL behind oms's back (to inspect or tamper with the data)
    /// through the engine's own shell: `sqlite3` on the file, `psql` on the
    /// PostgreSQL database. Returns its stdout: one row a line, columns
    /// separated by `|`, as both print them. The SQL must mean the same on
    /// both (SQLite-only statements belong in SQLite-only tests).
    pub fn sql(&self, sql: &str) -> String {
        match self.database.sqlite_path() {
            Some(path) => sqlite(path, sql),
            None => psql(&self.location(), sql),
        }
    }

    // ---- shorthands for setting up data ---------------------------------

    /// Adds a product and returns its id.
    pub fn add_product(&self, sku: &str, price: &str, stock: i64) -> i64 {
        let stock = stock.to_string();
        let p = self.json(&[
            "product", "add", "--sku", sku, "--name", sku, "--price", price, "--stock", &stock,
        ]);
        p["id"].as_i64().expect("product id")
    }

    /// Adds a customer and returns its id.
    pub fn add_customer(&self, name: &str, email: &str) -> i64 {
        let c = self.json(&["customer", "add", "--name", name, "--email", email]);
        c["id"].as_i64().expect("customer id")
    }

    /// Places an order (`items` as SKU:QTY) and returns its id.
    pub fn place(&self, customer: &str, items: &[&str]) -> i64 {
        let mut args = vec!["order", "place", "--customer", customer];
        for item in items {
            args.extend(["--item", item]);
        }
        let o = self.json(&args);
        o["id"].as_i64().expect("order id")
    }

    /// `product show SKU --format json`.
    pub fn product(&self, sku: &str) -> Value {
        self.json(&["product", "show", sku])
    }

    /// (on_hand, reserved, available) of a product.
    pub fn stock(&self, sku: &str) -> (i64, i64, i64) {
        let p = self.product(sku);
        (
            p["stock_on_hand"].as_i64().expect("stock_on_hand"),
            p["stock_reserved"].as_i64().expect("stock_reserved"),
            p["stock_available"].as_i64().expect("stock_available"),
        )
    }

    /// `order show ID --format json`.
    pub fn order(&self, id: i64) -> Value {
        self.json(&["order", "show", &id.to_string()])
    }

    /// Ids printed by `-q` for a listing command.
    pub fn ids(&self, args: &[&str]) -> Vec<i64> {
        let mut all = args.to_vec();
        all.push("-q");
        ids(&self.ok(&all))
    }

    /// Every change in the log, parsed from the default JSON lines output.
    pub fn changes(&self) -> Vec<Value> {
        json_lines(&self.ok(&["changes", "--limit", "100000"]))
    }

    /// How many rows the change log holds.
    pub fn change_count(&self) -> usize {
        self.changes().len()
    }

    /// Asserts `oms verify` passes.
    pub fn assert_verifies(&self) {
        let run = self.run(&["verify"]);
        assert_eq!(
            run.code, OK,
            "verify should pass\nstdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );
    }
}

fn assert_failed(run: &Run, code: i32, args: &[&str]) {
    assert_eq!(
        run.code, code,
        "oms {args:?} exit code\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "oms {args:?}: errors are one line on stderr, got: {}",
        run.stderr
    );
    assert!(
        lines[0].starts_with("error: "),
        "oms {args:?}: error line should start with `error: `, got: {}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "oms {args:?}: nothing on stdout on error, got: {}",
        run.stdout
    );
}

/// Runs SQL with `/usr/bin/sqlite3` on `path` and returns stdout.
pub fn sqlite(path: &Path, sql: &str) -> String {
    let out = std::process::Command::new("/usr/bin/sqlite3")
        .arg(path)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    assert!(
        out.status.success(),
        "sqlite3 {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("sqlite3 output is UTF-8")
}

/// Runs SQL with `psql` on the database at `url` and returns stdout
/// (unaligned, tuples only: the layout `sqlite3` prints by default).
pub fn psql(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("run psql (Debian: postgresql-client)");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("psql output is UTF-8")
}

/// Parses `-q` output: one integer id a line.
pub fn ids(text: &str) -> Vec<i64> {
    text.lines()
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|_| panic!("not an id: {l:?} in {text:?}"))
        })
        .collect()
}

/// Parses JSON lines output.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line ({e}): {l}")))
        .collect()
}

/// A small RFC 4180 reader for checking exports: quoted cells, doubled
/// quotes, commas and line breaks inside quotes, CRLF or LF rows.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => quoted = false,
                _ => cell.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut cell)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            _ => cell.push(c),
        }
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    rows
}

/// CSV rows as maps from header name to cell, for readable assertions.
pub fn csv_records(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut rows = parse_csv(text).into_iter();
    let header = rows.next().expect("CSV header");
    rows.map(|row| {
        assert_eq!(row.len(), header.len(), "row width: {row:?}");
        header.iter().cloned().zip(row).collect()
    })
    .collect()
}

/// The first line of `text`.
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// `value[field]` as a string, panicking with context if it is not one.
pub fn s<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {value}"))
}

/// `value[field]` as an integer, panicking with context if it is not one.
pub fn n(value: &Value, field: &str) -> i64 {
    value[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} is not an integer in {value}"))
}
