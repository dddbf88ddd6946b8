//! Reading the small files a connection needs (keys, certificates) without trusting their size or kind.

use std::io::Read;
use std::path::Path;

/// Far above any key or certificate bundle; a larger file is a mistake (or /dev/zero).
pub const MAX_SMALL_FILE: u64 = 4 * 1024 * 1024;

/// Whether `path` names a regular file of at most [`MAX_SMALL_FILE`] bytes, for files another library reads
/// (OpenSSL reads root and certificate files itself, to the end). Looked at before opening: opening a FIFO
/// would block until someone writes to it.
pub fn check_small(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| crate::text::escaped(&e.to_string()))?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    if meta.len() > MAX_SMALL_FILE {
        return Err(too_large());
    }
    Ok(())
}

fn too_large() -> String {
    format!("larger than {} MiB", MAX_SMALL_FILE / 1024 / 1024)
}

/// The whole file, if it is a regular file of at most [`MAX_SMALL_FILE`] bytes.
pub fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    check_small(path)?;
    let file = std::fs::File::open(path).map_err(|e| crate::text::escaped(&e.to_string()))?;
    let meta = file.metadata().map_err(|e| crate::text::escaped(&e.to_string()))?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    let mut bytes = Vec::new();
    file.take(MAX_SMALL_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| crate::text::escaped(&e.to_string()))?;
    // Checked again on what was read: the file may have grown (or been swapped) since the look.
    if bytes.len() as u64 > MAX_SMALL_FILE {
        return Err(too_large());
    }
    Ok(bytes)
}
