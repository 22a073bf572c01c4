//! The command line as scripts and cron jobs use it (issue 13): several
//! order ids per status command (`... | xargs oms order pay`), one meaning
//! of `--limit 0` in every list command, and `oms backup --force` to a fixed
//! path that is never half-written.

use std::process::Command;

use serde_json::Value;

use crate::support::{
    CONFLICT, Db, INTERNAL, INVALID, NOT_FOUND, OK, USAGE, csv_records, ids, n, oms_bin, s,
};

/// A database with `count` PENDING orders of one unit each; their ids.
fn pending_orders(count: usize) -> (Db, Vec<i64>) {
    let db = Db::new();
    db.add_product("SKU-1", "5.00", 100);
    db.add_customer("Ada", "ada@example.com");
    let ids = (0..count)
        .map(|_| db.place("ada@example.com", &["SKU-1:1"]))
        .collect();
    (db, ids)
}

fn status(db: &Db, id: i64) -> String {
    s(&db.order(id), "status").to_string()
}

fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect()
}

// ---- several ids -------------------------------------------------------------------

#[test]
fn xargs_pays_every_pending_order_listed() {
    let (db, orders) = pending_orders(3);
    let oms = format!("{} --db {}", oms_bin().display(), db.location());
    // The pipeline of the issue, through the real shell and xargs.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{oms} order list -q --status pending | xargs {oms} order pay -q"
        ))
        .env_remove("OMS_DB")
        .output()
        .expect("run sh");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(ids(&String::from_utf8_lossy(&out.stdout)), orders);
    for id in orders {
        assert_eq!(status(&db, id), "PAID");
    }
    db.assert_verifies();
}

#[test]
fn each_id_is_its_own_transaction_and_every_failure_is_reported() {
    let (db, orders) = pending_orders(2);
    let (a, b) = (orders[0].to_string(), orders[1].to_string());
    let run = db.run(&["order", "pay", &a, "999", &b, "-q"]);
    assert_eq!(run.code, NOT_FOUND, "{run:?}");
    // The orders around the failure changed; stdout lists exactly them.
    assert_eq!(ids(&run.stdout), orders);
    assert_eq!(status(&db, orders[0]), "PAID");
    assert_eq!(status(&db, orders[1]), "PAID");
    let errors = error_lines(&run.stderr);
    assert_eq!(errors.len(), 2, "{}", run.stderr);
    assert!(
        errors[0].starts_with("error: order 999: ") && errors[0].contains("not found"),
        "{}",
        run.stderr
    );
    assert!(errors[1].contains("1 of 3"), "{}", run.stderr);
}

#[test]
fn the_exit_code_is_the_most_severe_failure() {
    let (db, orders) = pending_orders(3);
    let [a, b, c] = [0, 1, 2].map(|i| orders[i].to_string());
    db.ok(&["order", "cancel", &a]);
    // a: CANCELLED -> FULFILLED is a conflict (4); 999 is not found (3);
    // b is PENDING, also a conflict; nothing undoes c's success.
    db.ok(&["order", "pay", &c]);
    let run = db.run(&["order", "fulfill", "999", &a, &b, &c]);
    assert_eq!(
        run.code, CONFLICT,
        "conflict (4) outranks not found (3): {run:?}"
    );
    assert_eq!(error_lines(&run.stderr).len(), 4, "{}", run.stderr);
    assert_eq!(status(&db, orders[2]), "FULFILLED");

    // Only unknown ids: not found.
    let run = db.run(&["order", "cancel", "998", "999"]);
    assert_eq!(run.code, NOT_FOUND, "{run:?}");
    db.assert_verifies();
}

#[test]
fn several_ids_print_a_list_and_one_id_prints_one_object_as_before() {
    let (db, orders) = pending_orders(2);
    let (a, b) = (orders[0].to_string(), orders[1].to_string());
    let list = db.json(&["order", "pay", &a, &b]);
    let list = list.as_array().expect("a JSON array for several ids");
    assert_eq!(list.iter().map(|o| n(o, "id")).collect::<Vec<_>>(), orders);
    assert!(list.iter().all(|o| s(o, "status") == "PAID"));

    let one: Value = db.json(&["order", "fulfill", &a]);
    assert_eq!(n(&one, "id"), orders[0], "one object for one id: {one}");
    // One failing id: exactly the old single `error:` line and exit code.
    db.fails(&["order", "cancel", "999"], NOT_FOUND);
    // Retrying a status an order already has is a no-op success.
    db.ok(&["order", "pay", &b, &b]);
}

#[test]
fn dash_reads_ids_from_stdin() {
    let (db, orders) = pending_orders(3);
    let stdin = format!("{}\n{} {}\n", orders[0], orders[1], orders[2]);
    let run = db.run_stdin(&["order", "cancel", "-", "-q"], &stdin);
    assert_eq!(run.code, OK, "{run:?}");
    assert_eq!(ids(&run.stdout), orders);
    for id in &orders {
        assert_eq!(status(&db, *id), "CANCELLED");
    }
    // A word that is not an id is a usage error, and nothing changes.
    let (db, orders) = pending_orders(1);
    let run = db.run_stdin(&["order", "pay", "-"], &format!("{} seven\n", orders[0]));
    assert_eq!(run.code, USAGE, "{run:?}");
    assert!(run.stderr.contains("\"seven\""), "{}", run.stderr);
    assert_eq!(status(&db, orders[0]), "PENDING");
    db.fails_stdin(&["order", "pay", "-"], "", USAGE);
    db.usage_error(&["order", "pay"]);
}

#[test]
fn order_status_still_takes_one_id_and_a_status() {
    let (db, orders) = pending_orders(1);
    let id = orders[0].to_string();
    let order = db.json(&["order", "status", &id, "paid"]);
    assert_eq!(s(&order, "status"), "PAID");
    db.usage_error(&["order", "status", &id, &id, "paid"]);
}

#[test]
fn status_commands_help_documents_several_ids_and_the_exit_code() {
    let db = Db::empty();
    for cmd in ["pay", "fulfill", "cancel"] {
        let help = db.ok(&["order", cmd, "--help"]);
        assert!(help.contains("<ID>..."), "{cmd}: {help}");
        assert!(help.contains("most severe"), "{cmd}: {help}");
        assert!(help.contains("xargs"), "{cmd}: {help}");
    }
}

// ---- --limit 0 means no limit in every list command -------------------------------

/// 3 products, customers and orders: more than `--limit 1` shows.
fn three_of_everything() -> Db {
    let db = Db::new();
    for i in 1..=3 {
        db.add_product(&format!("SKU-{i}"), "1.00", 10);
        let email = format!("c{i}@example.com");
        db.add_customer(&format!("C{i}"), &email);
        db.place(&email, &[&format!("SKU-{i}:1")]);
    }
    db
}

#[test]
fn limit_0_lists_every_order() {
    let db = three_of_everything();
    assert_eq!(db.ids(&["order", "list", "--limit", "1"]).len(), 1);
    assert_eq!(db.ids(&["order", "list", "--limit", "0"]).len(), 3);
}

#[test]
fn limit_0_exports_every_order() {
    let db = three_of_everything();
    let rows = |limit: &str| csv_records(&db.ok(&["order", "export", "--limit", limit])).len();
    assert_eq!(rows("1"), 1);
    assert_eq!(rows("0"), 3);
}

#[test]
fn limit_0_lists_every_product() {
    let db = three_of_everything();
    assert_eq!(db.ids(&["product", "list", "--limit", "1"]).len(), 1);
    assert_eq!(db.ids(&["product", "list", "--limit", "0"]).len(), 3);
}

#[test]
fn limit_0_lists_every_customer() {
    let db = three_of_everything();
    assert_eq!(db.ids(&["customer", "list", "--limit", "1"]).len(), 1);
    assert_eq!(db.ids(&["customer", "list", "--limit", "0"]).len(), 3);
}

#[test]
fn limit_0_reads_every_change() {
    let db = three_of_everything();
    let all = db.change_count();
    assert!(all > 3, "{all} changes");
    let count = |limit: &str| {
        db.ok(&["changes", "--limit", limit, "--format", "jsonl"])
            .lines()
            .count()
    };
    assert_eq!(count("1"), 1);
    assert_eq!(count("0"), all);
}

#[test]
fn every_list_help_says_what_limit_0_means() {
    let db = Db::empty();
    for cmd in [
        &["order", "list"][..],
        &["order", "export"],
        &["product", "list"],
        &["customer", "list"],
        &["changes"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let help = db.ok(&args);
        assert!(help.contains("0: no limit"), "{cmd:?}: {help}");
    }
}

// ---- backup to a fixed path --------------------------------------------------------

/// Files in `dir` other than the database and its WAL files.
fn backup_dir_entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("oms.db"))
        .collect();
    names.sort();
    names
}

#[test]
fn backup_force_replaces_last_nights_file_atomically() {
    if !oms_testdb::sqlite_only("the atomic rename of SQLite's file backup") {
        return;
    }
    let db = Db::demo();
    let nightly = db.dir().join("nightly.db");
    let path = nightly.to_str().expect("utf-8");
    db.ok(&["backup", path]);
    let first = std::fs::read(&nightly).expect("read backup");

    // The next night: refused without --force, naming the flag; unchanged.
    db.ok(&["product", "restock", "LAPTOP-13", "--add", "5"]);
    let err = db.fails(&["backup", path], INVALID);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(&nightly).expect("read"), first);

    let run = db.run(&["backup", "--force", path]);
    assert_eq!(run.code, OK, "{run:?}");
    assert_eq!(
        backup_dir_entries(db.dir()),
        ["nightly.db"],
        "no temporary file left"
    );
    let copy = Command::new(oms_bin())
        .env_remove("OMS_DB")
        .args([
            "--db",
            path,
            "product",
            "show",
            "LAPTOP-13",
            "--format",
            "json",
        ])
        .output()
        .expect("run oms");
    let product: Value = serde_json::from_slice(&copy.stdout).expect("product JSON");
    assert_eq!(
        n(&product, "stock_on_hand"),
        n(&db.product("LAPTOP-13"), "stock_on_hand"),
        "the new backup holds tonight's data"
    );
}

#[test]
fn a_failed_backup_leaves_the_old_file_and_no_temporary_file() {
    if !oms_testdb::sqlite_only("the atomic rename of SQLite's file backup") {
        return;
    }
    let db = Db::demo();
    // A directory where the file should be: the copy is made, then cannot
    // take the name.
    let dir = db.dir().join("taken");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("keep"), b"x").expect("file in dir");
    let err = db.fails(
        &["backup", "--force", dir.to_str().expect("utf-8")],
        INVALID,
    );
    assert!(err.contains("directory"), "{err}");
    assert_eq!(backup_dir_entries(db.dir()), ["taken"]);

    // A destination directory that does not exist: exit 1, nothing left.
    let missing = db.dir().join("no-such-dir").join("nightly.db");
    let err = db.fails(
        &["backup", "--force", missing.to_str().expect("utf-8")],
        INTERNAL,
    );
    assert!(err.contains("no-such-dir"), "{err}");
    assert_eq!(backup_dir_entries(db.dir()), ["taken"]);
}

// ---- the password policy on the command line ---------------------------------------

#[test]
fn user_add_and_passwd_refuse_common_passwords_with_exit_5() {
    let db = Db::new();
    let add = |password: &str| {
        db.run_stdin(
            &[
                "user",
                "add",
                "--email",
                "a@example.com",
                "--name",
                "A",
                "--role",
                "admin",
                "--password-stdin",
            ],
            &format!("{password}\n"),
        )
    };
    for common in ["password", "12345678", "Password1"] {
        let run = add(common);
        assert_eq!(run.code, INVALID, "{common}: {run:?}");
        assert!(
            run.stderr.contains("most common passwords"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(add("plum-orbit-kettle-93").code, OK);
    let err = db.fails_stdin(
        &["user", "passwd", "a@example.com", "--password-stdin"],
        "iloveyou\n",
        INVALID,
    );
    assert!(err.contains("most common passwords"), "{err}");
    let err = db.fails_stdin(
        &["user", "passwd", "a@example.com", "--password-stdin"],
        "Sh0rt!\n",
        INVALID,
    );
    assert!(err.contains("at least 8 characters"), "{err}");
}

/// A tmpfs of 2 MiB on `dir`, unmounted on drop; `None` (saying why) where
/// mounting is not permitted.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).expect("mkdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(SmallDisk(dir.to_path_buf())),
            Ok(out) => {
                eprintln!(
                    "SKIPPED: cannot mount a small tmpfs here ({})",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount ({e})");
                None
            }
        }
    }

    /// Fills the filesystem with one file; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).expect("create the filler");
        while file.write_all(&[0u8; 4096]).is_ok() {}
        while file.write_all(&[0u8; 64]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_backup_onto_a_full_disk_fails_and_keeps_the_old_backup() {
    if !oms_testdb::sqlite_only("SQLite's file backup onto a full tmpfs") {
        return;
    }
    let db = Db::demo();
    let Some(disk) = SmallDisk::mount(&db.dir().join("backups")) else {
        return;
    };
    let nightly = disk.0.join("nightly.db");
    let path = nightly.to_str().expect("utf-8");
    db.ok(&["backup", path]);
    let last_night = std::fs::read(&nightly).expect("read");

    let filler = disk.fill();
    let err = db.fails(&["backup", "--force", path], INTERNAL);
    assert!(err.contains("full"), "{err}");
    assert_eq!(std::fs::read(&nightly).expect("read"), last_night);
    assert_eq!(backup_dir_entries(&disk.0), ["filler", "nightly.db"]);

    std::fs::remove_file(filler).expect("free the space");
    db.ok(&["product", "restock", "LAPTOP-13", "--add", "5"]);
    db.ok(&["backup", "--force", path]);
    assert_ne!(std::fs::read(&nightly).expect("read"), last_night);
    assert_eq!(backup_dir_entries(&disk.0), ["nightly.db"]);
}
