//! The server-side SASL state machine, one per `<auth/>` exchange.
//!
//! rookery-net's c2s negotiation receives `<auth mechanism='…'>`, decodes the payload with
//! [`super::decode_b64_payload`] and calls [`SaslSession::start`]; every [`Step`] it gets back
//! tells it what to do next: send a `<challenge/>`, look up the account (asynchronously, which
//! is why the machine asks instead of calling a store), send `<success/>` or `<failure/>`. The
//! machine never blocks, never touches a socket and keeps nothing after the exchange ends.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::creds::{Credentials, ScramCredential};
use super::crypto;
use super::failure::{CheckFailure, MAX_MESSAGE_LEN, Refusal, SaslFailure};
use super::mechanism::{ChannelBindings, Mechanism};
use super::{plain, scram};

/// What the machine needs to know about the stream it runs on. Passed to every call so the
/// session itself holds no borrows.
#[derive(Clone, Copy)]
pub struct SaslConfig<'a> {
    /// The virtual host being authenticated against (the stream's `to`), for authzid checks.
    pub domain: &'a str,
    /// Whether TLS is active on this stream.
    pub secure: bool,
    /// Operator override that permits PLAIN without TLS (testing only).
    pub allow_plain_unencrypted: bool,
    /// Exactly the mechanisms offered in this stream's `<mechanisms/>` (usually
    /// [`super::advertised_mechanisms`]); anything else is refused, and SCRAM signs this list
    /// for XEP-0474.
    pub advertised: &'a [Mechanism],
    /// Channel-binding data of this connection.
    pub bindings: &'a ChannelBindings,
    /// A long-lived server secret; keys the fake salts for unknown users so they are stable
    /// across attempts and unpredictable to clients.
    pub server_secret: &'a [u8],
}

impl std::fmt::Debug for SaslConfig<'_> {
    // Hand-written so the server secret never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslConfig")
            .field("domain", &self.domain)
            .field("secure", &self.secure)
            .field("allow_plain_unencrypted", &self.allow_plain_unencrypted)
            .field("advertised", &self.advertised)
            .field("bindings", &super::channel_binding_types(self.bindings))
            .finish_non_exhaustive()
    }
}

/// What the caller must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these raw bytes in `<challenge/>` (base64 them with [`super::encode_b64_payload`])
    /// and feed the client's `<response/>` to [`SaslSession::step`].
    Challenge(Vec<u8>),
    /// Look up this account and call [`SaslSession::provide_credentials`]. The name is the
    /// authentication identity after SASLprep; the caller applies nodeprep (and refuses names
    /// nodeprep rejects by passing `None`).
    NeedCredentials { username: String },
    /// Authenticated as `username` (the same SASLprep'd name as in `NeedCredentials`; the
    /// caller binds the session to the account it looked up, i.e. its nodeprep'd form). For
    /// SCRAM `additional_data` is the server-final-message (`v=…`), which the client needs to
    /// authenticate the server; send it in `<success/>`.
    Success {
        username: String,
        additional_data: Option<Vec<u8>>,
    },
    /// The credentials were checked and are wrong: a wrong password or SCRAM proof, or no such
    /// account (checked against a fake credential, so it looks the same). Send
    /// `<failure><not-authorized/></failure>` without text. The session is finished. This is
    /// the only outcome a brute-force throttle may count: it is the only one that tells a
    /// guesser anything about a password.
    CredentialsRejected,
    /// The exchange failed without any credential being checked: a malformed or out-of-order
    /// message, a channel-binding type or flag this connection cannot honour, an abort, a
    /// mechanism not offered, a broken store row. Send `<failure/>` with this condition (and
    /// [`SaslSession::failure_text`] as `<text/>`, if any). The session is finished. Never
    /// counted by a brute-force throttle: an honest client whose first choice of mechanism or
    /// binding was refused retries with another one.
    Failure(SaslFailure),
}

impl Step {
    /// The RFC 6120 §6.5 condition to send, for the two failure outcomes.
    pub fn failure_condition(&self) -> Option<SaslFailure> {
        match self {
            Step::CredentialsRejected => Some(SaslFailure::NotAuthorized),
            Step::Failure(f) => Some(*f),
            _ => None,
        }
    }
}

/// One SASL exchange in progress.
pub struct SaslSession {
    mech: Mechanism,
    state: State,
    /// Server nonce to use instead of a random one; only the test hook sets it, so the RFC
    /// test vectors can be replayed.
    forced_nonce: Option<String>,
    /// Whether to include the XEP-0474 attribute; the RFC vectors predate it.
    ssdp: bool,
    /// Why a negotiation failure happened, for `<text/>`.
    failure_text: Option<String>,
}

enum State {
    /// `<auth/>` came without an initial response; an empty challenge was sent.
    AwaitInitial,
    ScramCredentials(scram::AwaitingCredentials),
    ScramFinal(scram::AwaitingFinal),
    PlainCredentials(plain::PlainRequest),
    Done,
}

impl std::fmt::Debug for SaslSession {
    // Hand-written so that PLAIN passwords and SCRAM keys held in the state never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::AwaitInitial => "AwaitInitial",
            State::ScramCredentials(_) | State::PlainCredentials(_) => "NeedCredentials",
            State::ScramFinal(_) => "AwaitFinal",
            State::Done => "Done",
        };
        f.debug_struct("SaslSession")
            .field("mech", &self.mech)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl SaslSession {
    /// Starts an exchange for `<auth mechanism='…'>`; `initial_response` is the decoded text
    /// content (`None` when the element was empty).
    pub fn start(
        mech: Mechanism,
        initial_response: Option<&[u8]>,
        cfg: &SaslConfig<'_>,
    ) -> (Self, Step) {
        Self::start_inner(mech, initial_response, cfg, None, true)
    }

    /// Like [`start`](Self::start), but the SCRAM server-first-message carries no XEP-0474
    /// attribute. For streams whose `<mechanisms/>` also lists a mechanism outside
    /// [`Mechanism`] (the jabberd2 router listener offers DIGEST-MD5): the hash would be computed
    /// over `cfg.advertised` alone, a client that checks it would compute it over everything it
    /// was shown, and it would take the difference for a downgrade attack.
    pub fn start_without_ssdp(
        mech: Mechanism,
        initial_response: Option<&[u8]>,
        cfg: &SaslConfig<'_>,
    ) -> (Self, Step) {
        Self::start_inner(mech, initial_response, cfg, None, false)
    }

    /// Test hook: fixes the server nonce and optionally leaves out the XEP-0474 attribute so
    /// the RFC 5802 / RFC 7677 examples can be replayed byte for byte.
    #[cfg(test)]
    pub(crate) fn start_with_nonce(
        mech: Mechanism,
        initial_response: Option<&[u8]>,
        cfg: &SaslConfig<'_>,
        server_nonce: &str,
        ssdp: bool,
    ) -> (Self, Step) {
        Self::start_inner(
            mech,
            initial_response,
            cfg,
            Some(server_nonce.to_owned()),
            ssdp,
        )
    }

    fn start_inner(
        mech: Mechanism,
        initial_response: Option<&[u8]>,
        cfg: &SaslConfig<'_>,
        forced_nonce: Option<String>,
        ssdp: bool,
    ) -> (Self, Step) {
        let mut session = SaslSession {
            mech,
            state: State::AwaitInitial,
            forced_nonce,
            ssdp,
            failure_text: None,
        };
        let step = session.begin(initial_response, cfg);
        (session, step)
    }

    /// The mechanism this exchange runs.
    pub fn mechanism(&self) -> Mechanism {
        self.mech
    }

    /// Whether the exchange has ended (with success or failure).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// A human-readable reason for the last [`Step::Failure`], for `<failure><text/>` (RFC 6120
    /// §6.4.5); `None` when the condition says it all. Never set for
    /// [`Step::CredentialsRejected`].
    pub fn failure_text(&self) -> Option<&str> {
        self.failure_text.as_deref()
    }

    /// The client sent `<abort/>`: ends the exchange.
    pub fn abort(&mut self) -> Step {
        self.state = State::Done;
        Step::Failure(SaslFailure::Aborted)
    }

    fn begin(&mut self, initial_response: Option<&[u8]>, cfg: &SaslConfig<'_>) -> Step {
        // PLAIN sends the password itself; over plaintext that is refused with the specific
        // condition so the client knows to negotiate TLS first.
        if self.mech == Mechanism::Plain && !cfg.secure && !cfg.allow_plain_unencrypted {
            return self.fail(SaslFailure::EncryptionRequired);
        }
        // A mechanism we did not offer on this stream (e.g. -PLUS without a binding) is
        // refused even if implemented.
        if !cfg.advertised.contains(&self.mech) {
            return self.fail(SaslFailure::InvalidMechanism);
        }
        match initial_response {
            None => Step::Challenge(Vec::new()),
            Some(msg) => self.first_message(msg, cfg),
        }
    }

    fn first_message(&mut self, msg: &[u8], cfg: &SaslConfig<'_>) -> Step {
        if msg.len() > MAX_MESSAGE_LEN {
            return self.fail(SaslFailure::MalformedRequest);
        }
        let parsed = match self.mech.scram_hash() {
            Some(alg) => scram::client_first(self.mech, alg, msg, cfg).map(|st| {
                let username = st.username.clone();
                (State::ScramCredentials(st), username)
            }),
            None => plain::parse(msg, cfg)
                .map(|req| {
                    let username = req.username.clone();
                    (State::PlainCredentials(req), username)
                })
                .map_err(Refusal::from),
        };
        match parsed {
            Ok((state, username)) => {
                self.state = state;
                Step::NeedCredentials { username }
            }
            Err(refusal) => self.refuse(refusal),
        }
    }

    /// Answers [`Step::NeedCredentials`]. `None` means there is no such account: the exchange
    /// continues on a deterministic fake credential and ends in the same `not-authorized` a
    /// wrong password gets, so accounts cannot be enumerated.
    pub fn provide_credentials(
        &mut self,
        creds: Option<&Credentials>,
        cfg: &SaslConfig<'_>,
    ) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::ScramCredentials(st) => {
                let Some(alg) = self.mech.scram_hash() else {
                    // Only SCRAM mechanisms enter this state.
                    return self.fail(SaslFailure::TemporaryAuthFailure);
                };
                let (credential, known) = match creds {
                    Some(c) if !c.get(alg).is_well_formed(alg) => {
                        // A corrupt store row: not the client's fault, and retrying later
                        // (after an admin fixes it) may work.
                        return self.fail(SaslFailure::TemporaryAuthFailure);
                    }
                    Some(c) => (c.get(alg).clone(), true),
                    None => (
                        ScramCredential::fake(alg, &st.username, cfg.server_secret),
                        false,
                    ),
                };
                let nonce = match self.forced_nonce.take() {
                    Some(nonce) => nonce,
                    None => match crypto::random_bytes(scram::SERVER_NONCE_BYTES) {
                        Ok(bytes) => STANDARD.encode(bytes),
                        Err(_) => return self.fail(SaslFailure::TemporaryAuthFailure),
                    },
                };
                let (next, server_first) =
                    st.server_first(credential, known, &nonce, self.ssdp, cfg);
                self.state = State::ScramFinal(next);
                Step::Challenge(server_first)
            }
            State::PlainCredentials(req) => match plain::verify(req, creds, cfg) {
                Ok(username) => Step::Success {
                    username,
                    additional_data: None,
                },
                Err(failure) => self.check_failed(failure),
            },
            // Credentials were not asked for: a caller bug, but fail closed.
            _ => self.fail(SaslFailure::MalformedRequest),
        }
    }

    /// Feeds the decoded content of a `<response/>`.
    pub fn step(&mut self, response: &[u8], cfg: &SaslConfig<'_>) -> Step {
        let state = std::mem::replace(&mut self.state, State::Done);
        if response.len() > MAX_MESSAGE_LEN {
            return self.fail(SaslFailure::MalformedRequest);
        }
        match state {
            State::AwaitInitial => self.first_message(response, cfg),
            State::ScramFinal(st) => match st.client_final(response) {
                Ok((username, server_final)) => Step::Success {
                    username,
                    additional_data: Some(server_final),
                },
                Err(failure) => self.check_failed(failure),
            },
            // A response while we wait for the account lookup, or after the end, is out of
            // order: the client did not wait for a challenge.
            State::ScramCredentials(_) | State::PlainCredentials(_) | State::Done => {
                self.fail(SaslFailure::MalformedRequest)
            }
        }
    }

    fn fail(&mut self, failure: SaslFailure) -> Step {
        self.refuse(failure.into())
    }

    fn refuse(&mut self, refusal: Refusal) -> Step {
        self.state = State::Done;
        self.failure_text = refusal.text;
        Step::Failure(refusal.condition)
    }

    fn check_failed(&mut self, failure: CheckFailure) -> Step {
        match failure {
            CheckFailure::Mismatch => {
                self.state = State::Done;
                Step::CredentialsRejected
            }
            CheckFailure::Other(f) => self.fail(f),
        }
    }
}

/// SASLprep of an authentication identity (RFC 5802 §5.1, RFC 4616 §2); an identity that does
/// not survive it, or prepares to nothing, is malformed.
pub(crate) fn prepare_username(raw: &str) -> Result<String, SaslFailure> {
    let prepared = stringprep::saslprep(raw).map_err(|_| SaslFailure::MalformedRequest)?;
    if prepared.is_empty() {
        return Err(SaslFailure::MalformedRequest);
    }
    Ok(prepared.into_owned())
}

/// An authorization identity is only accepted when it names the authenticated account itself,
/// `username@domain` (domain compared case-insensitively, username exactly as authenticated).
/// We support no proxy authorization, so anything else would let one user act as another: the
/// class of bug ejabberd fixed in 2023.
pub(crate) fn check_authzid(
    authzid: &str,
    username: &str,
    domain: &str,
) -> Result<(), SaslFailure> {
    let matches = authzid
        .strip_prefix(username)
        .and_then(|rest| rest.strip_prefix('@'))
        .is_some_and(|d| d.to_lowercase() == domain.to_lowercase());
    if matches {
        Ok(())
    } else {
        Err(SaslFailure::InvalidAuthzid)
    }
}
