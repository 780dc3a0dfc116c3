//! The tunables of the safety rules and the backoff formula (SPEC 4), checked once at startup.

use std::time::Duration;

use crate::admission::duration::format_duration;

/// Cooldown, backoff and the failure threshold. Every number is configurable (controller flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// How long a finished execution keeps the target's lock, and how long the same workflow may
    /// not run again on a target after it completed there.
    pub cooldown: Duration,
    /// Backoff after the first pre-execution failure.
    pub backoff_base: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// The backoff doubles at most this many times.
    pub backoff_max_exponent: u32,
    /// Consecutive pre-execution failures on a target after which new executions are Skipped /
    /// ExhaustedRetries.
    pub max_consecutive_failures: u32,
}

impl Default for Rules {
    /// SPEC 4: cooldown 5m; backoff 1m, 2m, 4m, 8m, 10m; 5 failures.
    fn default() -> Self {
        Rules {
            cooldown: Duration::from_secs(300),
            backoff_base: Duration::from_secs(60),
            backoff_max: Duration::from_secs(600),
            backoff_max_exponent: 4,
            max_consecutive_failures: 5,
        }
    }
}

/// The largest exponent: 2^20 times any base is longer than anyone waits.
pub const MAX_BACKOFF_EXPONENT: u32 = 20;

/// A configuration the controller refuses to start with; the message names the flag.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("--backoff-base (WFE_BACKOFF_BASE) must be at least 1s, got {0}")]
    BaseTooShort(String),
    #[error(
        "--backoff-max (WFE_BACKOFF_MAX) must not be shorter than --backoff-base (WFE_BACKOFF_BASE): {max} < {base}"
    )]
    MaxBelowBase { max: String, base: String },
    #[error(
        "--backoff-max-exponent (WFE_BACKOFF_MAX_EXPONENT) must be at most {MAX_BACKOFF_EXPONENT}, got {0}"
    )]
    ExponentTooLarge(u32),
    #[error("--max-consecutive-failures (WFE_MAX_CONSECUTIVE_FAILURES) must be at least 1, got 0")]
    NoFailuresAllowed,
}

impl Rules {
    /// Every problem at once, so one restart fixes them all.
    pub fn check(&self) -> Result<(), Vec<RulesError>> {
        let mut errors = Vec::new();
        if self.backoff_base < Duration::from_secs(1) {
            errors.push(RulesError::BaseTooShort(format_duration(self.backoff_base)));
        }
        if self.backoff_max < self.backoff_base {
            errors.push(RulesError::MaxBelowBase {
                max: format_duration(self.backoff_max),
                base: format_duration(self.backoff_base),
            });
        }
        if self.backoff_max_exponent > MAX_BACKOFF_EXPONENT {
            errors.push(RulesError::ExponentTooLarge(self.backoff_max_exponent));
        }
        if self.max_consecutive_failures == 0 {
            errors.push(RulesError::NoFailuresAllowed);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The backoff after the `failures`-th consecutive pre-execution failure:
    /// `min(base · 2^min(failures − 1, maxExponent), max)`; none before the first.
    pub fn backoff(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let exponent = (failures - 1).min(self.backoff_max_exponent);
        let factor = 1u32.checked_shl(exponent).unwrap_or(u32::MAX);
        self.backoff_base
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.backoff_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_default_backoff_is_1_2_4_8_then_10_minutes() {
        let r = Rules::default();
        let minutes: Vec<u64> = (1..=7).map(|n| r.backoff(n).as_secs() / 60).collect();
        assert_eq!(minutes, [1, 2, 4, 8, 10, 10, 10]);
        assert_eq!(r.backoff(0), Duration::ZERO);
    }

    #[test]
    fn the_exponent_is_clamped_before_the_maximum() {
        let r = Rules {
            backoff_base: secs(1),
            backoff_max: secs(1000),
            backoff_max_exponent: 2,
            ..Rules::default()
        };
        // 1, 2, 4, then 4 forever: the exponent stops at 2 long before the maximum.
        let got: Vec<u64> = (1..=6).map(|n| r.backoff(n).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 4, 4, 4]);
        let capped = Rules {
            backoff_max: secs(3),
            ..r
        };
        assert_eq!(capped.backoff(3), secs(3), "the maximum caps 4s");
        assert_eq!(capped.backoff(2), secs(2));
    }

    #[test]
    fn huge_exponents_saturate_at_the_maximum() {
        let r = Rules {
            backoff_base: Duration::from_secs(u64::MAX / 4),
            backoff_max: Duration::MAX,
            backoff_max_exponent: MAX_BACKOFF_EXPONENT,
            ..Rules::default()
        };
        assert_eq!(r.backoff(u32::MAX), Duration::MAX);
    }

    #[test]
    fn the_defaults_pass_and_each_bad_value_is_named() {
        assert_eq!(Rules::default().check(), Ok(()));
        let bad = Rules {
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_millis(200),
            backoff_max_exponent: 21,
            max_consecutive_failures: 0,
            ..Rules::default()
        };
        let errors = bad.check().unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "--backoff-base (WFE_BACKOFF_BASE) must be at least 1s, got 500ms",
                "--backoff-max (WFE_BACKOFF_MAX) must not be shorter than --backoff-base (WFE_BACKOFF_BASE): 200ms < 500ms",
                "--backoff-max-exponent (WFE_BACKOFF_MAX_EXPONENT) must be at most 20, got 21",
                "--max-consecutive-failures (WFE_MAX_CONSECUTIVE_FAILURES) must be at least 1, got 0",
            ]
        );
        let edge = Rules {
            backoff_base: secs(1),
            backoff_max: secs(1),
            backoff_max_exponent: MAX_BACKOFF_EXPONENT,
            max_consecutive_failures: 1,
            cooldown: Duration::ZERO,
        };
        assert_eq!(edge.check(), Ok(()), "every bound is inclusive");
    }
}
