//! `oms serve` as a service manager and log collector see it (issue 13):
//! readiness over `$NOTIFY_SOCKET`, the systemd unit in `packaging/`
//! checked by `systemd-analyze`, plain-text logs in files and pipes, and
//! the manual pages rendered by `man`/groff. Tests that need a tool which
//! is not installed print `SKIPPED: ...` and pass; `.ci/run` installs them.

use std::fs::File;
use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Db, INTERNAL, oms_bin};

/// How long the daemon may take to become ready or to stop.
const DEADLINE: Duration = Duration::from_secs(15);

/// The unit file shipped in the repository.
fn unit_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/systemd/oms.service")
}

/// A unix datagram socket standing in for systemd's notification socket.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        NotifySocket { socket, path }
    }

    /// The next notification, waiting up to `timeout`.
    fn next(&self, timeout: Duration) -> Option<String> {
        self.socket
            .set_read_timeout(Some(timeout))
            .expect("set timeout");
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

/// `oms serve` on `127.0.0.1:0` with `NOTIFY_SOCKET` and stderr to a file;
/// killed on drop.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(db: &Db, notify: &NotifySocket, env: &[(&str, &str)]) -> Daemon {
        let log = db.dir().join("serve.log");
        let stderr = File::create(&log).expect("log file");
        let mut cmd = Command::new(oms_bin());
        cmd.env_remove("OMS_DB")
            .env_remove("OMS_LOG")
            .env_remove("OMS_LOG_FORMAT")
            .env_remove("NO_COLOR")
            .env(
                "OMS_JWT_SECRET",
                "service-tests-secret-0123456789abcdefghij",
            )
            .env("NOTIFY_SOCKET", &notify.path)
            .current_dir(db.dir())
            .arg("--db")
            .arg(db.location())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (key, value) in env {
            cmd.env(key, value);
        }
        let child = cmd.spawn().expect("spawn oms serve");
        Daemon { child, log }
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM: {status}");
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll") {
                return status;
            }
            assert!(Instant::now() < deadline, "oms serve did not exit");
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn log(&self) -> String {
        let mut text = String::new();
        File::open(&self.log)
            .and_then(|mut f| f.read_to_string(&mut text))
            .expect("read the log");
        text
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `http://ADDR` from a `READY=1` notification's `STATUS=serving http://ADDR/`.
fn address_from(ready: &str) -> String {
    let status = ready
        .lines()
        .find_map(|l| l.strip_prefix("STATUS=serving "))
        .unwrap_or_else(|| panic!("no STATUS line in {ready:?}"));
    status.trim_end_matches('/').to_string()
}

fn get(url: &str) -> (u16, String) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let mut response = agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().expect("body");
    (status, body)
}

/// Runs a program; `None` (after printing why) when it is not installed.
fn run_tool(cmd: &mut Command) -> Option<Output> {
    match cmd.output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "SKIPPED: {:?} is not installed (.ci/run installs it)",
                cmd.get_program()
            );
            None
        }
        Err(e) => panic!("cannot run {:?}: {e}", cmd.get_program()),
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---- readiness -----------------------------------------------------------------------

#[test]
fn serve_notifies_ready_once_it_answers_and_stopping_on_sigterm() {
    let db = Db::new();
    let notify = NotifySocket::bind(db.dir());
    let mut daemon = Daemon::start(&db, &notify, &[]);
    let ready = notify
        .next(DEADLINE)
        .unwrap_or_else(|| panic!("no READY=1 within {DEADLINE:?}:\n{}", daemon.log()));
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    // Ready means ready: the very first request, without retrying, answers.
    let base = address_from(&ready);
    let (status, body) = get(&format!("{base}/healthz"));
    assert_eq!(status, 200, "{body}");

    daemon.terminate();
    let stopping = notify
        .next(DEADLINE)
        .unwrap_or_else(|| panic!("no STOPPING=1 after SIGTERM:\n{}", daemon.log()));
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let status = daemon.wait_exit();
    assert!(status.success(), "graceful shutdown exits 0: {status}");
}

#[test]
fn a_daemon_that_cannot_start_never_says_ready() {
    let db = Db::new();
    let notify = NotifySocket::bind(db.dir());
    let mut daemon = Daemon::start(&db, &notify, &[("OMS_JWT_SECRET", "too-short")]);
    let status = daemon.wait_exit();
    assert_eq!(status.code(), Some(INTERNAL), "{}", daemon.log());
    notify.socket.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 64];
    assert!(
        notify.socket.recv(&mut buf).is_err(),
        "READY sent by a daemon that failed to start"
    );
}

// ---- logs ------------------------------------------------------------------------------

#[test]
fn text_logs_in_a_file_carry_no_colour_codes() {
    let db = Db::new();
    let notify = NotifySocket::bind(db.dir());
    let mut daemon = Daemon::start(&db, &notify, &[("OMS_LOG", "info")]);
    let ready = notify.next(DEADLINE).expect("ready");
    get(&format!("{}/healthz", address_from(&ready)));
    daemon.terminate();
    assert!(daemon.wait_exit().success());
    let log = daemon.log();
    assert!(
        log.contains("listening") && log.contains("/healthz"),
        "{log}"
    );
    assert!(!log.contains('\x1b'), "ANSI escape in a log file:\n{log:?}");
}

#[test]
fn json_logs_stay_one_json_object_a_line() {
    let db = Db::new();
    let notify = NotifySocket::bind(db.dir());
    let mut daemon = Daemon::start(
        &db,
        &notify,
        &[("OMS_LOG", "info"), ("OMS_LOG_FORMAT", "json")],
    );
    let ready = notify.next(DEADLINE).expect("ready");
    get(&format!("{}/healthz", address_from(&ready)));
    daemon.terminate();
    assert!(daemon.wait_exit().success());
    let log = daemon.log();
    assert!(!log.contains('\x1b'), "{log:?}");
    let objects: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        objects
            .iter()
            .any(|o| o["fields"]["path"] == "/healthz" && o["fields"]["status"] == 200),
        "{log}"
    );
}

#[test]
fn cli_logs_in_a_pipe_carry_no_colour_codes() {
    let db = Db::new();
    // -vv logs at debug (opening the database) on stderr, here a pipe.
    let run = db.run(&["-vv", "product", "list"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("DEBUG"), "{}", run.stderr);
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
}

#[test]
fn logs_on_a_terminal_are_coloured_unless_no_color_is_set() {
    // util-linux `script` runs the command on a pseudo-terminal.
    let db = Db::new();
    let command = format!(
        "{} --db {} -vv product list",
        oms_bin().display(),
        db.location()
    );
    let on_tty = |no_color: Option<&str>| {
        let mut cmd = Command::new("script");
        cmd.args(["-q", "-e", "-c", &command, "/dev/null"])
            .env_remove("NO_COLOR")
            .env_remove("OMS_LOG")
            .stdin(Stdio::null());
        if let Some(value) = no_color {
            cmd.env("NO_COLOR", value);
        }
        run_tool(&mut cmd)
    };
    let Some(coloured) = on_tty(None) else { return };
    let coloured = text(&coloured);
    assert!(coloured.contains("DEBUG"), "{coloured}");
    assert!(
        coloured.contains('\x1b'),
        "no colour on a terminal: {coloured:?}"
    );
    let plain = text(&on_tty(Some("1")).expect("script ran before"));
    assert!(plain.contains("DEBUG"), "{plain}");
    assert!(!plain.contains('\x1b'), "NO_COLOR ignored: {plain:?}");
}

// ---- the systemd unit ----------------------------------------------------------------

/// A copy of the unit whose `ExecStart` runs this build's binary (verify
/// needs the program to exist), and the manual pages its `Documentation=`
/// names, generated by `oms man` into `<dir>/man/man1`.
fn unit_under_test(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(unit_file()).expect("read the unit");
    let exec = "ExecStart=/usr/local/bin/oms serve";
    assert!(unit.contains(exec), "the unit runs {exec}");
    let copy = dir.join("oms.service");
    std::fs::write(
        &copy,
        unit.replace(exec, &format!("ExecStart={} serve", oms_bin().display())),
    )
    .expect("write the copy");
    let man = dir.join("man").join("man1");
    let out = Command::new(oms_bin())
        .args(["man", "--dir"])
        .arg(&man)
        .output()
        .expect("oms man");
    assert!(out.status.success(), "{}", text(&out));
    copy
}

/// `systemd-analyze verify` on `unit` with the generated manual pages on
/// `MANPATH`; `None` when systemd-analyze is missing.
fn verify(unit: &Path) -> Option<Output> {
    let man = unit.parent().expect("dir").join("man");
    run_tool(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(unit)
            .env("MANPATH", &man)
            .env("SYSTEMD_LOG_COLOR", "0"),
    )
}

#[test]
fn systemd_analyze_verify_finds_nothing_to_say_about_the_unit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = unit_under_test(dir.path());
    let Some(out) = verify(&unit) else { return };
    let said = text(&out);
    // Warnings (an unknown key, a missing man page) do not change the exit
    // code, so any line about the unit fails the test.
    let about_unit: Vec<&str> = said.lines().filter(|l| l.contains("oms")).collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify: {said}"
    );

    // The negative control: the same check notices a misspelt key.
    let broken = dir.path().join("broken").join("oms.service");
    std::fs::create_dir_all(broken.parent().expect("dir")).expect("mkdir");
    let unit_text = std::fs::read_to_string(&unit).expect("read");
    std::fs::write(
        &broken,
        unit_text.replace("ProtectSystem=strict", "ProtectSytem=strict"),
    )
    .expect("write");
    std::fs::create_dir_all(dir.path().join("broken/man")).expect("mkdir");
    let out = verify(&broken).expect("systemd-analyze ran before");
    assert!(
        text(&out).contains("ProtectSytem"),
        "a misspelt key went unnoticed: {}",
        text(&out)
    );
}

#[test]
fn the_unit_is_hardened_and_waits_for_readiness() {
    let unit = std::fs::read_to_string(unit_file()).expect("read the unit");
    for line in [
        "Type=notify",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=oms",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "{line} missing from the unit"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = unit_under_test(dir.path());
    // systemd's own exposure score: 0 is locked down, 10 wide open; the
    // threshold is in tenths. Fails when a change weakens the sandbox.
    let Some(out) = run_tool(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=20"])
            .arg(&copy),
    ) else {
        return;
    };
    assert!(out.status.success(), "exposure above 2.0:\n{}", text(&out));
}

// ---- manual pages ----------------------------------------------------------------------

/// Every command path of the tree, e.g. `["order", "pay"]`.
fn command_paths() -> Vec<Vec<String>> {
    // The help output is what users see of the tree: walk it.
    let mut paths = Vec::new();
    let mut queue = vec![Vec::<String>::new()];
    while let Some(path) = queue.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = Command::new(oms_bin()).args(&args).output().expect("help");
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut in_commands = false;
        for line in help.lines() {
            if line == "Commands:" {
                in_commands = true;
                continue;
            }
            if in_commands {
                if line.is_empty() {
                    break;
                }
                // `  name  about`; wrapped about text is indented deeper.
                let Some(name) = line
                    .strip_prefix("  ")
                    .filter(|l| !l.starts_with(' '))
                    .and_then(|l| l.split_whitespace().next())
                else {
                    continue;
                };
                if name == "help" {
                    continue;
                }
                let mut child = path.clone();
                child.push(name.to_string());
                queue.push(child);
            }
        }
        paths.push(path);
    }
    paths
}

#[test]
fn man_pages_cover_every_command_and_render_without_warnings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let man1 = dir.path().join("man1");
    let out = Command::new(oms_bin())
        .args(["man", "--dir"])
        .arg(&man1)
        .output()
        .expect("oms man");
    assert!(out.status.success(), "{}", text(&out));

    let paths = command_paths();
    assert!(paths.len() > 40, "{} commands found", paths.len());
    for path in &paths {
        let mut name = vec!["oms".to_string()];
        name.extend(path.iter().cloned());
        let page = man1.join(format!("{}.1", name.join("-")));
        assert!(page.exists(), "no page {}", page.display());
    }

    // groff in man's own mode (-man, -k for UTF-8 input), all warnings on.
    for entry in std::fs::read_dir(&man1).expect("read dir") {
        let page = entry.expect("entry").path();
        let Some(out) = run_tool(
            Command::new("groff")
                .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
                .arg(&page),
        ) else {
            return;
        };
        assert!(
            out.status.success() && text(&out).trim().is_empty(),
            "groff on {}: {}",
            page.display(),
            text(&out)
        );
    }

    // man itself, on the top page piped from `oms man`.
    let page = Command::new(oms_bin())
        .arg("man")
        .output()
        .expect("oms man");
    assert!(page.status.success());
    let pipe = dir.path().join("oms.1");
    std::fs::write(&pipe, &page.stdout).expect("write");
    let Some(out) = run_tool(
        Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(&pipe)
            .env("MANWIDTH", "100"),
    ) else {
        return;
    };
    let rendered = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    for expected in ["NAME", "SYNOPSIS", "oms-order(1)", "Exit codes", "OMS_DB"] {
        assert!(
            rendered.contains(expected),
            "{expected} missing:\n{rendered}"
        );
    }
}
