//! The fingerprint of a plan's inputs.

use prov_core::TargetId;
use sha2::{Digest, Sha256};

use super::PlanInput;
use crate::plan::hex;

/// A digest of a plan's inputs: the policy, the identities, the targets'
/// accounts, the links and the extra assignments and leases. The time is
/// not part of it: the same inputs planned a minute apart fingerprint alike.
///
/// Large collections are digested as order-independent sums of per-item
/// 64-bit hashes, computed on every core, and the sums go into a SHA-256:
/// fast over millions of accounts, and an accidental change to an item
/// goes unnoticed with probability about 2^-64. This detects staleness; it
/// is not a defence against someone forging inputs. It is stable within one
/// build of prov; a plan saved by another version may be refused as stale.
pub fn fingerprint(input: &PlanInput<'_>) -> String {
    let (identities, (accounts, links)) = rayon::join(
        || SetDigest::of(input.identities),
        || {
            rayon::join(
                || {
                    input
                        .actual
                        .iter()
                        .map(|(t, accts)| (t, SetDigest::of(accts)))
                        .collect::<Vec<_>>()
                },
                || SetDigest::of(input.links),
            )
        },
    );
    fingerprint_of(input, identities, &accounts, links)
}

/// The fingerprint from the digests of the large collections (accounts in
/// `input.actual`'s order).
pub(super) fn fingerprint_of(
    input: &PlanInput<'_>,
    identities: SetDigest,
    accounts: &[(&TargetId, SetDigest)],
    links: SetDigest,
) -> String {
    let mut h = Sha256::new();
    let mut put = |label: &str, bytes: &[u8]| {
        h.update(label.as_bytes());
        h.update([0u8]);
        h.update(u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_le_bytes());
        h.update(bytes);
    };
    put("policy", input.policy.digest().as_bytes());
    put("identities", &identities.bytes());
    for (target, digest) in accounts {
        put(target.as_str(), &digest.bytes());
    }
    put("links", &links.bytes());
    let mut assignments: Vec<_> = input.extra.assignments.iter().collect();
    assignments.sort();
    put(
        "assignments",
        &serde_json::to_vec(&assignments).unwrap_or_default(),
    );
    let mut leases: Vec<_> = input.extra.leases.iter().collect();
    leases.sort();
    put("leases", &serde_json::to_vec(&leases).unwrap_or_default());
    if !input.grants.is_empty() {
        put("grants", &SetDigest::of(input.grants).bytes());
    }
    if !input.entitlements.is_empty() {
        put(
            "entitlements",
            &serde_json::to_vec(input.entitlements).unwrap_or_default(),
        );
    }
    if !input.created.is_empty() {
        put(
            "created",
            &serde_json::to_vec(input.created).unwrap_or_default(),
        );
    }
    hex(&h.finalize())
}

/// A collection's digest: its count and the wrapping sum of its items'
/// hashes. Independent of order, so no sort is needed; computed on every
/// core, or item by item where the items are read anyway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct SetDigest {
    pub(super) count: u64,
    pub(super) sum: u64,
}

impl SetDigest {
    pub(super) fn of<T: std::hash::Hash + Sync>(items: &[T]) -> Self {
        use rayon::prelude::*;
        SetDigest {
            count: u64::try_from(items.len()).unwrap_or(u64::MAX),
            sum: items
                .par_iter()
                .with_min_len(4096)
                .map(Self::hash)
                .reduce(|| 0, u64::wrapping_add),
        }
    }

    /// One item's hash (fixed seed: the same in every process of a build).
    pub(super) fn hash<T: std::hash::Hash>(item: &T) -> u64 {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::with_seed(0x7072_6f76_0001).hash_one(item)
    }

    pub(super) fn bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        let (count, sum) = out.split_at_mut(8);
        count.copy_from_slice(&self.count.to_le_bytes());
        sum.copy_from_slice(&self.sum.to_le_bytes());
        out
    }
}
