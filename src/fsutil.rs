//! File-system helpers: atomic writes that never leave a partial file under a
//! final name and never destroy a previous good file on failure; exclusive
//! temporary files; bounded reads of regular files only; the advisory lock
//! of an output directory.
//!
//! - **Temporary files** ([`write_atomic`]) get a unique name
//!   `<name>.<pid>.<counter>.tmp` in the target's folder and are created with
//!   `create_new` (`O_CREAT | O_EXCL`): a pre-existing file or symlink of
//!   that name is never opened, followed or overwritten. The final `rename`
//!   replaces the target name itself, so a symlink there is replaced by the
//!   new regular file, not followed.
//! - **Reads** ([`read_regular`], [`open_regular`]) refuse anything that is
//!   not a regular file after following symlinks (devices such as
//!   `/dev/zero`, FIFOs, sockets, directories) before opening it (opening a
//!   FIFO would block), and count the bytes actually read against the
//!   caller's limit instead of trusting the metadata length.
//! - **Hashes** ([`fnv1a64`]): the 64-bit FNV-1a of file bytes that
//!   checkpoints and data fingerprints record.
//! - **Locks** ([`lock_dir`]): `flock` on the output directory itself (no
//!   lock file is created), held for the lifetime of the returned guard and
//!   released by the kernel when the process exits, however it exits.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary name for `path` in the same folder (so rename is
/// atomic): `<name>.<pid>.<counter>.tmp`, unique within this process.
pub fn tmp_path(path: &Path) -> PathBuf {
    let k = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{}.{k}.tmp", std::process::id()));
    PathBuf::from(s)
}

/// Create a new file at a fresh [`tmp_path`] of `path` with `create_new`
/// (never opening an existing file or following a symlink); retries with
/// the next name if one is taken.
pub fn create_tmp(path: &Path) -> std::io::Result<(PathBuf, File)> {
    let mut last = None;
    for _ in 0..64 {
        let tmp = tmp_path(path);
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

/// Write `bytes` to `path` atomically: write an exclusive temporary file,
/// flush, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Atomic write whose contents come from `fill` writing into the temp file.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<&File>) -> std::io::Result<()>,
) -> Result<()> {
    let (tmp, file) = create_tmp(path).map_err(|e| Error::io(path, e))?;
    let result = (|| {
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

/// Check, without creating anything, that `dir` is (or can be created as) a
/// writable directory: `dir` or its nearest existing ancestor must be a
/// directory in which a file can be created (probed with a uniquely named
/// file that is removed at once). `arg` names the option in the error.
/// Commands call this before any work and create `dir` only once every
/// other check has passed, so a rejected command leaves no directory tree.
pub fn check_writable_dir(arg: &str, dir: &Path) -> Result<()> {
    let fail =
        |why: String| Error::invalid(arg, dir.display(), format!("a writable directory ({why})"));
    let mut probe_dir = dir;
    loop {
        let p = if probe_dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            probe_dir
        };
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                probe_dir = p;
                break;
            }
            Ok(_) if p == dir => return Err(fail("it exists and is not a directory".into())),
            Ok(_) => return Err(fail(format!("{} is not a directory", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match p.parent() {
                Some(parent) => probe_dir = parent,
                None => return Err(fail(format!("cannot create it: {e}"))),
            },
            Err(e) => return Err(fail(format!("cannot inspect {}: {e}", p.display()))),
        }
    }
    let (probe, _f) = create_tmp(&probe_dir.join(".scoresde-write-test")).map_err(|e| {
        fail(format!(
            "cannot create a file in {}: {e}",
            probe_dir.display()
        ))
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// [`check_writable_dir`], then create `dir` (and parents).
pub fn ensure_writable_dir(arg: &str, dir: &Path) -> Result<()> {
    check_writable_dir(arg, dir)?;
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::invalid(
            arg,
            dir.display(),
            format!("a writable directory (cannot create it: {e})"),
        )
    })
}

/// Refuse `path` unless it is a regular file (after following symlinks);
/// returns its metadata length. Called before opening, so a FIFO is never
/// opened (which would block) and a device is never read.
pub fn check_regular(path: &Path) -> Result<u64> {
    let m = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if m.is_file() {
        return Ok(m.len());
    }
    let kind = if m.is_dir() {
        "a directory"
    } else {
        file_kind(&m)
    };
    Err(Error::format(
        path,
        format!("is {kind}, not a regular file; refusing to read it"),
    ))
}

#[cfg(unix)]
fn file_kind(m: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn file_kind(_: &std::fs::Metadata) -> &'static str {
    "a special file"
}

/// Open `path` for reading if it is a regular file ([`check_regular`]),
/// re-checking the opened handle (the name may have been swapped).
pub fn open_regular(path: &Path) -> Result<File> {
    check_regular(path)?;
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let m = f.metadata().map_err(|e| Error::io(path, e))?;
    if !m.is_file() {
        return Err(Error::format(
            path,
            "is not a regular file; refusing to read it",
        ));
    }
    Ok(f)
}

/// Read all of the regular file `path`, refusing it once more than `max`
/// bytes have actually been read (the metadata length is only a hint;
/// `what` names the limit in the error, e.g. "an .npy file").
pub fn read_regular(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let f = open_regular(path)?;
    let too_big = |n: String| {
        Error::format(
            path,
            format!("{n} bytes, more than the {max}-byte limit for {what}"),
        )
    };
    let hint = f.metadata().map(|m| m.len()).unwrap_or(0);
    if hint > max {
        return Err(too_big(hint.to_string()));
    }
    let mut bytes = Vec::with_capacity(hint as usize);
    f.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(too_big(format!("more than {max}")));
    }
    Ok(bytes)
}

/// An advisory lock on an output directory, released on drop (and by the
/// kernel when the process ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Take the advisory lock of the existing directory `dir` without waiting:
/// a second `scoresde` writer into the same directory gets a clear error
/// instead of corrupting the first one's files.
pub fn lock_dir(dir: &Path) -> Result<DirLock> {
    let file = File::open(dir).map_err(|e| Error::io(dir, e))?;
    match file.try_lock() {
        Ok(()) => Ok(DirLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
            path: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(dir, e)),
    }
}

/// 64-bit FNV-1a: h ← (h ⊕ byte) · 0x100000001b3, starting at
/// 0xcbf29ce484222325.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Fnv1a64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a64 {
    /// Feed `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    /// The hash so far.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a64::default();
    h.update(bytes);
    h.finish()
}
