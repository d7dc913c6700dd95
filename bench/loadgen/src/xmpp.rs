//! A minimal XMPP client: just enough for the benchmark (STARTTLS or none, SASL SCRAM-SHA-1,
//! SCRAM-SHA-256 or PLAIN, resource binding, presence, messages, answering pings and roster
//! pushes; stream management is in sm.rs). Not a general-purpose client: it trusts any certificate and reads stanzas with a
//! small top-level-element splitter.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

/// Anything a session can run over: TLS or plain TCP. Boxed so that every scenario handles
/// both with one code path (one virtual call per read or write is noise next to the syscall).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type Stream = Box<dyn Io>;

#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(format!("io: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error(msg.into()))
}

// ---------------------------------------------------------------------------------------------
// Framing: split the incoming byte stream into the stream header and top-level elements.

pub enum Event {
    /// `<stream:stream ...>`
    Open,
    /// One complete top-level element (a stanza or a nonza), as received.
    Element(Vec<u8>),
    /// `</stream:stream>`
    Close,
}

pub struct Framer {
    buf: Vec<u8>,
    pos: usize,
    /// 0 before the stream header, 1 inside the stream.
    in_stream: bool,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    pub fn new() -> Self {
        Framer {
            buf: Vec::with_capacity(16 * 1024),
            pos: 0,
            in_stream: false,
        }
    }

    /// Forget any buffered data and expect a new stream header (after STARTTLS or SASL).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.in_stream = false;
    }

    pub async fn next<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> Result<Event> {
        loop {
            if let Some(ev) = self.parse()? {
                return Ok(ev);
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            self.buf.reserve(8192);
            let n = rd.read_buf(&mut self.buf).await?;
            if n == 0 {
                return err("connection closed by server");
            }
        }
    }

    /// Try to take one event from the buffer.
    fn parse(&mut self) -> Result<Option<Event>> {
        let b = &self.buf;
        let mut i = self.pos;
        let mut depth = 0usize;
        let mut start = None;
        loop {
            // Skip text up to the next '<'.
            while i < b.len() && b[i] != b'<' {
                i += 1;
            }
            if i + 1 >= b.len() {
                return Ok(None);
            }
            let tag_start = i;
            match b[i + 1] {
                b'?' => {
                    let Some(end) = find(&b[i..], b"?>") else {
                        return Ok(None);
                    };
                    i += end + 2;
                    if depth == 0 {
                        self.pos = i;
                    }
                }
                b'!' => {
                    let Some(end) = find(&b[i..], b"-->") else {
                        return Ok(None);
                    };
                    i += end + 3;
                    if depth == 0 {
                        self.pos = i;
                    }
                }
                b'/' => {
                    let Some(end) = find(&b[i..], b">") else {
                        return Ok(None);
                    };
                    i += end + 1;
                    if depth == 0 {
                        // Closing the stream itself.
                        self.pos = i;
                        self.in_stream = false;
                        return Ok(Some(Event::Close));
                    }
                    depth -= 1;
                    if depth == 0 {
                        let s = start.unwrap_or(tag_start);
                        let el = b[s..i].to_vec();
                        self.pos = i;
                        return Ok(Some(Event::Element(el)));
                    }
                }
                _ => {
                    // Opening or empty tag; '>' may appear inside quoted attribute values.
                    let mut j = i + 1;
                    let mut quote = 0u8;
                    loop {
                        if j >= b.len() {
                            return Ok(None);
                        }
                        let c = b[j];
                        if quote != 0 {
                            if c == quote {
                                quote = 0;
                            }
                        } else if c == b'\'' || c == b'"' {
                            quote = c;
                        } else if c == b'>' {
                            break;
                        }
                        j += 1;
                    }
                    let empty = b[j - 1] == b'/';
                    let end = j + 1;
                    if !self.in_stream {
                        let name = tag_name(&b[i..end]);
                        if name == b"stream:stream" || name == b"stream" {
                            self.in_stream = true;
                            self.pos = end;
                            return Ok(Some(Event::Open));
                        }
                        return err(format!(
                            "expected a stream header, got {}",
                            String::from_utf8_lossy(&b[i..end])
                        ));
                    }
                    if depth == 0 {
                        start = Some(tag_start);
                    }
                    i = end;
                    if empty {
                        if depth == 0 {
                            let el = b[tag_start..end].to_vec();
                            self.pos = end;
                            return Ok(Some(Event::Element(el)));
                        }
                    } else {
                        depth += 1;
                    }
                }
            }
        }
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let last = hay.len() - needle.len();
    let mut i = 0;
    while i <= last {
        match hay[i..=last].iter().position(|&c| c == first) {
            None => return None,
            Some(p) => {
                i += p;
                if &hay[i..i + needle.len()] == needle {
                    return Some(i);
                }
                i += 1;
            }
        }
    }
    None
}

/// The element name of a tag starting at `el[0] == b'<'`.
pub fn tag_name(el: &[u8]) -> &[u8] {
    let rest = &el[1..];
    let end = rest
        .iter()
        .position(|&c| {
            c == b' ' || c == b'>' || c == b'/' || c == b'\t' || c == b'\n' || c == b'\r'
        })
        .unwrap_or(rest.len());
    &rest[..end]
}

/// An attribute of the element's first tag.
pub fn attr<'a>(el: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let tag_end = el.iter().position(|&c| c == b'>').unwrap_or(el.len());
    let tag = &el[..tag_end];
    for q in [b'\'', b'"'] {
        let mut pat = Vec::with_capacity(name.len() + 3);
        pat.push(b' ');
        pat.extend_from_slice(name.as_bytes());
        pat.push(b'=');
        pat.push(q);
        if let Some(p) = find(tag, &pat) {
            let v = &tag[p + pat.len()..];
            let e = v.iter().position(|&c| c == q)?;
            return Some(&v[..e]);
        }
    }
    None
}

/// The text content of the first child element `<name ...>text</name>` (no nesting).
pub fn child_text<'a>(el: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let mut open = Vec::with_capacity(name.len() + 1);
    open.push(b'<');
    open.extend_from_slice(name.as_bytes());
    let mut from = 0;
    loop {
        let p = from + find(&el[from..], &open)?;
        let after = el.get(p + open.len()).copied()?;
        if after == b'>' || after == b' ' || after == b'/' {
            let gt = p + find(&el[p..], b">")?;
            if el[gt - 1] == b'/' {
                return Some(&el[gt..gt]);
            }
            let body = &el[gt + 1..];
            let end = find(body, b"</")?;
            return Some(&body[..end]);
        }
        from = p + 1;
    }
}

fn unescape(s: &[u8]) -> String {
    String::from_utf8_lossy(s)
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

// ---------------------------------------------------------------------------------------------
// TLS: accept any certificate (loopback benchmark against self-signed certificates).

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `resume`: keep the TLS 1.3 session tickets servers send and offer them on the next
/// connection (rustls' in-memory client cache), as a reconnecting client does; off, every
/// login is a full handshake.
pub fn tls_connector(resume: bool) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    // By default every login is a full handshake: servers differ in whether they issue
    // tickets, and a first connection is the case that matters.
    if !resume {
        cfg.resumption = rustls::client::Resumption::disabled();
    }
    TlsConnector::from(Arc::new(cfg))
}

// ---------------------------------------------------------------------------------------------
// SCRAM-SHA-1 client with a per-account cache of the salted-password keys, as real clients keep:
// the load generator then spends no CPU on PBKDF2 after the first login of an account, so the
// servers' different iteration counts do not change how much CPU the client takes from them.

#[derive(Clone)]
struct Keys {
    mech: Mech,
    salt: Vec<u8>,
    iterations: u32,
    client_key: Vec<u8>,
    server_key: Vec<u8>,
}

#[derive(Default)]
pub struct KeyCache(Mutex<HashMap<String, Keys>>);

impl KeyCache {
    fn get(&self, mech: Mech, user: &str, password: &str, salt: &[u8], iterations: u32) -> Keys {
        if let Some(k) = self.0.lock().expect("key cache").get(user)
            && k.mech == mech
            && k.salt == salt
            && k.iterations == iterations
        {
            return k.clone();
        }
        let (alg, mac, len) = scram_algs(mech);
        let mut salted = vec![0u8; len];
        pbkdf2::derive(
            alg,
            std::num::NonZeroU32::new(iterations.max(1)).expect("nonzero"),
            salt,
            password.as_bytes(),
            &mut salted,
        );
        let key = hmac::Key::new(mac, &salted);
        let keys = Keys {
            mech,
            salt: salt.to_vec(),
            iterations,
            client_key: hmac::sign(&key, b"Client Key").as_ref().to_vec(),
            server_key: hmac::sign(&key, b"Server Key").as_ref().to_vec(),
        };
        self.0
            .lock()
            .expect("key cache")
            .insert(user.to_string(), keys.clone());
        keys
    }
}

fn nonce() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 18];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("random");
    B64.encode(b).replace('+', "-").replace('/', "_")
}

// ---------------------------------------------------------------------------------------------
// Logging in.

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mech {
    ScramSha1,
    ScramSha256,
    Plain,
}

/// PBKDF2, HMAC and digest for a SCRAM variant, and the hash length.
fn scram_algs(mech: Mech) -> (pbkdf2::Algorithm, hmac::Algorithm, usize) {
    match mech {
        Mech::ScramSha256 => (pbkdf2::PBKDF2_HMAC_SHA256, hmac::HMAC_SHA256, 32),
        _ => (
            pbkdf2::PBKDF2_HMAC_SHA1,
            hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            20,
        ),
    }
}

pub struct LoginParams<'a> {
    pub addr: &'a str,
    pub domain: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    pub resource: &'a str,
    pub mech: Mech,
    /// `None`: no STARTTLS, the whole session in clear text (the server must allow it).
    pub tls: Option<&'a TlsConnector>,
    /// Local address to bind before connecting: spreading clients over 127.0.0.x gives each
    /// source address its own ephemeral port range, so more than ~28k (one range) connections
    /// to one server port are possible.
    pub src: Option<IpAddr>,
    pub keys: &'a KeyCache,
}

/// A bound session.
pub struct Session {
    pub stream: Stream,
    pub framer: Framer,
    pub jid: String,
    /// The TLS handshake resumed a session (a ticket from an earlier connection).
    pub resumed: bool,
    /// The features after authentication offered stream management (XEP-0198 `urn:xmpp:sm:3`).
    pub sm_offered: bool,
    /// Stream management, once `sm::enable` turned it on.
    pub sm: Option<Arc<crate::sm::SmState>>,
}

/// Write and flush: tokio-rustls may keep part of a write in its buffer when the socket is full,
/// and only a flush (or the next write) sends it.
pub async fn send<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> std::io::Result<()> {
    w.write_all(data).await?;
    w.flush().await
}

fn header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{domain}' version='1.0'>"
    )
}

async fn read_features<R: AsyncRead + Unpin>(fr: &mut Framer, rd: &mut R) -> Result<Vec<u8>> {
    match fr.next(rd).await? {
        Event::Open => {}
        Event::Close => return err("stream closed before features"),
        Event::Element(e) => {
            return err(format!(
                "expected stream header, got {}",
                String::from_utf8_lossy(&e)
            ));
        }
    }
    next_element(fr, rd).await
}

pub async fn next_element<R: AsyncRead + Unpin>(fr: &mut Framer, rd: &mut R) -> Result<Vec<u8>> {
    match fr.next(rd).await? {
        Event::Element(e) => {
            if tag_name(&e) == b"stream:error" {
                return err(format!("stream error: {}", String::from_utf8_lossy(&e)));
            }
            Ok(e)
        }
        Event::Open => err("unexpected stream header"),
        Event::Close => err("stream closed by server"),
    }
}

async fn connect(addr: &str, src: Option<IpAddr>) -> Result<TcpStream> {
    let dest: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(_) => tokio::net::lookup_host(addr)
            .await?
            .next()
            .ok_or_else(|| Error(format!("cannot resolve {addr}")))?,
    };
    let sock = if dest.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = src {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let tcp = sock.connect(dest).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// TCP (+ STARTTLS when `p.tls` is set) + SASL + bind. Does not send presence.
pub async fn login(p: &LoginParams<'_>) -> Result<Session> {
    let mut tcp = connect(p.addr, p.src).await?;
    let mut fr = Framer::new();
    let mut resumed = false;

    send(&mut tcp, header(p.domain).as_bytes()).await?;
    let feats = read_features(&mut fr, &mut tcp).await?;
    let mut s: Stream = if let Some(tls) = p.tls {
        if find(&feats, b"urn:ietf:params:xml:ns:xmpp-tls").is_none() {
            return err("server does not offer STARTTLS");
        }
        send(
            &mut tcp,
            b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
        )
        .await?;
        let proceed = next_element(&mut fr, &mut tcp).await?;
        if tag_name(&proceed) != b"proceed" {
            return err(format!(
                "STARTTLS refused: {}",
                String::from_utf8_lossy(&proceed)
            ));
        }
        let name =
            ServerName::try_from(p.domain.to_string()).map_err(|e| Error(format!("sni: {e}")))?;
        let s = tls.connect(name, tcp).await?;
        resumed = s.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        fr.reset();
        Box::new(s)
    } else {
        // Clear text: the features already read are the ones SASL is chosen from.
        Box::new(tcp)
    };

    let feats = if p.tls.is_some() {
        send(&mut s, header(p.domain).as_bytes()).await?;
        read_features(&mut fr, &mut s).await?
    } else {
        feats
    };
    match p.mech {
        Mech::ScramSha1 | Mech::ScramSha256 => scram(p, &feats, &mut fr, &mut s).await?,
        Mech::Plain => plain(p, &feats, &mut fr, &mut s).await?,
    }
    fr.reset();

    send(&mut s, header(p.domain).as_bytes()).await?;
    let feats = read_features(&mut fr, &mut s).await?;
    if find(&feats, b"urn:ietf:params:xml:ns:xmpp-bind").is_none() {
        return err("no resource binding offered");
    }
    let bind = format!(
        "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>{}</resource></bind></iq>",
        p.resource
    );
    send(&mut s, bind.as_bytes()).await?;
    let jid = loop {
        let el = next_element(&mut fr, &mut s).await?;
        if tag_name(&el) == b"iq" && attr(&el, "id") == Some(b"bind1") {
            if attr(&el, "type") != Some(b"result") {
                return err(format!("bind failed: {}", String::from_utf8_lossy(&el)));
            }
            break unescape(
                child_text(&el, "jid").ok_or_else(|| Error("bind result without jid".into()))?,
            );
        }
    };
    // Servers that still require the legacy session iq (RFC 3921) get it.
    if find(&feats, b"urn:ietf:params:xml:ns:xmpp-session").is_some()
        && find(&feats, b"<optional").is_none()
    {
        send(&mut s, b"<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
            .await?;
        loop {
            let el = next_element(&mut fr, &mut s).await?;
            if tag_name(&el) == b"iq" && attr(&el, "id") == Some(b"sess1") {
                break;
            }
        }
    }
    Ok(Session {
        stream: s,
        framer: fr,
        jid,
        resumed,
        sm_offered: find(&feats, crate::sm::NS.as_bytes()).is_some(),
        sm: None,
    })
}

async fn scram<S: AsyncRead + AsyncWrite + Unpin>(
    p: &LoginParams<'_>,
    feats: &[u8],
    fr: &mut Framer,
    s: &mut S,
) -> Result<()> {
    let name = if p.mech == Mech::ScramSha256 {
        "SCRAM-SHA-256"
    } else {
        "SCRAM-SHA-1"
    };
    if find(feats, format!(">{name}<").as_bytes()).is_none() {
        return err(format!("server does not offer {name}"));
    }
    let (_, mac, _) = scram_algs(p.mech);
    let dig = if p.mech == Mech::ScramSha256 {
        &digest::SHA256
    } else {
        &digest::SHA1_FOR_LEGACY_USE_ONLY
    };
    let cnonce = nonce();
    let first_bare = format!("n={},r={}", p.user, cnonce);
    let msg = format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{name}'>{}</auth>",
        B64.encode(format!("n,,{first_bare}"))
    );
    send(s, msg.as_bytes()).await?;
    let ch = next_element(fr, s).await?;
    if tag_name(&ch) != b"challenge" {
        return err(format!("SASL: {}", String::from_utf8_lossy(&ch)));
    }
    let text = child_text_self(&ch);
    let server_first = String::from_utf8(
        B64.decode(text.trim_ascii())
            .map_err(|e| Error(format!("challenge base64: {e}")))?,
    )
    .map_err(|_| Error("challenge not UTF-8".into()))?;
    let mut rnonce = "";
    let mut salt = Vec::new();
    let mut iters = 0u32;
    for part in server_first.split(',') {
        if let Some(v) = part.strip_prefix("r=") {
            rnonce = v;
        } else if let Some(v) = part.strip_prefix("s=") {
            salt = B64
                .decode(v)
                .map_err(|e| Error(format!("salt base64: {e}")))?;
        } else if let Some(v) = part.strip_prefix("i=") {
            iters = v.parse().map_err(|_| Error("bad iteration count".into()))?;
        }
    }
    if !rnonce.starts_with(&cnonce) || iters == 0 {
        return err(format!("bad server-first-message: {server_first}"));
    }
    let keys = p.keys.get(p.mech, p.user, p.password, &salt, iters);
    let without_proof = format!("c=biws,r={rnonce}");
    let auth_msg = format!("{first_bare},{server_first},{without_proof}");
    let stored_key = digest::digest(dig, &keys.client_key);
    let sig = hmac::sign(
        &hmac::Key::new(mac, stored_key.as_ref()),
        auth_msg.as_bytes(),
    );
    let proof: Vec<u8> = keys
        .client_key
        .iter()
        .zip(sig.as_ref())
        .map(|(a, b)| a ^ b)
        .collect();
    let msg = format!(
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
        B64.encode(format!("{without_proof},p={}", B64.encode(proof)))
    );
    send(s, msg.as_bytes()).await?;
    let ok = next_element(fr, s).await?;
    if tag_name(&ok) != b"success" {
        return err(format!("SASL failed: {}", String::from_utf8_lossy(&ok)));
    }
    let server_sig = hmac::sign(&hmac::Key::new(mac, &keys.server_key), auth_msg.as_bytes());
    let expect = format!("v={}", B64.encode(server_sig.as_ref()));
    let got = B64
        .decode(child_text_self(&ok).trim_ascii())
        .unwrap_or_default();
    if got != expect.as_bytes() {
        return err("SCRAM server signature mismatch");
    }
    Ok(())
}

async fn plain<S: AsyncRead + AsyncWrite + Unpin>(
    p: &LoginParams<'_>,
    feats: &[u8],
    fr: &mut Framer,
    s: &mut S,
) -> Result<()> {
    if find(feats, b">PLAIN<").is_none() {
        return err("server does not offer PLAIN");
    }
    let msg = format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
        B64.encode(format!("\0{}\0{}", p.user, p.password))
    );
    send(s, msg.as_bytes()).await?;
    let ok = next_element(fr, s).await?;
    if tag_name(&ok) != b"success" {
        return err(format!("SASL failed: {}", String::from_utf8_lossy(&ok)));
    }
    Ok(())
}

/// The text content of an element `<x ...>text</x>` (empty for `<x/>`).
fn child_text_self(el: &[u8]) -> &[u8] {
    let Some(gt) = find(el, b">") else { return &[] };
    if el[gt - 1] == b'/' {
        return &[];
    }
    let body = &el[gt + 1..];
    let end = find(body, b"</").unwrap_or(body.len());
    &body[..end]
}

/// Close the stream politely and wait (briefly) for the server to close its side.
pub async fn close(sess: &mut Session, wait: Duration) {
    if send(&mut sess.stream, b"</stream:stream>").await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(wait, async {
        loop {
            match sess.framer.next(&mut sess.stream).await {
                Ok(Event::Close) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    let _ = sess.stream.shutdown().await;
}

/// Close the stream and the connection without waiting for the server's side (a client that
/// logs out and goes away; the server's clean-up still happens, and is on its CPU bill).
pub async fn quit(sess: &mut Session) {
    if send(&mut sess.stream, b"</stream:stream>").await.is_ok() {
        let _ = sess.stream.shutdown().await;
    }
}

/// If `el` is a ping (or any other iq get/set) addressed to us, the reply to send.
pub fn iq_reply(el: &[u8]) -> Option<String> {
    if tag_name(el) != b"iq" {
        return None;
    }
    let ty = attr(el, "type")?;
    if ty != b"get" && ty != b"set" {
        return None;
    }
    let id = String::from_utf8_lossy(attr(el, "id").unwrap_or(b""));
    let to = attr(el, "from")
        .map(|f| format!(" to='{}'", String::from_utf8_lossy(f)))
        .unwrap_or_default();
    // Pings and roster pushes (RFC 6121 §2.1.6: a client acknowledges a push with a result)
    // get a result; anything else is refused as a client without that feature would.
    if find(el, b"urn:xmpp:ping").is_some()
        || (ty == b"set" && find(el, b"jabber:iq:roster").is_some())
    {
        Some(format!("<iq type='result' id='{id}'{to}/>"))
    } else {
        Some(format!(
            "<iq type='error' id='{id}'{to}><error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_header_and_elements() {
        let data: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' id=\"a>b\">\
            <stream:features><starttls xmlns='x'><required/></starttls></stream:features> \
            <proceed xmlns='y'/><message from='a' to=\"b\"><body>t1 s2</body></message></stream:stream>";
        let mut fr = Framer::new();
        let mut rd = data;
        assert!(matches!(fr.next(&mut rd).await.unwrap(), Event::Open));
        let Event::Element(e) = fr.next(&mut rd).await.unwrap() else {
            panic!()
        };
        assert!(e.starts_with(b"<stream:features>") && e.ends_with(b"</stream:features>"));
        let Event::Element(e) = fr.next(&mut rd).await.unwrap() else {
            panic!()
        };
        assert_eq!(e, b"<proceed xmlns='y'/>");
        let Event::Element(e) = fr.next(&mut rd).await.unwrap() else {
            panic!()
        };
        assert_eq!(attr(&e, "to"), Some(&b"b"[..]));
        assert_eq!(child_text(&e, "body"), Some(&b"t1 s2"[..]));
        assert!(matches!(fr.next(&mut rd).await.unwrap(), Event::Close));
    }
}
