//! PLAIN exchanges.

use crate::sasl::{ChannelBindings, Mechanism, SaslFailure, SaslSession, Step};

use super::{Env, JULIET, PASSWORD};

/// Runs PLAIN with `msg` as the initial response and `known` deciding whether the account
/// exists.
fn plain(env: &Env, msg: &[u8], known: bool) -> Step {
    let cfg = env.cfg();
    let (mut s, step) = SaslSession::start(Mechanism::Plain, Some(msg), &cfg);
    match step {
        Step::NeedCredentials { .. } => {
            s.provide_credentials(if known { Some(&JULIET) } else { None }, &cfg)
        }
        other => other,
    }
}

fn success() -> Step {
    Step::Success {
        username: "juliet".into(),
        additional_data: None,
    }
}

#[test]
fn plain_over_tls_succeeds() {
    let env = Env::tls13();
    let msg = format!("\0juliet\0{PASSWORD}");
    assert_eq!(plain(&env, msg.as_bytes(), true), success());
    let msg = format!("juliet@Example.COM\0juliet\0{PASSWORD}");
    assert_eq!(plain(&env, msg.as_bytes(), true), success());
}

#[test]
fn plain_without_initial_response() {
    let env = Env::tls12();
    let cfg = env.cfg();
    let (mut s, step) = SaslSession::start(Mechanism::Plain, None, &cfg);
    assert_eq!(step, Step::Challenge(vec![]));
    let msg = format!("\0juliet\0{PASSWORD}");
    assert_eq!(
        s.step(msg.as_bytes(), &cfg),
        Step::NeedCredentials {
            username: "juliet".into()
        }
    );
    assert_eq!(s.provide_credentials(Some(&JULIET), &cfg), success());
}

#[test]
fn plain_over_plaintext_is_refused() {
    let env = Env::plaintext();
    let msg = format!("\0juliet\0{PASSWORD}");
    assert_eq!(
        plain(&env, msg.as_bytes(), true),
        Step::Failure(SaslFailure::EncryptionRequired)
    );
    // Unless the operator explicitly allowed it (and therefore advertised it).
    let env = Env::with(false, true, ChannelBindings::default());
    assert_eq!(plain(&env, msg.as_bytes(), true), success());
}

#[test]
fn plain_not_advertised_is_an_invalid_mechanism() {
    let mut env = Env::tls13();
    env.advertised.retain(|m| *m != Mechanism::Plain);
    let msg = format!("\0juliet\0{PASSWORD}");
    assert_eq!(
        plain(&env, msg.as_bytes(), true),
        Step::Failure(SaslFailure::InvalidMechanism)
    );
}

#[test]
fn plain_wrong_password_and_unknown_user_look_alike() {
    let env = Env::tls13();
    let wrong = plain(&env, b"\0juliet\0guess", true);
    let unknown = plain(&env, b"\0romeo\0guess", false);
    let unknown_right_pw = plain(&env, format!("\0romeo\0{PASSWORD}").as_bytes(), false);
    assert_eq!(wrong, Step::CredentialsRejected);
    assert_eq!(unknown, wrong);
    assert_eq!(unknown_right_pw, wrong);
}

#[test]
fn plain_malformed_messages() {
    let env = Env::tls13();
    for msg in [
        &b""[..],
        b"juliet",
        b"\0juliet",
        b"\0\0pw",
        b"\0juliet\0",
        b"\0juliet\0pw\0",
        b"\0\xff\0pw",
        b"\0jul\x07iet\0pw",
    ] {
        assert_eq!(
            plain(&env, msg, true),
            Step::Failure(SaslFailure::MalformedRequest),
            "{msg:?}"
        );
    }
}

/// The PLAIN half of the ejabberd 2023 case: authenticating as juliet while naming romeo.
#[test]
fn plain_authzid_impersonation_is_rejected() {
    let env = Env::tls13();
    let msg = format!("romeo@example.com\0juliet\0{PASSWORD}");
    assert_eq!(
        plain(&env, msg.as_bytes(), true),
        Step::Failure(SaslFailure::InvalidAuthzid)
    );
}

#[test]
fn plain_oversize_is_malformed() {
    let env = Env::tls13();
    let msg = format!("\0juliet\0{}", "p".repeat(10_000));
    assert_eq!(
        plain(&env, msg.as_bytes(), true),
        Step::Failure(SaslFailure::MalformedRequest)
    );
}

#[test]
fn plain_session_debug_hides_the_password() {
    let env = Env::tls13();
    let msg = format!("\0juliet\0{PASSWORD}");
    let (s, _) = SaslSession::start(Mechanism::Plain, Some(msg.as_bytes()), &env.cfg());
    let shown = format!("{s:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(shown.contains("NeedCredentials"), "{shown}");
}
