//! Things kept between calls under a number a cursor carries: the
//! connection of a paged search, a group's member list being paged. A
//! caller may stop paging at any time, so what is kept is bounded in number
//! and in idle time; a cursor whose thing was dropped expires.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// At most `cap` things, each dropped after `idle` unused.
pub(crate) struct Kept<T> {
    next: u64,
    items: HashMap<u64, (T, Instant)>,
    cap: usize,
    idle: Duration,
}

impl<T> Kept<T> {
    pub(crate) fn new(cap: usize, idle: Duration) -> Self {
        Kept {
            next: 0,
            items: HashMap::new(),
            cap: cap.max(1),
            idle,
        }
    }

    fn expire(&mut self) {
        let idle = self.idle;
        self.items.retain(|_, (_, used)| used.elapsed() < idle);
    }

    /// Keeps `item`; the number to find it by. The least recently used is
    /// dropped when `cap` are kept already.
    pub(crate) fn keep(&mut self, item: T) -> u64 {
        self.expire();
        if self.items.len() >= self.cap {
            let oldest = self
                .items
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(n, _)| *n);
            if let Some(n) = oldest {
                self.items.remove(&n);
            }
        }
        self.next = self.next.wrapping_add(1);
        self.items.insert(self.next, (item, Instant::now()));
        self.next
    }

    /// Takes the item kept under `n`.
    pub(crate) fn take(&mut self, n: u64) -> Option<T> {
        self.expire();
        self.items.remove(&n).map(|(item, _)| item)
    }

    /// The item kept under `n`, marked as just used.
    pub(crate) fn get(&mut self, n: u64) -> Option<&T> {
        self.expire();
        self.items.get_mut(&n).map(|(item, used)| {
            *used = Instant::now();
            &*item
        })
    }

    /// How many minutes of idleness drop an item (for messages).
    pub(crate) fn idle_minutes(&self) -> u64 {
        self.idle.as_secs() / 60
    }

    /// How many items are kept at most (for messages).
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_finds_takes_and_drops_the_least_recently_used() {
        let mut k = Kept::new(2, Duration::from_secs(60));
        let a = k.keep("a");
        let b = k.keep("b");
        assert_eq!(k.get(a), Some(&"a"));
        let c = k.keep("c"); // b was used least recently
        assert_eq!(k.get(b), None);
        assert_eq!(k.take(a), Some("a"));
        assert_eq!(k.take(a), None);
        assert_eq!(k.get(c), Some(&"c"));
    }

    #[test]
    fn idle_items_expire() {
        let mut k = Kept::new(4, Duration::ZERO);
        let a = k.keep(1);
        assert_eq!(k.take(a), None);
    }
}
