//! Many clients buying the last units of one SKU at once never oversell.

use std::sync::{Arc, Barrier};

use crate::support::{Server, order_body};

#[test]
fn forty_buyers_for_twenty_five_units_never_oversell() {
    let server = Server::start();
    const STOCK: i64 = 25;
    const BUYERS: usize = 40;
    server.add_product("LAST-UNITS", "5.00", STOCK);
    let barrier = Arc::new(Barrier::new(BUYERS));
    let statuses: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..BUYERS)
            .map(|i| {
                let server = &server;
                let barrier = Arc::clone(&barrier);
                scope.spawn(move || {
                    // Both customers and the admin buy.
                    let (who, customer) = match i % 3 {
                        0 => (&server.alice, None),
                        1 => (&server.bob, None),
                        _ => (&server.admin, Some(server.alice.customer_id())),
                    };
                    let body = order_body(customer, &[("LAST-UNITS", 1)]);
                    barrier.wait();
                    let reply = server
                        .post("/api/orders")
                        .token(&who.token)
                        .json(&body)
                        .send();
                    if reply.status == 409 {
                        let problem = reply.problem(409);
                        assert_eq!(problem["errors"][0]["field"], "LAST-UNITS");
                    }
                    (reply.status, reply.body)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("buyer"))
            .collect()
    });
    let created = statuses.iter().filter(|s| s.0 == 201).count();
    let refused = statuses.iter().filter(|s| s.0 == 409).count();
    assert_eq!(created, STOCK as usize, "{statuses:?}");
    assert_eq!(refused, BUYERS - STOCK as usize, "{statuses:?}");

    let product = server
        .get("/api/products/LAST-UNITS")
        .token(&server.admin.token)
        .send()
        .json();
    assert_eq!(product["stock_on_hand"], STOCK);
    assert_eq!(product["stock_reserved"], STOCK);
    assert_eq!(product["stock_available"], 0);
    let report = server.store().verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}
