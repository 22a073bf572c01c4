//! Listing a table in id order, a page at a time or whole, optionally
//! searched by two text columns: the one way products and customers are
//! listed (`products`/`customers`) and streamed (`for_each_*`, CSV export).
//!
//! Unlike the SQLite backend's one statement, a listing reads in batches of
//! [`BATCH`] rows, each its own statement resuming after the last id seen
//! (keyset paging): memory stays bounded without a cursor (which would need
//! a transaction a reader does not have), and the session is not borrowed
//! while `f` runs. Outside a transaction each batch reads its own snapshot,
//! like the order export's batches: a row added or removed meanwhile may
//! show up or not, but no row is handed out twice and the order holds.

use postgres::Row;

use super::Access;
use crate::Result;
use crate::search::like_pattern;

/// Rows per statement of a listing.
const BATCH: i64 = 1000;

/// What to list: `columns` of `table` (the first one must be `id`) whose id
/// is above `after`, whose `searched` columns contain `search` (in any
/// letter case), at most `limit` rows (all without one).
pub(super) struct Listing<'a> {
    pub table: &'static str,
    pub columns: &'static str,
    pub searched: [&'static str; 2],
    pub after: i64,
    pub search: Option<&'a str>,
    pub limit: Option<u64>,
}

impl Listing<'_> {
    /// Hands every matching row, in id order, to `f` (bounded memory).
    pub(super) fn for_each<A, T>(
        &self,
        access: &A,
        map: impl Fn(&Row) -> T,
        f: &mut dyn FnMut(T) -> Result<()>,
    ) -> Result<()>
    where
        A: Access + ?Sized,
    {
        let [a, b] = self.searched;
        let sql = format!(
            "SELECT {} FROM {}
             WHERE id > $1 AND ($2::text IS NULL OR oms_fold({a}) LIKE $2 ESCAPE '\\'
                                   OR oms_fold({b}) LIKE $2 ESCAPE '\\')
             ORDER BY id LIMIT $3",
            self.columns, self.table
        );
        let pattern = self.search.map(like_pattern);
        let mut after = self.after;
        let mut left = self.limit.map(super::count);
        loop {
            let batch = left.map_or(BATCH, |l| l.min(BATCH));
            if batch <= 0 {
                return Ok(());
            }
            // The borrow of the session ends with this statement.
            let rows = access.session().query(&sql, &[&after, &pattern, &batch])?;
            let read = rows.len() as i64;
            for row in &rows {
                after = row.get(0);
                f(map(row))?;
            }
            if read < batch {
                return Ok(());
            }
            if let Some(left) = left.as_mut() {
                *left -= read;
            }
        }
    }
}

/// Collects what a `for_each` hands out.
pub(super) fn collect<T>(
    each: impl FnOnce(&mut dyn FnMut(T) -> Result<()>) -> Result<()>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    each(&mut |item| {
        out.push(item);
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::testdb::TestDb;
    use crate::prelude::*;
    use crate::store::ProductQuery;
    use crate::{Actor, NewProduct, ProductId, ProductRef, Sku};

    /// More rows than one batch: a listing must cross batch boundaries
    /// without losing or repeating a row, stop at its limit, and leave the
    /// session free while the caller's closure runs (which may read again).
    #[test]
    fn listings_cross_batches() {
        let Some(scratch) = TestDb::create("listings_cross_batches") else {
            return;
        };
        let db = scratch.open();
        let n = 2 * super::BATCH + 345;
        let ids: Vec<ProductId> = db
            .write(&Actor::cli(), |tx| {
                (0..n)
                    .map(|i| {
                        tx.add_product(&NewProduct {
                            sku: Sku::parse(&format!("S-{i}"))?,
                            name: if i % 3 == 0 { "Zoë fizz" } else { "plain" }.into(),
                            price: tx.currency().from_minor(i),
                            stock_on_hand: 0,
                            active: true,
                        })
                        .map(|p| p.id)
                    })
                    .collect()
            })
            .unwrap();
        let listed = |query: ProductQuery| -> Vec<ProductId> {
            db.products(&query).unwrap().iter().map(|p| p.id).collect()
        };

        // Stops a listing that repeats rows instead of hanging the test.
        let mut all = Vec::new();
        db.for_each_product(&ProductQuery::default(), &mut |p| {
            all.push(p.id);
            if all.len() > ids.len() {
                return Err(crate::Error::Database("rows handed out twice".into()));
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(all, ids);
        assert_eq!(listed(ProductQuery::default()), ids);
        let page = listed(ProductQuery {
            after: Some(ids[100]),
            limit: Some(1500),
            ..ProductQuery::default()
        });
        assert_eq!(page, ids[101..1601]);
        let exact = listed(ProductQuery {
            limit: Some(super::BATCH as u64),
            ..ProductQuery::default()
        });
        assert_eq!(exact, ids[..super::BATCH as usize]);
        let searched = listed(ProductQuery {
            search: Some("ZOË".into()),
            after: Some(ids[0]),
            ..ProductQuery::default()
        });
        let expected: Vec<ProductId> = (3..ids.len()).step_by(3).map(|i| ids[i]).collect();
        assert_eq!(searched, expected);
        assert_eq!(searched.len(), ((n - 1) / 3) as usize);

        // Reading again from inside the closure, in a transaction.
        let mut seen = 0;
        db.write(&Actor::cli(), |tx| {
            tx.for_each_product(&ProductQuery::default(), &mut |p| {
                assert_eq!(tx.product(&ProductRef::Id(p.id))?, p);
                seen += 1;
                Ok(())
            })
        })
        .unwrap();
        assert_eq!(seen, ids.len());
    }
}
