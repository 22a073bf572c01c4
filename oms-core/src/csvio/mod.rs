//! CSV in and out: RFC 4180 (CRLF, quotes only where needed), UTF-8, a
//! header row, streaming with constant memory.
//!
//! Formula injection: a cell that begins with `=`, `+`, `-`, `@`, tab or
//! carriage return would be evaluated by a spreadsheet, so export prefixes
//! it with an apostrophe. The apostrophe is the escape: a cell that already
//! begins with one gets another, and import strips exactly one leading
//! apostrophe, so every export re-imports to the same values.
//!
//! Imports run inside the caller's transaction: the first bad row fails the
//! whole file with its line number and nothing is written.
//!
//! `format`: the column lists, the RFC 4180 writer, formula neutralisation;
//! `export`: rows of products, customers and orders out; `import`: files
//! in, each row checked and applied through the caller's transaction.

mod export;
mod format;
mod import;

pub use export::*;
pub use format::*;
pub use import::*;
