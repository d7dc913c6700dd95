//! Property: for any username and password that survive SASLprep, the client's proof is
//! accepted and any single-bit change to it is refused.

use proptest::prelude::*;

use crate::sasl::Credentials;
use crate::sasl::{HashAlg, MIN_ITERATIONS, Mechanism, ScramCredential, Step};

use super::client::ScramClient;
use super::{Env, scram_login};

fn creds_for(password: &str) -> Option<Credentials> {
    let salt = b"proptest salt 16";
    Some(Credentials {
        sha1: ScramCredential::derive(HashAlg::Sha1, password, salt, MIN_ITERATIONS).ok()?,
        sha256: ScramCredential::derive(HashAlg::Sha256, password, salt, MIN_ITERATIONS).ok()?,
    })
}

proptest! {
    // Each case runs PBKDF2 four times at 4096 rounds; keep the count modest for debug builds.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_credentials_round_trip(
        username in prop_oneof!["[!-~]{1,24}", "\\PC{1,12}"],
        password in prop_oneof!["[ -~]{1,32}", "\\PC{1,16}"],
        sha256 in any::<bool>(),
        bit in 0usize..160,
    ) {
        // SASLprep refuses some inputs (unassigned code points, bidi mixes): nothing to test.
        let creds = creds_for(&password);
        prop_assume!(creds.is_some());
        let creds = creds.unwrap();
        // The machine reports the prepared name; keep names that are already prepared so the
        // driver can compare it with what the client sent.
        prop_assume!(stringprep::saslprep(&username).is_ok_and(|u| !u.is_empty() && u == username));
        let (mech, alg) = if sha256 {
            (Mechanism::ScramSha256, HashAlg::Sha256)
        } else {
            (Mechanism::ScramSha1, HashAlg::Sha1)
        };
        let env = Env::tls13();

        let mut client = ScramClient::new(alg, &username, &password);
        let t = scram_login(&env, mech, &mut client, Some(&creds), |m| m);
        let Step::Success { additional_data: Some(v), .. } = &t.outcome else {
            panic!("rejected: {:?}", t.outcome);
        };
        prop_assert!(client.verify_server_final(v));

        let mut client = ScramClient::new(alg, &username, &password);
        let t = scram_login(&env, mech, &mut client, Some(&creds), |m| flip_proof_bit(m, bit));
        prop_assert_eq!(t.outcome, Step::CredentialsRejected);
    }
}

/// Flips bit `bit` (mod the proof length) of the base64 proof in a client-final-message.
fn flip_proof_bit(msg: Vec<u8>, bit: usize) -> Vec<u8> {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let text = String::from_utf8(msg).unwrap();
    let (head, proof) = text.rsplit_once(",p=").unwrap();
    let mut proof = STANDARD.decode(proof).unwrap();
    let bit = bit % (proof.len() * 8);
    proof[bit / 8] ^= 1 << (bit % 8);
    format!("{head},p={}", STANDARD.encode(proof)).into_bytes()
}
