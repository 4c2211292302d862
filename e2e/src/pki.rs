//! Certificates made inside a test: a certificate authority, and the
//! certificates it signs for servers (nats-server nodes, gateway device
//! listeners) and clients (fleetbus programs, devices). Nothing is
//! committed: every test run has its own keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio_rustls::rustls;

/// A certificate authority whose certificates only this test trusts.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its private key, in PEM.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Where an [`Issued`] was written.
#[derive(Clone, Debug)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    /// A new CA called `name`.
    pub fn new(name: &str) -> anyhow::Result<Ca> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(Ca { issuer })
    }

    /// The CA's certificate, in PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA's certificate to `path`.
    pub fn write(&self, path: &Path) -> anyhow::Result<PathBuf> {
        std::fs::write(path, self.cert_pem()).with_context(|| format!("writing {path:?}"))?;
        Ok(path.to_path_buf())
    }

    /// A certificate for `common_name`, valid for `names` (DNS names, or IP
    /// addresses such as `127.0.0.1`), usable both by a server and by a
    /// client (nats-server routes are both).
    pub fn issue(&self, common_name: &str, names: &[&str]) -> anyhow::Result<Issued> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A rustls client configuration that trusts this CA only (a device,
    /// in tests of the gateway's TLS listeners).
    pub fn client_config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone())?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

impl Issued {
    /// Writes `<stem>.pem` and `<stem>-key.pem` into `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> anyhow::Result<Files> {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}-key.pem"));
        std::fs::write(&cert, &self.cert_pem).with_context(|| format!("writing {cert:?}"))?;
        std::fs::write(&key, &self.key_pem).with_context(|| format!("writing {key:?}"))?;
        Ok(Files { cert, key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_verify_against_their_ca_only() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let ca = Ca::new("test ca").unwrap();
        let other = Ca::new("other ca").unwrap();
        let leaf = ca.issue("n1", &["127.0.0.1", "localhost"]).unwrap();
        let der: CertificateDer<'static> =
            rustls::pki_types::pem::PemObject::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        for (trusted, ok) in [(&ca, true), (&other, false)] {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(trusted.issuer.der().clone()).unwrap();
            let roots = Arc::new(roots);
            let server = rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots.clone(),
                provider.clone(),
            )
            .build()
            .unwrap();
            let name = ServerName::try_from("127.0.0.1").unwrap();
            let as_server = server.verify_server_cert(&der, &[], &name, &[], UnixTime::now());
            assert_eq!(as_server.is_ok(), ok, "{as_server:?}");
            let client = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots,
                provider.clone(),
            )
            .build()
            .unwrap();
            let as_client = client.verify_client_cert(&der, &[], UnixTime::now());
            assert_eq!(as_client.is_ok(), ok, "{as_client:?}");
        }
    }
}
