//! The library's error type: every message names the argument, file or tensor
//! at fault and what was expected instead.

use std::path::PathBuf;

/// Errors returned by the library. The binary prints them as one line and
/// exits non-zero; nothing reachable from user input panics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A user-chosen value outside its valid range.
    #[error("invalid {name} = {value}: expected {expected}")]
    InvalidArgument {
        name: String,
        value: String,
        expected: String,
    },
    /// An operating-system error while reading or writing `path`.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file whose contents are not what its format requires.
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    /// A checkpoint that cannot be loaded (missing, corrupt, or mismatched).
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    /// A NaN or Inf appeared in training at (1-based) step `step`; `hint`
    /// says where the last good checkpoint is and what to try.
    #[error("non-finite {what} at training step {step}; {hint}")]
    NonFinite {
        step: u64,
        what: String,
        hint: String,
    },
    /// Two things that must agree do not (e.g. a model and a data set).
    #[error("{0}")]
    Mismatch(String),
    /// A resumed run's option `what` is `ours`, the checkpoint in `dir` was
    /// trained with `saved`.
    #[error(
        "{what} {ours} differs from {saved} in the checkpoint {dir}; \
         a resumed run must use the same {what} (leave it unset to take the saved one)"
    )]
    ResumeMismatch {
        what: String,
        ours: String,
        saved: String,
        dir: String,
    },
    /// Another process holds the advisory lock of an output directory.
    #[error(
        "{path} is in use by another scoresde process (it holds the directory's lock); \
         wait for it to finish or choose another output directory"
    )]
    Locked { path: PathBuf },
    /// Sampling produced a NaN or Inf.
    #[error("sampling produced non-finite values: {0}")]
    NonFiniteSample(String),
}

/// Result alias used throughout the library.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(
        name: impl Into<String>,
        value: impl ToString,
        expected: impl Into<String>,
    ) -> Self {
        Error::InvalidArgument {
            name: name.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }

    /// A `key=value` parameter's value as a finite real, or the error naming
    /// the key and the value.
    pub fn parse_finite(key: &str, value: String) -> Result<f64> {
        match value.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(x),
            _ => Err(Error::invalid(key, value, "a finite number")),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`Error::Format`].
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
