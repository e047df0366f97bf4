//! `sluice cluster --tls`: HTTPS with the cluster's own CA and a client-certificate user, as a
//! real control plane is reached.
//!
//! At start the cluster makes a CA, a serving certificate for `127.0.0.1` and `localhost`, and
//! one client certificate (CN `sluice-admin`, O `system:masters`, as kubeadm's admin user),
//! all signed by that CA; the kubeconfig it writes carries the CA and the client pair. The
//! server asks every TLS client for a certificate and accepts only those signed by its CA. As
//! kube-apiserver's x509 authenticator, the certificate's Common Name is the user name and its
//! Organizations are the groups. A client that presents no certificate completes the handshake
//! (as with kube-apiserver, where the certificate is optional at the TLS layer) and then gets
//! `401 Unauthorized` on every request: kube-apiserver's answer when anonymous authentication
//! is off. Nothing is authorized beyond authentication: every authenticated user may do
//! everything (there is no RBAC in the embedded cluster).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// The user name in the client certificate the cluster writes into its kubeconfig.
pub const ADMIN_USER: &str = "sluice-admin";
/// The group in that certificate.
pub const ADMIN_GROUP: &str = "system:masters";

/// A TLS handshake that has not finished by then is dropped (a stuck or silent peer).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the certificates or the TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating a certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("configuring TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("configuring client-certificate verification: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("reading the listener's address: {0}")]
    Io(#[from] std::io::Error),
}

/// The cluster's CA and the certificates it issued, in PEM.
pub struct Pki {
    pub ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
    pub client_pem: String,
    pub client_key_pem: String,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the keys.
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

impl Pki {
    /// A new CA, a serving certificate for 127.0.0.1/localhost, and the admin client
    /// certificate.
    pub fn generate() -> Result<Self, TlsError> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "sluice-ca");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate()?;
        let mut server = CertificateParams::new(vec!["localhost".to_string()])?;
        server
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        server
            .distinguished_name
            .push(DnType::CommonName, "sluice-apiserver");
        server.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server.signed_by(&server_key, &issuer)?;

        let client_key = KeyPair::generate()?;
        let client = client_params(ADMIN_USER, &[ADMIN_GROUP])?;
        let client_cert = client.signed_by(&client_key, &issuer)?;

        Ok(Self {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            server_der: server_cert.der().clone(),
            server_key_der: server_key.serialize_der(),
            client_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        })
    }

    /// The rustls server configuration: this serving certificate, client certificates
    /// verified against this CA and optional at the TLS layer, HTTP/1.1 (what every client
    /// of the embedded cluster speaks over it).
    fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.server_der.clone()], key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// The subject of a client certificate: CN the user name, each O a group (at most two:
/// rcgen keeps one value per attribute type, so the second goes in under O's OID spelt as a
/// custom type).
fn client_params(user: &str, groups: &[&str]) -> Result<CertificateParams, rcgen::Error> {
    const ORGANIZATION: [u64; 4] = [2, 5, 4, 10];
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, user);
    assert!(
        groups.len() <= 2,
        "at most two groups in a client certificate"
    );
    if let Some(a) = groups.first() {
        p.distinguished_name.push(DnType::OrganizationName, *a);
    }
    if let Some(b) = groups.get(1) {
        p.distinguished_name
            .push(DnType::CustomDnType(ORGANIZATION.to_vec()), *b);
    }
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(p)
}

/// `base64` of a PEM text, as kubeconfig's `*-data` fields hold it.
pub fn kubeconfig_data(pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem)
}

/// Who made a request, from a verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// The user of a verified client certificate (DER): the first Common Name, every
/// Organization. `None` when the certificate has no Common Name, as kube-apiserver refuses
/// one without a user name.
pub fn user_of(der: &[u8]) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|n| !n.is_empty())?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    Some(User { name, groups })
}

/// A TLS connection's peer: its address and, when it presented a certificate the server
/// verified, its user.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub user: Option<User>,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Accepts TCP connections and completes their TLS handshakes concurrently (a slow client
/// never holds up the next one), handing finished connections to the HTTP server.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, Peer)>,
}

impl TlsListener {
    /// Serve TLS with `pki` on `tcp` until `shutdown`.
    pub fn new(tcp: TcpListener, pki: &Pki, shutdown: CancellationToken) -> Result<Self, TlsError> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(pki.server_config()?));
        let (tx, ready) = mpsc::channel(256);
        tokio::spawn(accept_loop(tcp, acceptor, tx, shutdown));
        Ok(Self { local, ready })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, Peer)>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tx.closed() => return,
            a = tcp.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accepting a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // As kube-apiserver does: small watch-event writes must not wait for a delayed ACK.
        let _ = stream.set_nodelay(true);
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%addr, "TLS handshake timed out");
                    return;
                }
            };
            let user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| user_of(leaf));
            let _ = tx.send((tls, Peer { addr, user })).await;
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop ended (shutdown): wait for the server to stop calling.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.local,
            user: None,
        })
    }
}

/// kube-apiserver with anonymous authentication off: a request without a verified client
/// certificate gets 401 and the `Unauthorized` Status; an authenticated one carries its
/// [`User`] on to the handlers.
pub async fn authenticate(
    ConnectInfo(peer): ConnectInfo<Peer>,
    mut req: Request,
    next: Next,
) -> Response {
    match peer.user {
        Some(user) => {
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        None => unauthorized(),
    }
}

fn unauthorized() -> Response {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    });
    (
        StatusCode::UNAUTHORIZED,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_certificate_names_the_user_by_cn_and_the_groups_by_o() {
        let key = KeyPair::generate().unwrap();
        let cases: [(&str, &[&str]); 3] = [
            ("sluice-admin", &["system:masters"]),
            ("jane", &["dev", "ops"]),
            ("robot", &[]),
        ];
        for (name, groups) in cases {
            let cert = client_params(name, groups)
                .unwrap()
                .self_signed(&key)
                .unwrap();
            assert_eq!(
                user_of(cert.der()),
                Some(User {
                    name: name.to_string(),
                    groups: groups.iter().map(|g| g.to_string()).collect(),
                }),
                "{name}"
            );
        }
    }

    #[test]
    fn a_certificate_without_a_common_name_is_no_user() {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        let cert = p.self_signed(&key).unwrap();
        assert_eq!(user_of(cert.der()), None);
        assert_eq!(user_of(b"not a certificate"), None);
    }

    #[test]
    fn the_generated_pki_makes_a_server_configuration() {
        let pki = Pki::generate().unwrap();
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pki.client_key_pem.contains("PRIVATE KEY"));
        let (_, client_der) = rustls_pem_first(&pki.client_pem);
        assert_eq!(
            user_of(&client_der).map(|u| (u.name, u.groups)),
            Some((ADMIN_USER.to_string(), vec![ADMIN_GROUP.to_string()]))
        );
        pki.server_config().unwrap();
    }

    /// The DER of the first PEM block.
    fn rustls_pem_first(pem: &str) -> (String, Vec<u8>) {
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        let der = base64::engine::general_purpose::STANDARD
            .decode(&body)
            .unwrap();
        (body, der)
    }
}
