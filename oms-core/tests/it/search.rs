//! Search beyond ASCII: products, customers and orders are found whatever
//! the case of a Latin, Greek or Cyrillic search term (SQLite's own `LIKE`
//! folds only ASCII, so `ZOË` missed "Zoë gadget").

use oms_core::prelude::*;
use oms_core::{Actor, CustomerQuery, Db, NewProduct, OrderFilter, ProductQuery};

use crate::{TestStore, add_customer, order_for, sku};

fn shop() -> TestStore {
    let mut store = TestStore::new();
    store
        .write(&Actor::cli(), |tx| {
            for (code, name) in [
                ("ZOE-1", "Zoë gadget"),
                ("GR-1", "Οδυσσεύς οδηγός"),
                ("RU-1", "Ёлочная игрушка"),
                ("PLAIN-1", "Plain widget"),
            ] {
                tx.add_product(&NewProduct {
                    sku: sku(code),
                    name: name.to_string(),
                    price: tx.currency().parse_amount("1.00")?,
                    stock_on_hand: 10,
                    active: true,
                })?;
            }
            Ok(())
        })
        .unwrap();
    add_customer(&mut store, "Зоя Петрова", "zoya@example.com");
    add_customer(&mut store, "Σοφία Παππά", "sofia@example.com");
    add_customer(&mut store, "Åsa Öberg", "asa@example.com");
    for (email, item) in [
        ("zoya@example.com", "ZOE-1"),
        ("sofia@example.com", "GR-1"),
        ("asa@example.com", "PLAIN-1"),
    ] {
        store
            .write(&Actor::cli(), |tx| {
                tx.place_order(&order_for(email, &[(item, 1)]))
            })
            .unwrap();
    }
    store
}

fn product_skus(store: &Db, term: &str) -> Vec<String> {
    store
        .products(&ProductQuery {
            search: Some(term.to_string()),
            ..ProductQuery::default()
        })
        .unwrap()
        .into_iter()
        .map(|p| p.sku.as_str().to_string())
        .collect()
}

fn customer_emails(store: &Db, term: &str) -> Vec<String> {
    store
        .customers(&CustomerQuery {
            search: Some(term.to_string()),
            ..CustomerQuery::default()
        })
        .unwrap()
        .into_iter()
        .map(|c| c.email)
        .collect()
}

fn order_customers(store: &Db, term: &str) -> Vec<String> {
    store
        .orders(&OrderFilter {
            search: Some(term.to_string()),
            ..OrderFilter::default()
        })
        .unwrap()
        .into_iter()
        .map(|o| o.items[0].sku.as_str().to_string())
        .collect()
}

#[test]
fn products_are_found_in_any_case_of_their_script() {
    let store = shop();
    assert_eq!(product_skus(&store, "ZOË"), ["ZOE-1"]);
    assert_eq!(product_skus(&store, "zoë GADGET"), ["ZOE-1"]);
    assert_eq!(product_skus(&store, "ΟΔΥΣΣΕΎΣ"), ["GR-1"]);
    assert_eq!(product_skus(&store, "ЁЛОЧНАЯ"), ["RU-1"]);
    assert_eq!(product_skus(&store, "zoe-1"), ["ZOE-1"], "SKUs too");
    assert!(
        product_skus(&store, "ZOE GADGET").is_empty(),
        "accents count"
    );
    // LIKE's own wildcards are literal characters in a search.
    assert!(product_skus(&store, "%").is_empty());
    assert!(product_skus(&store, "_").is_empty());
}

#[test]
fn customers_are_found_in_any_case_of_their_script() {
    let store = shop();
    assert_eq!(customer_emails(&store, "ЗОЯ"), ["zoya@example.com"]);
    assert_eq!(customer_emails(&store, "петрова"), ["zoya@example.com"]);
    assert_eq!(customer_emails(&store, "ΣΟΦΊΑ"), ["sofia@example.com"]);
    assert_eq!(customer_emails(&store, "åSA öBERG"), ["asa@example.com"]);
}

#[test]
fn orders_are_found_by_customer_and_item_in_any_case() {
    let store = shop();
    assert_eq!(order_customers(&store, "ПЕТРОВА"), ["ZOE-1"]);
    assert_eq!(order_customers(&store, "ZOË"), ["ZOE-1"]);
    assert_eq!(order_customers(&store, "παππά"), ["GR-1"]);
    assert_eq!(order_customers(&store, "ÖBERG"), ["PLAIN-1"]);
}
