//! A console's reply read as a stream, row by row, under a row cap and a byte cap.
//!
//! tokio-postgres's `simple_query` collects a whole reply before returning it, so a console that streams rows
//! (or one huge one) grows memory until the poll times out. Here each row is turned into model data as it
//! arrives and the reply is abandoned at the first cap passed. The bytes are counted below tokio-postgres
//! ([`crate::conn::inspect::Received`]), which also bounds each message to [`MESSAGE_LIMIT`]; tokio-postgres
//! reads ahead of this reader by at most a batch, since it stops reading while a reply's channel is full.

use futures_util::TryStreamExt;
use tokio_postgres::{SimpleQueryMessage, SimpleQueryRow, SimpleQueryStream};

use crate::conn::inspect::Received;

/// Rows kept per answer (every SHOW together) at most: a pooler's `max_client_conn` bounds them already; this
/// bounds a hostile one.
pub const MAX_ROWS: usize = 100_000;

/// Bytes read per answer at most (protocol bytes, every SHOW together). A real `SHOW CLIENTS` row is 200 to 400
/// bytes, so this holds some 40,000 clients or more; what is kept of them in memory is at most as much (each
/// value is also cut at [`super::rows::MAX_VALUE_CHARS`]), and several copies of a snapshot are alive at once.
pub const MAX_BYTES: u64 = 16 << 20;

/// Longest message accepted from a console: a row of `SHOW CLIENTS` is well under a KiB.
pub const MESSAGE_LIMIT: usize = 256 << 10;

/// Which cap ended a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Rows,
    Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    Truncated(Cap),
}

/// What is left of one answer's allowance, shared by its SHOWs.
pub struct Budget {
    received: Received,
    max_rows: usize,
    rows: usize,
    /// `received` may reach this many bytes.
    byte_limit: u64,
}

impl Budget {
    pub fn new(received: &Received, max_rows: usize, max_bytes: u64) -> Budget {
        Budget {
            received: received.clone(),
            max_rows,
            rows: 0,
            byte_limit: received.bytes().saturating_add(max_bytes),
        }
    }

    pub fn rows_read(&self) -> u64 {
        self.rows as u64
    }

    fn over_bytes(&self) -> bool {
        self.received.bytes() > self.byte_limit
    }
}

/// Read one reply to its end, handing each row to `keep`, unless a cap is passed first (then the rest of the
/// reply is left unread: the caller must close the connection).
pub async fn rows(
    stream: SimpleQueryStream,
    budget: &mut Budget,
    mut keep: impl FnMut(&SimpleQueryRow),
) -> Result<Outcome, tokio_postgres::Error> {
    let mut stream = std::pin::pin!(stream);
    loop {
        if budget.over_bytes() {
            return Ok(Outcome::Truncated(Cap::Bytes));
        }
        let Some(message) = stream.try_next().await? else {
            return Ok(Outcome::Complete);
        };
        if let SimpleQueryMessage::Row(row) = message {
            if budget.rows >= budget.max_rows {
                return Ok(Outcome::Truncated(Cap::Rows));
            }
            budget.rows += 1;
            keep(&row);
        }
    }
}
