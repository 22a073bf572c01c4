//! Integration tests of the HTTP daemon against the contract of DESIGN.md
//! §3, §4 and §6. Every test boots the daemon in-process on `127.0.0.1:0`
//! over its own temporary database (see [`support::Server`]) and talks to
//! it over real HTTP.
//!
//! One integration test binary with modules, so the crate is linked once.

mod authz;
mod concurrency;
mod conventions;
mod dashboard;
mod endpoints;
mod feed;
mod idempotency;
mod jwt;
mod limits;
mod notifications;
mod openapi;
mod ops;
mod payments;
mod status_model;
mod stream;
mod support;
mod wal;
