//! A small certificate authority for the lab: a root CA, a server certificate and client certificates.
//!
//! Generated in-process with the openssl crate so the lab needs no `openssl` command line tool.

use std::path::Path;

use color_eyre::eyre::{Result, WrapErr};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509NameBuilder};

/// A certificate with its private key.
pub struct Issued {
    pub cert: X509,
    pub key: PKey<Private>,
}

/// What to put in a certificate.
pub struct CertSpec<'a> {
    pub common_name: &'a str,
    pub organization: &'a str,
    pub is_ca: bool,
    /// DNS names and IP addresses for the subjectAltName extension.
    pub dns_names: &'a [&'a str],
    pub ip_addresses: &'a [&'a str],
    /// Validity window relative to now, in days (negative `not_after_days` issues an expired certificate).
    pub not_before_days: i32,
    pub not_after_days: i32,
    pub client_auth: bool,
}

impl<'a> CertSpec<'a> {
    pub fn ca(common_name: &'a str) -> Self {
        CertSpec {
            common_name,
            organization: "pgtls lab",
            is_ca: true,
            dns_names: &[],
            ip_addresses: &[],
            not_before_days: -1,
            not_after_days: 3650,
            client_auth: false,
        }
    }

    pub fn server(common_name: &'a str, dns_names: &'a [&'a str], ip_addresses: &'a [&'a str]) -> Self {
        CertSpec {
            dns_names,
            ip_addresses,
            is_ca: false,
            not_after_days: 365,
            ..CertSpec::ca(common_name)
        }
    }

    pub fn client(common_name: &'a str) -> Self {
        CertSpec {
            client_auth: true,
            ..CertSpec::server(common_name, &[], &[])
        }
    }
}

/// Issue a certificate, self-signed when `issuer` is `None`.
pub fn issue(spec: &CertSpec<'_>, issuer: Option<&Issued>) -> Result<Issued> {
    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    issue_for_key(spec, key, issuer)
}

/// Certify an existing key: the same intermediate key certified by two roots is what a cross-signed
/// intermediate is (two certificates, one subject and key, two issuers).
pub fn issue_for_key(spec: &CertSpec<'_>, key: PKey<Private>, issuer: Option<&Issued>) -> Result<Issued> {
    issue_inner(spec, key, issuer).wrap_err_with(|| format!("generating certificate {:?}", spec.common_name))
}

fn issue_inner(
    spec: &CertSpec<'_>,
    key: PKey<Private>,
    issuer: Option<&Issued>,
) -> Result<Issued, openssl::error::ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("O", spec.organization)?;
    name.append_entry_by_text("CN", spec.common_name)?;
    let name = name.build();

    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(63, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
    builder.set_serial_number(Asn1Integer::from_bn(&serial)?.as_ref())?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(issuer.map_or(&name, |i| i.cert.subject_name()))?;
    builder.set_pubkey(&key)?;
    let not_before = days_from_now(spec.not_before_days)?;
    let not_after = days_from_now(spec.not_after_days)?;
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;

    if spec.is_ca {
        builder.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        builder.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
    } else {
        builder.append_extension(BasicConstraints::new().build()?)?;
        builder.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()?,
        )?;
        let mut eku = ExtendedKeyUsage::new();
        if spec.client_auth {
            eku.client_auth();
        } else {
            eku.server_auth();
        }
        builder.append_extension(eku.build()?)?;
    }
    let subject_key_id = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
    builder.append_extension(subject_key_id)?;
    if let Some(issuer) = issuer {
        let akid = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&builder.x509v3_context(Some(&issuer.cert), None))?;
        builder.append_extension(akid)?;
    }
    if !spec.dns_names.is_empty() || !spec.ip_addresses.is_empty() {
        let mut san = SubjectAlternativeName::new();
        for dns in spec.dns_names {
            san.dns(dns);
        }
        for ip in spec.ip_addresses {
            san.ip(ip);
        }
        builder.append_extension(san.build(&builder.x509v3_context(issuer.map(|i| i.cert.as_ref()), None))?)?;
    }
    builder.sign(issuer.map_or(&key, |i| &i.key), MessageDigest::sha256())?;
    Ok(Issued {
        cert: builder.build(),
        key,
    })
}

fn days_from_now(days: i32) -> Result<Asn1Time, openssl::error::ErrorStack> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Asn1Time::from_unix(now + i64::from(days) * 86_400)
}

impl Issued {
    /// Write the certificate and its PKCS#8 key as PEM; the key file is made private (PostgreSQL insists).
    pub fn write_pem(&self, cert_path: &Path, key_path: &Path) -> Result<()> {
        std::fs::write(cert_path, self.cert.to_pem()?).wrap_err_with(|| format!("writing {}", cert_path.display()))?;
        write_private(key_path, &self.key.private_key_to_pem_pkcs8()?)
    }
}

pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .wrap_err_with(|| format!("writing {}", path.display()))?;
    file.write_all(contents)?;
    Ok(())
}
