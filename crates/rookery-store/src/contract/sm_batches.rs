//! rookery-store contract suite: `SmStore` batches. A backend may run a batch's ops in any
//! way that ends where running them one by one would (`postgres/sm.rs` merges them into
//! few statements); this checks that on a long mixed stream of ops cut into batches of
//! every size.

use super::sm::{D, NODE, ack, append, apply, attempt, end, row, session};
use crate::{DeadLetter, OutboxRow, SmOp, SmSession, Stores};

/// A small deterministic generator (xorshift64): the same ops on every run and backend.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A mixed stream of ops on four sessions of `user`, named `<prefix><n>`: mostly appends and
/// acks, with duplicate seqs and origins, attempts, ends and new records in between. The
/// origins name the four sessions and a fifth that never has a record, so `Handled`s and
/// `End`s prune what appends remember.
fn mixed_ops(prefix: &str, user: &str, count: usize) -> Vec<SmOp> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut next_seq = [1u64; 4];
    let mut ops = Vec::with_capacity(count);
    for i in 0..count {
        let n = rng.below(4) as usize;
        let id = format!("{prefix}{n}");
        let op = match rng.below(100) {
            0..=4 => SmOp::Put(SmSession {
                user: user.to_owned(),
                handled: i as u32,
                acked: rng.below(next_seq[n]),
                priority: rng.below(5) as i32 - 2,
                ..session(&id)
            }),
            5..=49 => {
                // Now and then a seq or an origin that is already there.
                let seq = if rng.below(10) == 0 {
                    next_seq[n].saturating_sub(1 + rng.below(3))
                } else {
                    next_seq[n] += 1;
                    next_seq[n] - 1
                };
                let origin = match rng.below(3) {
                    0 => None,
                    _ => Some(format!("{prefix}{}#{}", rng.below(5), rng.below(20))),
                };
                append(
                    &id,
                    OutboxRow {
                        attempts: 1 + rng.below(3) as u32,
                        ..row(seq, origin.as_deref())
                    },
                )
            }
            50..=79 => ack(&id, rng.below(next_seq[n] + 1)),
            80..=84 => SmOp::Handled {
                session: id,
                handled: rng.below(24) as u32,
            },
            85..=86 => SmOp::State {
                session: id,
                presence: rng.below(2).eq(&0).then(|| format!("<presence id='{i}'/>")),
                priority: rng.below(255) as i32 - 128,
                interested: rng.below(2) == 0,
                directed: (0..rng.below(3)).map(|d| format!("c{d}@x")).collect(),
            },
            87..=89 => attempt(&id, 1 + rng.below(4) as u32, i as i64 / 50),
            90..=92 => SmOp::Park {
                session: id,
                until_ms: i as i64,
            },
            93..=95 => SmOp::Attach { session: id },
            _ => end(&id),
        };
        ops.push(op);
    }
    ops
}

/// What a prefix's sessions hold, with the prefix and user taken out so two runs compare
/// (`seen` sorted too: it comes in any order).
async fn state_of(s: &Stores, prefix: &str, user: &str) -> (Vec<String>, Vec<String>) {
    let unprefixed = |text: &str| text.strip_prefix(prefix).unwrap_or(text).to_owned();
    let sessions =
        s.sm.load(NODE)
            .await
            .unwrap()
            .into_iter()
            .filter(|(r, _)| r.id.starts_with(prefix))
            .map(|(r, rows)| {
                let mut seen: Vec<String> = r.seen.iter().map(|o| unprefixed(o)).collect();
                seen.sort();
                let r = SmSession {
                    id: unprefixed(&r.id),
                    user: String::new(),
                    seen,
                    ..r
                };
                let rows: Vec<OutboxRow> = rows
                    .into_iter()
                    .map(|row| OutboxRow {
                        origin: row.origin.as_deref().map(unprefixed),
                        ..row
                    })
                    .collect();
                format!("{r:?} {rows:?}")
            })
            .collect();
    let letters =
        s.sm.dead_letters(user, D)
            .await
            .unwrap()
            .into_iter()
            .map(|l| {
                let session = l.session[prefix.len()..].to_owned();
                format!("{:?}", DeadLetter { session, ..l })
            })
            .collect();
    (sessions, letters)
}

/// The same ops give the same state whether applied one by one or in batches of any size,
/// which is what lets a backend plan a batch into fewer statements. Compared after every
/// batch.
pub async fn sm_batches_match_one_by_one(s: &Stores) {
    const COUNT: usize = 600;
    let singles = mixed_ops("x", "xuser", COUNT);
    let batched = mixed_ops("y", "yuser", COUNT);
    let mut rng = Rng(7);
    let (mut done, mut saw_rows, mut saw_seen) = (0, false, false);
    while done < COUNT {
        let size = (1 + rng.below(120) as usize).min(COUNT - done);
        for op in &singles[done..done + size] {
            apply(s, std::slice::from_ref(op)).await;
        }
        apply(s, &batched[done..done + size]).await;
        done += size;
        let expected = state_of(s, "x", "xuser").await;
        assert_eq!(state_of(s, "y", "yuser").await, expected, "after op {done}");
        saw_rows |= expected.0.iter().any(|s| s.contains("OutboxRow"));
        saw_seen |= expected.0.iter().any(|s| s.contains("seen: [\""));
    }
    // The ops did something worth comparing: live rows, remembered origins and dead letters.
    assert!(saw_rows && saw_seen);
    assert!(!state_of(s, "x", "xuser").await.1.is_empty());
}
