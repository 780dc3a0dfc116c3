//! How soon a failed watch is retried: 0.8 s doubling to at most 5 s, with jitter, back to 0.8 s
//! after two minutes without a failure — and a watch that expired (`410 Gone`) re-lists at once.
//!
//! kube-rs's default (client-go's reflector timings) doubles to 30 s: after a 10 s API server
//! outage the watches' next try came up to 13 s after the API server was back, and the controller
//! saw nothing meanwhile (docs/reliability.md). Five seconds bounds that; a failing watch then
//! costs the API server one request per replica and resource every 5 s, which it can take.

use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher;

const FIRST: Duration = Duration::from_millis(800);
const LONGEST: Duration = Duration::from_secs(5);
/// Without a failure for this long, the next one starts again at `FIRST`.
const RESET_AFTER: Duration = Duration::from_secs(120);

pub struct WatchBackoff {
    next: Duration,
    last: Option<Instant>,
    /// State of the jitter's generator (xorshift; any spread will do).
    seed: u64,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        WatchBackoff {
            next: FIRST,
            last: None,
            seed: seed | 1,
        }
    }
}

impl WatchBackoff {
    /// A factor in [0.5, 1.0): replicas that lost their watches together do not retry together.
    fn jitter(&mut self) -> f64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        0.5 + (self.seed >> 11) as f64 / (1u64 << 53) as f64 / 2.0
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) > RESET_AFTER)
        {
            self.next = FIRST;
        }
        self.last = Some(now);
        let delay = self.next.mul_f64(self.jitter());
        self.next = (self.next * 2).min(LONGEST);
        Some(delay)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = FIRST;
    }
}

/// Keeps a `410 Gone` from the backoff: it says the watch's resourceVersion is older than the API
/// server keeps (compaction, or an API server that restarted), not that the API server is failing,
/// and the watcher's answer — a fresh list — is due at once. After an API server restart the
/// watches met one as they came back and waited out a whole backoff step (4 s) for nothing. A
/// second 410 within a second goes to the backoff, so a server that keeps answering 410 is paced.
pub fn relist_at_once_when_gone<S, K>(events: S) -> impl Stream<Item = Result<K, watcher::Error>>
where
    S: Stream<Item = Result<K, watcher::Error>>,
{
    let mut last_gone: Option<Instant> = None;
    events.filter(move |event| {
        let pass = match event {
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                let now = Instant::now();
                let again = last_gone.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1));
                last_gone = Some(now);
                if !again {
                    tracing::info!(message = %status.message, "watch expired (410 Gone); re-listing at once");
                }
                again
            }
            _ => true,
        };
        futures::future::ready(pass)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn gone() -> Result<u32, watcher::Error> {
        Err(watcher::Error::WatchError(
            Status::failure("too old resource version", "Expired")
                .with_code(410)
                .boxed(),
        ))
    }

    #[tokio::test]
    async fn a_first_410_is_kept_from_the_backoff_a_second_in_a_row_is_not() {
        let other = Err(watcher::Error::WatchError(
            Status::failure("boom", "InternalError")
                .with_code(500)
                .boxed(),
        ));
        let passed: Vec<_> =
            relist_at_once_when_gone(futures::stream::iter([Ok(1), gone(), gone(), other, Ok(2)]))
                .map(|e| match e {
                    Ok(n) => format!("ok {n}"),
                    Err(watcher::Error::WatchError(s)) => format!("error {}", s.code),
                    Err(e) => format!("{e}"),
                })
                .collect()
                .await;
        assert_eq!(passed, ["ok 1", "error 410", "error 500", "ok 2"]);
    }

    #[test]
    fn doubles_to_five_seconds_with_jitter_and_starts_over_on_reset() {
        let mut b = WatchBackoff::default();
        let delays: Vec<Duration> = (0..8).map(|_| b.next().unwrap_or_default()).collect();
        let bounds = [0.8, 1.6, 3.2, 5.0, 5.0, 5.0, 5.0, 5.0];
        for (d, max) in delays.iter().zip(bounds) {
            let s = d.as_secs_f64();
            assert!(s >= max / 2.0 && s < max, "{delays:?}");
        }
        b.reset();
        assert!(b.next().unwrap_or_default() < FIRST);
    }
}
