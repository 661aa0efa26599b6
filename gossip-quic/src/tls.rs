//! Cluster trust: a cluster CA signs every node's certificate, and every connection is mutual
//! TLS 1.3 against that CA. A node without a certificate from the cluster's CA cannot complete
//! a handshake, so it can neither join nor inject anything.
//!
//! Every node certificate names [`CLUSTER_SERVER_NAME`] (members are reached by address,
//! before their names are known) and its node name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

/// The DNS name every node certificate carries and every client checks.
pub const CLUSTER_SERVER_NAME: &str = "gossip.cluster";

/// ALPN protocol id of the gossip QUIC transport.
pub const ALPN: &[u8] = b"gossip/1";

/// Why the TLS material could not be made or used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is missing or malformed.
        what: String,
    },
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration (for instance a key that does not match the
    /// certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client certificate verifier could not be built (an empty CA set).
    #[error("client verifier: {0}")]
    Verifier(String),
}

/// What a node needs to speak mutual TLS in its cluster: the CA certificates it trusts, and its
/// own certificate chain and key.
#[derive(Debug)]
pub struct ClusterTls {
    roots: Arc<rustls::RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for ClusterTls {
    fn clone(&self) -> Self {
        ClusterTls { roots: self.roots.clone(), chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl ClusterTls {
    /// From DER: the trusted CA certificates, this node's chain (its certificate first) and
    /// its private key.
    pub fn new(
        ca: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in ca {
            roots.add(cert)?;
        }
        Ok(ClusterTls { roots: Arc::new(roots), chain, key })
    }

    /// From PEM files, as `gossip certs` writes them.
    pub fn from_pem_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, TlsError> {
            let pem_err = |what: String| TlsError::Pem { path: path.to_owned(), what };
            let iter = CertificateDer::pem_file_iter(path).map_err(|e| pem_err(e.to_string()))?;
            let certs = iter.collect::<Result<Vec<_>, _>>().map_err(|e| pem_err(e.to_string()))?;
            if certs.is_empty() {
                return Err(pem_err("no certificate".into()));
            }
            Ok(certs)
        };
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| TlsError::Pem { path: key.to_owned(), what: e.to_string() })?;
        ClusterTls::new(certs(ca)?, certs(cert)?, key)
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// The server side: TLS 1.3, client certificates required and checked against the CA.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(self.roots.clone(), Self::provider())
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// The client side: TLS 1.3, the server checked against the CA, our certificate offered.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let mut config = rustls::ClientConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// A secret for `purpose` derived from this node's private key: the same across restarts,
    /// and only the holder of the key can derive it. The QUIC endpoint keys its stateless
    /// resets and connection ids with such secrets (see `QuicRuntime`).
    pub(crate) fn derived_secret(&self, purpose: &str) -> ring::digest::Digest {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"gossip-quic derived secret v1\0");
        ctx.update(purpose.as_bytes());
        ctx.update(b"\0");
        ctx.update(self.key.secret_der());
        ctx.finish()
    }
}

/// A cluster CA, able to sign node certificates: generated, or loaded from the files an earlier
/// `gossip certs` wrote (to add nodes to a running cluster).
pub struct ClusterCa {
    /// What issued certificates are signed as (for a loaded CA, rebuilt from its certificate:
    /// same name and key, so what it signs chains to the original).
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
    /// The CA certificate the nodes trust, as written.
    pem: String,
    der: CertificateDer<'static>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

/// A node's certificate and key, in PEM. Its `Debug` leaves the key out.
pub struct NodeCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCert").field("cert_pem", &self.cert_pem).field("key_pem", &"[secret key elided]").finish()
    }
}

impl ClusterCa {
    /// A fresh CA (ECDSA P-256) named `name`.
    pub fn generate(name: &str) -> Result<Self, TlsError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        let (pem, der) = (cert.pem(), cert.der().clone());
        Ok(ClusterCa { cert, key, pem, der })
    }

    /// The CA that `cert_pem` (its certificate) and `key_pem` (its private key) hold, as
    /// `gossip certs` writes them to `ca.pem` and `ca.key`: certificates it issues are trusted
    /// by the nodes already running with that `ca.pem`.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        ClusterCa::load(cert_pem, key_pem, Path::new("<CA certificate>"), Path::new("<CA key>"))
    }

    /// [`ClusterCa::from_pem`] from files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            let bytes = std::fs::read(path).map_err(|source| TlsError::Io { path: path.to_owned(), source })?;
            String::from_utf8(bytes).map_err(|_| TlsError::Pem { path: path.to_owned(), what: "not PEM text".into() })
        };
        ClusterCa::load(&read(cert)?, &read(key)?, cert, key)
    }

    /// Loads a CA; errors name `cert_path` or `key_path`.
    fn load(cert_pem: &str, key_pem: &str, cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let refused = |path: &Path, what: &str| TlsError::Pem { path: path.to_owned(), what: what.to_owned() };
        let der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|_| refused(cert_path, "no certificate"))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&der)
            .map_err(|_| refused(cert_path, "the certificate does not parse"))?;
        if !parsed.is_ca() {
            return Err(refused(cert_path, "not a CA certificate (no CA basic constraint)"));
        }
        let key = rcgen::KeyPair::from_pem(key_pem)
            .map_err(|e| refused(key_path, &format!("no usable private key (PKCS#8 PEM): {e}")))?;
        if parsed.public_key().raw != key.public_key_der().as_slice() {
            return Err(refused(key_path, "not the private key of the CA certificate"));
        }
        let cert = rcgen::CertificateParams::from_ca_cert_der(&der)
            .and_then(|params| params.self_signed(&key))
            .map_err(|e| refused(cert_path, &format!("cannot sign as this CA: {e}")))?;
        // What is signed names the CA as its issuer by the subject rebuilt from the certificate;
        // webpki compares names byte for byte, so a name rcgen cannot rebuild exactly (several
        // values of one attribute, unusual string types) would issue certificates nobody trusts.
        let same_subject = x509_parser::parse_x509_certificate(cert.der())
            .is_ok_and(|(_, rebuilt)| rebuilt.subject().as_raw() == parsed.subject().as_raw());
        if !same_subject {
            return Err(refused(
                cert_path,
                "the CA's name cannot be reproduced exactly; issue from the tool that made it",
            ));
        }
        Ok(ClusterCa { cert, key, pem: cert_pem.to_owned(), der })
    }

    /// The CA certificate, PEM (what every node trusts).
    pub fn cert_pem(&self) -> String {
        self.pem.clone()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.der.clone()
    }

    /// The CA's private key, PEM (keep it off the nodes).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A certificate for node `name`, signed by this CA.
    pub fn issue(&self, name: &str) -> Result<NodeCert, TlsError> {
        let key = rcgen::KeyPair::generate()?;
        let mut sans = vec![CLUSTER_SERVER_NAME.to_owned()];
        if rcgen::Ia5String::try_from(name).is_ok() && !name.contains(':') {
            sans.push(name.to_owned());
        }
        let mut params = rcgen::CertificateParams::new(sans)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(NodeCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// [`ClusterTls`] for node `name`, issued by this CA (for tests and demos).
    pub fn node_tls(&self, name: &str) -> Result<ClusterTls, TlsError> {
        let issued = self.issue(name)?;
        let pem = |what: &str| TlsError::Pem { path: PathBuf::from("<generated>"), what: what.into() };
        let cert = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).map_err(|_| pem("certificate"))?;
        let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).map_err(|_| pem("key"))?;
        ClusterTls::new(vec![self.cert_der()], vec![cert], key)
    }
}

/// Writes `contents` to `path`, as a [`TlsError`] on failure.
pub fn write_pem(path: &Path, contents: &str) -> Result<(), TlsError> {
    std::fs::write(path, contents).map_err(|source| TlsError::Io { path: path.to_owned(), source })
}

/// Writes a private key to `path`, readable by its owner only (mode 0600 on Unix, also when
/// the file existed with wider permissions).
pub fn write_private_pem(path: &Path, contents: &str) -> Result<(), TlsError> {
    let io = |source| TlsError::Io { path: path.to_owned(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
    }
    let mut file = options.open(path).map_err(io)?;
    std::io::Write::write_all(&mut file, contents.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_loads_from_its_pem_and_refuses_a_wrong_key_or_a_node_certificate() {
        let ca = ClusterCa::generate("c").expect("CA");
        let other = ClusterCa::generate("d").expect("CA");
        let loaded = ClusterCa::from_pem(&ca.cert_pem(), &ca.key_pem()).expect("loads");
        assert_eq!((loaded.cert_pem(), loaded.cert_der()), (ca.cert_pem(), ca.cert_der()));
        assert!(loaded.issue("n1").is_ok());
        let wrong_key = ClusterCa::from_pem(&ca.cert_pem(), &other.key_pem());
        assert!(matches!(&wrong_key, Err(TlsError::Pem { what, .. }) if what.contains("not the private key")));
        let node = ca.issue("n2").expect("issued");
        let not_ca = ClusterCa::from_pem(&node.cert_pem, &node.key_pem);
        assert!(matches!(&not_ca, Err(TlsError::Pem { what, .. }) if what.contains("not a CA")));
        assert!(matches!(ClusterCa::from_pem("junk", &ca.key_pem()), Err(TlsError::Pem { .. })));
        assert!(matches!(ClusterCa::from_pem(&ca.cert_pem(), "junk"), Err(TlsError::Pem { .. })));
    }

    #[cfg(unix)]
    #[test]
    fn private_keys_are_written_for_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("gossip-quic-key-test-{}.key", std::process::id()));
        std::fs::write(&path, "old").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private_pem(&path, "secret").expect("written");
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        let contents = std::fs::read_to_string(&path).expect("read");
        std::fs::remove_file(&path).expect("remove");
        assert_eq!((mode, contents.as_str()), (0o600, "secret"));
    }
}
