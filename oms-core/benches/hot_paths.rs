//! Hot paths of oms-core without the daemon: placing orders in a
//! transaction (one per commit, and grouped as the daemon's writer groups
//! them), a status change, and CSV row encode/decode.
//!
//! `cargo bench -p oms-core` (criterion). The grouped figure is the storage
//! ceiling the HTTP placement rate is compared with in docs/benchmarks.md.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use oms_core::csvio::{self, CsvWriter};
use oms_core::prelude::*;
use oms_core::{
    Actor, CustomerId, CustomerRef, Db, ItemRequest, Location, NewCustomer, NewOrder, NewProduct,
    OrderId, ProductRef, Quantity, ServeOptions, Sku, Status,
};

const SKUS: usize = 200;
const CUSTOMERS: i64 = 1000;
/// Jobs per group commit, about what 64 connections queue.
const GROUP: usize = 64;

struct Fixture {
    dir: tempfile::TempDir,
    store: Db,
    counter: i64,
}

fn location(dir: &tempfile::TempDir) -> Location {
    Location::File(dir.path().join("bench.db"))
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Db::open(&location(&dir)).expect("open");
    seed(dir, store)
}

fn seed(dir: tempfile::TempDir, store: Db) -> Fixture {
    store
        .write(&Actor::cli(), |tx| {
            for i in 1..=SKUS {
                tx.add_product(&NewProduct {
                    sku: Sku::parse(&format!("SKU-{i:03}"))?,
                    name: format!("Product {i}"),
                    price: tx.currency().parse_amount("19.99")?,
                    stock_on_hand: 1_000_000_000,
                    active: true,
                })?;
            }
            for i in 1..=CUSTOMERS {
                tx.add_customer(&NewCustomer {
                    name: format!("Customer {i}"),
                    email: format!("c{i}@example.com"),
                    phone: None,
                })?;
            }
            Ok(())
        })
        .expect("seed");
    Fixture {
        dir,
        store,
        counter: 0,
    }
}

/// A 3-line order, different for every `n`.
fn order(n: i64) -> NewOrder {
    let sku = |k: i64| {
        ProductRef::parse(&format!("SKU-{:03}", (n * 7 + k * 37) % SKUS as i64 + 1)).expect("sku")
    };
    let line = |k: i64, q: i64| ItemRequest {
        product: sku(k),
        quantity: Quantity::new(q).expect("qty"),
    };
    NewOrder {
        customer: CustomerRef::Id(CustomerId(n % CUSTOMERS + 1)),
        items: vec![line(0, 1), line(1, 1), line(2, 2)],
        paid: false,
        idempotency_key: Some(format!("bench-{n}")),
    }
}

fn place(c: &mut Criterion) {
    let mut group = c.benchmark_group("place_order");
    group.sample_size(20);

    let mut f = fixture();
    group.throughput(Throughput::Elements(1));
    group.bench_function("one per commit (fsync each)", |b| {
        b.iter(|| {
            f.counter += 1;
            let order = order(f.counter);
            f.store
                .write(&Actor::cli(), |tx| tx.place_order(&order))
                .expect("place")
        })
    });

    group.throughput(Throughput::Elements(GROUP as u64));
    grouped(
        &mut group,
        "grouped 64 per commit (daemon writer)",
        fixture(),
    );
    group.finish();
}

/// Places 64 orders at once through a serving handle, as the daemon's
/// requests arrive: its writer thread commits them as one group.
fn grouped(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    f: Fixture,
) {
    let mut counter = f.counter;
    let location = location(&f.dir);
    drop(f.store);
    let db = std::sync::Arc::new(Db::serve(&location, ServeOptions::default()).expect("serve"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    group.bench_function(name, |b| {
        b.iter_batched(
            || {
                (0..GROUP)
                    .map(|_| {
                        counter += 1;
                        order(counter)
                    })
                    .collect::<Vec<_>>()
            },
            |orders| {
                runtime.block_on(async {
                    let mut writes = tokio::task::JoinSet::new();
                    for order in orders {
                        let db = std::sync::Arc::clone(&db);
                        writes.spawn(async move {
                            db.write_async(Actor::system("bench"), move |tx| tx.place_order(&order))
                                .await
                        });
                    }
                    while let Some(done) = writes.join_next().await {
                        done.expect("task").expect("place");
                    }
                })
            },
            BatchSize::SmallInput,
        )
    });
    db.close();
}

fn status_change(c: &mut Criterion) {
    let mut f = fixture();
    c.bench_function("status change PENDING -> PAID (one commit)", |b| {
        b.iter_custom(|iters| {
            let ids: Vec<OrderId> = (0..iters)
                .map(|_| {
                    f.counter += 1;
                    let o = order(f.counter);
                    f.store
                        .write(&Actor::cli(), |tx| tx.place_order(&o))
                        .expect("place")
                        .order
                        .id
                })
                .collect();
            let start = std::time::Instant::now();
            for id in ids {
                f.store
                    .write(&Actor::cli(), |tx| tx.set_status(id, Status::Paid, None))
                    .expect("pay");
            }
            start.elapsed()
        })
    });
}

fn csv_rows(c: &mut Criterion) {
    let f = fixture();
    let o = order(1);
    f.store
        .write(&Actor::cli(), |tx| tx.place_order(&o))
        .expect("place");
    let mut rows = Vec::new();
    f.store
        .for_each_export_row(&Default::default(), &mut |r| {
            rows.push(r);
            Ok(())
        })
        .expect("rows");
    let row = rows.remove(0);
    c.bench_function("csv encode one order item row", |b| {
        let mut out = Vec::with_capacity(1 << 20);
        let mut w = CsvWriter::new(&mut out, &csvio::ORDER_COLUMNS).expect("writer");
        let created_at = row.created_at.to_string();
        b.iter(|| csvio::write_order_row(&mut w, black_box(&row), &created_at).expect("row"))
    });
    let line = "bench-1,c1@example.com,SKU-001,2\r\n".repeat(1000);
    let file = format!("order_ref,customer_email,sku,quantity\r\n{line}");
    c.bench_function("csv decode 1000 order rows (parse + validate)", |b| {
        b.iter(|| {
            let mut reader = csv::ReaderBuilder::new().from_reader(file.as_bytes());
            let mut n = 0;
            for record in reader.records() {
                let record = record.expect("record");
                let item = ItemRequest {
                    product: ProductRef::parse(csvio::restore(&record[2])).expect("sku"),
                    quantity: csvio::restore(&record[3]).parse().expect("qty"),
                };
                black_box(item);
                n += 1;
            }
            n
        })
    });
}

criterion_group!(benches, place, status_change, csv_rows);
criterion_main!(benches);
