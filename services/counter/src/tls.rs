//! TLS settings read once at start: the CA bundle Redis connections verify
//! against (`--redis-tls-ca`), Consul's CA and client identity
//! (`CONSUL_CACERT`, `CONSUL_CLIENT_CERT` / `CONSUL_CLIENT_KEY`), and the
//! service's own HTTPS (`--tls-cert`, `--tls-key`, `--tls-client-ca`). All use
//! rustls with ring's crypto, installed once per process by
//! [`install_crypto_provider`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// Makes ring the process's rustls crypto provider; idempotent. The Consul
/// client (reqwest built without a provider of its own) needs one installed
/// before it is built, and so does any other reqwest client in the process.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err: another part of the process installed one first; it is used instead.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A PEM bundle of CA certificates, read and checked at start: at least one
/// certificate, and every one usable as a trust anchor.
#[derive(Clone)]
pub struct CaBundle {
    path: PathBuf,
    pem: Arc<[u8]>,
    certificates: usize,
}

impl CaBundle {
    /// Reads and checks `path`; the error says what is wrong, without the flag's name.
    pub fn read(path: &Path) -> Result<CaBundle, String> {
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        CaBundle::parse(path, pem)
    }

    fn parse(path: &Path, pem: Vec<u8>) -> Result<CaBundle, String> {
        let shown = path.display();
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{shown}: not a PEM certificate bundle ({e})"))?;
        if certificates.is_empty() {
            return Err(format!("{shown}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it"));
        }
        let mut roots = RootCertStore::empty();
        for (i, certificate) in certificates.iter().enumerate() {
            roots
                .add(certificate.clone())
                .map_err(|e| format!("{shown}: certificate {} is not a usable CA certificate ({e})", i + 1))?;
        }
        Ok(CaBundle { path: path.to_path_buf(), pem: pem.into(), certificates: certificates.len() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes, as read at start.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }

    pub fn certificates(&self) -> usize {
        self.certificates
    }
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle").field("path", &self.path).field("certificates", &self.certificates).finish()
    }
}

/// A client certificate and its key (PEM), presented to Consul when it
/// verifies incoming HTTPS clients. The key is never printed.
#[derive(Clone)]
pub struct ClientIdentity {
    cert: PathBuf,
    /// Certificate chain then key, the form reqwest's `Identity::from_pem` reads.
    pem: Arc<[u8]>,
}

/// A certificate chain and its key, each file read and parsed (the PEM
/// bytes kept): the error names which one is wrong, `"cert"` or `"key"`.
struct CertifiedKeyFiles {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl CertifiedKeyFiles {
    fn read(cert: &Path, key: &Path) -> Result<CertifiedKeyFiles, (&'static str, String)> {
        let read = |path: &Path| std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
        let cert_pem = read(cert).map_err(|e| ("cert", e))?;
        let key_pem = read(key).map_err(|e| ("key", e))?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ("cert", format!("{}: not a PEM certificate ({e})", cert.display())))?;
        if chain.is_empty() {
            return Err(("cert", format!("{}: no PEM certificate in it", cert.display())));
        }
        let private = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| ("key", format!("{}: no PEM private key in it ({e})", key.display())))?;
        Ok(CertifiedKeyFiles { cert_pem, key_pem, chain, key: private })
    }
}

impl ClientIdentity {
    /// Reads and checks both files. The error names which one is wrong.
    pub fn read(cert: &Path, key: &Path) -> Result<ClientIdentity, (&'static str, String)> {
        let CertifiedKeyFiles { cert_pem, key_pem, .. } = CertifiedKeyFiles::read(cert, key)?;
        let mut pem = cert_pem;
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        pem.extend_from_slice(&key_pem);
        Ok(ClientIdentity { cert: cert.to_path_buf(), pem: pem.into() })
    }

    /// The certificate chain followed by the key, PEM.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity").field("cert", &self.cert).field("key", &"<redacted>").finish()
    }
}

/// The service's own HTTPS: its certificate and key, and the CA whose client
/// certificates it believes (the gateway's and the metrics scraper's). A
/// client without a certificate may still finish the handshake, so that the
/// local Consul agent can probe `/health/*`; the routes refuse it everything
/// else ([`crate::http::server::Peer`]). A certificate of another CA fails the
/// handshake.
#[derive(Clone)]
pub struct ServerTls {
    cert: PathBuf,
    config: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    /// Reads and checks the three files. The error names which one is wrong:
    /// `"cert"`, `"key"` or `"client-ca"`.
    pub fn read(cert: &Path, key: &Path, client_ca: &Path) -> Result<ServerTls, (&'static str, String)> {
        install_crypto_provider();
        let CertifiedKeyFiles { chain, key: private, .. } = CertifiedKeyFiles::read(cert, key)?;
        let ca = CaBundle::read(client_ca).map_err(|e| ("client-ca", e))?;
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(ca.pem()).flatten() {
            roots.add(certificate).map_err(|e| ("client-ca", format!("{}: {e}", client_ca.display())))?;
        }
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
            .allow_unauthenticated()
            .build()
            .map_err(|e| ("client-ca", format!("{}: {e}", client_ca.display())))?;
        let mut config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, private)
            .map_err(|e| ("key", format!("{} does not go with {}: {e}", key.display(), cert.display())))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls { cert: cert.to_path_buf(), config: Arc::new(config) })
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("cert", &self.cert).field("key", &"<redacted>").finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_without_a_certificate_is_refused() {
        let path = Path::new("/x/ca.pem");
        let err = CaBundle::parse(path, b"hello\n".to_vec()).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec();
        let err = CaBundle::parse(path, garbage).unwrap_err();
        assert!(err.starts_with("/x/ca.pem:"), "{err}");
        let err = CaBundle::read(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(err.starts_with("cannot read /nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn installing_the_provider_twice_is_harmless() {
        install_crypto_provider();
        install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
