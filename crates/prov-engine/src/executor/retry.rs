//! Retries: only retryable errors, exponential backoff with full jitter, the
//! target's `Retry-After` honoured, and a budget so that a target that keeps
//! failing is not hammered.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use governor::DefaultDirectRateLimiter;
use prov_core::ErrorKind;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Retries: only retryable errors, exponential backoff with full jitter,
/// the target's `Retry-After` honoured, and a budget so that a target that
/// keeps failing is not hammered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts per call, the first included (default 6).
    pub max_attempts: u32,
    /// The first backoff's ceiling (default 100 ms); it doubles per attempt.
    pub base_delay: Duration,
    /// The longest backoff (default 30 s); a longer `Retry-After` is still
    /// honoured, up to `max_retry_after`.
    pub max_delay: Duration,
    /// The longest `Retry-After` waited for (default 15 minutes). A target
    /// asking for more is not obeyed: the call fails at once as retryable
    /// (rate limited), for a later run, instead of parking the apply for
    /// the server's chosen time.
    pub max_retry_after: Duration,
    /// Retries earned per first attempt (default 0.2: at most one retry in
    /// five calls once the reserve is spent).
    pub budget_ratio: f64,
    /// Retries allowed before any are earned (default 20).
    pub budget_reserve: u32,
    /// Seed for the jitter (tests fix it; by default it comes from the clock).
    pub seed: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id());
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(15 * 60),
            budget_ratio: 0.2,
            budget_reserve: 20,
            seed,
        }
    }
}

/// A call's result with its attempt count.
pub(crate) type Attempted<T> = (prov_core::Result<T>, u32);

struct Budget {
    tokens: f64,
    ratio: f64,
}

/// Makes calls under a [`RetryPolicy`], counting calls and retries.
pub(crate) struct Retrier {
    policy: RetryPolicy,
    rng: Mutex<SmallRng>,
    budget: Mutex<Budget>,
    counters: Mutex<(u64, u64)>,
}

impl Retrier {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Retrier {
            rng: Mutex::new(SmallRng::seed_from_u64(policy.seed)),
            budget: Mutex::new(Budget {
                tokens: f64::from(policy.budget_reserve),
                ratio: policy.budget_ratio,
            }),
            counters: Mutex::new((0, 0)),
            policy,
        }
    }

    /// A random number from the jitter's generator (for run ids).
    pub(crate) fn random(&self) -> u32 {
        self.rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random()
    }

    /// (calls, retries) so far.
    pub(crate) fn counters(&self) -> (u64, u64) {
        *self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One call with the rate limit, retries, backoff and budget.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        limiter: Option<&DefaultDirectRateLimiter>,
        mut f: F,
    ) -> Attempted<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = prov_core::Result<T>>,
    {
        let policy = &self.policy;
        self.deposit();
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            if let Some(l) = limiter {
                l.until_ready().await;
            }
            self.count(attempt > 1);
            match f().await {
                Ok(v) => return (Ok(v), attempt),
                Err(e) if e.retry_after().is_some_and(|w| w > policy.max_retry_after) => {
                    let wait = e.retry_after().unwrap_or_default();
                    let message = format!(
                        "{} (the target asked to wait {}s, more than the {}s this apply waits; a later run retries)",
                        e.message(),
                        wait.as_secs(),
                        policy.max_retry_after.as_secs()
                    );
                    let mut bounded =
                        prov_core::Error::new(e.kind(), message).with_retry_after(wait);
                    if let Some(t) = e.target() {
                        bounded = bounded.with_target(t.clone());
                    }
                    if let Some(op) = e.operation() {
                        bounded = bounded.with_operation(op);
                    }
                    return (Err(bounded), attempt);
                }
                // A rate-limit answer that says how long to wait is obeyed, not
                // charged to the budget: waiting as asked is not hammering.
                Err(e)
                    if e.is_retryable()
                        && attempt < policy.max_attempts.max(1)
                        && ((e.kind() == ErrorKind::RateLimited && e.retry_after().is_some())
                            || self.withdraw()) =>
                {
                    tokio::time::sleep(self.backoff(attempt, e.retry_after())).await;
                }
                Err(e) => return (Err(e), attempt),
            }
        }
    }

    fn count(&self, retry: bool) {
        let mut c = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        c.0 = c.0.saturating_add(1);
        if retry {
            c.1 = c.1.saturating_add(1);
        }
    }

    fn deposit(&self) {
        let mut b = self.budget.lock().unwrap_or_else(PoisonError::into_inner);
        b.tokens += b.ratio;
    }

    fn withdraw(&self) -> bool {
        let mut b = self.budget.lock().unwrap_or_else(PoisonError::into_inner);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Full jitter: a random wait up to `base * 2^(attempt-1)` (capped), but
    /// never shorter than what the target asked for.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let policy = &self.policy;
        let ceiling = policy
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(policy.max_delay);
        let jittered = {
            let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
            ceiling.mul_f64(rng.random::<f64>())
        };
        retry_after.map_or(jittered, |wait| jittered.max(wait))
    }
}
