//! What a CRDT state says in its writers' names: every part of a state was written by one
//! replica (a count, a register write, a dot and its value), and a causal context claims that
//! replicas issued the dots it holds. With signed self-state each such claim travels with its
//! author's signature (see [`crate::crdt::signed`]), so that no member can write in another's
//! name, nor claim another's future dots to cancel its writes before they are made.

use serde::Serialize;

use super::context::CausalContext;
use super::{AnyCrdt, ReplicaId};

/// One statement of an author about an object, as signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Statement<'a> {
    /// The author's own count of increments (or of decrements, `negative`).
    Count { negative: bool, count: u64 },
    /// A last-writer-wins write: its Lamport counter and value.
    Write { counter: u64, value: &'a [u8] },
    /// The author's dot `seq` carries `value` (a set element, a register value).
    Dot { seq: u64, value: &'a [u8] },
    /// The author issued its dots up to `seq` (on a claim: at least up to `seq`).
    Issued { seq: u64 },
}

/// A statement and its author.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim<'a> {
    pub author: ReplicaId,
    pub statement: Statement<'a>,
}

impl AnyCrdt {
    /// Every claim the state makes, in a fixed order (a proof's signatures follow it).
    pub(crate) fn claims(&self) -> Vec<Claim<'_>> {
        let mut out = Vec::new();
        match self {
            AnyCrdt::GCounter(c) => c.claims(false, &mut out),
            AnyCrdt::PnCounter(c) => c.claims(&mut out),
            AnyCrdt::LwwRegister(r) => {
                if let Some(w) = r.write() {
                    out.push(Claim {
                        author: w.replica,
                        statement: Statement::Write { counter: w.counter, value: &w.value },
                    });
                }
            }
            AnyCrdt::MvRegister(r) => {
                for (dot, value) in r.entries() {
                    out.push(Claim { author: dot.replica, statement: Statement::Dot { seq: dot.seq, value } });
                }
                context_claims(r.context(), &mut out);
            }
            AnyCrdt::AwSet(s) => {
                for (element, dots) in s.entries() {
                    for dot in dots {
                        out.push(Claim {
                            author: dot.replica,
                            statement: Statement::Dot { seq: dot.seq, value: element },
                        });
                    }
                }
                context_claims(s.context(), &mut out);
            }
        }
        out
    }
}

/// A context claims, for each replica in it, that the replica issued its highest dot there.
fn context_claims<'a>(context: &CausalContext, out: &mut Vec<Claim<'a>>) {
    for (replica, seq) in context.tops() {
        out.push(Claim { author: replica, statement: Statement::Issued { seq } });
    }
}
