//! Request pacing: IAM Identity Center's APIs share one throttle (20
//! requests a second, AWS documents), so every request the connector
//! sends, a grant's hundred memberships and an assignment's status polls
//! included, waits its turn here: the engine's own limiter counts
//! operations, and one operation can be many requests.

use std::future::Future;
use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Requests a second, at most; one at a time after a quiet spell (no
/// burst: a burst at the limit is what the service throttles).
#[derive(Debug)]
pub(crate) struct Pacer(Option<DefaultDirectRateLimiter>);

impl Pacer {
    /// `per_second` requests a second; 0 for no pacing.
    pub(crate) fn new(per_second: u32) -> Self {
        Pacer(
            NonZeroU32::new(per_second)
                .map(|n| RateLimiter::direct(Quota::per_second(n).allow_burst(NonZeroU32::MIN))),
        )
    }

    pub(crate) async fn wait(&self) {
        if let Some(l) = &self.0 {
            l.until_ready().await;
        }
    }
}

/// `.paced(p)`: the request waits for its turn before it is sent (an SDK
/// future sends nothing until polled).
pub(crate) trait Paced: Future + Sized {
    async fn paced(self, p: &Pacer) -> Self::Output {
        p.wait().await;
        self.await
    }
}

impl<F: Future> Paced for F {}
