//! A minimal SCRAM client (RFC 5802 §3 client side) for driving the server machine. It shares
//! only the primitive H/HMAC/Hi functions with the server (those are pinned by the RFC vectors
//! in `vectors.rs`); message construction and parsing are written independently here.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::sasl::HashAlg;
use crate::sasl::crypto;

/// The client's channel-binding choice (the gs2-cbind-flag).
#[derive(Debug, Clone)]
pub(crate) enum Binding {
    /// `n`: client does not support channel binding.
    None,
    /// `y`: client supports it but thinks the server does not.
    ClientOnly,
    /// `p=<name>` with the binding data the client sees on its side of the TLS connection.
    Bound(&'static str, Vec<u8>),
}

pub(crate) struct ScramClient {
    alg: HashAlg,
    username: String,
    password: String,
    authzid: Option<String>,
    binding: Binding,
    nonce: String,
    server_signature: Option<Vec<u8>>,
    /// The XEP-0474 `h` attribute of the last server-first-message, if any.
    pub ssdp: Option<String>,
}

impl ScramClient {
    pub fn new(alg: HashAlg, username: &str, password: &str) -> Self {
        let nonce = hex::encode(crypto::random_bytes(16).unwrap());
        ScramClient {
            alg,
            username: username.to_owned(),
            password: password.to_owned(),
            authzid: None,
            binding: Binding::None,
            nonce,
            server_signature: None,
            ssdp: None,
        }
    }

    pub fn binding(mut self, binding: Binding) -> Self {
        self.binding = binding;
        self
    }

    pub fn authzid(mut self, authzid: &str) -> Self {
        self.authzid = Some(authzid.to_owned());
        self
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    fn gs2_header(&self) -> String {
        let flag = match &self.binding {
            Binding::None => "n".to_owned(),
            Binding::ClientOnly => "y".to_owned(),
            Binding::Bound(name, _) => format!("p={name}"),
        };
        let authzid = match &self.authzid {
            Some(a) => format!("a={}", escape(a)),
            None => String::new(),
        };
        format!("{flag},{authzid},")
    }

    fn bare(&self) -> String {
        format!("n={},r={}", escape(&self.username), self.nonce)
    }

    pub fn first_message(&self) -> Vec<u8> {
        format!("{}{}", self.gs2_header(), self.bare()).into_bytes()
    }

    /// Computes the client-final-message for `server_first`, checking what a client must
    /// check: the combined nonce extends ours, the salt decodes, the count is sane.
    pub fn final_message(&mut self, server_first: &[u8]) -> Result<Vec<u8>, String> {
        let sf = std::str::from_utf8(server_first).map_err(|e| e.to_string())?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attr in sf.split(',') {
            let (k, v) = attr.split_once('=').ok_or("attribute without =")?;
            match k {
                "r" => nonce = Some(v.to_owned()),
                "s" => salt = Some(STANDARD.decode(v).map_err(|e| e.to_string())?),
                "i" => iterations = Some(v.parse::<u32>().map_err(|e| e.to_string())?),
                "h" => self.ssdp = Some(v.to_owned()),
                "m" => return Err("mandatory extension".into()),
                _ => {}
            }
        }
        let nonce = nonce.ok_or("no nonce")?;
        let salt = salt.ok_or("no salt")?;
        let iterations = iterations.ok_or("no iteration count")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("server nonce does not extend the client nonce".into());
        }
        let cb_data = match &self.binding {
            Binding::Bound(_, data) => data.clone(),
            _ => Vec::new(),
        };
        let mut cbind_input = self.gs2_header().into_bytes();
        cbind_input.extend_from_slice(&cb_data);
        let without_proof = format!("c={},r={nonce}", STANDARD.encode(&cbind_input));
        Ok(self
            .sign(&salt, iterations, sf, &without_proof)
            .into_bytes())
    }

    /// Appends the proof to `without_proof` (also usable to re-sign a modified message).
    pub fn sign(&mut self, salt: &[u8], iterations: u32, sf: &str, without_proof: &str) -> String {
        let alg = self.alg;
        let password = stringprep::saslprep(&self.password).unwrap();
        let salted = crypto::salted_password(alg, password.as_bytes(), salt, iterations);
        let client_key = crypto::hmac(alg, &salted, b"Client Key");
        let stored_key = crypto::hash(alg, &client_key);
        let auth_message = format!("{},{sf},{without_proof}", self.bare());
        let client_signature = crypto::hmac(alg, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = crypto::hmac(alg, &salted, b"Server Key");
        self.server_signature = Some(crypto::hmac(alg, &server_key, auth_message.as_bytes()));
        format!("{without_proof},p={}", STANDARD.encode(proof))
    }

    /// Checks the server-final-message `v=…` against the expected ServerSignature.
    pub fn verify_server_final(&self, server_final: &[u8]) -> bool {
        let Some(expected) = &self.server_signature else {
            return false;
        };
        server_final == format!("v={}", STANDARD.encode(expected)).as_bytes()
    }
}

/// saslname encoding (RFC 5802 §5.1).
pub(crate) fn escape(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}
