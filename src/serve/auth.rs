//! Basic authentication against the web config's bcrypt hashes, built so that a login's cost and timing say
//! nothing about which users exist, and a flood of wrong passwords cannot take the CPU the pollers need.
//!
//! * Every login pays one bcrypt: a known user's hash, or a dummy hash of the same cost for an unknown one.
//! * Whatever is compared is compared in constant time: user names (as SHA-256 digests, against every
//!   configured user, without stopping at a match), and remembered logins (the same way).
//! * At most [`bcrypt_slots`] verifications run at once; a login that cannot get a slot within [`QUEUE_WAIT`]
//!   is answered 429, so a flood queues on a bounded semaphore instead of on every core.

use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use tokio::sync::Semaphore;

/// Successful logins remembered, so a scrape every few seconds does not pay bcrypt's cost each time.
const REMEMBERED: usize = 64;
/// How long a login waits for a bcrypt slot before it is told to come back later.
pub const QUEUE_WAIT: Duration = Duration::from_millis(500);
/// bcrypt's own bounds on the cost (log2 of its rounds).
const COSTS: std::ops::RangeInclusive<u32> = 4..=31;

type Digest = [u8; 32];

/// What a login attempt gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
    /// Every bcrypt slot stayed taken for [`QUEUE_WAIT`]: the answer is 429, not a verdict on the password.
    Busy,
}

/// Why the logins cannot be set up; found at start, so a bad file is a start-up error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginsError {
    /// A user's entry does not parse as a bcrypt hash (the web config's reader refuses those first).
    NotBcrypt {
        user: String,
    },
    /// A cost outside bcrypt's 4..=31.
    Cost {
        user: String,
        cost: u32,
    },
    Dummy(String),
}

impl std::fmt::Display for LoginsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginsError::NotBcrypt { user } => write!(
                f,
                "web config: the entry for {} is not a bcrypt hash",
                crate::conn::text::quoted(user)
            ),
            LoginsError::Cost { user, cost } => write!(
                f,
                "web config: the bcrypt cost of {} is {cost}, outside {}..={}",
                crate::conn::text::quoted(user),
                COSTS.start(),
                COSTS.end()
            ),
            LoginsError::Dummy(e) => write!(f, "cannot make the dummy bcrypt hash for unknown users: {e}"),
        }
    }
}

struct User {
    name: Digest,
    hash: String,
}

/// The configured users and what checking them needs.
pub struct Logins {
    users: Vec<User>,
    /// Verified instead of a known hash for an unknown user, at the highest configured cost, so an unknown name
    /// costs what a known one does.
    dummy: String,
    remembered: Mutex<Vec<Digest>>,
    bcrypt: Semaphore,
}

impl Logins {
    /// `users`: name -> bcrypt hash, as the web config has them.
    pub fn new<'a>(users: impl IntoIterator<Item = (&'a String, &'a String)>) -> Result<Logins, LoginsError> {
        let mut cost = *COSTS.start();
        let mut list = Vec::new();
        for (name, hash) in users {
            let parts = hash
                .parse::<bcrypt::HashParts>()
                .map_err(|_| LoginsError::NotBcrypt { user: name.clone() })?;
            if !COSTS.contains(&parts.get_cost()) {
                return Err(LoginsError::Cost {
                    user: name.clone(),
                    cost: parts.get_cost(),
                });
            }
            cost = cost.max(parts.get_cost());
            list.push(User {
                name: openssl::sha::sha256(name.as_bytes()),
                hash: hash.clone(),
            });
        }
        // Its password is never asked for: an unknown user is denied whatever the dummy verifies to.
        let dummy = bcrypt::hash("pgtls dummy password for unknown users", cost)
            .map_err(|e| LoginsError::Dummy(e.to_string()))?;
        Ok(Logins {
            users: list,
            dummy,
            remembered: Mutex::new(Vec::new()),
            bcrypt: Semaphore::new(bcrypt_slots()),
        })
    }

    pub fn required(&self) -> bool {
        !self.users.is_empty()
    }

    /// The verdict on the request's `Authorization` header.
    pub async fn check(&self, headers: &HeaderMap) -> Verdict {
        // A missing or malformed header is checked as an unknown user with an empty password: no cheaper path.
        let (user, password) = basic_credentials(headers).unwrap_or_default();
        let wanted = openssl::sha::sha256(user.as_bytes());
        let mut known: Option<&User> = None;
        for u in &self.users {
            if openssl::memcmp::eq(&u.name, &wanted) {
                known = Some(u);
            }
        }
        let hash = known.map_or(&self.dummy, |u| &u.hash).clone();
        let login = login_digest(&user, &hash, &password);
        if known.is_some() && self.remembers(&login) {
            return Verdict::Allowed;
        }
        let Ok(Ok(_slot)) = tokio::time::timeout(QUEUE_WAIT, self.bcrypt.acquire()).await else {
            return Verdict::Busy;
        };
        // bcrypt is slow on purpose: on a blocking thread, so the runtime that polls every target keeps running.
        let verified = tokio::task::spawn_blocking(move || bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if !(verified && known.is_some()) {
            return Verdict::Denied;
        }
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if remembered.len() >= REMEMBERED {
            remembered.clear();
        }
        remembered.push(login);
        Verdict::Allowed
    }

    /// Whether this login verified before; every entry is compared, in constant time, whatever matches.
    fn remembers(&self, login: &Digest) -> bool {
        let remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        remembered
            .iter()
            .fold(false, |found, r| found | openssl::memcmp::eq(r, login))
    }
}

/// Half the cores, at least one and at most four: bcrypt may use that many while the rest poll the targets.
pub fn bcrypt_slots() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get() / 2)
        .clamp(1, 4)
}

/// What identifies a login that verified. A user name has no `:` (the header's first `:` ends it) and neither
/// has a bcrypt hash, so the parts cannot run into each other.
fn login_digest(user: &str, hash: &str, password: &str) -> Digest {
    let mut sha = openssl::sha::Sha256::new();
    for part in [user, ":", hash, ":", password] {
        sha.update(part.as_bytes());
    }
    sha.finish()
}

pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > 4096 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use std::collections::BTreeMap;

    fn header_for(login: &str) -> HeaderMap {
        use base64::Engine as _;
        let mut h = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode(login);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        h
    }

    #[test]
    fn basic_credentials_are_read_strictly() {
        assert_eq!(
            basic_credentials(&header_for("prom:se:cret")),
            Some(("prom".into(), "se:cret".into()))
        );
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(basic_credentials(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_credentials(&h), None);
    }

    #[tokio::test]
    async fn only_the_right_password_of_a_known_user_passes() {
        let users = BTreeMap::from([("prom".to_string(), bcrypt::hash("s3cret", 5).unwrap())]);
        let logins = Logins::new(&users).unwrap();
        // The dummy is as costly as the configured hash: an unknown user pays the same bcrypt.
        assert_eq!(logins.dummy.parse::<bcrypt::HashParts>().unwrap().get_cost(), 5);
        assert_eq!(logins.check(&header_for("prom:s3cret")).await, Verdict::Allowed);
        assert_eq!(
            logins.check(&header_for("prom:s3cret")).await,
            Verdict::Allowed,
            "remembered"
        );
        assert_eq!(logins.check(&header_for("prom:wrong")).await, Verdict::Denied);
        assert_eq!(logins.check(&header_for("mallory:s3cret")).await, Verdict::Denied);
        assert_eq!(logins.check(&HeaderMap::new()).await, Verdict::Denied);
        // Whatever the dummy's password, it opens nothing.
        assert_eq!(
            logins
                .check(&header_for("nobody:pgtls dummy password for unknown users"))
                .await,
            Verdict::Denied
        );
    }

    #[tokio::test]
    async fn a_login_that_finds_every_bcrypt_slot_taken_is_told_to_come_back() {
        let users = BTreeMap::from([("prom".to_string(), bcrypt::hash("s3cret", 4).unwrap())]);
        let logins = Logins::new(&users).unwrap();
        let held = logins.bcrypt.acquire_many(bcrypt_slots() as u32).await.unwrap();
        assert_eq!(logins.check(&header_for("prom:wrong")).await, Verdict::Busy);
        drop(held);
        assert_eq!(logins.check(&header_for("prom:wrong")).await, Verdict::Denied);
    }

    #[test]
    fn costs_outside_bcrypts_range_are_refused() {
        // A well-formed hash whose cost field says 3.
        let hash = bcrypt::hash("x", 4).unwrap().replacen("$04$", "$03$", 1);
        let users = BTreeMap::from([("prom".to_string(), hash)]);
        assert!(matches!(
            Logins::new(&users),
            Err(LoginsError::Cost { cost: 3, .. }) | Err(LoginsError::NotBcrypt { .. })
        ));
    }
}
