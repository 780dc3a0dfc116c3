//! The string grammars the API server and the webhook must agree on: `targetResource` and the Go
//! durations of `executionConfig.timeout`. The CRD enforces them with RE2 patterns
//! (`wfe_shared::admission::patterns`), the webhook with parsers; a string one accepts and the other
//! refuses would be stored unvalidated or refused without a field error.

use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use wfe_shared::admission::duration::{format_duration, parse_go_duration};
use wfe_shared::admission::patterns;
use wfe_shared::admission::target::TargetResource;
use wfe_shared::admission::validation::check_timeout;

static TARGET_PATTERN: LazyLock<Regex> = LazyLock::new(|| pattern(patterns::TARGET_RESOURCE));
static DURATION_PATTERN: LazyLock<Regex> = LazyLock::new(|| pattern(patterns::GO_DURATION));

fn pattern(p: &str) -> Regex {
    match Regex::new(p) {
        Ok(r) => r,
        Err(e) => panic!("the API's pattern {p:?} does not compile: {e}"),
    }
}

/// `targetResource`: the parser accepts exactly what the CRD's pattern accepts (lengths aside: they
/// are separate rules), and a parsed target prints back to the same string.
pub fn target_resource(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = TargetResource::parse(s);
    // The pattern leaves the name's 253 characters to a separate rule.
    let within_lengths = s.rsplit('/').next().is_some_and(|name| name.len() <= 253);
    if within_lengths {
        assert_eq!(
            parsed.is_ok(),
            TARGET_PATTERN.is_match(s),
            "the parser ({parsed:?}) and the CRD pattern disagree on targetResource {s:?}"
        );
    }
    if let Ok(t) = parsed {
        assert_eq!(t.to_string(), s, "targetResource {s:?} does not print back");
        assert_eq!(
            TargetResource::parse(&t.to_string()).ok(),
            Some(t),
            "targetResource {s:?} does not parse back"
        );
    }
}

/// Go durations: whatever the CRD's pattern admits the webhook parses (or refuses with a field error
/// for a bound: zero, over 24h, too large), and the webhook never accepts what the pattern refuses; a
/// parsed duration, printed as an operator reads it, parses back to itself rounded to the second.
pub fn duration(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_go_duration(s);
    let timeout = check_timeout(s);
    if DURATION_PATTERN.is_match(s) {
        assert!(
            parsed.is_ok()
                || parsed == Err(wfe_shared::admission::duration::DurationError::Overflow),
            "the CRD pattern admits {s:?} but the parser refuses it: {parsed:?}"
        );
    } else if timeout.is_ok() {
        panic!("the webhook accepts timeout {s:?}, which the CRD pattern refuses");
    }
    if let Ok(d) = timeout {
        assert!(
            d > Duration::ZERO && d <= Duration::from_secs(24 * 3600),
            "timeout {s:?} accepted as {d:?}, outside (0, 24h]"
        );
    }
    if let Ok(d) = parsed {
        let printed = format_duration(d);
        let again = parse_go_duration(&printed);
        let expected = if d < Duration::from_secs(1) {
            Duration::from_millis(d.as_millis() as u64)
        } else {
            Duration::from_secs(((d.as_millis() + 500) / 1000) as u64)
        };
        assert_eq!(
            again,
            Ok(expected),
            "{s:?} = {d:?} prints as {printed:?}, which does not parse back"
        );
    }
}
