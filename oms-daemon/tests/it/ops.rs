//! What operators and their tools rely on (issue 13): the password policy
//! at registration, and `/metrics` as Prometheus scrapes it.

use oms_core::prelude::*;
use serde_json::json;

use crate::support::Server;

// ---- the password policy at registration --------------------------------------------

#[test]
fn register_refuses_common_passwords_naming_the_password_field() {
    let server = Server::start();
    for (i, common) in ["password", "12345678", "Password1", "QWERTYUIOP"]
        .iter()
        .enumerate()
    {
        let email = format!("weak{i}@example.com");
        let problem = server
            .post("/auth/register")
            .json(&json!({"email": email, "password": common, "name": "Weak"}))
            .send()
            .problem(422);
        let errors = problem["errors"].as_array().expect("errors listed");
        assert_eq!(errors.len(), 1, "{problem}");
        assert_eq!(errors[0]["field"], "password", "{problem}");
        let message = errors[0]["message"].as_str().expect("message");
        assert!(
            message.contains("most common passwords"),
            "{common}: {message}"
        );
        assert!(
            server.store().user(&email).is_err(),
            "{common}: no user written"
        );
    }
}

#[test]
fn register_names_the_length_rule_for_a_short_password() {
    let server = Server::start();
    let problem = server
        .post("/auth/register")
        .json(&json!({"email": "short@example.com", "password": "Xq9!", "name": "Short"}))
        .send()
        .problem(422);
    assert_eq!(problem["errors"][0]["field"], "password", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("at least 8 characters")),
        "{problem}"
    );
}

#[test]
fn register_accepts_a_strong_password_that_logs_in() {
    let server = Server::start();
    let password = "plum-orbit-kettle-93";
    server
        .post("/auth/register")
        .json(&json!({"email": "strong@example.com", "password": password, "name": "Strong"}))
        .send()
        .expect_status(201);
    server
        .post("/auth/login")
        .json(&json!({"email": "strong@example.com", "password": password}))
        .send()
        .expect_status(200);
}

// ---- /metrics as scrapers read it --------------------------------------------------

/// What Prometheus 2.x sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,\
    text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A server that has counted a few requests, so labelled families have
/// samples.
fn busy_server() -> Server {
    let server = Server::start();
    server.get("/healthz").send().expect_status(200);
    server.get("/no/such/path").send().expect_status(404);
    server
}

/// Runs `program args` with `input` on stdin; `None` (after printing why)
/// when the program is not installed.
fn run_with_stdin(program: &str, args: &[&str], input: &str) -> Option<std::process::Output> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: {program} is not installed (.ci/run installs it)");
            return None;
        }
        Err(e) => panic!("cannot run {program}: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    Some(child.wait_with_output().expect("wait"))
}

#[test]
fn metrics_default_to_the_classic_text_format_that_promtool_accepts() {
    let server = busy_server();
    for accept in [None, Some("*/*"), Some("text/plain;version=0.0.4")] {
        let mut req = server.get("/metrics");
        if let Some(accept) = accept {
            req = req.header("accept", accept);
        }
        let reply = req.send();
        reply.expect_status(200);
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8"),
            "{accept:?}"
        );
        assert_eq!(reply.header("vary"), Some("accept"));
        let body = &reply.body;
        assert!(!body.contains("# EOF"), "{body}");
        assert!(
            body.contains("# TYPE oms_http_requests_total counter\n"),
            "a counter's TYPE names its samples:\n{body}"
        );
        assert!(
            body.lines()
                .any(|l| l.starts_with("oms_http_requests_total{") && l.contains("status=\"404\"")),
            "{body}"
        );
    }
    let body = server.get("/metrics").send().body;
    let Some(out) = run_with_stdin("promtool", &["check", "metrics"], &body) else {
        return;
    };
    // promtool prints lint problems and exits non-zero on any.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n{body}"
    );
}

#[test]
fn promtool_catches_what_the_classic_conversion_fixes() {
    // The negative control: the OpenMetrics text itself fails promtool's
    // classic lint (counter families without `_total`), so the test above
    // would notice if the conversion were skipped.
    let server = busy_server();
    let body = server
        .get("/metrics")
        .header("accept", "application/openmetrics-text")
        .send()
        .body;
    let Some(out) = run_with_stdin("promtool", &["check", "metrics"], &body) else {
        return;
    };
    assert!(
        !out.status.success(),
        "promtool accepted OpenMetrics as classic text"
    );
}

#[test]
fn metrics_answer_openmetrics_to_a_prometheus_scrape() {
    let server = busy_server();
    let reply = server
        .get("/metrics")
        .header("accept", PROMETHEUS_ACCEPT)
        .send();
    reply.expect_status(200);
    assert_eq!(
        reply.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let body = &reply.body;
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(
        body.contains("# TYPE oms_http_requests counter\n"),
        "{body}"
    );

    // The Python client's strict OpenMetrics parser, where Debian's
    // python3-prometheus-client is installed.
    let script = "import sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as p\n\
        print(len(list(p(sys.stdin.read()))))";
    let Some(out) = run_with_stdin("/usr/bin/python3", &["-c", script], body) else {
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'prometheus_client'") {
        eprintln!("SKIPPED: python3-prometheus-client is not installed (.ci/run installs it)");
        return;
    }
    assert!(out.status.success(), "OpenMetrics parser: {stderr}\n{body}");
    let families: usize = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("family count");
    assert!(families >= 3, "{families} families parsed");
}
