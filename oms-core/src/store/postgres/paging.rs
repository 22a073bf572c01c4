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

use super::{Access, like_pattern};
use crate::Result;

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
