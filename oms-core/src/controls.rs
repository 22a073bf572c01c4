//! Negative controls: every `broken-*` cargo feature of oms, in one list.
//!
//! Each breaks one promise on purpose, so that the harness guarding that
//! promise can be shown to catch it (docs/reliability.md gives the command
//! and what the harness printed). All are declared by oms-core and
//! forwarded by the root package (`cargo build --release --features
//! broken-<what>`); none is on in a default build. Each is read where the
//! promise is kept, as a constant, so the normal build compiles both paths
//! and keeps only the right one.

/// `broken-stock-guard`: a reservation reads stock on a separate connection
/// and writes back an absolute value (a lost update). Caught by
/// `oms-torture oversell` (oversold units, `oms verify` drift).
pub const STOCK_GUARD: bool = cfg!(feature = "broken-stock-guard");

/// `broken-deferred-begin`: write transactions begin DEFERRED, so two
/// writers fail with "busy" instead of queueing. Caught by
/// `oms-torture contention`.
pub const DEFERRED_BEGIN: bool = cfg!(feature = "broken-deferred-begin");

/// `broken-ack-before-commit`: a group-committed write is answered before
/// its group's COMMIT. Caught by `oms-torture crash` (an acknowledged order
/// missing after `kill -9`).
pub const ACK_BEFORE_COMMIT: bool = cfg!(feature = "broken-ack-before-commit");

/// `broken-shutdown-waiters`: on SIGTERM the daemon forgets to release
/// waiting long-polls and event streams. Caught by `oms-torture shutdown`.
pub const SHUTDOWN_WAITERS: bool = cfg!(feature = "broken-shutdown-waiters");

/// `broken-status-machine`: an unpaid order may ship (PENDING → FULFILLED).
/// Caught by the status-machine model tests (core and HTTP).
pub const STATUS_MACHINE: bool = cfg!(feature = "broken-status-machine");

/// `broken-csv-neutralize`: export forgets the `=` formula trigger. Caught
/// by `scripts/csv-safety` (property test, CLI round trip, LibreOffice).
pub const CSV_NEUTRALIZE: bool = cfg!(feature = "broken-csv-neutralize");

/// `broken-money-parse`: amount parsing multiplies without overflow checks.
/// Caught by the `money_quantity` fuzz target and its corpus replay.
pub const MONEY_PARSE: bool = cfg!(feature = "broken-money-parse");

/// `broken-owner-check`: `GET /api/orders/{id}` skips the customer
/// ownership check. Caught by the authorization matrix (`scripts/authz`).
pub const OWNER_CHECK: bool = cfg!(feature = "broken-owner-check");

/// `broken-body-limit`: request bodies are read without the 1 MiB limit.
/// Caught by `oms-bench limits`.
pub const BODY_LIMIT: bool = cfg!(feature = "broken-body-limit");

/// `broken-product-type`: `GET /api/products/{id}` sends `stock_available`
/// as a string. Caught by `scripts/schemathesis` (schema violation).
pub const PRODUCT_TYPE: bool = cfg!(feature = "broken-product-type");

/// `broken-webhook-dedupe`: payment webhook deliveries and refunds are not
/// deduplicated by their ids. Caught by `oms-torture webhook` (refunds
/// applied twice).
pub const WEBHOOK_DEDUPE: bool = cfg!(feature = "broken-webhook-dedupe");

/// `broken-pg-plain-sequence`: on PostgreSQL, change-log seqs come from a
/// plain sequence and writers do not take turns on the counter row, so a
/// slower transaction can commit a smaller seq after a reader moved past
/// it. Caught by the feed-gap test on PostgreSQL (`oms-core` tests,
/// `feed_gaps`).
pub const PG_PLAIN_SEQUENCE: bool = cfg!(feature = "broken-pg-plain-sequence");
