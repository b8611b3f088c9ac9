//! A token bucket, as a throttling service keeps one: `per_second` tokens a
//! second, at most `capacity` held, a request taking one or being refused.
//! The AWS connectors' fake and the quota benchmark's proxy answer
//! ThrottlingException when it refuses.

use std::time::Instant;

/// A token bucket, full at the start.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    capacity: f64,
    per_second: f64,
    last: Instant,
}

impl TokenBucket {
    /// `per_second` tokens a second, at most `capacity` held.
    pub fn new(per_second: f64, capacity: f64) -> Self {
        TokenBucket {
            tokens: capacity,
            capacity,
            per_second,
            last: Instant::now(),
        }
    }

    /// Takes a token: whether there was one.
    pub fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_gives_its_capacity_then_refuses() {
        let mut b = TokenBucket::new(0.0, 3.0);
        assert!(b.take() && b.take() && b.take());
        assert!(!b.take());
    }
}
