//! A throwaway certificate authority for TLS tests: a CA, a server
//! certificate it signed for 127.0.0.1 (an IP SAN, as the cluster's Redis
//! certificates carry) and two client certificates, the gateway's (named
//! `gateway.counter`, as the cluster's) and the metrics scraper's (named
//! `prometheus.counter`), written as PEM files to a scratch directory
//! removed on drop.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

use crate::scratch_dir;

pub struct TestPki {
    dir: PathBuf,
    ca_cert: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    scraper_cert: PathBuf,
    scraper_key: PathBuf,
}

impl TestPki {
    /// A fresh CA (its own key: two `TestPki`s never trust each other) and a
    /// server certificate for IP 127.0.0.1 and `localhost`.
    pub fn new() -> TestPki {
        TestPki::for_names(&["127.0.0.1", "localhost"])
    }

    /// As [`TestPki::new`], the server certificate naming only `names` (IPs
    /// become IP SANs): a certificate for another host.
    pub fn for_names(names: &[&str]) -> TestPki {
        let dir = scratch_dir("pki");
        let ca_key = KeyPair::generate().expect("generating the CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name = name("Counter test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-signing the CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("generating the server key");
        let mut server_params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        server_params.distinguished_name = name("redis test server");
        let server_cert = server_params.signed_by(&server_key, &issuer).expect("signing the server certificate");

        let (client_cert, client_key) = client(&issuer, "test gateway", "gateway.counter");
        let (scraper_cert, scraper_key) = client(&issuer, "test prometheus", "prometheus.counter");

        let pki = TestPki {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            scraper_cert: dir.join("scraper.pem"),
            scraper_key: dir.join("scraper.key"),
            dir,
        };
        std::fs::write(&pki.ca_cert, ca_cert.pem()).unwrap();
        std::fs::write(&pki.server_cert, server_cert.pem()).unwrap();
        std::fs::write(&pki.server_key, server_key.serialize_pem()).unwrap();
        std::fs::write(&pki.client_cert, client_cert.pem()).unwrap();
        std::fs::write(&pki.client_key, client_key.serialize_pem()).unwrap();
        std::fs::write(&pki.scraper_cert, scraper_cert.pem()).unwrap();
        std::fs::write(&pki.scraper_key, scraper_key.serialize_pem()).unwrap();
        pki
    }

    /// The CA's certificate (PEM): what a client verifies servers against.
    pub fn ca_cert(&self) -> &Path {
        &self.ca_cert
    }

    pub fn server_cert(&self) -> &Path {
        &self.server_cert
    }

    pub fn server_key(&self) -> &Path {
        &self.server_key
    }

    /// A client certificate (clientAuth) the CA signed, and its key: the
    /// gateway's, named `gateway.counter`.
    pub fn client_cert(&self) -> &Path {
        &self.client_cert
    }

    pub fn client_key(&self) -> &Path {
        &self.client_key
    }

    /// Another client certificate the CA signed, and its key: the metrics
    /// scraper's, named `prometheus.counter`.
    pub fn scraper_cert(&self) -> &Path {
        &self.scraper_cert
    }

    pub fn scraper_key(&self) -> &Path {
        &self.scraper_key
    }

    /// `ca_cert` as a `&str`, for flags.
    pub fn ca_arg(&self) -> &str {
        self.ca_cert.to_str().expect("a UTF-8 temp dir")
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

/// A client certificate (clientAuth) ISSUER signs for DNS name SAN, and its key.
fn client(issuer: &Issuer<'_, KeyPair>, common_name: &str, san: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("generating a client key");
    let mut params = CertificateParams::new(vec![san.to_string()]).unwrap();
    params.distinguished_name = name(common_name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).expect("signing a client certificate");
    (cert, key)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
