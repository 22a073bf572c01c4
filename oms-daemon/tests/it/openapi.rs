//! `docs/openapi.json` against the routing table: every (path, method) in
//! `routes::RULES` is documented, nothing else is, path parameters are
//! declared, the documented security matches each rule, every `$ref`
//! resolves, and the daemon serves exactly this file at `/api/openapi.json`.

use std::collections::BTreeSet;
use std::sync::Arc;

use oms_daemon::routes::{RULES, Route, Rule};
use serde_json::Value;

/// The document, as `GET /api/openapi.json` embeds it.
const DOC: &str = include_str!("../../../docs/openapi.json");

/// The keys of a path item that are operations.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc() -> Value {
    serde_json::from_str(DOC).expect("docs/openapi.json is not valid JSON")
}

fn paths(doc: &Value) -> &serde_json::Map<String, Value> {
    doc["paths"]
        .as_object()
        .expect("the document has a `paths` object")
}

/// Every (path, lowercase method) the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    paths(doc)
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("a path item is an object");
            item.keys()
                .filter(|k| METHODS.contains(&k.as_str()))
                .map(|m| (path.clone(), m.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every (pattern, lowercase method) the daemon routes.
fn routed() -> BTreeSet<(String, String)> {
    RULES
        .iter()
        .map(|(route, method, _)| {
            (
                route.pattern().to_string(),
                method.as_str().to_ascii_lowercase(),
            )
        })
        .collect()
}

/// The operation object of a routed (route, method).
fn operation<'a>(doc: &'a Value, route: Route, method: &str) -> &'a Value {
    let op = &doc["paths"][route.pattern()][method];
    assert!(
        op.is_object(),
        "{method} {} is not documented",
        route.pattern()
    );
    op
}

/// Follows a local `$ref` (`#/components/...`), once.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{reference} is not a local reference"));
            doc.pointer(pointer)
                .unwrap_or_else(|| panic!("{reference} does not resolve"))
        }
        None => value,
    }
}

#[test]
fn is_an_openapi_3_1_document() {
    let doc = doc();
    let version = doc["openapi"].as_str().expect("an `openapi` version");
    assert!(version.starts_with("3.1."), "openapi {version}");
    assert!(doc["info"]["title"].is_string());
    assert!(doc["info"]["version"].is_string());
    assert!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer",
        "bearerAuth must be an HTTP bearer scheme"
    );
}

#[test]
fn documents_exactly_the_routed_paths_and_methods() {
    let doc = doc();
    let documented = documented(&doc);
    let routed = routed();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routed but not in docs/openapi.json: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "in docs/openapi.json but not routed: {unrouted:?}"
    );
    // Every route has a path item (RULES covers every route; checked here
    // too so a route without rules cannot hide).
    for route in Route::ALL {
        assert!(
            paths(&doc).contains_key(route.pattern()),
            "{} is not documented",
            route.pattern()
        );
    }
}

#[test]
fn declares_every_path_template_parameter() {
    let doc = doc();
    for (path, item) in paths(&doc) {
        let in_template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let shared = item["parameters"].as_array().cloned().unwrap_or_default();
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let own = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut declared = BTreeSet::new();
            for p in shared.iter().chain(own.iter()) {
                let p = resolve(&doc, p);
                if p["in"] == "path" {
                    let name = p["name"].as_str().expect("a parameter has a name");
                    assert_eq!(
                        p["required"], true,
                        "{method} {path}: path parameter {name} must be required"
                    );
                    declared.insert(name.to_string());
                }
            }
            let declared: BTreeSet<&str> = declared.iter().map(String::as_str).collect();
            assert_eq!(
                declared, in_template,
                "{method} {path}: declared path parameters differ from the template"
            );
        }
    }
}

#[test]
fn security_matches_each_rule() {
    let doc = doc();
    for (route, method, rule) in RULES {
        let method = method.as_str().to_ascii_lowercase();
        let op = operation(&doc, *route, &method);
        let name = format!("{method} {}", route.pattern());
        assert_eq!(
            op["x-oms-rule"].as_str(),
            Some(format!("{rule:?}").as_str()),
            "{name}: x-oms-rule"
        );
        let security = op
            .get("security")
            .or_else(|| doc.get("security"))
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{name}: no security requirement"));
        let anonymous = security
            .iter()
            .any(|s| s.as_object().is_some_and(|o| o.is_empty()));
        let bearer = security.iter().any(|s| s.get("bearerAuth").is_some());
        match rule {
            Rule::Anyone => assert!(security.is_empty(), "{name}: needs no token"),
            Rule::LoopbackOrAdmin => {
                assert!(anonymous && bearer, "{name}: token optional (loopback)");
            }
            Rule::AnyUser | Rule::Admin => {
                assert!(bearer && !anonymous, "{name}: needs a bearer token");
                assert!(op["responses"].get("401").is_some(), "{name}: 401");
            }
        }
        if *rule == Rule::Admin {
            assert!(op["responses"].get("403").is_some(), "{name}: 403");
        }
    }
}

#[test]
fn request_bodies_are_strict_and_their_errors_documented() {
    let doc = doc();
    for (route, method, _) in RULES {
        let method = method.as_str().to_ascii_lowercase();
        let op = operation(&doc, *route, &method);
        let name = format!("{method} {}", route.pattern());
        let Some(body) = op.get("requestBody") else {
            continue;
        };
        let schema = resolve(&doc, &body["content"]["application/json"]["schema"]);
        // The webhook's body is the provider's envelope, vouched for by its
        // signature: fields the provider adds over time are allowed.
        let strict = *route != Route::PaymentWebhook;
        assert_eq!(
            schema["additionalProperties"], !strict,
            "{name}: unknown fields are refused (allowed only in the provider's envelope)"
        );
        for status in ["400", "413", "422"] {
            assert!(
                op["responses"].get(status).is_some(),
                "{name}: a body can be answered {status}"
            );
        }
    }
}

#[test]
fn every_reference_resolves() {
    fn walk(doc: &Value, value: &Value) {
        match value {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                    resolve(doc, value);
                    assert!(reference.starts_with("#/components/"), "{reference}");
                }
                map.values().for_each(|v| walk(doc, v));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(doc, v)),
            _ => {}
        }
    }
    let doc = doc();
    walk(&doc, &doc);
}

/// Starts the daemon on a fresh database, answers `GET path`, stops it.
fn get_from_daemon(path: &str) -> (u16, String, String) {
    let database = oms_testdb::TestDb::from_env();
    let app = oms_daemon::App::open(oms_daemon::Config::new(database.location()))
        .expect("the daemon opens a fresh database");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("a listening socket");
    let addr = listener.local_addr().expect("the listening address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(oms_daemon::serve(listener, Arc::clone(&app), async {
        let _ = stopped.await;
    }));
    let mut res = ureq::get(format!("http://{addr}{path}"))
        .call()
        .expect("the daemon answers");
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = res.body_mut().read_to_string().expect("a UTF-8 body");
    stop.send(()).expect("the server is still running");
    runtime
        .block_on(server)
        .expect("the server task ends")
        .expect("the server stops cleanly");
    app.close();
    (status, content_type, body)
}

#[test]
fn the_daemon_serves_this_document() {
    let (status, content_type, body) = get_from_daemon(Route::OpenApi.pattern());
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert!(
        body == DOC,
        "GET /api/openapi.json differs from docs/openapi.json"
    );
}
