//! Listing a table in id order, a page at a time or whole, optionally
//! searched by two text columns: the one way products and customers are
//! listed (`products`/`customers`) and streamed (`for_each_*`, CSV export).

use rusqlite::{Connection, Row, params};

use super::like_pattern;
use crate::Result;

/// What to list: `columns` of `table` whose id is above `after`, whose
/// `searched` columns contain `search` (in any letter case), at most
/// `limit` rows (all without one).
pub(super) struct Listing<'a> {
    pub table: &'static str,
    pub columns: &'static str,
    pub searched: [&'static str; 2],
    pub after: i64,
    pub search: Option<&'a str>,
    pub limit: Option<u64>,
}

impl Listing<'_> {
    /// Hands every matching row, in id order, to `f` (constant memory).
    pub(super) fn for_each<T>(
        &self,
        conn: &Connection,
        map: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
        f: &mut dyn FnMut(T) -> Result<()>,
    ) -> Result<()> {
        let [a, b] = self.searched;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {} FROM {}
             WHERE id > ?1 AND (?2 IS NULL OR oms_fold({a}) LIKE ?2 ESCAPE '\\'
                                   OR oms_fold({b}) LIKE ?2 ESCAPE '\\')
             ORDER BY id LIMIT ?3",
            self.columns, self.table
        ))?;
        let pattern = self.search.map(like_pattern);
        let limit = self
            .limit
            .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let mut rows = stmt.query(params![self.after, pattern, limit])?;
        while let Some(row) = rows.next()? {
            f(map(row)?)?;
        }
        Ok(())
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
