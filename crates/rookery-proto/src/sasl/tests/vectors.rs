//! Published examples replayed through the machine byte for byte, and credential derivation
//! pinned against them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::sasl::{
    ChannelBindings, Credentials, HashAlg, MIN_ITERATIONS, Mechanism, SaslConfig, SaslError,
    SaslSession, ScramCredential, Step,
};

use super::Env;

/// Credentials for "pencil" with the example's salt on both hashes.
fn pencil(salt_b64: &str) -> Credentials {
    let salt = STANDARD.decode(salt_b64).unwrap();
    Credentials {
        sha1: ScramCredential::derive(HashAlg::Sha1, "pencil", &salt, 4096).unwrap(),
        sha256: ScramCredential::derive(HashAlg::Sha256, "pencil", &salt, 4096).unwrap(),
    }
}

/// Replays one example: (client-first, server nonce part, server-first, client-final,
/// server-final), with or without the XEP-0474 attribute.
fn replay(
    mech: Mechanism,
    cfg: &SaslConfig<'_>,
    creds: &Credentials,
    messages: [&str; 5],
    ssdp: bool,
) {
    let [
        client_first,
        server_nonce,
        server_first,
        client_final,
        server_final,
    ] = messages;
    let (mut session, step) =
        SaslSession::start_with_nonce(mech, Some(client_first.as_bytes()), cfg, server_nonce, ssdp);
    assert_eq!(
        step,
        Step::NeedCredentials {
            username: "user".into()
        }
    );
    assert_eq!(
        session.provide_credentials(Some(creds), cfg),
        Step::Challenge(server_first.as_bytes().to_vec())
    );
    assert_eq!(
        session.step(client_final.as_bytes(), cfg),
        Step::Success {
            username: "user".into(),
            additional_data: Some(server_final.as_bytes().to_vec()),
        }
    );
}

/// RFC 5802 §5.
#[test]
fn rfc5802_scram_sha1_example() {
    let env = Env::plaintext();
    replay(
        Mechanism::ScramSha1,
        &env.cfg(),
        &pencil("QSXCR+Q6sek8bf92"),
        [
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "3rfcNHYJY1ZVvWVs7j",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        ],
        false,
    );
}

/// RFC 7677 §3.
#[test]
fn rfc7677_scram_sha256_example() {
    let env = Env::plaintext();
    replay(
        Mechanism::ScramSha256,
        &env.cfg(),
        &pencil("W22ZaJ0SNY7soEsUEjb6gQ=="),
        [
            "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        ],
        false,
    );
}

/// XEP-0474 v0.5.0 §4.3 full example: SCRAM-SHA-1-PLUS over tls-exporter with the `h`
/// attribute in server-first and an unknown `x` extension in client-final (ignored, but signed).
#[test]
fn xep0474_scram_sha1_plus_example() {
    let bindings = ChannelBindings {
        exporter: Some(b"THIS IS FAKE CB DATA".to_vec()),
        server_end_point: Some(vec![0; 32]),
    };
    let advertised = [Mechanism::ScramSha1, Mechanism::ScramSha1Plus];
    let cfg = SaslConfig {
        domain: "example.org",
        secure: true,
        allow_plain_unencrypted: false,
        advertised: &advertised,
        bindings: &bindings,
        server_secret: b"secret",
    };
    replay(
        Mechanism::ScramSha1Plus,
        &cfg,
        &pencil("QSXCR+Q6sek8bf92"),
        [
            "p=tls-exporter,,n=user,r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6",
            "a09117a6-ac50-4f2f-93f1-93799c2bddf6",
            "r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6a09117a6-ac50-4f2f-93f1-93799c2bddf6,\
             s=QSXCR+Q6sek8bf92,i=4096,h=G6k/rBLDqgOhRRaCuuatSDFkJ08=",
            "c=cD10bHMtZXhwb3J0ZXIsLFRISVMgSVMgRkFLRSBDQiBEQVRB,\
             r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6a09117a6-ac50-4f2f-93f1-93799c2bddf6,\
             x=19C6532F-1CF4-4A27-A18D-DC9CEA41BBB3,p=M/SIDjT+dfcxUh89jZEypRvFxB4=",
            "v=MQrMPvv7yv4x4Cq4W4Ih25EqS2c=",
        ],
        true,
    );
}

/// StoredKey and ServerKey for the RFC examples' password and salts.
#[test]
fn derive_matches_rfc_vectors() {
    let salt = STANDARD.decode("QSXCR+Q6sek8bf92").unwrap();
    let c = ScramCredential::derive(HashAlg::Sha1, "pencil", &salt, 4096).unwrap();
    assert_eq!(
        hex::encode(&c.stored_key),
        "e9d94660c39d65c38fbad91c358f14da0eef2bd6"
    );
    assert_eq!(
        hex::encode(&c.server_key),
        "0fe09258b3ac852ba502cc62ba903eaacdbf7d31"
    );
    assert_eq!((c.salt, c.iterations), (salt, 4096));

    let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let c = ScramCredential::derive(HashAlg::Sha256, "pencil", &salt, 4096).unwrap();
    assert_eq!(
        hex::encode(&c.stored_key),
        "586e5df283e6dceb5c3e791d8b8528ec191e664045ce971792e2e6b5bb13e2a6"
    );
    assert_eq!(
        hex::encode(&c.server_key),
        "c1f3cbc1c13a9d35a14c0990eed97629ea225863e566a4314ab99f3f00e5d9d5"
    );
}

#[test]
fn verify_password_accepts_only_the_password() {
    let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let c = ScramCredential::derive(HashAlg::Sha256, "pencil", &salt, 4096).unwrap();
    assert!(c.verify_password(HashAlg::Sha256, "pencil"));
    assert!(!c.verify_password(HashAlg::Sha256, "Pencil"));
    assert!(!c.verify_password(HashAlg::Sha256, "pencil "));
    assert!(!c.verify_password(HashAlg::Sha256, ""));
    // Right password, wrong hash: never a match.
    assert!(!c.verify_password(HashAlg::Sha1, "pencil"));
}

/// RFC 4013 §3 examples: SASLprep maps soft hyphen to nothing and NBSP to space, and refuses
/// control characters.
#[test]
fn derive_applies_saslprep() {
    let salt = b"0123456789abcdef";
    let a = ScramCredential::derive(HashAlg::Sha256, "I\u{00AD}X", salt, 4096).unwrap();
    let b = ScramCredential::derive(HashAlg::Sha256, "IX", salt, 4096).unwrap();
    assert_eq!(a, b);
    assert!(a.verify_password(HashAlg::Sha256, "IX"));
    let nbsp = ScramCredential::derive(HashAlg::Sha256, "a\u{00A0}b", salt, 4096).unwrap();
    assert!(nbsp.verify_password(HashAlg::Sha256, "a b"));
    assert!(matches!(
        ScramCredential::derive(HashAlg::Sha256, "\u{0007}", salt, 4096),
        Err(SaslError::InvalidPassword)
    ));
    assert!(matches!(
        ScramCredential::derive(HashAlg::Sha256, "\u{00AD}", salt, 4096),
        Err(SaslError::InvalidPassword)
    ));
}

#[test]
fn derive_enforces_parameters() {
    assert!(matches!(
        ScramCredential::derive(HashAlg::Sha1, "pencil", b"salt", MIN_ITERATIONS - 1),
        Err(SaslError::TooFewIterations(4095))
    ));
    assert!(matches!(
        ScramCredential::derive(HashAlg::Sha1, "pencil", b"", MIN_ITERATIONS),
        Err(SaslError::EmptySalt)
    ));
    assert!(matches!(
        Credentials::new("pencil", 1000),
        Err(SaslError::TooFewIterations(1000))
    ));
}

#[test]
fn new_credentials_use_fresh_independent_salts() {
    let a = Credentials::new("pencil", MIN_ITERATIONS).unwrap();
    let b = Credentials::new("pencil", MIN_ITERATIONS).unwrap();
    assert_eq!(a.sha1.salt.len(), crate::sasl::SALT_LEN);
    assert_eq!(a.sha256.salt.len(), crate::sasl::SALT_LEN);
    assert_ne!(a.sha1.salt, a.sha256.salt);
    assert_ne!(a.sha256.salt, b.sha256.salt);
    assert_ne!(a.sha256.stored_key, b.sha256.stored_key);
    assert_eq!(a.sha256.iterations, MIN_ITERATIONS);
    assert_eq!(a.sha1.stored_key.len(), 20);
    assert_eq!(a.sha256.server_key.len(), 32);
    assert!(a.verify_password("pencil"));
    assert!(!a.verify_password("pencils"));
}

#[test]
fn hash_names() {
    assert_eq!(HashAlg::Sha1.name(), "SHA-1");
    assert_eq!(HashAlg::Sha256.name(), "SHA-256");
    assert_eq!(crate::sasl::DEFAULT_ITERATIONS, 10_000);
}
