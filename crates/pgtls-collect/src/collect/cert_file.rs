//! Reading the server's certificate file over SQL (`pg_read_binary_file`, superuser or granted), bounded in size
//! and time, on the collector's connection, for comparing it with the certificate the server presents.

use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::probe::on_disk::MAX_CERT_FILE;

/// Why the certificate file was not read; one line.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CertFileError {
    /// The server did not answer within the limit.
    #[error("no answer within {secs} s")]
    Late { secs: u64 },
    /// The query failed: the server's message (or the driver's), and the SQLSTATE when the server sent one.
    #[error("{message}")]
    Sql { message: String, code: Option<SqlState> },
}

impl CertFileError {
    fn from_driver(e: &tokio_postgres::Error) -> CertFileError {
        CertFileError::Sql {
            message: e.to_string(),
            code: e.code().cloned(),
        }
    }
}

/// `ssl_cert_file` as set, and at most [`MAX_CERT_FILE`] bytes of it; or why not.
pub async fn read(client: &Client, limit: Duration) -> (Option<String>, Result<Vec<u8>, CertFileError>) {
    let said = |e: tokio_postgres::Error| match e.as_db_error() {
        Some(db) => CertFileError::Sql {
            message: db.message().to_string(),
            code: Some(db.code().clone()),
        },
        None => CertFileError::from_driver(&e),
    };
    let late = || CertFileError::Late { secs: limit.as_secs() };
    let path = match tokio::time::timeout(
        limit,
        client.query_one("SELECT pg_catalog.current_setting('ssl_cert_file')", &[]),
    )
    .await
    {
        Err(_) => return (None, Err(late())),
        Ok(Err(e)) => return (None, Err(said(e))),
        Ok(Ok(row)) => match row.try_get::<_, String>(0) {
            Ok(path) => path,
            Err(e) => return (None, Err(CertFileError::from_driver(&e))),
        },
    };
    // Relative paths resolve under the data directory, for the server and for pg_read_binary_file alike.
    let read = tokio::time::timeout(
        limit,
        client.query_one(
            "SELECT pg_catalog.pg_read_binary_file($1::pg_catalog.text, 0, $2::bigint)",
            &[&path, &MAX_CERT_FILE],
        ),
    )
    .await;
    let bytes = match read {
        Err(_) => Err(late()),
        Ok(Err(e)) => Err(said(e)),
        Ok(Ok(row)) => row.try_get::<_, Vec<u8>>(0).map_err(|e| CertFileError::from_driver(&e)),
    };
    (Some(path), bytes)
}
