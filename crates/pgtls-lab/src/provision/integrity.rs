//! npm's `sha512-<base64>` integrity strings: parsing one and checking bytes against it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use openssl::sha::Sha512;

/// An integrity string that is not one, or bytes that do not match it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    #[error("integrity {integrity:?} is not sha512-<base64>")]
    NotSha512 { integrity: String },
    #[error("integrity {integrity:?}: {message}")]
    NotBase64 { integrity: String, message: String },
    #[error("integrity {integrity:?} is not 64 bytes")]
    WrongLength { integrity: String },
    /// Both digests, in the integrity string's form.
    #[error("SHA-512 mismatch: expected {expected}, got {actual}")]
    Mismatch { expected: String, actual: String },
}

/// The 64-byte SHA-512 digest an integrity string names.
pub fn parse(integrity: &str) -> Result<[u8; 64], IntegrityError> {
    let named = || integrity.to_string();
    let encoded = integrity
        .strip_prefix("sha512-")
        .ok_or_else(|| IntegrityError::NotSha512 { integrity: named() })?;
    let bytes = STANDARD.decode(encoded).map_err(|e| IntegrityError::NotBase64 {
        integrity: named(),
        message: e.to_string(),
    })?;
    <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| IntegrityError::WrongLength { integrity: named() })
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
    pub fn check(self, integrity: &str) -> Result<(), IntegrityError> {
        let expected = parse(integrity)?;
        let actual = self.0.finish();
        if actual.as_slice() == expected.as_slice() {
            Ok(())
        } else {
            Err(IntegrityError::Mismatch {
                expected: integrity.to_string(),
                actual: format!("sha512-{}", STANDARD.encode(actual.as_slice())),
            })
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
        assert!(
            matches!(&err, IntegrityError::Mismatch { expected, .. } if expected == ABC),
            "{err:?}"
        );
        let err = err.to_string();
        assert!(err.starts_with("SHA-512 mismatch: expected sha512-3a81"), "{err}");
        assert!(err.contains(", got sha512-"), "{err}");
    }

    #[test]
    fn malformed_integrity_strings_are_refused() {
        assert!(matches!(
            parse("sha1-qZk+NkcGgWq6PiVxeFDCbJzQ2J0="),
            Err(IntegrityError::NotSha512 { .. })
        ));
        assert!(matches!(
            parse("sha512-not base64!"),
            Err(IntegrityError::NotBase64 { .. })
        ));
        let e = parse("sha512-YWJj").unwrap_err();
        assert!(matches!(e, IntegrityError::WrongLength { .. }), "{e:?}");
        assert!(e.to_string().contains("not 64 bytes"), "{e}");
        assert!(parse(ABC).is_ok());
    }
}
