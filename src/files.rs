//! Files the user names (config, ledger, server log): looked at before they are read, so a mistake such as
//! `--config /dev/zero` or a FIFO is one clear line instead of a hang or gigabytes of memory.

use std::path::Path;

pub use crate::conn::files::MAX_SMALL_FILE;

/// A small text file read whole (the config): regular, at most [`MAX_SMALL_FILE`] bytes, UTF-8.
pub fn read_small_text(path: &Path) -> Result<String, String> {
    let bytes = crate::conn::files::read_small(path)?;
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}

/// A file read as it grows (ledger, server log) may be any size, but must be a regular file when it exists:
/// a device or FIFO never ends or blocks the reader. A missing file is left to the caller (it may be created).
pub fn regular_if_exists(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err("not a regular file".to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Both rules for the files named on the command line, with the message naming flag and file.
pub fn check_growing(flag: &str, path: Option<&Path>) -> Result<(), String> {
    match path {
        Some(path) => regular_if_exists(path).map_err(|e| format!("{flag} {}: {e}", path.display())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_directories_are_refused_and_missing_files_left_to_the_caller() {
        assert_eq!(
            read_small_text(Path::new("/dev/zero")).unwrap_err(),
            "not a regular file"
        );
        assert_eq!(
            regular_if_exists(Path::new("/dev/zero")).unwrap_err(),
            "not a regular file"
        );
        assert_eq!(regular_if_exists(Path::new("/")).unwrap_err(), "not a regular file");
        assert!(regular_if_exists(Path::new("/no/such/file")).is_ok());
        let e = check_growing("--ledger", Some(Path::new("/dev/null"))).unwrap_err();
        assert_eq!(e, "--ledger /dev/null: not a regular file");
    }

    #[test]
    fn an_absurdly_large_config_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.toml");
        let file = std::fs::File::create(&path).unwrap();
        // Sparse: costs no disk, but its length is what a reader would have to swallow.
        file.set_len(MAX_SMALL_FILE + 1).unwrap();
        assert_eq!(read_small_text(&path).unwrap_err(), "larger than 4 MiB");
        std::fs::write(&path, b"\xff\xfe").unwrap();
        assert_eq!(read_small_text(&path).unwrap_err(), "not UTF-8 text");
    }
}
