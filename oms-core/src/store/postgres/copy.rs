//! `oms db copy` on PostgreSQL: reading every table in one REPEATABLE READ
//! snapshot (through portals, in bounded memory), and writing a whole shop
//! into an empty database in one transaction that holds the counter row,
//! in multi-row INSERTs; then the id sequences and the change counter are
//! moved past the copied rows (see `crate::store::copy`).

use postgres::types::ToSql;

use super::session::{Session, Snapshot};
use super::{Conn, settings};
use crate::store::ReadConnection;
use crate::store::copy::{
    CopyProgress, CopySummary, CopyVisitor, Kind, TABLES, Table, Tally, Value, not_empty,
};
use crate::{Error, Result};

/// Rows per FETCH when reading, and per INSERT when writing.
const BATCH: usize = 500;

impl Conn {
    pub(super) fn copy_out(&self, visitor: &mut dyn CopyVisitor) -> Result<()> {
        self.session
            .borrow_mut()
            .snapshot(&mut |snapshot| read_all(snapshot, visitor))
    }

    pub(super) fn copy_in(
        &mut self,
        target: &str,
        source: &dyn ReadConnection,
        progress: &mut dyn FnMut(CopyProgress),
    ) -> Result<CopySummary> {
        let mut s = self.session.borrow_mut();
        s.batch("BEGIN")?;
        let result = write_all(&mut s, target, source, progress);
        match result {
            Ok(summary) => {
                s.batch("COMMIT")?;
                let currency = settings::currency(&mut s)?;
                self.currency.set(currency);
                Ok(summary)
            }
            Err(e) => {
                let _ = s.batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

fn read_all(s: &mut Snapshot<'_>, visitor: &mut dyn CopyVisitor) -> Result<()> {
    let mut sizes = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let n: i64 = s
            .query_one(&format!("SELECT count(*) FROM {}", table.name))?
            .get(0);
        sizes.push((table, u64::try_from(n).unwrap_or(0)));
    }
    visitor.sizes(&sizes)?;
    for table in TABLES {
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            table.column_list(),
            table.name,
            table.order_by
        );
        s.for_each(&sql, BATCH as i32, &mut |r| {
            let mut row = Vec::with_capacity(table.columns.len());
            for (i, (name, kind)) in table.columns.iter().enumerate() {
                row.push(read_value(r, i, *kind).map_err(|e| {
                    Error::Database(format!("cannot read {}.{name}: {e}", table.name))
                })?);
            }
            visitor.row(table, row)
        })?;
    }
    Ok(())
}

fn read_value(
    r: &postgres::Row,
    i: usize,
    kind: Kind,
) -> std::result::Result<Value, postgres::Error> {
    Ok(match kind {
        Kind::Int => r
            .try_get::<_, Option<i64>>(i)?
            .map_or(Value::Null, Value::Int),
        Kind::Text => r
            .try_get::<_, Option<String>>(i)?
            .map_or(Value::Null, Value::Text),
        Kind::Bool => r
            .try_get::<_, Option<bool>>(i)?
            .map_or(Value::Null, Value::Bool),
    })
}

fn write_all(
    s: &mut Session,
    target: &str,
    source: &dyn ReadConnection,
    progress: &mut dyn FnMut(CopyProgress),
) -> Result<CopySummary> {
    // The copy takes the writers' turn like any write (see the module
    // documentation of the backend), so nothing writes meanwhile.
    s.query_one("SELECT last FROM oms_change_counter FOR UPDATE", &[])?;
    let mut counts = Vec::new();
    for table in TABLES.iter().filter(|t| t.name != "settings") {
        let n: i64 = s
            .query_one(&format!("SELECT count(*) FROM {}", table.name), &[])?
            .get(0);
        counts.push((table.name, n));
    }
    if let Some(e) = not_empty(target, &counts) {
        return Err(e);
    }
    // The source's settings replace the ones a new database starts with.
    s.execute("DELETE FROM settings", &[])?;
    let mut writer = Writer {
        session: s,
        tally: Tally::new(progress),
        table: None,
        pending: Vec::new(),
    };
    source.copy_out(&mut writer)?;
    writer.flush()?;
    let summary = writer.tally.finish();
    for table in TABLES {
        if let Some(id) = table.generated_id {
            s.query_one(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', '{id}'),
                                   GREATEST((SELECT max({id}) FROM {0}), 1),
                                   (SELECT max({id}) FROM {0}) IS NOT NULL)",
                    table.name
                ),
                &[],
            )?;
        }
    }
    s.execute(
        "UPDATE oms_change_counter SET last = (SELECT COALESCE(max(seq), 0) FROM changes)",
        &[],
    )?;
    Ok(summary)
}

/// Inserts the rows it is given, [`BATCH`] at a time.
struct Writer<'s, 'p> {
    session: &'s mut Session,
    tally: Tally<'p>,
    table: Option<&'static Table>,
    pending: Vec<Vec<Value>>,
}

impl Writer<'_, '_> {
    fn flush(&mut self) -> Result<()> {
        let Some(table) = self.table else {
            return Ok(());
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        let width = table.columns.len();
        let mut values: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(self.pending.len() * width);
        let mut tuples = Vec::with_capacity(self.pending.len());
        for row in self.pending.drain(..) {
            let first = values.len();
            let placeholders: Vec<String> =
                (1..=width).map(|i| format!("${}", first + i)).collect();
            tuples.push(format!("({})", placeholders.join(", ")));
            for (value, (_, kind)) in row.into_iter().zip(table.columns) {
                values.push(bind(value, *kind));
            }
        }
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
        self.session.execute(
            &format!(
                "INSERT INTO {} ({}) VALUES {}",
                table.name,
                table.column_list(),
                tuples.join(", ")
            ),
            &refs,
        )?;
        Ok(())
    }
}

impl CopyVisitor for Writer<'_, '_> {
    fn sizes(&mut self, sizes: &[(&'static Table, u64)]) -> Result<()> {
        self.tally.sizes(sizes);
        Ok(())
    }

    fn row(&mut self, table: &'static Table, row: Vec<Value>) -> Result<()> {
        if self.table.is_some_and(|t| !std::ptr::eq(t, table)) || self.pending.len() >= BATCH {
            self.flush()?;
        }
        self.table = Some(table);
        self.pending.push(row);
        self.tally.row(table);
        Ok(())
    }
}

/// A copied value as a parameter of its column's type.
fn bind(value: Value, kind: Kind) -> Box<dyn ToSql + Sync> {
    match (value, kind) {
        (Value::Int(n), _) => Box::new(n),
        (Value::Text(t), _) => Box::new(t),
        (Value::Bool(b), _) => Box::new(b),
        (Value::Null, Kind::Int) => Box::new(None::<i64>),
        (Value::Null, Kind::Text) => Box::new(None::<String>),
        (Value::Null, Kind::Bool) => Box::new(None::<bool>),
    }
}
