//! What operators and their tools rely on (issue 13): the password policy
//! at registration, and `/metrics` as Prometheus scrapes it.

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
