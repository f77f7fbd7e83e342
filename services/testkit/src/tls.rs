//! A throwaway certificate authority for TLS tests: a CA, a server
//! certificate it signed for 127.0.0.1 (an IP SAN, as the cluster's Redis
//! certificates carry) and a client certificate, written as PEM files to a
//! scratch directory removed on drop.

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

        let client_key = KeyPair::generate().expect("generating the client key");
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params.distinguished_name = name("test client");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params.signed_by(&client_key, &issuer).expect("signing the client certificate");

        let pki = TestPki {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            dir,
        };
        std::fs::write(&pki.ca_cert, ca_cert.pem()).unwrap();
        std::fs::write(&pki.server_cert, server_cert.pem()).unwrap();
        std::fs::write(&pki.server_key, server_key.serialize_pem()).unwrap();
        std::fs::write(&pki.client_cert, client_cert.pem()).unwrap();
        std::fs::write(&pki.client_key, client_key.serialize_pem()).unwrap();
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

    /// A client certificate (clientAuth) the CA signed, and its key.
    pub fn client_cert(&self) -> &Path {
        &self.client_cert
    }

    pub fn client_key(&self) -> &Path {
        &self.client_key
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
