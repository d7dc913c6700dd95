//! The client side of SCRAM-SHA-1 (RFC 5802 §3), computed here from the RFC rather than with
//! the server's own code, so a test checks the server against the specification.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// After the server's first message: the client-final message and the server signature to
/// expect. `cbind`: the GS2 header plus any channel-binding data (`c=` is its base64).
pub fn scram_sha1_final(
    password: &str,
    client_first_bare: &str,
    server_first: &str,
    cbind: &[u8],
) -> (String, Vec<u8>) {
    let attr = |k: &str| {
        server_first
            .split(',')
            .find_map(|p| p.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_owned()
    };
    let (nonce, salt, iters) = (attr("r"), STANDARD.decode(attr("s")).unwrap(), attr("i"));
    let mut salted = [0u8; 20];
    pbkdf2::pbkdf2_hmac::<Sha1>(
        password.as_bytes(),
        &salt,
        iters.parse().unwrap(),
        &mut salted,
    );
    let hmac = |k: &[u8], d: &[u8]| {
        let mut m = <Hmac<Sha1> as KeyInit>::new_from_slice(k).unwrap();
        m.update(d);
        m.finalize().into_bytes().to_vec()
    };
    let client_key = hmac(&salted, b"Client Key");
    let stored = <Sha1 as sha1::Digest>::digest(&client_key);
    let without_proof = format!("c={},r={nonce}", STANDARD.encode(cbind));
    let auth_msg = format!("{client_first_bare},{server_first},{without_proof}");
    let sig = hmac(&stored, auth_msg.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
    let server_sig = hmac(&hmac(&salted, b"Server Key"), auth_msg.as_bytes());
    (
        format!("{without_proof},p={}", STANDARD.encode(proof)),
        server_sig,
    )
}
