//! What identifies the training data of a folder run, stored with its
//! checkpoint so that `--resume` trains on the same images or refuses.
//!
//! A [`DataFingerprint`] holds the folder's absolute path (so a run resumes
//! from any working directory), the image size and channels it was loaded
//! with (so they need not be repeated), and for every image file the loader
//! reads (see [`crate::data::images::folder::list_images`]) its name, size
//! and 64-bit FNV-1a hash. A bundled set (mnist, digits, ...) is
//! fingerprinted by its source files in the data directory.
//! [`DataFingerprint::diff`] names what changed.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::images::folder::{list_images, MAX_IMAGE_FILE_BYTES};
use crate::error::{Error, Result};
use crate::fsutil::fnv1a64;

/// Prefix of the `path` of a bundled set's fingerprint.
pub const BUNDLED: &str = "bundled:";

/// One image file of the folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub fnv1a64: String,
}

/// Absolute path, loading options and file list of a folder data set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFingerprint {
    pub path: String,
    pub image_size: usize,
    pub channels: usize,
    pub files: Vec<FileEntry>,
}

impl DataFingerprint {
    /// Fingerprint the image files of `dir` (read whole, bounded).
    pub fn of_folder(dir: &Path, image_size: usize, channels: usize) -> Result<Self> {
        let abs = std::path::absolute(dir).map_err(|e| Error::io(dir, e))?;
        let mut files = Vec::new();
        for f in list_images(dir)? {
            let bytes = crate::fsutil::read_regular(&f, MAX_IMAGE_FILE_BYTES, "an image file")?;
            files.push(FileEntry {
                name: f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                bytes: bytes.len() as u64,
                fnv1a64: format!("{:016x}", fnv1a64(&bytes)),
            });
        }
        Ok(DataFingerprint {
            path: abs.to_string_lossy().into_owned(),
            image_size,
            channels,
            files,
        })
    }

    /// Fingerprint the source files of a bundled set: `path` is
    /// `bundled:<name>` (the data directory may move; its contents may not
    /// change) and file names are relative to the data directory.
    pub fn of_bundled(
        name: &str,
        data_dir: &Path,
        files: &[PathBuf],
        shape: (usize, usize, usize),
    ) -> Result<Self> {
        let mut entries = Vec::new();
        for f in files {
            let bytes = crate::fsutil::read_regular(f, 1 << 30, "a data file")?;
            entries.push(FileEntry {
                name: f
                    .strip_prefix(data_dir)
                    .unwrap_or(f)
                    .to_string_lossy()
                    .into_owned(),
                bytes: bytes.len() as u64,
                fnv1a64: format!("{:016x}", fnv1a64(&bytes)),
            });
        }
        Ok(DataFingerprint {
            path: format!("{BUNDLED}{name}"),
            image_size: shape.1,
            channels: shape.0,
            files: entries,
        })
    }

    /// True for a bundled set's fingerprint ([`DataFingerprint::of_bundled`]).
    pub fn is_bundled(&self) -> bool {
        self.path.starts_with(BUNDLED)
    }

    /// The folder as a path.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(&self.path)
    }

    /// `None` if `now` is the same data, else what differs (path, options,
    /// files added, removed or changed; at most a few names each).
    pub fn diff(&self, now: &DataFingerprint) -> Option<String> {
        let mut parts = Vec::new();
        if self.path != now.path {
            parts.push(format!("the folder is {} (was {})", now.path, self.path));
        }
        if (self.image_size, self.channels) != (now.image_size, now.channels) {
            parts.push(format!(
                "image size / channels are {}/{} (were {}/{})",
                now.image_size, now.channels, self.image_size, self.channels
            ));
        }
        let names = |v: &[&FileEntry]| {
            let mut s: Vec<String> = v.iter().take(5).map(|f| f.name.clone()).collect();
            if v.len() > 5 {
                s.push(format!("and {} more", v.len() - 5));
            }
            s.join(", ")
        };
        let find = |set: &[FileEntry], name: &str| set.iter().find(|f| f.name == name).cloned();
        let added: Vec<&FileEntry> = now
            .files
            .iter()
            .filter(|f| find(&self.files, &f.name).is_none())
            .collect();
        let removed: Vec<&FileEntry> = self
            .files
            .iter()
            .filter(|f| find(&now.files, &f.name).is_none())
            .collect();
        let changed: Vec<&FileEntry> = now
            .files
            .iter()
            .filter(|f| find(&self.files, &f.name).is_some_and(|old| old != **f))
            .collect();
        if !added.is_empty() {
            parts.push(format!("{} file(s) added ({})", added.len(), names(&added)));
        }
        if !removed.is_empty() {
            parts.push(format!(
                "{} file(s) removed ({})",
                removed.len(),
                names(&removed)
            ));
        }
        if !changed.is_empty() {
            parts.push(format!(
                "{} file(s) changed in size or content ({})",
                changed.len(),
                names(&changed)
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}
