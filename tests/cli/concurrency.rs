//! Many separate `oms` processes buying the last units of one SKU at once
//! never oversell, never fail on a locked database, and leave the ledger
//! consistent.

use std::process::Stdio;

use crate::support::{CONFLICT, Db, OK, n};

const BUYERS: usize = 30;
const UNITS: i64 = 10;

#[test]
fn thirty_processes_buy_the_last_ten_units() {
    let db = Db::new();
    db.add_product("HOT", "5.00", UNITS);
    db.add_customer("Buyer", "buyer@example.com");

    // Start every process before waiting for any, so they really race.
    let children: Vec<_> = (0..BUYERS)
        .map(|_| {
            db.std_cmd(&[
                "order",
                "place",
                "--customer",
                "buyer@example.com",
                "--item",
                "HOT:1",
                "-q",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn oms")
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|child| child.wait_with_output().expect("wait for oms"))
        .collect();

    let mut succeeded = 0;
    let mut refused = 0;
    let mut order_ids = Vec::new();
    for out in &outputs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lower = stderr.to_lowercase();
        assert!(
            !lower.contains("database is locked") && !lower.contains("busy"),
            "a buyer hit a locked database: {stderr}"
        );
        match out.status.code() {
            Some(OK) => {
                succeeded += 1;
                order_ids.push(
                    String::from_utf8_lossy(&out.stdout)
                        .trim()
                        .parse::<i64>()
                        .expect("order id on stdout"),
                );
            }
            Some(CONFLICT) => {
                refused += 1;
                assert!(stderr.contains("HOT"), "names the SKU: {stderr}");
            }
            other => panic!("unexpected exit {other:?}: {stderr}"),
        }
    }
    assert_eq!(succeeded, UNITS, "exactly the available units were sold");
    assert_eq!(refused, BUYERS as i64 - UNITS);
    order_ids.sort_unstable();
    order_ids.dedup();
    assert_eq!(
        order_ids.len(),
        UNITS as usize,
        "each buyer got its own order"
    );

    let product = db.product("HOT");
    assert_eq!(n(&product, "stock_reserved"), UNITS);
    assert_eq!(n(&product, "stock_on_hand"), UNITS);
    assert_eq!(n(&product, "stock_available"), 0);
    let mut listed = db.ids(&["order", "list", "--status", "pending"]);
    listed.sort_unstable();
    assert_eq!(listed, order_ids);
    db.assert_verifies();
}
