//! `oms db copy` on SQLite: reading every table in one read transaction,
//! and writing a whole shop into an empty database in one write
//! transaction (see `crate::store::copy`).

use rusqlite::types::{ToSqlOutput, ValueRef};

use super::{Conn, WRITE_BEGIN, settings};
use crate::store::ReadConnection;
use crate::store::copy::{
    CopyProgress, CopySummary, CopyVisitor, Kind, TABLES, Table, Tally, Value, not_empty,
};
use crate::{Error, Result};

impl Conn {
    pub(super) fn copy_out(&self, visitor: &mut dyn CopyVisitor) -> Result<()> {
        // One read transaction: every table from the same snapshot.
        let snapshot = self.conn.unchecked_transaction()?;
        let mut sizes = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            let n: i64 =
                snapshot.query_row(&format!("SELECT count(*) FROM {}", table.name), [], |r| {
                    r.get(0)
                })?;
            sizes.push((table, u64::try_from(n).unwrap_or(0)));
        }
        visitor.sizes(&sizes)?;
        for table in TABLES {
            let mut stmt = snapshot.prepare(&format!(
                "SELECT {} FROM {} ORDER BY {}",
                table.column_list(),
                table.name,
                table.order_by
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let mut row = Vec::with_capacity(table.columns.len());
                for (i, (name, kind)) in table.columns.iter().enumerate() {
                    row.push(read_value(r.get_ref(i)?, *kind, table, name)?);
                }
                visitor.row(table, row)?;
            }
        }
        Ok(())
    }

    pub(super) fn copy_in(
        &mut self,
        target: &str,
        source: &dyn ReadConnection,
        progress: &mut dyn FnMut(CopyProgress),
    ) -> Result<CopySummary> {
        let tx = self.conn.transaction_with_behavior(WRITE_BEGIN)?;
        let mut counts = Vec::new();
        for table in TABLES.iter().filter(|t| t.name != "settings") {
            let n: i64 =
                tx.query_row(&format!("SELECT count(*) FROM {}", table.name), [], |r| {
                    r.get(0)
                })?;
            counts.push((table.name, n));
        }
        if let Some(e) = not_empty(target, &counts) {
            return Err(e);
        }
        // The source's settings replace the ones a new database starts with.
        tx.execute("DELETE FROM settings", [])?;
        let mut writer = Writer {
            tx: &tx,
            tally: Tally::new(progress),
        };
        source.copy_out(&mut writer)?;
        let summary = writer.tally.finish();
        tx.commit()?;
        self.currency = settings::currency(&self.conn)?;
        Ok(summary)
    }
}

/// Inserts the rows it is given.
struct Writer<'a, 'p> {
    tx: &'a rusqlite::Transaction<'a>,
    tally: Tally<'p>,
}

impl CopyVisitor for Writer<'_, '_> {
    fn sizes(&mut self, sizes: &[(&'static Table, u64)]) -> Result<()> {
        self.tally.sizes(sizes);
        Ok(())
    }

    fn row(&mut self, table: &'static Table, row: Vec<Value>) -> Result<()> {
        let placeholders = vec!["?"; table.columns.len()].join(", ");
        let mut stmt = self.tx.prepare_cached(&format!(
            "INSERT INTO {} ({}) VALUES ({placeholders})",
            table.name,
            table.column_list()
        ))?;
        stmt.execute(rusqlite::params_from_iter(row.iter().map(Bind)))?;
        self.tally.row(table);
        Ok(())
    }
}

/// A copied value as SQLite stores it (a flag as 0 or 1).
struct Bind<'a>(&'a Value);

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(n) => ToSqlOutput::Borrowed(ValueRef::Integer(*n)),
            Value::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn read_value(value: ValueRef<'_>, kind: Kind, table: &Table, column: &str) -> Result<Value> {
    let wrong = || {
        Error::Database(format!(
            "{}.{column} holds a value of an unexpected type",
            table.name
        ))
    };
    Ok(match (value, kind) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(n), Kind::Int) => Value::Int(n),
        (ValueRef::Integer(n), Kind::Bool) => Value::Bool(n != 0),
        (ValueRef::Text(t), Kind::Text) => {
            Value::Text(std::str::from_utf8(t).map_err(|_| wrong())?.to_string())
        }
        _ => return Err(wrong()),
    })
}
