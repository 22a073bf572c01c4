//! `oms user ...`: accounts, passwords read from stdin, hashes never shown.

use crate::support::{CONFLICT, Db, INVALID, NOT_FOUND, USAGE, n, s};

const PASSWORD: &str = "correct horse battery staple";

fn stored_hash(db: &Db, email: &str) -> String {
    db.sql(&format!(
        "SELECT password_hash FROM users WHERE email = '{email}'"
    ))
    .trim()
    .to_string()
}

/// Fails if `text` shows any sign of the stored password or its hash.
fn assert_no_secret(db: &Db, text: &str, what: &str) {
    let hash = stored_hash(db, "admin@example.com");
    assert!(
        hash.starts_with("$argon2id$"),
        "stored as argon2id PHC: {hash}"
    );
    assert!(!text.contains(&hash), "{what} prints the hash: {text}");
    assert!(!text.contains("$argon2"), "{what} prints a hash: {text}");
    assert!(
        !text.contains("password"),
        "{what} names a password field: {text}"
    );
    assert!(
        !text.contains(PASSWORD),
        "{what} prints the password: {text}"
    );
}

fn add_admin(db: &Db) -> serde_json::Value {
    let run = db.run_stdin(
        &[
            "user",
            "add",
            "--email",
            "admin@example.com",
            "--name",
            "Admin",
            "--role",
            "admin",
            "--password-stdin",
            "--format",
            "json",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout).expect("JSON user")
}

#[test]
fn add_admin_with_password_from_stdin() {
    let db = Db::new();
    let user = add_admin(&db);
    assert!(n(&user, "id") > 0);
    assert_eq!(s(&user, "email"), "admin@example.com");
    assert_eq!(s(&user, "name"), "Admin");
    assert_eq!(s(&user, "role"), "admin");
    assert!(user["customer_id"].is_null());
    assert!(s(&user, "created_at").ends_with('Z'));
    assert_no_secret(&db, &user.to_string(), "user add --format json");

    let list = db.json(&["user", "list"]);
    assert_eq!(list.as_array().expect("array").len(), 1);
    assert_eq!(list[0], user);
}

#[test]
fn hash_is_never_printed_in_any_format() {
    let db = Db::new();
    add_admin(&db);
    for format in ["table", "json", "jsonl", "csv"] {
        let out = db.ok(&["user", "list", "--format", format]);
        assert!(out.contains("admin@example.com"), "{format}: {out}");
        assert_no_secret(&db, &out, &format!("user list --format {format}"));
    }
    let run = db.run_stdin(
        &[
            "user",
            "add",
            "--email",
            "second@example.com",
            "--name",
            "Second",
            "--role",
            "admin",
            "--password-stdin",
            "--format",
            "csv",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_no_secret(&db, &(run.stdout + &run.stderr), "user add --format csv");
    let changes = db.ok(&["changes"]);
    assert_no_secret(&db, &changes, "changes");
    let removed = db.ok(&["user", "remove", "second@example.com"]);
    assert_no_secret(&db, &removed, "user remove");
}

#[test]
fn customer_user_is_linked_to_its_customer() {
    let db = Db::new();
    let existing = db.add_customer("Carol", "carol@example.com");
    let user = db.json(&[
        "user",
        "add",
        "--email",
        "carol@example.com",
        "--name",
        "Carol",
        "--role",
        "customer",
    ]);
    assert_eq!(s(&user, "role"), "customer");
    assert_eq!(
        n(&user, "customer_id"),
        existing,
        "linked to the existing record"
    );

    let user = db.json(&[
        "user",
        "add",
        "--email",
        "new@example.com",
        "--name",
        "New",
        "--role",
        "customer",
    ]);
    let created = n(&user, "customer_id");
    let customer = db.json(&["customer", "show", &created.to_string()]);
    assert_eq!(
        s(&customer, "email"),
        "new@example.com",
        "created if missing"
    );

    // Removing the login keeps the customer.
    db.ok(&["user", "remove", "new@example.com"]);
    db.ok(&["customer", "show", "new@example.com"]);
}

#[test]
fn duplicate_email_is_a_conflict() {
    let db = Db::new();
    add_admin(&db);
    let err = db.fails_stdin(
        &[
            "user",
            "add",
            "--email",
            "ADMIN@example.com",
            "--name",
            "Again",
            "--role",
            "admin",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
        CONFLICT,
    );
    assert!(err.contains("exists"), "{err}");
    assert_eq!(
        db.json(&["user", "list"]).as_array().expect("array").len(),
        1
    );
}

#[test]
fn invalid_user_input() {
    let db = Db::new();
    db.fails(
        &[
            "user",
            "add",
            "--email",
            "x@example.com",
            "--name",
            "X",
            "--role",
            "root",
        ],
        INVALID,
    );
    db.fails(
        &[
            "user", "add", "--email", "nope", "--name", "X", "--role", "admin",
        ],
        INVALID,
    );
    db.fails_stdin(
        &[
            "user",
            "add",
            "--email",
            "x@example.com",
            "--name",
            "X",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "short\n",
        INVALID,
    );
    db.fails_stdin(
        &[
            "user",
            "add",
            "--email",
            "x@example.com",
            "--name",
            "X",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "",
        USAGE,
    );
    assert_eq!(db.ok(&["user", "list", "-q"]), "");
}

#[test]
fn passwd_replaces_the_hash() {
    let db = Db::new();
    add_admin(&db);
    let before = stored_hash(&db, "admin@example.com");
    let run = db.run_stdin(
        &["user", "passwd", "admin@example.com", "--password-stdin"],
        "a brand new passphrase\n",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let after = stored_hash(&db, "admin@example.com");
    assert!(after.starts_with("$argon2id$"), "{after}");
    assert_ne!(before, after);
    assert!(!run.stderr.contains("$argon2"), "{}", run.stderr);
}

#[test]
fn passwd_errors() {
    let db = Db::new();
    add_admin(&db);
    let before = stored_hash(&db, "admin@example.com");
    db.fails_stdin(
        &["user", "passwd", "nobody@example.com", "--password-stdin"],
        "a brand new passphrase\n",
        NOT_FOUND,
    );
    db.fails_stdin(
        &["user", "passwd", "admin@example.com", "--password-stdin"],
        "",
        USAGE,
    );
    db.usage_error(&["user", "passwd", "admin@example.com"]);
    assert_eq!(stored_hash(&db, "admin@example.com"), before);
}

#[test]
fn remove_user() {
    let db = Db::new();
    let user = add_admin(&db);
    let out = db.ok(&["user", "remove", "admin@example.com", "-q"]);
    assert_eq!(out.trim(), n(&user, "id").to_string());
    assert_eq!(db.ok(&["user", "list", "-q"]), "");
    db.fails(&["user", "remove", "admin@example.com"], NOT_FOUND);
}
