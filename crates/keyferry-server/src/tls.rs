//! TLS for the KMS listener: rustls on aws-lc-rs, PEM certificate chain and key, optional client
//! certificates (mTLS), and reload on SIGHUP (a failed reload keeps the previous configuration).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, anyhow};
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use zeroize::Zeroizing;

/// Where the TLS files are.
#[derive(Debug, Clone)]
pub struct TlsPaths {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates that client certificates must chain to; `None`: no client certificates.
    pub client_ca: Option<PathBuf>,
}

/// The current TLS configuration, swapped atomically by [`TlsState::reload`].
pub struct TlsState {
    paths: TlsPaths,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsState {
    /// Load the files; any problem is an error naming the file.
    pub fn load(paths: TlsPaths) -> anyhow::Result<TlsState> {
        let cfg = build(&paths)?;
        Ok(TlsState {
            paths,
            current: RwLock::new(Arc::new(cfg)),
        })
    }

    /// The configuration new connections use.
    pub fn config(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-read the files; on error the previous configuration stays in use.
    pub fn reload(&self) -> anyhow::Result<()> {
        let cfg = Arc::new(build(&self.paths)?);
        match self.current.write() {
            Ok(mut g) => *g = cfg,
            Err(p) => *p.into_inner() = cfg,
        }
        Ok(())
    }

    /// Whether client certificates are required.
    pub fn mutual(&self) -> bool {
        self.paths.client_ca.is_some()
    }
}

fn read_certs(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem =
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{what} {} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(anyhow!(
            "{what} {} holds no PEM CERTIFICATE block",
            path.display()
        ));
    }
    Ok(certs)
}

fn build(paths: &TlsPaths) -> anyhow::Result<ServerConfig> {
    let certs = read_certs(&paths.cert, "TLS certificate file")?;
    let key_pem = Zeroizing::new(
        std::fs::read(&paths.key)
            .with_context(|| format!("cannot read TLS key file {}", paths.key.display()))?,
    );
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        anyhow!(
            "TLS key file {} holds no usable PEM private key: {e}",
            paths.key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &paths.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(ca, "TLS client CA file")? {
                roots
                    .add(c)
                    .map_err(|e| anyhow!("TLS client CA file {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| anyhow!("TLS client CA file {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| {
        anyhow!(
            "TLS certificate {} and key {} do not fit together: {e}",
            paths.cert.display(),
            paths.key.display()
        )
    })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}
