//! Flag parsers.

use std::time::Duration;

use wfe_shared::admission::duration::parse_go_duration;

/// A Go duration flag (`90s`, `5m`, `1h30m`), for clap's `value_parser`.
pub fn duration(s: &str) -> Result<Duration, String> {
    parse_go_duration(s).map_err(|e| format!("{s:?} {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_and_errors_name_the_input() {
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        let e = duration("5 minutes").unwrap_err();
        assert!(e.starts_with("\"5 minutes\" "), "{e}");
    }
}
