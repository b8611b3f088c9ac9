//! Hash indexes over accounts and links: positions by key, with 32-bit
//! slots, built on every core.

use std::borrow::Cow;
use std::collections::HashMap;

/// A fast hash map: keys here come from the targets and the store, and the
/// planner builds maps over millions of them.
pub(super) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Positions of keys, as a table of 32-bit positions (4 bytes a slot
/// instead of a key reference and a value: about 10 MB for a million keys
/// where a `HashMap<&str, usize>` took 34 MB). The keys are hashed first on
/// every core, then inserted in one short loop that touches only the
/// table; a lookup checks its hit against the key array, not the item the
/// key came from. A key given twice keeps its last position, as a map
/// would.
pub(super) struct KeyIndex<'a> {
    keys: Vec<&'a str>,
    state: foldhash::fast::RandomState,
    table: hashbrown::HashTable<u32>,
}

impl<'a> KeyIndex<'a> {
    /// `None` when there are more keys than 32-bit positions.
    pub(super) fn new(keys: Vec<&'a str>) -> Option<Self> {
        use rayon::prelude::*;
        use std::hash::BuildHasher;
        u32::try_from(keys.len()).ok()?;
        let state = foldhash::fast::RandomState::default();
        let hashes: Vec<u64> = keys
            .par_iter()
            .with_min_len(4096)
            .map(|k| state.hash_one(*k))
            .collect();
        let mut table = hashbrown::HashTable::with_capacity(keys.len());
        let hash_of = |&j: &u32| hashes.get(j as usize).copied().unwrap_or(0);
        for (i, (k, &hash)) in (0u32..).zip(keys.iter().zip(&hashes)) {
            match table.entry(hash, |&j| keys.get(j as usize) == Some(k), hash_of) {
                hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = i,
                hashbrown::hash_table::Entry::Vacant(e) => {
                    e.insert(i);
                }
            }
        }
        Some(KeyIndex { keys, state, table })
    }

    /// As [`new`](Self::new), with the positions of keys a later one
    /// repeats (the index holds the last of each).
    pub(super) fn with_repeats(keys: Vec<&'a str>) -> Option<(Self, Vec<u32>)> {
        let index = Self::new(keys)?;
        use rayon::prelude::*;
        let repeats = index
            .keys
            .par_iter()
            .enumerate()
            .with_min_len(4096)
            .filter_map(|(j, k)| {
                let j = u32::try_from(j).ok()?;
                (index.get(k) != Some(j)).then_some(j)
            })
            .collect();
        Some((index, repeats))
    }

    pub(super) fn get(&self, k: &str) -> Option<u32> {
        use std::hash::BuildHasher;
        self.table
            .find(self.state.hash_one(k), |&j| {
                self.keys.get(j as usize).is_some_and(|x| *x == k)
            })
            .copied()
    }

    /// The position of each item's key, on every core; `u32::MAX` (which
    /// no key has) where there is none: 4 bytes an item, not 8 for an Option.
    pub(super) fn positions<T: Sync>(
        &self,
        items: &[T],
        key: impl Fn(&T) -> &str + Sync,
    ) -> Vec<u32> {
        use rayon::prelude::*;
        items
            .par_iter()
            .with_min_len(4096)
            .map(|x| self.get(key(x)).unwrap_or(u32::MAX))
            .collect()
    }
}

/// Positions of keys that may repeat (logins, attribute values), without
/// an allocation per key: each distinct key's last position in a table of
/// 32-bit positions, and from each position the previous one with the same
/// key. With `fold_case`, keys match ignoring ASCII case.
#[derive(Default)]
pub(super) struct MultiIndex<'a> {
    keys: Vec<Option<Cow<'a, str>>>,
    fold_case: bool,
    state: foldhash::fast::RandomState,
    table: hashbrown::HashTable<u32>,
    prev: Vec<u32>,
}

impl<'a> MultiIndex<'a> {
    /// An index over `keys` (`None`: that position has no key). Past
    /// 2^32 - 1 positions the rest are left out of the index.
    pub(super) fn new(keys: Vec<Option<Cow<'a, str>>>, fold_case: bool) -> Self {
        use rayon::prelude::*;
        let mut index = MultiIndex {
            keys: Vec::new(),
            fold_case,
            state: foldhash::fast::RandomState::default(),
            table: hashbrown::HashTable::with_capacity(keys.len()),
            prev: vec![u32::MAX; keys.len()],
        };
        let hashes: Vec<u64> = keys
            .par_iter()
            .with_min_len(4096)
            .map(|k| k.as_deref().map_or(0, |k| index.hash(k)))
            .collect();
        let hash_of = |&j: &u32| hashes.get(j as usize).copied().unwrap_or(0);
        for ((i, key), (&hash, prev)) in (0u32..u32::MAX)
            .zip(&keys)
            .zip(hashes.iter().zip(index.prev.iter_mut()))
        {
            let Some(key) = key.as_deref() else { continue };
            let same = |&j: &u32| {
                keys.get(j as usize)
                    .and_then(|k| k.as_deref())
                    .is_some_and(|k| Self::same(fold_case, k, key))
            };
            match index.table.entry(hash, same, hash_of) {
                hashbrown::hash_table::Entry::Occupied(mut e) => {
                    *prev = *e.get();
                    *e.get_mut() = i;
                }
                hashbrown::hash_table::Entry::Vacant(e) => {
                    e.insert(i);
                }
            }
        }
        index.keys = keys;
        index
    }

    fn same(fold_case: bool, a: &str, b: &str) -> bool {
        if fold_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    }

    fn hash(&self, key: &str) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        if !self.fold_case {
            return self.state.hash_one(key);
        }
        // The key's bytes in ASCII lowercase, a chunk at a time: "ADA" and
        // "ada" feed the hasher the same bytes, with no allocation.
        let mut h = self.state.build_hasher();
        let mut buf = [0u8; 64];
        for chunk in key.as_bytes().chunks(buf.len()) {
            for (b, c) in buf.iter_mut().zip(chunk) {
                *b = c.to_ascii_lowercase();
            }
            h.write(buf.get(..chunk.len()).unwrap_or_default());
        }
        h.write_u8(0xff);
        h.finish()
    }

    /// Every position whose key is `key`, in order.
    pub(super) fn get(&self, key: &str) -> Vec<usize> {
        let found = self.table.find(self.hash(key), |&j| {
            self.keys
                .get(j as usize)
                .and_then(|k| k.as_deref())
                .is_some_and(|k| Self::same(self.fold_case, k, key))
        });
        let mut out = Vec::new();
        let mut at = found.copied().unwrap_or(u32::MAX);
        while at != u32::MAX {
            out.push(at as usize);
            at = self.prev.get(at as usize).copied().unwrap_or(u32::MAX);
        }
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{KeyIndex, MultiIndex};
    use std::borrow::Cow;

    #[test]
    fn multi_index_gives_every_position_of_a_key_in_order() {
        let long = "A".repeat(100) + "@Example.com";
        let keys = [
            Some("ada@example.com"),
            None,
            Some("bob"),
            Some("ADA@Example.COM"),
            Some(long.as_str()),
            Some("ada@example.com"),
        ];
        let owned = || keys.iter().map(|k| k.map(Cow::Borrowed)).collect();
        let folded = MultiIndex::new(owned(), true);
        assert_eq!(folded.get("Ada@Example.Com"), [0, 3, 5]);
        assert_eq!(folded.get("BOB"), [2]);
        assert_eq!(
            folded.get(&long.to_lowercase()),
            [4],
            "past the 64-byte chunk"
        );
        assert!(folded.get("carol").is_empty());
        let exact = MultiIndex::new(owned(), false);
        assert_eq!(exact.get("ada@example.com"), [0, 5]);
        assert_eq!(exact.get("ADA@Example.COM"), [3]);
        assert!(exact.get("BOB").is_empty());
        assert!(MultiIndex::default().get("bob").is_empty());
    }

    #[test]
    fn key_index_finds_positions_and_keeps_the_last_of_a_repeated_key() {
        let items: Vec<String> = ["b", "a", "c", "a", "uid=x\\,y,ou=people"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let index = KeyIndex::new(items.iter().map(String::as_str).collect()).unwrap();
        assert_eq!(index.get("b"), Some(0));
        assert_eq!(index.get("c"), Some(2));
        assert_eq!(
            index.get("a"),
            Some(3),
            "a repeated key keeps its last position, as a map would"
        );
        assert_eq!(index.get("uid=x\\,y,ou=people"), Some(4));
        assert_eq!(index.get("d"), None);
        assert_eq!(index.get(""), None);
        assert_eq!(
            index.positions(&["c", "d", "a"], |s| s),
            vec![2, u32::MAX, 3],
            "positions of several keys, u32::MAX for a missing one"
        );
        let empty = KeyIndex::new(Vec::new()).unwrap();
        assert_eq!(empty.get("a"), None);
    }
}
