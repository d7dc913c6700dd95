//! SCRAM exchanges against the test client: happy paths with and without channel binding, and
//! the attacks the machine must refuse.

use crate::sasl::{
    CbType, Credentials, HashAlg, MAX_MESSAGE_LEN, Mechanism, SaslFailure, SaslSession, Step,
    channel_binding_types, downgrade_protection_hash,
};

use super::client::{Binding, ScramClient};
use super::{
    DOMAIN, END_POINT, EXPORTER, Env, JULIET, PASSWORD, USER, assert_success, scram_first,
    scram_login,
};

const SCRAM: [(Mechanism, HashAlg); 2] = [
    (Mechanism::ScramSha1, HashAlg::Sha1),
    (Mechanism::ScramSha256, HashAlg::Sha256),
];
const PLUS: [(Mechanism, HashAlg); 2] = [
    (Mechanism::ScramSha1Plus, HashAlg::Sha1),
    (Mechanism::ScramSha256Plus, HashAlg::Sha256),
];

fn juliet(alg: HashAlg) -> ScramClient {
    ScramClient::new(alg, USER, PASSWORD)
}

fn failure(step: &Step) -> SaslFailure {
    match step {
        Step::Failure(f) => *f,
        other => panic!("expected failure, got {other:?}"),
    }
}

#[test]
fn scram_without_binding_succeeds() {
    for env in [Env::plaintext(), Env::tls13()] {
        for (mech, alg) in SCRAM {
            let mut c = juliet(alg);
            let t = scram_login(&env, mech, &mut c, Some(&JULIET), |m| m);
            assert_success(&c, &t);
        }
    }
}

#[test]
fn plus_with_tls_exporter_succeeds() {
    let env = Env::tls13();
    for (mech, alg) in PLUS {
        let mut c = juliet(alg).binding(Binding::Bound("tls-exporter", EXPORTER.to_vec()));
        let t = scram_login(&env, mech, &mut c, Some(&JULIET), |m| m);
        assert_success(&c, &t);
    }
}

#[test]
fn plus_with_tls_server_end_point_succeeds() {
    for env in [Env::tls13(), Env::tls12()] {
        for (mech, alg) in PLUS {
            let mut c =
                juliet(alg).binding(Binding::Bound("tls-server-end-point", END_POINT.to_vec()));
            let t = scram_login(&env, mech, &mut c, Some(&JULIET), |m| m);
            assert_success(&c, &t);
        }
    }
}

/// A MITM terminating TLS has different binding data than the client sees.
#[test]
fn plus_with_wrong_binding_data_fails() {
    let env = Env::tls13();
    for (mech, alg) in PLUS {
        for (name, data) in [
            ("tls-exporter", END_POINT),
            ("tls-server-end-point", EXPORTER),
        ] {
            let mut c = juliet(alg).binding(Binding::Bound(name, data.to_vec()));
            let t = scram_login(&env, mech, &mut c, Some(&JULIET), |m| m);
            assert_eq!(t.outcome, Step::CredentialsRejected);
        }
    }
}

/// Flipping the gs2 header in flight (client-final claims `n,,` after `p=…` was negotiated).
#[test]
fn client_final_with_different_gs2_header_fails() {
    let env = Env::tls13();
    let mut c = juliet(HashAlg::Sha256).binding(Binding::Bound("tls-exporter", EXPORTER.to_vec()));
    let t = scram_login(
        &env,
        Mechanism::ScramSha256Plus,
        &mut c,
        Some(&JULIET),
        |m| {
            let text = String::from_utf8(m).unwrap();
            let rest = text.split_once(',').unwrap().1;
            format!("c=biws,{rest}").into_bytes()
        },
    );
    assert_eq!(t.outcome, Step::CredentialsRejected);
}

#[test]
fn plus_binding_type_the_connection_lacks_is_refused() {
    // tls-exporter is undefined below TLS 1.3, so a TLS 1.2 stream cannot honour it.
    let env = Env::tls12();
    let c = juliet(HashAlg::Sha256).binding(Binding::Bound("tls-exporter", EXPORTER.to_vec()));
    let step = scram_first(&env, Mechanism::ScramSha256Plus, &c);
    assert_eq!(failure(&step), SaslFailure::MalformedRequest);
    // tls-unique is not implemented at all (RFC 9266 deprecates it for TLS 1.3).
    let c = juliet(HashAlg::Sha256).binding(Binding::Bound("tls-unique", vec![1; 12]));
    let step = scram_first(&Env::tls13(), Mechanism::ScramSha256Plus, &c);
    assert_eq!(failure(&step), SaslFailure::MalformedRequest);
}

#[test]
fn plus_mechanism_requires_p_flag_and_p_flag_requires_plus() {
    let env = Env::tls13();
    for binding in [Binding::None, Binding::ClientOnly] {
        let c = juliet(HashAlg::Sha1).binding(binding);
        let step = scram_first(&env, Mechanism::ScramSha1Plus, &c);
        assert_eq!(failure(&step), SaslFailure::MalformedRequest);
    }
    let c = juliet(HashAlg::Sha1).binding(Binding::Bound("tls-exporter", EXPORTER.to_vec()));
    let step = scram_first(&env, Mechanism::ScramSha1, &c);
    assert_eq!(failure(&step), SaslFailure::MalformedRequest);
}

/// RFC 5802 §6: `y` means "I could bind, but you offered no -PLUS". We did offer it, so the
/// list was stripped on the way: a downgrade attack. Refused before any credential is looked
/// at, so it is a negotiation failure (not [`Step::CredentialsRejected`]) with a reason.
#[test]
fn y_flag_when_plus_was_advertised_is_a_downgrade() {
    let env = Env::tls13();
    for (mech, alg) in SCRAM {
        let c = juliet(alg).binding(Binding::ClientOnly);
        let (s, step) = SaslSession::start(mech, Some(&c.first_message()), &env.cfg());
        assert_eq!(step, Step::Failure(SaslFailure::MalformedRequest));
        let text = s.failure_text().unwrap();
        assert!(text.contains("downgrade"), "{text}");
        assert!(
            text.contains("tls-exporter, tls-server-end-point"),
            "{text}"
        );
    }
}

/// What Debian's slixmpp 1.8.3 sends on a TLS 1.3 stream that offers -PLUS: both -PLUS
/// mechanisms with `p=tls-unique` (undefined for TLS 1.3, RFC 9266), then both plain SCRAM
/// mechanisms with `y`. Every one is refused at the client-first-message, as a negotiation
/// failure that says why; only a wrong password is a credential rejection.
#[test]
fn tls_unique_client_sequence_is_negotiation_failures_only() {
    let env = Env::tls13();
    for (mech, alg) in PLUS {
        let c = juliet(alg).binding(Binding::Bound("tls-unique", vec![7; 12]));
        let (s, step) = SaslSession::start(mech, Some(&c.first_message()), &env.cfg());
        assert_eq!(step, Step::Failure(SaslFailure::MalformedRequest));
        let text = s.failure_text().unwrap();
        assert!(text.contains("not offered"), "{text}");
        assert!(
            text.contains("tls-exporter, tls-server-end-point"),
            "{text}"
        );
        // The client's type name is not echoed back.
        assert!(!text.contains("tls-unique"), "{text}");
    }
    for (mech, alg) in SCRAM {
        let c = juliet(alg).binding(Binding::ClientOnly);
        let step = scram_first(&env, mech, &c);
        assert_eq!(step, Step::Failure(SaslFailure::MalformedRequest));
    }
    let mut wrong = ScramClient::new(HashAlg::Sha256, USER, "guess");
    let t = scram_login(
        &env,
        Mechanism::ScramSha256,
        &mut wrong,
        Some(&JULIET),
        |m| m,
    );
    assert_eq!(t.outcome, Step::CredentialsRejected);
}

#[test]
fn y_flag_without_plus_advertised_is_fine() {
    let env = Env::plaintext();
    let mut c = juliet(HashAlg::Sha256).binding(Binding::ClientOnly);
    let t = scram_login(&env, Mechanism::ScramSha256, &mut c, Some(&JULIET), |m| m);
    assert_success(&c, &t);
}

#[test]
fn plus_on_plaintext_is_an_invalid_mechanism() {
    let env = Env::plaintext();
    let c = juliet(HashAlg::Sha256).binding(Binding::Bound("tls-exporter", EXPORTER.to_vec()));
    let step = scram_first(&env, Mechanism::ScramSha256Plus, &c);
    assert_eq!(failure(&step), SaslFailure::InvalidMechanism);
}

#[test]
fn tampered_proof_fails() {
    let env = Env::tls13();
    for (mech, alg) in SCRAM {
        let mut c = juliet(alg);
        let t = scram_login(&env, mech, &mut c, Some(&JULIET), |m| {
            let text = String::from_utf8(m).unwrap();
            let (head, proof) = text.rsplit_once(",p=").unwrap();
            // Flip one bit of the proof, keeping it valid base64 of the right length.
            let mut bytes = base64_decode(proof);
            bytes[0] ^= 1;
            format!("{head},p={}", base64_encode(&bytes)).into_bytes()
        });
        assert_eq!(t.outcome, Step::CredentialsRejected);
    }
}

#[test]
fn wrong_password_fails() {
    let env = Env::tls13();
    let mut c = ScramClient::new(HashAlg::Sha256, USER, "not the password");
    let t = scram_login(&env, Mechanism::ScramSha256, &mut c, Some(&JULIET), |m| m);
    assert_eq!(t.outcome, Step::CredentialsRejected);
    assert_eq!(
        t.outcome.failure_condition(),
        Some(SaslFailure::NotAuthorized)
    );
}

/// The client-final must echo the full combined nonce; a replay with another nonce (or only
/// the client's part) fails even with a proof computed over it.
#[test]
fn wrong_nonce_fails() {
    let env = Env::tls13();
    for cut in [1usize, 32] {
        let mut c = juliet(HashAlg::Sha256);
        let cfg = env.cfg();
        let (mut s, _) = SaslSession::start(Mechanism::ScramSha256, Some(&c.first_message()), &cfg);
        let Step::Challenge(sf) = s.provide_credentials(Some(&JULIET), &cfg) else {
            panic!("no challenge");
        };
        let sf = String::from_utf8(sf).unwrap();
        let nonce = sf.split(',').next().unwrap().strip_prefix("r=").unwrap();
        let forged = &nonce[..nonce.len() - cut];
        let salt = base64_decode(sf.split(',').nth(1).unwrap().strip_prefix("s=").unwrap());
        let iterations = sf.split(',').nth(2).unwrap().strip_prefix("i=").unwrap();
        let msg = c.sign(
            &salt,
            iterations.parse().unwrap(),
            &sf,
            &format!("c=biws,r={forged}"),
        );
        assert_eq!(s.step(msg.as_bytes(), &cfg), Step::CredentialsRejected);
    }
}

/// No such account: the exchange looks the same (same attributes, salt length and iteration
/// count; the salt stable across attempts) and ends in the same failure as a wrong password.
#[test]
fn unknown_user_fails_exactly_like_a_wrong_password() {
    let env = Env::tls13();
    let shape = |sf: &[u8]| -> (Vec<String>, usize, String) {
        let sf = std::str::from_utf8(sf).unwrap();
        let attrs: Vec<&str> = sf.split(',').collect();
        let keys = attrs.iter().map(|a| a[..2].to_owned()).collect();
        let salt = base64_decode(&attrs[1][2..]);
        (keys, salt.len(), attrs[2].to_owned())
    };
    let creds_default = Credentials::new(PASSWORD, crate::sasl::DEFAULT_ITERATIONS).unwrap();

    let mut wrong_pw = ScramClient::new(HashAlg::Sha256, USER, "guess");
    let known = scram_login(
        &env,
        Mechanism::ScramSha256,
        &mut wrong_pw,
        Some(&creds_default),
        |m| m,
    );
    let mut ghost = ScramClient::new(HashAlg::Sha256, "romeo", "guess");
    let unknown = scram_login(&env, Mechanism::ScramSha256, &mut ghost, None, |m| m);
    let mut ghost2 = ScramClient::new(HashAlg::Sha256, "romeo", PASSWORD);
    let unknown2 = scram_login(&env, Mechanism::ScramSha256, &mut ghost2, None, |m| m);

    assert_eq!(shape(&known.server_first), shape(&unknown.server_first));
    assert_eq!(known.outcome, unknown.outcome);
    assert_eq!(unknown.outcome, Step::CredentialsRejected);
    assert_eq!(unknown2.outcome, Step::CredentialsRejected);
    // Same fake salt on every attempt (a fresh one each time would give the absence away)…
    let salt_of = |sf: &[u8]| {
        std::str::from_utf8(sf)
            .unwrap()
            .split(',')
            .nth(1)
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        salt_of(&unknown.server_first),
        salt_of(&unknown2.server_first)
    );
    // …but different per user and per server secret, so it cannot be precomputed.
    let mut other = ScramClient::new(HashAlg::Sha256, "tybalt", "guess");
    let t = scram_login(&env, Mechanism::ScramSha256, &mut other, None, |m| m);
    assert_ne!(salt_of(&unknown.server_first), salt_of(&t.server_first));
    let mut env2 = Env::tls13();
    env2.secret = b"another secret".to_vec();
    let mut ghost3 = ScramClient::new(HashAlg::Sha256, "romeo", "guess");
    let t = scram_login(&env2, Mechanism::ScramSha256, &mut ghost3, None, |m| m);
    assert_ne!(salt_of(&unknown.server_first), salt_of(&t.server_first));
}

/// ejabberd fixed an authzid check in 2023 that let an authenticated user name someone else
/// as the authorization identity. We accept only the user's own JID.
#[test]
fn ejabberd_2023_authzid_impersonation_is_rejected() {
    let env = Env::tls13();
    for authzid in [
        "romeo@example.com",
        "juliet@example.net",
        "juliet@example.com/balcony",
        "example.com",
        "juliet",
        "Juliet@example.com",
        "juliet@example.com.",
    ] {
        let c = juliet(HashAlg::Sha256).authzid(authzid);
        let step = scram_first(&env, Mechanism::ScramSha256, &c);
        assert_eq!(failure(&step), SaslFailure::InvalidAuthzid, "{authzid}");
    }
}

#[test]
fn authzid_naming_the_user_is_accepted() {
    let env = Env::tls13();
    for authzid in ["juliet@example.com", "juliet@EXAMPLE.com"] {
        let mut c = juliet(HashAlg::Sha1).authzid(authzid);
        let t = scram_login(&env, Mechanism::ScramSha1, &mut c, Some(&JULIET), |m| m);
        assert_success(&c, &t);
    }
    assert_eq!(DOMAIN, "example.com");
}

/// The `h` attribute equals what a client computes from the lists it was shown.
#[test]
fn xep0474_attribute_signs_the_advertised_lists() {
    for env in [Env::tls13(), Env::tls12(), Env::plaintext()] {
        for (mech, alg) in SCRAM {
            let mut c = juliet(alg);
            let t = scram_login(&env, mech, &mut c, Some(&JULIET), |m| m);
            assert_success(&c, &t);
            let types = channel_binding_types(&env.bindings);
            let expected = downgrade_protection_hash(alg, &env.advertised, &types);
            assert_eq!(c.ssdp.as_deref(), Some(expected.as_str()));
        }
    }
    // With both bindings the channel-binding part is present.
    let env = Env::tls13();
    assert_eq!(
        channel_binding_types(&env.bindings),
        vec![CbType::TlsExporter, CbType::TlsServerEndPoint]
    );
}

/// Without XEP-0474 (the router listener's entry point) the exchange still completes, and the
/// server-first-message has no `h` attribute a client could mistake for a downgrade.
#[test]
fn start_without_ssdp_leaves_out_the_attribute() {
    let env = Env::plaintext();
    let cfg = env.cfg();
    for (mech, alg) in SCRAM {
        let mut c = juliet(alg);
        let (mut session, step) =
            SaslSession::start_without_ssdp(mech, Some(&c.first_message()), &cfg);
        assert!(matches!(step, Step::NeedCredentials { .. }), "{step:?}");
        let server_first = match session.provide_credentials(Some(&JULIET), &cfg) {
            Step::Challenge(data) => data,
            other => panic!("expected a challenge, got {other:?}"),
        };
        let text = String::from_utf8(server_first.clone()).unwrap();
        assert!(!text.split(',').any(|p| p.starts_with("h=")), "{text}");
        let outcome = session.step(&c.final_message(&server_first).unwrap(), &cfg);
        assert!(matches!(outcome, Step::Success { .. }), "{outcome:?}");
        assert_eq!(c.ssdp, None);
    }
}

#[test]
fn no_initial_response_gets_an_empty_challenge() {
    let env = Env::tls13();
    let cfg = env.cfg();
    let mut c = juliet(HashAlg::Sha256);
    let (mut s, step) = SaslSession::start(Mechanism::ScramSha256, None, &cfg);
    assert_eq!(step, Step::Challenge(vec![]));
    assert!(matches!(
        s.step(&c.first_message(), &cfg),
        Step::NeedCredentials { .. }
    ));
    let Step::Challenge(sf) = s.provide_credentials(Some(&JULIET), &cfg) else {
        panic!("no challenge");
    };
    let cf = c.final_message(&sf).unwrap();
    let Step::Success {
        additional_data: Some(v),
        ..
    } = s.step(&cf, &cfg)
    else {
        panic!("no success");
    };
    assert!(c.verify_server_final(&v));
}

#[test]
fn oversize_messages_are_malformed() {
    let env = Env::tls13();
    let cfg = env.cfg();
    let big = format!("n,,n=juliet,r={}", "x".repeat(MAX_MESSAGE_LEN));
    let (_, step) = SaslSession::start(Mechanism::ScramSha256, Some(big.as_bytes()), &cfg);
    assert_eq!(failure(&step), SaslFailure::MalformedRequest);

    let c = juliet(HashAlg::Sha256);
    let (mut s, _) = SaslSession::start(Mechanism::ScramSha256, Some(&c.first_message()), &cfg);
    s.provide_credentials(Some(&JULIET), &cfg);
    let huge = vec![b'a'; MAX_MESSAGE_LEN + 1];
    assert_eq!(failure(&s.step(&huge, &cfg)), SaslFailure::MalformedRequest);
}

#[test]
fn malformed_client_messages() {
    let env = Env::tls13();
    let cfg = env.cfg();
    for first in [
        &b""[..],
        b"n,,m=x,n=juliet,r=abc",
        b"n,,n=jul=ZZiet,r=abc",
        b"\xff,,n=a,r=b",
    ] {
        let (_, step) = SaslSession::start(Mechanism::ScramSha256, Some(first), &cfg);
        assert_eq!(failure(&step), SaslFailure::MalformedRequest, "{first:?}");
    }
    let bad_finals: [&dyn Fn(&str) -> String; 5] = [
        &|m| m.replace(",p=", ",q="),
        &|m| format!("{m}=="),
        &|m| m.replacen("c=", "x=", 1),
        &|m| format!("m=1,{m}"),
        &|m| m.replacen(",p=", ",m=1,p=", 1),
    ];
    for tamper in bad_finals {
        let mut c = juliet(HashAlg::Sha256);
        let t = scram_login(&env, Mechanism::ScramSha256, &mut c, Some(&JULIET), |m| {
            tamper(&String::from_utf8(m).unwrap()).into_bytes()
        });
        assert_eq!(failure(&t.outcome), SaslFailure::MalformedRequest);
    }
}

#[test]
fn out_of_order_calls_are_malformed() {
    let env = Env::tls13();
    let cfg = env.cfg();
    let mut c = juliet(HashAlg::Sha256);
    // A response while the account lookup is pending.
    let (mut s, _) = SaslSession::start(Mechanism::ScramSha256, Some(&c.first_message()), &cfg);
    assert_eq!(
        failure(&s.step(b"c=biws", &cfg)),
        SaslFailure::MalformedRequest
    );
    // Credentials nobody asked for.
    let (mut s, _) = SaslSession::start(Mechanism::ScramSha256, None, &cfg);
    assert_eq!(
        failure(&s.provide_credentials(Some(&JULIET), &cfg)),
        SaslFailure::MalformedRequest
    );
    // Anything after success or failure.
    let (mut s, _) = SaslSession::start(Mechanism::ScramSha256, Some(&c.first_message()), &cfg);
    let Step::Challenge(sf) = s.provide_credentials(Some(&JULIET), &cfg) else {
        panic!("no challenge");
    };
    let cf = c.final_message(&sf).unwrap();
    assert!(matches!(s.step(&cf, &cfg), Step::Success { .. }));
    assert_eq!(failure(&s.step(&cf, &cfg)), SaslFailure::MalformedRequest);
    assert_eq!(
        failure(&s.provide_credentials(Some(&JULIET), &cfg)),
        SaslFailure::MalformedRequest
    );
    let (mut s, step) = SaslSession::start(Mechanism::ScramSha256, Some(b"junk"), &cfg);
    assert_eq!(failure(&step), SaslFailure::MalformedRequest);
    assert_eq!(
        failure(&s.step(&c.first_message(), &cfg)),
        SaslFailure::MalformedRequest
    );
}

#[test]
fn abort_ends_the_exchange() {
    let env = Env::tls13();
    let cfg = env.cfg();
    let (mut s, _) = SaslSession::start(Mechanism::ScramSha256, None, &cfg);
    assert_eq!(s.mechanism(), Mechanism::ScramSha256);
    assert_eq!(s.abort(), Step::Failure(SaslFailure::Aborted));
    assert!(s.is_finished());
    assert_eq!(
        failure(&s.step(b"n,,n=a,r=b", &cfg)),
        SaslFailure::MalformedRequest
    );
}

#[test]
fn corrupt_stored_credentials_are_a_temporary_failure() {
    let env = Env::tls13();
    let cfg = env.cfg();
    let mut broken = JULIET.clone();
    broken.sha256.stored_key.truncate(10);
    let c = juliet(HashAlg::Sha256);
    let (mut s, _) = SaslSession::start(Mechanism::ScramSha256, Some(&c.first_message()), &cfg);
    assert_eq!(
        failure(&s.provide_credentials(Some(&broken), &cfg)),
        SaslFailure::TemporaryAuthFailure
    );
}

#[test]
fn saslname_escapes_and_saslprep_reach_the_caller() {
    let env = Env::tls13();
    let cfg = env.cfg();
    let c = ScramClient::new(HashAlg::Sha256, "a,b=c", "x");
    let (_, step) = SaslSession::start(Mechanism::ScramSha256, Some(&c.first_message()), &cfg);
    assert_eq!(
        step,
        Step::NeedCredentials {
            username: "a,b=c".into()
        }
    );
    // SASLprep: soft hyphen is mapped to nothing.
    let c = ScramClient::new(HashAlg::Sha256, "jul\u{00AD}iet", "x");
    let (_, step) = SaslSession::start(Mechanism::ScramSha256, Some(&c.first_message()), &cfg);
    assert_eq!(
        step,
        Step::NeedCredentials {
            username: "juliet".into()
        }
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
