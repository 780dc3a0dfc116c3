//! The phase state machine: `Pending` → `Running` → `Completed` | `Failed`;
//! `Pending` → `Skipped` | `Failed`. Terminal phases never change.

use crate::api::Phase;

/// A transition the state machine forbids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("illegal phase transition {from:?} -> {to:?}")]
pub struct IllegalTransition {
    pub from: Phase,
    pub to: Phase,
}

/// `Ok(to)` when `from → to` is legal. Staying in the same phase is always legal (a no-op).
pub fn transition(from: Phase, to: Phase) -> Result<Phase, IllegalTransition> {
    use Phase::*;
    let legal = from == to
        || matches!(
            (from, to),
            (Pending, Running)
                | (Pending, Skipped)
                | (Pending, Failed)
                | (Running, Completed)
                | (Running, Failed)
        );
    if legal {
        Ok(to)
    } else {
        Err(IllegalTransition { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Phase::*;

    const ALL: [Phase; 5] = [Pending, Running, Completed, Failed, Skipped];

    #[test]
    fn exactly_the_specified_transitions_are_legal() {
        let legal = [
            (Pending, Running),
            (Pending, Skipped),
            (Pending, Failed),
            (Running, Completed),
            (Running, Failed),
        ];
        for from in ALL {
            for to in ALL {
                let expected = from == to || legal.contains(&(from, to));
                assert_eq!(transition(from, to).is_ok(), expected, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn terminal_phases_never_change() {
        for from in [Completed, Failed, Skipped] {
            assert!(from.is_terminal());
            for to in ALL.into_iter().filter(|&t| t != from) {
                assert_eq!(transition(from, to), Err(IllegalTransition { from, to }));
            }
        }
        assert!(!Pending.is_terminal() && !Running.is_terminal());
    }
}
