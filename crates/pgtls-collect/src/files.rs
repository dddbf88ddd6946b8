//! Files the user names (config, ledger, server log): looked at before they are read, so a mistake such as
//! `--config /dev/zero` or a FIFO is one clear line instead of a hang or gigabytes of memory.

use std::path::Path;

use std::path::PathBuf;

pub use crate::conn::files::{FileError, MAX_SMALL_FILE};

/// Why a small text file (config, targets, web config) was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextFileError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("not UTF-8 text")]
    NotUtf8,
}

/// A file named by a flag that is not one pgtls can follow: "--ledger PATH: not a regular file".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag} {}: {source}", path.display())]
pub struct FlagFileError {
    pub flag: &'static str,
    pub path: PathBuf,
    pub source: FileError,
}

/// A log named by a flag that could not be opened to follow: "--server-log PATH: reason".
#[derive(Debug, thiserror::Error)]
#[error("{flag} {}: {source}", path.display())]
pub struct FollowError {
    pub flag: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// A small text file read whole (the config): regular, at most [`MAX_SMALL_FILE`] bytes, UTF-8.
pub fn read_small_text(path: &Path) -> Result<String, TextFileError> {
    let bytes = crate::conn::files::read_small(path)?;
    String::from_utf8(bytes).map_err(|_| TextFileError::NotUtf8)
}

/// A file read as it grows (ledger, server log) may be any size, but must be a regular file when it exists:
/// a device or FIFO never ends or blocks the reader. A missing file is left to the caller (it may be created).
pub fn regular_if_exists(path: &Path) -> Result<(), FileError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(FileError::NotRegularFile),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Both rules for the files named on the command line, with the message naming flag and file.
pub fn check_growing(flag: &'static str, path: Option<&Path>) -> Result<(), FlagFileError> {
    match path {
        Some(path) => regular_if_exists(path).map_err(|source| FlagFileError {
            flag,
            path: path.to_path_buf(),
            source,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_directories_are_refused_and_missing_files_left_to_the_caller() {
        let e = read_small_text(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e, TextFileError::File(FileError::NotRegularFile));
        assert_eq!(e.to_string(), "not a regular file");
        let e = regular_if_exists(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e, FileError::NotRegularFile);
        assert_eq!(e.to_string(), "not a regular file");
        assert_eq!(
            regular_if_exists(Path::new("/")).unwrap_err(),
            FileError::NotRegularFile
        );
        assert!(regular_if_exists(Path::new("/no/such/file")).is_ok());
        let e = check_growing("--ledger", Some(Path::new("/dev/null"))).unwrap_err();
        assert_eq!(e.source, FileError::NotRegularFile);
        assert_eq!(e.to_string(), "--ledger /dev/null: not a regular file");
    }

    #[test]
    fn an_absurdly_large_config_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.toml");
        let file = std::fs::File::create(&path).unwrap();
        // Sparse: costs no disk, but its length is what a reader would have to swallow.
        file.set_len(MAX_SMALL_FILE + 1).unwrap();
        let e = read_small_text(&path).unwrap_err();
        assert_eq!(e, TextFileError::File(FileError::TooLarge));
        assert_eq!(e.to_string(), "larger than 4 MiB");
        std::fs::write(&path, b"\xff\xfe").unwrap();
        let e = read_small_text(&path).unwrap_err();
        assert_eq!(e, TextFileError::NotUtf8);
        assert_eq!(e.to_string(), "not UTF-8 text");
    }
}
