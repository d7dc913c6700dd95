//! End-to-end tests of the SASL machine: RFC 5802 / RFC 7677 / XEP-0474 vectors replayed
//! byte for byte, and an independent minimal SCRAM client ([`client`]) for the attack cases.
#![allow(clippy::unwrap_used)]

mod client;
mod plain_flows;
mod prop;
mod scram_flows;
mod vectors;

use std::sync::LazyLock;

use super::{
    ChannelBindings, Credentials, MIN_ITERATIONS, Mechanism, SaslConfig, SaslSession, Step,
};
use client::ScramClient;

pub(super) const DOMAIN: &str = "example.com";
pub(super) const SECRET: &[u8] = b"rookery test server secret";
pub(super) const USER: &str = "juliet";
pub(super) const PASSWORD: &str = "r0m30myr0m30";

pub(super) const EXPORTER: &[u8] = &[0xE5; 32];
pub(super) const END_POINT: &[u8] = &[0x5E; 32];

/// Juliet's credentials, derived once: PBKDF2 is slow in debug builds.
pub(super) static JULIET: LazyLock<Credentials> =
    LazyLock::new(|| Credentials::new(PASSWORD, MIN_ITERATIONS).unwrap());

/// A stream's situation: TLS or not, which bindings, what was advertised.
pub(super) struct Env {
    pub bindings: ChannelBindings,
    pub advertised: Vec<Mechanism>,
    pub secure: bool,
    pub allow_plain_unencrypted: bool,
    pub secret: Vec<u8>,
}

impl Env {
    /// TLS 1.3 with both binding types.
    pub fn tls13() -> Self {
        Self::with(
            true,
            false,
            ChannelBindings {
                exporter: Some(EXPORTER.to_vec()),
                server_end_point: Some(END_POINT.to_vec()),
            },
        )
    }

    /// TLS 1.2: no tls-exporter (RFC 9266 §3).
    pub fn tls12() -> Self {
        Self::with(
            true,
            false,
            ChannelBindings {
                exporter: None,
                server_end_point: Some(END_POINT.to_vec()),
            },
        )
    }

    pub fn plaintext() -> Self {
        Self::with(false, false, ChannelBindings::default())
    }

    pub fn with(secure: bool, allow_plain_unencrypted: bool, bindings: ChannelBindings) -> Self {
        let advertised = super::advertised_mechanisms(secure, allow_plain_unencrypted, &bindings);
        Env {
            bindings,
            advertised,
            secure,
            allow_plain_unencrypted,
            secret: SECRET.to_vec(),
        }
    }

    pub fn cfg(&self) -> SaslConfig<'_> {
        SaslConfig {
            domain: DOMAIN,
            secure: self.secure,
            allow_plain_unencrypted: self.allow_plain_unencrypted,
            advertised: &self.advertised,
            bindings: &self.bindings,
            server_secret: &self.secret,
        }
    }
}

/// Everything one SCRAM exchange produced, for assertions.
pub(super) struct Transcript {
    pub server_first: Vec<u8>,
    pub outcome: Step,
}

/// Runs a full SCRAM exchange; `tamper` may rewrite the client-final-message before sending.
pub(super) fn scram_login(
    env: &Env,
    mech: Mechanism,
    client: &mut ScramClient,
    creds: Option<&Credentials>,
    tamper: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> Transcript {
    let cfg = env.cfg();
    let (mut session, step) = SaslSession::start(mech, Some(&client.first_message()), &cfg);
    match step {
        Step::NeedCredentials { username } => assert_eq!(username, client.username()),
        other => panic!("expected NeedCredentials, got {other:?}"),
    }
    let server_first = match session.provide_credentials(creds, &cfg) {
        Step::Challenge(data) => data,
        other => panic!("expected a challenge, got {other:?}"),
    };
    let client_final = tamper(client.final_message(&server_first).unwrap());
    let outcome = session.step(&client_final, &cfg);
    assert!(session.is_finished());
    Transcript {
        server_first,
        outcome,
    }
}

/// Runs the exchange up to the first server answer (for cases refused at client-first).
pub(super) fn scram_first(env: &Env, mech: Mechanism, client: &ScramClient) -> Step {
    SaslSession::start(mech, Some(&client.first_message()), &env.cfg()).1
}

/// Asserts a successful exchange whose server signature the client accepts.
pub(super) fn assert_success(client: &ScramClient, t: &Transcript) {
    match &t.outcome {
        Step::Success {
            username,
            additional_data: Some(v),
        } => {
            assert_eq!(username, client.username());
            assert!(client.verify_server_final(v), "server signature rejected");
        }
        other => panic!("expected success, got {other:?}"),
    }
}
