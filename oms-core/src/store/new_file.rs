//! Writing a database file that appears whole or not at all (`oms backup`,
//! on either backend).

use std::path::Path;

use crate::{Error, Result, Timestamp};

/// Writes a new file at `dest` through `write`, which fills the temporary
/// file it is given. An existing `dest` is refused unless `replace` is set,
/// and then replaced atomically.
///
/// Never half-written: the temporary file lies beside `dest`, is flushed to
/// disk, and only then takes `dest`'s name: by `rename` when replacing, by
/// a hard link (which refuses an existing name) otherwise. The directory is
/// then flushed too. A reader of `dest` sees the old complete file or the
/// new complete one; on any failure the temporary file (and any journal an
/// engine left beside it) is removed and `dest` is left as it was.
pub(crate) fn write_new_file(
    dest: &Path,
    replace: bool,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    if dest.is_dir() {
        return Err(Error::invalid(format!(
            "{} is a directory; give the backup a file name",
            dest.display()
        )));
    }
    if !replace && dest.exists() {
        return Err(Error::invalid(format!(
            "{} already exists; pass --force to replace it, or choose a new file name",
            dest.display()
        )));
    }
    let name = dest
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::invalid("backup path must name a file in valid UTF-8"))?;
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::invalid(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        Err(e) => {
            return Err(Error::io(
                format!("backup: cannot write into {}", dir.display()),
                e,
            ));
        }
    }
    // Hidden, and named for what it is, should a crash leave it behind.
    let tmp = dir.join(format!(
        ".{name}.oms-backup-{}-{}.tmp",
        std::process::id(),
        Timestamp::now().millis()
    ));
    let result = (|| -> Result<()> {
        write(&tmp)?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("backup: cannot flush the copy to disk", e))?;
        publish(&tmp, dest, replace)?;
        // The new name is durable once its directory is flushed. Some file
        // systems cannot flush a directory; the copy is complete and in
        // place by now, so that is not worth failing for.
        if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
            tracing::debug!(error = %e, "backup: cannot flush the directory");
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        for suffix in ["-journal", "-wal", "-shm"] {
            let mut side = tmp.clone().into_os_string();
            side.push(suffix);
            let _ = std::fs::remove_file(side);
        }
    }
    result
}

/// Gives the finished copy `tmp` the name `dest`: `rename` replaces an
/// existing file atomically; without `replace` a hard link claims the name
/// only if it is free (even if another process created it since the check),
/// falling back to `rename` on file systems without hard links.
fn publish(tmp: &Path, dest: &Path, replace: bool) -> Result<()> {
    let failed = |e| Error::io(format!("backup: cannot write {}", dest.display()), e);
    if replace {
        return std::fs::rename(tmp, dest).map_err(failed);
    }
    match std::fs::hard_link(tmp, dest) {
        Ok(()) => {
            let _ = std::fs::remove_file(tmp);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::invalid(format!(
            "{} already exists; pass --force to replace it, or choose a new file name",
            dest.display()
        ))),
        Err(_) if !dest.exists() => std::fs::rename(tmp, dest).map_err(failed),
        Err(e) => Err(failed(e)),
    }
}
