mod common;
use pgtls::lab::certs::{CertSpec, issue, issue_for_key};
use pgtls::lab::SUPERUSER;
#[tokio::test]
async fn show() {
    let lab = common::lab().await;
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let old = issue(&CertSpec::ca("Old Root"), None).unwrap();
    let new = issue(&CertSpec::ca("New Root"), None).unwrap();
    let k = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let io = issue_for_key(&CertSpec::ca("Intermediate"), k.clone(), Some(&old)).unwrap();
    let inew = issue_for_key(&CertSpec::ca("Intermediate"), k, Some(&new)).unwrap();
    let leaf = issue(&CertSpec::server("localhost", &["localhost"], &["127.0.0.1"]), Some(&io)).unwrap();
    lab.use_server_chain(&leaf, &[io.cert.clone()]).await.unwrap();
    let b1 = dir.path().join("new.pem"); std::fs::write(&b1, new.cert.to_pem().unwrap()).unwrap();
    let b2 = dir.path().join("newint.pem"); let mut v = new.cert.to_pem().unwrap(); v.extend(inew.cert.to_pem().unwrap()); std::fs::write(&b2, v).unwrap();
    let b3 = dir.path().join("old.pem"); std::fs::write(&b3, old.cert.to_pem().unwrap()).unwrap();
    let port = lab.clone_for_clients().port;
    for ci in [format!("host=127.0.0.1 port={port} user={SUPERUSER}"), format!("host=wrong hostaddr=127.0.0.1 port={port} user={SUPERUSER}")] {
    let out = common::pgtls(&["probe", &ci, "--bundle", &b1.display().to_string(), "--bundle", &b2.display().to_string(), "--bundle", &b3.display().to_string()], home.path());
    println!("{}\n{}\nexit {:?}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr), out.status.code());
    }
}
