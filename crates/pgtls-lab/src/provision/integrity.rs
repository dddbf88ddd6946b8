//! npm's `sha512-<base64>` integrity strings: parsing one and checking bytes against it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::sha::Sha512;

/// The 64-byte SHA-512 digest an integrity string names.
pub fn parse(integrity: &str) -> Result<[u8; 64], String> {
    let encoded = integrity
        .strip_prefix("sha512-")
        .ok_or_else(|| format!("integrity {integrity:?} is not sha512-<base64>"))?;
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|e| format!("integrity {integrity:?}: {e}"))?;
    <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| format!("integrity {integrity:?} is not 64 bytes"))
}

/// Hashes what is written through it, so a download is checked without reading the file again. OpenSSL's SHA-512,
/// the library pgtls links for TLS anyway.
pub struct Hasher(Sha512);

impl Default for Hasher {
    fn default() -> Self {
        Hasher(Sha512::new())
    }
}

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The bytes seen as an integrity string, `sha512-<base64>`.
    pub fn integrity(self) -> String {
        format!("sha512-{}", STANDARD.encode(self.0.finish()))
    }

    /// Ok when the bytes seen match `integrity`; otherwise both digests, in the integrity string's form.
    pub fn check(self, integrity: &str) -> Result<(), String> {
        let expected = parse(integrity)?;
        let actual = self.0.finish();
        if actual.as_slice() == expected.as_slice() {
            Ok(())
        } else {
            Err(format!(
                "SHA-512 mismatch: expected {integrity}, got sha512-{}",
                STANDARD.encode(actual.as_slice())
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `printf 'abc' | openssl dgst -sha512 -binary | base64`
    const ABC: &str = "sha512-3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw==";

    #[test]
    fn matching_bytes_pass_and_others_fail_naming_both_digests() {
        let mut ok = Hasher::default();
        ok.update(b"a");
        ok.update(b"bc");
        assert_eq!(ok.check(ABC), Ok(()));

        let mut bad = Hasher::default();
        bad.update(b"abd");
        let err = bad.check(ABC).unwrap_err();
        assert!(err.starts_with("SHA-512 mismatch: expected sha512-3a81"), "{err}");
        assert!(err.contains(", got sha512-"), "{err}");
    }

    #[test]
    fn malformed_integrity_strings_are_refused() {
        assert!(parse("sha1-qZk+NkcGgWq6PiVxeFDCbJzQ2J0=").is_err());
        assert!(parse("sha512-not base64!").is_err());
        assert!(parse("sha512-YWJj").unwrap_err().contains("not 64 bytes"));
        assert!(parse(ABC).is_ok());
    }
}
