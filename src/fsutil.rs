//! File-system helpers: atomic writes that never leave a partial file under a
//! final name and never destroy a previous good file on failure.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `path` with `.tmp` appended, in the same folder (so rename is atomic).
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Write `bytes` to `path` atomically: write `path.tmp`, flush, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Atomic write whose contents come from `fill` writing into the temp file.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<&File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = tmp_path(path);
    let result = (|| {
        let file = File::create(&tmp)?;
        {
            let mut w = std::io::BufWriter::new(&file);
            fill(&mut w)?;
            w.flush()?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })?;
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// fsync a directory so that renames inside it are durable (best effort:
/// not every platform can open a directory).
pub fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Create `dir` (and parents) if needed and check that a file can be
/// created in it, before any long work starts. `arg` names the option in
/// the error (e.g. `out`).
pub fn ensure_writable_dir(arg: &str, dir: &Path) -> Result<()> {
    let fail =
        |why: String| Error::invalid(arg, dir.display(), format!("a writable directory ({why})"));
    if dir.exists() && !dir.is_dir() {
        return Err(fail("it exists and is not a directory".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
    let probe = dir.join(format!(".scoresde-write-test-{}", std::process::id()));
    File::create(&probe).map_err(|e| fail(format!("cannot create a file in it: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
