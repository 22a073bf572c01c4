//! SQLite -> PostgreSQL -> SQLite with `oms db copy`.
//!
//! `oms init --demo` on a file, enough stock, and `--orders` orders more
//! through one `oms order import`; then `oms db copy --to PG-URL` and, from
//! PostgreSQL, `oms db copy --to` a new file. Each of the three must pass
//! `oms verify`, and `oms order export`, `oms product export`, `oms
//! customer export` and `oms changes` must print the same bytes on all
//! three. The copy rates (rows/s) are reported.

use std::time::{Duration, Instant};

use crate::oms::{Oms, path_str};
use crate::{Common, Result, Verdict, note};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// A `postgres://` URL of an empty database (the copy's target).
    #[arg(long)]
    pub db: String,
    /// Orders imported on top of the demo data.
    #[arg(long, default_value_t = 100_000)]
    pub orders: usize,
}

/// What every copy must print the same.
const OUTPUTS: [&[&str]; 4] = [
    &["order", "export"],
    &["product", "export"],
    &["customer", "export"],
    &["changes", "--limit", "0"],
];

pub async fn run(args: Args) -> Result<Verdict> {
    let work = &args.common.work;
    tokio::fs::create_dir_all(work).await?;
    let long = Duration::from_secs(1800);
    let source = Oms::new(&args.common.oms, work.join("copy-source.db"));
    let back = work.join("copy-back.db");
    for f in [&source.db, &back] {
        let _ = tokio::fs::remove_file(f).await;
    }
    let pg = crate::oms::Store {
        db: Some(args.db.clone()),
        daemons: 1,
    }
    .oms(&args.common.oms, work, "")?;
    let mut verdict = Verdict::new("copy-roundtrip");
    let started = Instant::now();

    source.must(&["init", "--demo"]).await?;
    // Active products only: an order for an inactive one is refused.
    let products = source.must(&["product", "export"]).await?;
    let skus: Vec<String> = column(&products, "sku")?
        .into_iter()
        .zip(column(&products, "active")?)
        .filter(|(_, active)| active == "true")
        .map(|(sku, _)| sku)
        .collect();
    let emails = column(&source.must(&["customer", "export"]).await?, "email")?;
    if skus.is_empty() || emails.is_empty() {
        return Err("the demo data has no products or no customers".into());
    }
    for sku in &skus {
        source
            .must(&["product", "restock", sku, "--add", "100000000"])
            .await?;
    }
    let mut rng = fastrand::Rng::with_seed(args.common.seed);
    let mut csv = String::from("order_ref,customer_email,sku,quantity\n");
    for o in 0..args.orders {
        let who = &emails[rng.usize(0..emails.len())];
        let first = rng.usize(0..skus.len());
        for j in 0..rng.usize(1..=3).min(skus.len()) {
            csv.push_str(&format!(
                "rt-{o},{who},{},{}\n",
                skus[(first + j) % skus.len()],
                rng.i64(1..=3)
            ));
        }
    }
    let import = work.join("copy-orders.csv");
    tokio::fs::write(&import, csv).await?;
    let t = Instant::now();
    let run = source
        .run(&["order", "import", path_str(&import)?], long)
        .await?;
    if !run.ok() {
        return Err(format!("oms order import failed: {}", run.error_line()).into());
    }
    let import_secs = t.elapsed().as_secs_f64();
    note(format!(
        "copy-roundtrip: {} orders imported in {import_secs:.1} s",
        args.orders
    ));

    // There, and back.
    let mut rates = Vec::new();
    for (from, to, name) in [
        (&source, args.db.as_str(), "to_pg"),
        (&pg, path_str(&back)?, "from_pg"),
    ] {
        let t = Instant::now();
        let run = from
            .run(&["--format", "json", "db", "copy", "--to", to], long)
            .await?;
        let secs = t.elapsed().as_secs_f64();
        if !run.ok() {
            verdict.fail(format!(
                "oms db copy {name} exited {:?}: {}",
                run.code,
                run.error_line()
            ));
            continue;
        }
        let rows = serde_json::from_str::<serde_json::Value>(run.stdout.trim())
            .ok()
            .and_then(|v| v["rows"].as_u64())
            .ok_or_else(|| format!("oms db copy printed no rows: {:.200}", run.stdout))?;
        note(format!("copy {name}: {rows} rows in {secs:.2} s"));
        rates.push((name, rows, secs));
    }
    let back = Oms::new(&args.common.oms, back);
    let shops = [
        ("sqlite", &source),
        ("postgres", &pg),
        ("sqlite-again", &back),
    ];
    for (name, oms) in shops {
        let verify = oms.run(&["verify"], long).await?;
        verdict.check(verify.ok(), || {
            format!(
                "oms verify on {name} exited {:?}: {} {}",
                verify.code,
                verify.stdout.trim(),
                verify.error_line()
            )
        });
    }
    let mut bytes = 0;
    for what in OUTPUTS {
        let mut first: Option<String> = None;
        for (name, oms) in shops {
            let run = oms.run(what, long).await?;
            if !run.ok() {
                verdict.fail(format!(
                    "oms {} on {name} exited {:?}: {}",
                    what.join(" "),
                    run.code,
                    run.error_line()
                ));
                continue;
            }
            match &first {
                None => {
                    bytes += run.stdout.len();
                    first = Some(run.stdout);
                }
                Some(expected) if *expected == run.stdout => {}
                Some(expected) => verdict.fail(format!(
                    "oms {} differs on {name}: {}",
                    what.join(" "),
                    first_difference(expected, &run.stdout)
                )),
            }
        }
    }
    let orders = source
        .must(&["-q", "order", "list", "--limit", "0"])
        .await?
        .lines()
        .count();
    verdict.figure("orders", orders);
    for (name, rows, secs) in &rates {
        verdict.figure(&format!("rows_{name}"), rows);
        verdict.figure(
            &format!("rows_per_sec_{name}"),
            format!("{:.0}", *rows as f64 / secs.max(0.001)),
        );
    }
    verdict.figure("compared_bytes", bytes);
    verdict.figure("secs", format!("{:.1}", started.elapsed().as_secs_f64()));
    Ok(verdict)
}

/// The values of column `name` of a CSV export (quoted cells allowed; no
/// line breaks inside cells in the columns read).
fn column(csv: &str, name: &str) -> Result<Vec<String>> {
    let mut lines = csv.lines();
    let header = split(lines.next().ok_or("an empty export")?);
    let at = header
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| format!("no {name} column in {header:?}"))?;
    Ok(lines
        .filter(|l| !l.is_empty())
        .map(|l| split(l).into_iter().nth(at).unwrap_or_default())
        .collect())
}

fn split(line: &str) -> Vec<String> {
    let (mut cells, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(std::mem::take(&mut cell)),
            (c, _) => cell.push(c),
        }
    }
    cells.push(cell);
    cells
}

/// Where two outputs part, for a failure message.
fn first_difference(a: &str, b: &str) -> String {
    for (n, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}: {x:.160} vs {y:.160}", n + 1);
        }
    }
    format!("{} vs {} lines", a.lines().count(), b.lines().count())
}
