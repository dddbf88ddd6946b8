//! Reading the small files a connection needs (keys, certificates) without trusting their size or kind.

use std::io::Read;
use std::path::Path;

/// Far above any key or certificate bundle; a larger file is a mistake (or /dev/zero).
pub const MAX_SMALL_FILE: u64 = 4 * 1024 * 1024;

/// Why a small file was refused. The words are what users read after "could not read ... FILE:".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// A directory, device, FIFO or socket.
    #[error("not a regular file")]
    NotRegularFile,
    /// Above [`MAX_SMALL_FILE`] (looked at before reading, and again on what was read).
    #[error("larger than {} MiB", MAX_SMALL_FILE / 1024 / 1024)]
    TooLarge,
    /// The system's error (missing, no permission), its text escaped for a terminal.
    #[error("{message}")]
    Io { kind: std::io::ErrorKind, message: String },
}

impl From<std::io::Error> for FileError {
    fn from(e: std::io::Error) -> Self {
        FileError::Io {
            kind: e.kind(),
            message: crate::text::escaped(&e.to_string()),
        }
    }
}

/// Whether `path` names a regular file of at most [`MAX_SMALL_FILE`] bytes, for files another library reads
/// (OpenSSL reads root and certificate files itself, to the end). Looked at before opening: opening a FIFO
/// would block until someone writes to it.
pub fn check_small(path: &Path) -> Result<(), FileError> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(FileError::NotRegularFile);
    }
    if meta.len() > MAX_SMALL_FILE {
        return Err(FileError::TooLarge);
    }
    Ok(())
}

/// The whole file, if it is a regular file of at most [`MAX_SMALL_FILE`] bytes.
pub fn read_small(path: &Path) -> Result<Vec<u8>, FileError> {
    check_small(path)?;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(FileError::NotRegularFile);
    }
    let mut bytes = Vec::new();
    file.take(MAX_SMALL_FILE + 1).read_to_end(&mut bytes)?;
    // Checked again on what was read: the file may have grown (or been swapped) since the look.
    if bytes.len() as u64 > MAX_SMALL_FILE {
        return Err(FileError::TooLarge);
    }
    Ok(bytes)
}
