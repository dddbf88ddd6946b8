//! Reading the small files a connection needs (keys, certificates) without trusting their size or kind.

use std::io::Read;
use std::path::Path;

/// Far above any key or certificate bundle; a larger file is a mistake (or /dev/zero).
pub const MAX_SMALL_FILE: u64 = 4 * 1024 * 1024;

/// The whole file, if it is a regular file of at most [`MAX_SMALL_FILE`] bytes.
pub fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| crate::text::escaped(&e.to_string()))?;
    let meta = file.metadata().map_err(|e| crate::text::escaped(&e.to_string()))?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    let mut bytes = Vec::new();
    file.take(MAX_SMALL_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| crate::text::escaped(&e.to_string()))?;
    if bytes.len() as u64 > MAX_SMALL_FILE {
        return Err(format!("larger than {} MiB", MAX_SMALL_FILE / 1024 / 1024));
    }
    Ok(bytes)
}
