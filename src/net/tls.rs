//! TLS over TCP, with `rustls` (and its `ring` crypto): the server's
//! certificate and key and the client's trust, read from PEM files, and the
//! handshakes. A `tls://` endpoint carries the same byte stream as `tcp://`
//! once the handshake is done.
//!
//! # Examples
//!
//! A greeting server over TLS, with a certificate signed by a CA made on the
//! spot (with the `rcgen` crate), and a client that trusts that CA:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
//! use sockit::net::SocketOptions;
//! use sockit::net::tls::{ClientTls, server_config};
//! use sockit::{Framing, Greet, Server, StreamClient};
//!
//! // A CA, and the server's certificate it signs for 127.0.0.1: PEM files.
//! let mut ca = CertificateParams::new(Vec::<String>::new())?;
//! ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
//! let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
//! let key = KeyPair::generate()?;
//! let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])?.signed_by(&key, &ca)?;
//! let dir = std::env::temp_dir().join(format!("sockit-doc-tls-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! for (name, pem) in [("ca.pem", ca.pem()), ("cert.pem", cert.pem()), ("key.pem", key.serialize_pem())] {
//!     std::fs::write(dir.join(name), pem)?;
//! }
//!
//! let tls = server_config(&dir.join("cert.pem"), &dir.join("key.pem"))?;
//! let listener = Server::new(Greet).tls(tls).bind(&"tls://127.0.0.1:0".parse()?).await?;
//! let endpoint = listener.local_endpoint().clone();
//! tokio::spawn(listener.serve(std::future::pending()));
//!
//! let trust = ClientTls::new(Some(&dir.join("ca.pem")), false)?;
//! let options = SocketOptions::default();
//! let timeout = Duration::from_secs(5);
//! let mut client = StreamClient::connect_tls(&endpoint, Framing::Line, timeout, &options, &trust).await?;
//! assert_eq!(client.receive_greeting().await?.unwrap(), "Hello, I am server");
//! client.send(b"tls").await?;
//! assert_eq!(client.receive().await?.unwrap(), "Hello, tls!");
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::net::TcpStream;

use crate::endpoint::Host;

/// The longest a server lets a TLS handshake take: a peer that says nothing
/// cannot hold a connection (and its permit) for longer.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(sockit::net::tls::HANDSHAKE_TIMEOUT, Duration::from_secs(10));
/// ```
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a TLS setting could not be made from its files: one line naming the
/// file and what is wrong with it.
///
/// # Examples
///
/// ```
/// use sockit::net::tls::{ClientTls, TlsError};
///
/// let err = ClientTls::new(Some("/nonexistent/ca.pem".as_ref()), false).unwrap_err();
/// assert!(matches!(err, TlsError::Ca { .. }));
/// assert_eq!(err.to_string(), "CA file /nonexistent/ca.pem: No such file or directory (os error 2)");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate file cannot be read or holds no certificate.
    #[error("certificate file {}: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file cannot be read, holds no private key, or a key that
    /// does not go with the certificate.
    #[error("key file {}: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate authorities file cannot be read or holds none.
    #[error("CA file {}: {reason}", path.display())]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The system's trusted certificates could not be loaded.
    #[error("no trusted certificates found on this system ({reason}): give --ca FILE, or --insecure")]
    NoSystemRoots {
        /// What went wrong loading them.
        reason: String,
    },
    /// The name to verify the server's certificate against is not a DNS name
    /// or an IP address.
    #[error("{name:?} is not a server name (a DNS name or an IP address)")]
    BadServerName {
        /// The name given.
        name: String,
    },
}

/// The crypto every TLS setting uses: `ring`'s.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The PEM error, said plainly.
fn pem_reason(error: &pem::Error, what: &str) -> String {
    match error {
        pem::Error::Io(error) => error.to_string(),
        pem::Error::NoItemsFound => format!("no {what} found (expected a PEM file)"),
        other => format!("not a PEM file: {other}"),
    }
}

/// Reads every certificate of a PEM file, in order.
fn read_certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_reason(&e, what))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_reason(&e, what))?;
    if certs.is_empty() {
        return Err(pem_reason(&pem::Error::NoItemsFound, what));
    }
    Ok(certs)
}

/// The server's TLS setting: its certificate chain (`cert`, a PEM file with
/// the server's certificate first) and private key (`key`, PEM: PKCS#8,
/// PKCS#1 or SEC1).
///
/// # Errors
///
/// [`TlsError::Certificate`] or [`TlsError::Key`] when a file cannot be
/// read, holds nothing of its kind, or the key is not the certificate's.
///
/// # Examples
///
/// ```
/// use sockit::net::tls::server_config;
///
/// let missing = server_config("/nonexistent/cert.pem".as_ref(), "/nonexistent/key.pem".as_ref());
/// assert_eq!(
///     missing.unwrap_err().to_string(),
///     "certificate file /nonexistent/cert.pem: No such file or directory (os error 2)"
/// );
/// ```
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_certificates(cert, "certificate").map_err(|reason| TlsError::Certificate {
        path: cert.to_owned(),
        reason,
    })?;
    let key_error = |reason| TlsError::Key {
        path: key.to_owned(),
        reason,
    };
    let private_key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| key_error(pem_reason(&e, "private key")))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                key_error(format!("not the key of the certificate in {}", cert.display()))
            }
            other => key_error(other.to_string()),
        })?;
    Ok(Arc::new(config))
}

/// What a TLS client trusts, the name it asks for, and the protocols it
/// offers: built once, used for every connection.
///
/// # Examples
///
/// ```no_run
/// use sockit::net::tls::ClientTls;
///
/// let tls = ClientTls::new(Some("ca.pem".as_ref()), false)?.alpn(["greet"]);
/// # Ok::<(), sockit::net::tls::TlsError>(())
/// ```
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    /// The name to ask for and verify; by default the endpoint's host.
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .field("alpn", &self.config.alpn_protocols)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the certificate authorities in the PEM file `ca`, or with
    /// none given the system's (as OpenSSL finds them: `SSL_CERT_FILE`,
    /// `SSL_CERT_DIR`, or the distribution's bundle). A server that
    /// presents one of the certificates of `ca` itself is trusted even when
    /// that certificate says it is a CA's (`basicConstraints CA:TRUE`, as
    /// `openssl req -x509` makes them), as curl and OpenSSL trust it; it
    /// must still be within its dates and name the server (see
    /// [`ClientTls::server_name`]). With `insecure`, the server's
    /// certificate is not verified at all (its handshake signature still
    /// is): for a test server's self-signed certificate only.
    ///
    /// # Errors
    ///
    /// [`TlsError::Ca`] when `ca` cannot be read or holds no certificate
    /// or one that is not a CA's; [`TlsError::NoSystemRoots`] when neither
    /// `ca` nor `insecure` is given and the system has no trusted
    /// certificates.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::net::tls::ClientTls;
    ///
    /// // For a test server's self-signed certificate: verify nothing.
    /// let insecure = ClientTls::new(None, true)?;
    /// # drop(insecure);
    /// # Ok::<(), sockit::net::tls::TlsError>(())
    /// ```
    pub fn new(ca: Option<&Path>, insecure: bool) -> Result<Self, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions");
        let config = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(
                    provider().signature_verification_algorithms,
                )))
                .with_no_client_auth()
        } else {
            let mut roots = RootCertStore::empty();
            let mut given = Vec::new();
            match ca {
                Some(path) => {
                    let ca_error = |reason| TlsError::Ca {
                        path: path.to_owned(),
                        reason,
                    };
                    given = read_certificates(path, "certificate").map_err(ca_error)?;
                    for cert in &given {
                        roots
                            .add(cert.clone())
                            .map_err(|e| ca_error(format!("not a CA certificate: {e}")))?;
                    }
                }
                None => {
                    let found = rustls_native_certs::load_native_certs();
                    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                    if added == 0 {
                        let reason = found
                            .errors
                            .first()
                            .map_or_else(|| "none installed".to_owned(), ToString::to_string);
                        return Err(TlsError::NoSystemRoots { reason });
                    }
                }
            }
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(GivenOrChained::new(roots, given)))
                .with_no_client_auth()
        };
        Ok(ClientTls {
            config: Arc::new(config),
            server_name: None,
        })
    }

    /// Asks for `name` (SNI) and verifies the certificate against it,
    /// instead of the endpoint's host. An IP address is verified against
    /// the certificate's IP addresses, and not sent as SNI.
    ///
    /// # Errors
    ///
    /// [`TlsError::BadServerName`] when `name` is neither a DNS name nor an
    /// IP address.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::net::tls::{ClientTls, TlsError};
    ///
    /// let tls = ClientTls::new(None, true)?.server_name("example.org")?;
    /// # drop(tls);
    /// let err = ClientTls::new(None, true)?.server_name("not a name!").unwrap_err();
    /// assert!(matches!(err, TlsError::BadServerName { .. }));
    /// # Ok::<(), TlsError>(())
    /// ```
    pub fn server_name(mut self, name: &str) -> Result<Self, TlsError> {
        let parsed = ServerName::try_from(name.to_owned()).map_err(|_| TlsError::BadServerName {
            name: name.to_owned(),
        })?;
        self.server_name = Some(parsed);
        Ok(self)
    }

    /// Offers these application protocols (ALPN), most preferred first.
    ///
    /// # Examples
    ///
    /// ```
    /// use sockit::net::tls::ClientTls;
    ///
    /// let tls = ClientTls::new(None, true)?.alpn(["h2", "http/1.1"]);
    /// # drop(tls);
    /// # Ok::<(), sockit::net::tls::TlsError>(())
    /// ```
    #[must_use]
    pub fn alpn<P: AsRef<[u8]>>(mut self, protocols: impl IntoIterator<Item = P>) -> Self {
        Arc::make_mut(&mut self.config).alpn_protocols =
            protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// The name asked for on a connection to `host`.
    fn name_for(&self, host: &Host) -> io::Result<ServerName<'static>> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        match host {
            Host::Ip(ip) => Ok(ServerName::IpAddress(IpAddr::to_canonical(ip).into())),
            Host::Name(name) => ServerName::try_from(name.clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?}: {e}"))),
        }
    }

    /// Runs the client's handshake on `stream`, connected to `host`, within
    /// `timeout`.
    ///
    /// # Errors
    ///
    /// The handshake's error: a certificate not trusted is
    /// [`io::ErrorKind::InvalidData`] wrapping a [`rustls::Error`] (see
    /// [`untrusted`]); [`io::ErrorKind::TimedOut`] when it takes too long.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future drops the connection.
    ///
    /// # Examples
    ///
    /// An echo server with a self-signed certificate, reached by a client
    /// that does not verify it:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// use tokio::net::TcpStream;
    /// use sockit::net::tls::{ClientTls, server_config};
    /// use sockit::{Echo, Server};
    ///
    /// let key = rcgen::KeyPair::generate()?;
    /// let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?.self_signed(&key)?;
    /// let dir = std::env::temp_dir().join(format!("sockit-doc-tls-connect-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// std::fs::write(dir.join("cert.pem"), cert.pem())?;
    /// std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
    /// let tls = server_config(&dir.join("cert.pem"), &dir.join("key.pem"))?;
    /// std::fs::remove_dir_all(&dir)?;
    /// let listener = Server::new(Echo).tls(tls).bind(&"tls://127.0.0.1:0".parse()?).await?;
    /// let host_port = listener.local_endpoint().host_port().unwrap().clone();
    /// tokio::spawn(listener.serve(std::future::pending()));
    ///
    /// let stream = TcpStream::connect(host_port.socket_addr().unwrap()).await?;
    /// let client = ClientTls::new(None, true)?;
    /// let mut tls = client.connect(stream, host_port.host(), Duration::from_secs(5)).await?;
    /// tls.write_all(b"ping").await?;
    /// let mut reply = [0; 4];
    /// tls.read_exact(&mut reply).await?;
    /// assert_eq!(&reply, b"ping");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(
        &self,
        stream: TcpStream,
        host: &Host,
        timeout: std::time::Duration,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = self.name_for(host)?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.config));
        tokio::time::timeout(timeout, connector.connect(name, stream))
            .await
            .map_err(|_| timed_out())?
    }
}

impl ClientTls {
    /// [`ClientTls::connect`] to the `tls://` `endpoint` (its host named
    /// and verified), its failure as the library reports it:
    /// [`Error::Untrusted`](crate::Error::Untrusted) for a certificate not
    /// trusted, [`Error::Connect`](crate::Error::Connect) otherwise.
    pub(crate) async fn handshake(
        &self,
        endpoint: &crate::Endpoint,
        stream: TcpStream,
        timeout: std::time::Duration,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, crate::Error> {
        let host_port = endpoint
            .host_port()
            .expect("a tls:// endpoint has a host and port");
        self.connect(stream, host_port.host(), timeout)
            .await
            .map_err(|source| match untrusted(&source) {
                Some(reason) => crate::Error::Untrusted {
                    endpoint: endpoint.clone(),
                    reason,
                },
                None => crate::Error::Connect {
                    endpoint: endpoint.clone(),
                    source,
                },
            })
    }
}

/// Runs a client's TLS handshake on `stream` with `acceptor`, within
/// `timeout`: what `nc -l tls://` and a relay's `tls://` LISTEN do (the
/// server's connections run theirs beside the drain, in `connection::tls`).
pub(crate) async fn accept(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    timeout: std::time::Duration,
) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    tokio::time::timeout(timeout, acceptor.accept(stream))
        .await
        .map_err(|_| timed_out())?
}

/// The error of a handshake not done in time.
fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake timed out")
}

/// Why the peer's certificate was not trusted, if that is why `error` (from
/// a handshake) happened; `None` for any other failure.
///
/// # Examples
///
/// ```
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// assert_eq!(sockit::net::tls::untrusted(&refused), None);
/// ```
pub fn untrusted(error: &io::Error) -> Option<String> {
    let rustls::Error::InvalidCertificate(why) = error.get_ref()?.downcast_ref::<rustls::Error>()? else {
        return None;
    };
    Some(match why {
        // A chain that leads to no trusted authority: webpki reports the
        // last dead end it tried, which may be any of these.
        CertificateError::UnknownIssuer
        | CertificateError::BadSignature
        | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "it is not signed by an authority trusted here".to_owned()
        }
        // A server's certificate that says it is a CA's is trusted only as
        // itself (see `GivenOrChained`), and this one is not.
        CertificateError::Other(_) if is_ca_used_as_end_entity(why) => {
            "it is a CA's certificate (basicConstraints CA:TRUE), and not one trusted here".to_owned()
        }
        other => other.to_string(),
    })
}

/// What to do about a certificate not trusted for `reason` (as
/// [`untrusted`] gives it), in the words of `sockit`'s flags: for the end
/// of an error line.
///
/// # Examples
///
/// ```
/// use sockit::net::tls::untrusted_fix;
///
/// assert!(untrusted_fix("it is not signed by an authority trusted here").starts_with("give --ca"));
/// assert!(untrusted_fix("certificate not valid for name \"x\"").contains("--sni"));
/// ```
pub fn untrusted_fix(reason: &str) -> &'static str {
    // The reasons' first words are rustls' (see `untrusted`).
    if reason.starts_with("certificate not valid for name") {
        "connect by a name the certificate is valid for, or give one with --sni NAME; or --insecure for a test"
    } else if reason.starts_with("certificate expired") || reason.starts_with("certificate not valid yet") {
        "the server needs a certificate valid now (or this machine the right time); or --insecure for a test"
    } else {
        "give --ca the server's certificate or its CA; or --insecure for a test"
    }
}

/// Whether webpki refused a certificate because it says it is a CA's
/// (`basicConstraints CA:TRUE`) and was presented as a server's: its error
/// inside rustls' `Other`, found by name, without depending on webpki for
/// its type.
fn is_ca_used_as_end_entity(why: &CertificateError) -> bool {
    matches!(why, CertificateError::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity"))
}

/// The verifier of a client that trusts certificates: webpki's, which
/// wants a chain from the server's certificate to a trusted authority,
/// and also a server's certificate that is byte for byte one of those
/// `given` (in `--ca`) though it says it is a CA's (`CA:TRUE`, as `openssl
/// req -x509` makes them), which webpki refuses as a server's. curl and
/// `openssl s_client -CAfile` trust such a certificate as itself.
///
/// Taken as itself, the certificate still has to be within its dates
/// (webpki checks them before its basic constraints, so the `CA:TRUE`
/// refusal means the dates were good) and to name the server; its
/// extended key usage is not checked (webpki checks it after the basic
/// constraints). The handshake's signatures, which prove the server holds
/// its key, are checked as for any certificate.
#[derive(Debug)]
struct GivenOrChained {
    chains: Arc<WebPkiServerVerifier>,
    given: Vec<CertificateDer<'static>>,
}

impl GivenOrChained {
    /// Trusts chains to `roots` (not empty), and the certificates `given`
    /// as themselves.
    fn new(roots: RootCertStore, given: Vec<CertificateDer<'static>>) -> Self {
        let chains = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .expect("trusted certificates, and no revocation lists");
        GivenOrChained { chains, given }
    }
}

impl ServerCertVerifier for GivenOrChained {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .chains
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(why))
                if is_ca_used_as_end_entity(&why)
                    && self
                        .given
                        .iter()
                        .any(|given| given.as_ref() == end_entity.as_ref()) =>
            {
                verify_name_of_given(end_entity, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chains.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chains.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chains.supported_verify_schemes()
    }
}

/// Checks that a certificate given with `--ca` and presented by the server
/// names `server_name`: in its subjectAltName, or, when it has none (as
/// `openssl req -x509 -subj /CN=localhost` makes it), as the last common
/// name of its subject, compared whole and without case for a DNS name,
/// as curl does. The refusal names that common name.
fn verify_name_of_given(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
) -> Result<(), rustls::Error> {
    let refused = match rustls::client::verify_server_name(&ParsedCertificate::try_from(cert)?, server_name) {
        Ok(()) => return Ok(()),
        Err(refused) => refused,
    };
    let rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { expected, presented }) =
        &refused
    else {
        return Err(refused);
    };
    if !presented.is_empty() {
        return Err(refused);
    }
    let Some(common_name) = common_name(cert) else {
        return Err(refused);
    };
    if let ServerName::DnsName(name) = server_name
        && name.as_ref().eq_ignore_ascii_case(&common_name)
    {
        return Ok(());
    }
    Err(rustls::Error::InvalidCertificate(
        CertificateError::NotValidForNameContext {
            expected: expected.clone(),
            presented: vec![format!("CommonName({common_name:?})")],
        },
    ))
}

/// The last common name (CN) of a certificate's subject, when it is text:
/// just enough DER reading for [`verify_name_of_given`], done only on a
/// certificate the user gave as trusted.
fn common_name(cert: &[u8]) -> Option<String> {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const VERSION: u8 = 0xa0;
    // 2.5.4.3, id-at-commonName.
    const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    // UTF8String, PrintableString, IA5String.
    const TEXT: [u8; 3] = [0x0c, 0x13, 0x16];

    let (certificate, _) = der_expect(cert, SEQUENCE)?;
    let (mut fields, _) = der_expect(certificate, SEQUENCE)?;
    if fields.first() == Some(&VERSION) {
        fields = der_element(fields)?.2;
    }
    // The serial number, the signature algorithm, the issuer, the validity.
    for _ in 0..4 {
        fields = der_element(fields)?.2;
    }
    let (mut names, _) = der_expect(fields, SEQUENCE)?;
    let mut found = None;
    while !names.is_empty() {
        let (mut attributes, rest) = der_expect(names, SET)?;
        names = rest;
        while !attributes.is_empty() {
            let (attribute, rest) = der_expect(attributes, SEQUENCE)?;
            attributes = rest;
            let (oid, value) = der_expect(attribute, OID)?;
            if oid == COMMON_NAME {
                let (tag, text, _) = der_element(value)?;
                found = TEXT
                    .contains(&tag)
                    .then(|| String::from_utf8(text.to_vec()).ok())
                    .flatten();
            }
        }
    }
    found
}

/// The DER element at the start of `input`, if its tag is `tag`: its
/// contents, and what follows it.
fn der_expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    match der_element(input)? {
        (found, contents, rest) if found == tag => Some((contents, rest)),
        _ => None,
    }
}

/// The DER element at the start of `input`: its tag (one byte: those
/// read here are), its contents, and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let (bytes, rest) = rest.split_at_checked(usize::from(first & 0x7f))?;
            let len = bytes
                .iter()
                .fold(0_usize, |len, &byte| (len << 8) | usize::from(byte));
            (len, rest)
        }
        _ => return None,
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// A verifier that takes any certificate (`--insecure`), and checks only
/// that the peer holds its key: the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, contents: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sockit-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn leaf(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_server_config_is_made_from_a_certificate_and_its_key() {
        let (cert, key) = leaf(&["localhost"]);
        let cert = temp("ok-cert.pem", &cert);
        let key = temp("ok-key.pem", &key);
        server_config(&cert, &key).unwrap();
    }

    #[test]
    fn bad_files_are_named_with_what_is_wrong() {
        let (cert, key) = leaf(&["localhost"]);
        let (_, other_key) = leaf(&["localhost"]);
        let cert = temp("cert.pem", &cert);
        let key = temp("key.pem", &key);
        let other_key = temp("other-key.pem", &other_key);
        let empty = temp("empty.pem", "hello\n");
        let missing = Path::new("/nonexistent/sockit.pem");

        let said = |result: Result<Arc<ServerConfig>, TlsError>| result.unwrap_err().to_string();
        assert_eq!(
            said(server_config(&empty, &key)),
            format!(
                "certificate file {}: no certificate found (expected a PEM file)",
                empty.display()
            )
        );
        assert_eq!(
            said(server_config(&cert, &empty)),
            format!(
                "key file {}: no private key found (expected a PEM file)",
                empty.display()
            )
        );
        // The certificate file holds no key either.
        assert_eq!(
            said(server_config(&cert, &cert)),
            format!(
                "key file {}: no private key found (expected a PEM file)",
                cert.display()
            )
        );
        assert_eq!(
            said(server_config(&cert, &other_key)),
            format!(
                "key file {}: not the key of the certificate in {}",
                other_key.display(),
                cert.display()
            )
        );
        assert_eq!(
            said(server_config(missing, &key)),
            "certificate file /nonexistent/sockit.pem: No such file or directory (os error 2)"
        );
        assert_eq!(
            ClientTls::new(Some(&empty), false).unwrap_err().to_string(),
            format!(
                "CA file {}: no certificate found (expected a PEM file)",
                empty.display()
            )
        );
    }

    /// A self-signed certificate that says it is a CA's (`CA:TRUE`), with
    /// `names` in its subjectAltName (none: no such extension) and the
    /// common name `cn`, as `openssl req -x509 -subj /CN=…` makes one.
    fn self_signed_ca(names: &[&str], cn: &str) -> CertificateDer<'static> {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    /// A client's verifier trusting `given` (as a `--ca` file would).
    fn trusting(given: &[&CertificateDer<'static>]) -> GivenOrChained {
        let mut roots = RootCertStore::empty();
        for cert in given {
            roots.add((*cert).clone()).unwrap();
        }
        GivenOrChained::new(roots, given.iter().map(|cert| (*cert).clone()).collect())
    }

    /// What `verifier` makes of `cert` presented by the server asked for as `name`.
    fn verify(verifier: &GivenOrChained, cert: &CertificateDer<'_>, name: &str) -> Result<(), rustls::Error> {
        let name = ServerName::try_from(name).unwrap();
        verifier
            .verify_server_cert(cert, &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    /// The reason [`untrusted`] gives for a handshake that failed with `error`.
    fn reason(error: rustls::Error) -> String {
        untrusted(&io::Error::new(io::ErrorKind::InvalidData, error)).unwrap()
    }

    #[test]
    fn a_ca_certificate_given_is_trusted_as_itself_for_its_common_name() {
        let cert = self_signed_ca(&[], "localhost");
        let verifier = trusting(&[&cert]);
        verify(&verifier, &cert, "localhost").unwrap();
        verify(&verifier, &cert, "LocalHost").unwrap();
        for other in ["127.0.0.1", "localhost.example", "example.com"] {
            let refused = verify(&verifier, &cert, other).unwrap_err();
            assert_eq!(
                refused,
                rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                    expected: ServerName::try_from(other).unwrap().to_owned(),
                    presented: vec!["CommonName(\"localhost\")".to_owned()],
                }),
                "{other}"
            );
            assert_eq!(
                reason(refused),
                format!(
                    "certificate not valid for name {other:?}; certificate is only valid for CommonName(\"localhost\")"
                )
            );
        }
    }

    #[test]
    fn a_ca_certificate_with_alternative_names_is_checked_against_those_only() {
        let cert = self_signed_ca(&["localhost", "127.0.0.1"], "example.com");
        let verifier = trusting(&[&cert]);
        verify(&verifier, &cert, "localhost").unwrap();
        verify(&verifier, &cert, "127.0.0.1").unwrap();
        // Its common name does not count: it has a subjectAltName.
        let refused = verify(&verifier, &cert, "example.com").unwrap_err();
        assert!(
            matches!(
                &refused,
                rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { presented, .. })
                    if presented.len() == 2
            ),
            "{refused:?}"
        );
    }

    #[test]
    fn a_ca_certificate_not_given_is_refused_as_a_ca() {
        let given = self_signed_ca(&[], "localhost");
        let presented = self_signed_ca(&[], "localhost");
        let refused = verify(&trusting(&[&given]), &presented, "localhost").unwrap_err();
        assert_eq!(
            reason(refused),
            "it is a CA's certificate (basicConstraints CA:TRUE), and not one trusted here"
        );
    }

    #[test]
    fn a_ca_certificate_given_is_not_trusted_past_its_dates() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let cert = params
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .der()
            .clone();
        let refused = verify(&trusting(&[&cert]), &cert, "localhost").unwrap_err();
        assert!(
            matches!(
                refused,
                rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. })
            ),
            "{refused:?}"
        );
    }

    #[test]
    fn a_chain_to_a_ca_given_is_verified_as_before() {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&rcgen::KeyPair::generate().unwrap(), &ca)
            .unwrap();
        let ca = ca.der().clone();
        let verifier = trusting(&[&ca]);
        verify(&verifier, leaf.der(), "localhost").unwrap();
        assert!(verify(&verifier, leaf.der(), "example.com").is_err());
        // The CA's own certificate, presented as a server's: trusted as
        // itself, and for no server name (it has its default common name).
        assert_eq!(
            reason(verify(&verifier, &ca, "localhost").unwrap_err()),
            "certificate not valid for name \"localhost\"; certificate is only valid for \
             CommonName(\"rcgen self signed cert\")"
        );
        // Another CA's leaf.
        let refused = verify(&trusting(&[&self_signed_ca(&[], "x")]), leaf.der(), "localhost").unwrap_err();
        assert_eq!(reason(refused), "it is not signed by an authority trusted here");
    }

    #[test]
    fn the_common_name_is_read_from_the_subject() {
        assert_eq!(
            common_name(&self_signed_ca(&[], "localhost")).as_deref(),
            Some("localhost")
        );
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "sockit");
        let nameless = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
        assert_eq!(common_name(nameless.der()), None);
        // Cut short anywhere: no name, and no panic.
        let cert = self_signed_ca(&[], "localhost");
        for len in 0..cert.len() {
            assert_eq!(common_name(&cert[..len]), None, "{len}");
        }
        assert_eq!(common_name(b"\x30\x85\xff\xff\xff\xff\xff"), None);
    }

    #[test]
    fn the_server_name_is_the_host_unless_given() {
        let tls = ClientTls::new(None, true).unwrap();
        let ip: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            tls.name_for(&Host::Ip(ip)).unwrap(),
            ServerName::IpAddress("127.0.0.1".parse::<IpAddr>().unwrap().into())
        );
        assert_eq!(
            tls.name_for(&Host::Name("localhost".into())).unwrap(),
            ServerName::try_from("localhost").unwrap()
        );
        let tls = tls.server_name("example.com").unwrap();
        assert_eq!(
            tls.name_for(&Host::Ip(ip)).unwrap(),
            ServerName::try_from("example.com").unwrap()
        );
        assert_eq!(
            ClientTls::new(None, true)
                .unwrap()
                .server_name("a b")
                .unwrap_err()
                .to_string(),
            "\"a b\" is not a server name (a DNS name or an IP address)"
        );
    }
}
