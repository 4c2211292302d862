//! TLS for devices: a listener's certificate chain and key, read from PEM
//! files and read again whenever they change, so a renewed certificate
//! (certbot, cert-manager, an operator's copy) is served to every new
//! connection without restarting the gateway. Connections already open
//! keep the certificate they were made with.
//!
//! A pair that does not load (a half-written file, a key that does not
//! match the certificate) is refused with a reason and the previous pair
//! stays in use: a bad renewal never takes devices offline.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no usable PEM private key: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the key in {key} does not belong to the certificate in {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// The files of one TLS listener and what was last loaded from them.
pub struct DeviceTls {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The bytes of both files at the last load attempt, to notice change.
    seen: Mutex<(Vec<u8>, Vec<u8>)>,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for DeviceTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTls")
            .field("cert", &self.cert_path)
            .field("key", &self.key_path)
            .finish()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A certificate's `notAfter`, Unix seconds.
fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

/// A certificate chain and its key from PEM bytes, checked to belong
/// together.
fn certified(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key {
        path: key_path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let pair = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
            reason: e.to_string(),
        },
        other => TlsError::Key {
            path: key_path.to_path_buf(),
            reason: other.to_string(),
        },
    })?;
    Ok(pair)
}

impl DeviceTls {
    /// Loads `cert` (a PEM chain, the device-facing certificate first) and
    /// `key` (PEM, PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<DeviceTls>, TlsError> {
        let (cert_pem, key_pem) = (read(cert)?, read(key)?);
        let pair = certified(cert, &cert_pem, key, &key_pem)?;
        Ok(Arc::new_cyclic(|me: &std::sync::Weak<DeviceTls>| {
            let me = me.clone();
            let resolver = Lazy(me);
            let config = rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(resolver));
            DeviceTls {
                cert_path: cert.to_path_buf(),
                key_path: key.to_path_buf(),
                current: RwLock::new(Arc::new(pair)),
                seen: Mutex::new((cert_pem, key_pem)),
                acceptor: TlsAcceptor::from(Arc::new(config)),
            }
        }))
    }

    /// When the certificate in use expires (its `notAfter`, Unix seconds),
    /// if it can be read.
    pub fn expires_at(&self) -> Option<i64> {
        let pair = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        not_after(pair.cert.first()?)
    }

    /// What accepts a device's TLS connection, with the current pair.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Reads both files; if either changed since the last attempt, loads
    /// them and serves the new pair from the next handshake on. `Ok(true)`:
    /// a new pair is in use; `Ok(false)`: nothing changed; an error: the
    /// files changed but do not load, and the previous pair stays.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let (cert_pem, key_pem) = (read(&self.cert_path)?, read(&self.key_path)?);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.0 == cert_pem && seen.1 == key_pem {
                return Ok(false);
            }
            // Remembered even when it fails, so a bad pair is reported once,
            // not at every check, until the files change again.
            *seen = (cert_pem.clone(), key_pem.clone());
        }
        let pair = certified(&self.cert_path, &cert_pem, &self.key_path, &key_pem)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
        Ok(true)
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }
}

/// Serves whatever [`DeviceTls`] holds at the moment of each handshake.
/// It holds its `DeviceTls` weakly: the config it sits in lives inside it.
struct Lazy(std::sync::Weak<DeviceTls>);

impl std::fmt::Debug for Lazy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceTls resolver")
    }
}

impl ResolvesServerCert for Lazy {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let tls = self.0.upgrade()?;
        let pair = tls
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Some(pair)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetbus_e2e::pki::Ca;

    #[test]
    fn loads_a_pair_and_reloads_only_a_changed_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("t").unwrap();
        let first = ca
            .issue("gw", &["localhost"])
            .unwrap()
            .write(dir.path(), "gw")
            .unwrap();
        let tls = DeviceTls::load(&first.cert, &first.key).unwrap();
        // rcgen's default validity ends in 4096.
        let expiry = tls.expires_at().unwrap();
        assert_eq!(expiry, 67_090_118_400, "4096-01-01T00:00:00Z");
        let serial = |t: &DeviceTls| t.current.read().unwrap().cert[0].to_vec();
        let before = serial(&tls);
        assert!(!tls.reload_if_changed().unwrap(), "nothing changed");

        // A key that is not the certificate's: refused, the old pair stays.
        let other = ca.issue("gw", &["localhost"]).unwrap();
        std::fs::write(&first.key, &other.key_pem).unwrap();
        let err = tls.reload_if_changed().unwrap_err();
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
        assert_eq!(serial(&tls), before);
        assert!(
            !tls.reload_if_changed().unwrap(),
            "a bad pair is reported once"
        );

        // The matching certificate arrives: in use from now on.
        std::fs::write(&first.cert, &other.cert_pem).unwrap();
        assert!(tls.reload_if_changed().unwrap());
        assert_ne!(serial(&tls), before);

        // Garbage in place of a certificate is named.
        std::fs::write(&first.cert, "not pem").unwrap();
        assert!(matches!(
            tls.reload_if_changed().unwrap_err(),
            TlsError::NoCertificate { .. }
        ));
        let missing = DeviceTls::load(Path::new("/nonexistent.pem"), &first.key).unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent.pem"),
            "{missing}"
        );
    }
}
