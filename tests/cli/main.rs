//! End-to-end tests of the `oms` command line: each test runs the real
//! binary (built by cargo for this test run) against its own temporary
//! database (SQLite, or PostgreSQL with `OMS_TEST_BACKEND=postgres`: see
//! `support::Db`) and checks exit codes, stdout and stderr against the
//! contract in DESIGN.md §5.
//!
//! One integration test binary with modules, so the binary is linked once.

mod concurrency;
mod csv;
mod customers;
mod misc;
mod notify;
mod orders;
mod payments;
mod products;
mod scripting;
mod serve;
mod service;
mod support;
mod users;
