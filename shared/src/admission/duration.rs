//! Go `time.Duration` strings (`30m`, `1h30m`, `1.5h`, `500ms`), as Kubernetes and Tekton write them.

use std::time::Duration;

/// Why a duration string is not a Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("must not be empty")]
    Empty,
    #[error("must be a sequence of numbers with units (ns, us, ms, s, m, h), e.g. 30m or 1h30m")]
    Syntax,
    #[error("is too large")]
    Overflow,
}

/// Parses a non-negative Go duration. A bare `0` is accepted, as Go accepts it.
pub fn parse_go_duration(s: &str) -> Result<Duration, DurationError> {
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total_nanos: u128 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let whole = &s[start..i];
        let mut frac = "";
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            let fstart = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            frac = &s[fstart..i];
            if frac.is_empty() {
                return Err(DurationError::Syntax);
            }
        }
        if whole.is_empty() && frac.is_empty() {
            return Err(DurationError::Syntax);
        }
        let ustart = i;
        while i < bytes.len() && !bytes[i].is_ascii_digit() && bytes[i] != b'.' {
            i += 1;
        }
        let unit_nanos: u128 = match &s[ustart..i] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => return Err(DurationError::Syntax),
        };
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| DurationError::Overflow)?
        };
        let mut part = whole
            .checked_mul(unit_nanos)
            .ok_or(DurationError::Overflow)?;
        if !frac.is_empty() {
            // Only the first 18 fractional digits can matter at nanosecond resolution.
            let digits = &frac[..frac.len().min(18)];
            let scale = 10u128.pow(digits.len() as u32);
            let f: u128 = digits.parse().map_err(|_| DurationError::Syntax)?;
            part += f * unit_nanos / scale;
        }
        total_nanos = total_nanos
            .checked_add(part)
            .ok_or(DurationError::Overflow)?;
    }
    if total_nanos > u64::MAX as u128 {
        return Err(DurationError::Overflow);
    }
    Ok(Duration::from_nanos(total_nanos as u64))
}

/// Formats a duration the way an operator reads it: rounded to the second (to the millisecond under
/// a second), largest units first: `1h2m3s`, `1m30s`, `45s`, `250ms`, `0s`.
pub fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        let ms = d.as_millis();
        return if ms == 0 {
            "0s".into()
        } else {
            format!("{ms}ms")
        };
    }
    let secs = (d.as_millis() + 500) / 1000;
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        let cases = [
            ("30m", 30 * 60_000),
            ("1h30m", 90 * 60_000),
            ("1.5h", 90 * 60_000),
            ("500ms", 500),
            ("2h45m30s", (2 * 3600 + 45 * 60 + 30) * 1000),
            ("0", 0),
            ("0s", 0),
            ("24h", 24 * 3_600_000),
            (".5s", 500),
        ];
        for (s, ms) in cases {
            assert_eq!(parse_go_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        assert_eq!(parse_go_duration("1500us"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_go_duration("7ns"), Ok(Duration::from_nanos(7)));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for s in [
            "", "30", "m", "1d", "-5m", "1h-5m", "soon", "1..5h", "5.m", " 5m", "5m ", "1.5",
            "30.25", "1h.5",
        ] {
            assert!(parse_go_duration(s).is_err(), "{s:?} should not parse");
        }
        assert_eq!(
            parse_go_duration("99999999999999999999h"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn formats_rounded() {
        for (d, s) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1499), "1s"),
            (Duration::from_millis(1500), "2s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(3723), "1h2m3s"),
        ] {
            assert_eq!(format_duration(d), s);
        }
    }

    #[test]
    fn edge_inputs() {
        let ok = |s: &str| parse_go_duration(s);
        // Every spelling of microseconds, fractions of every unit.
        assert_eq!(ok("3µs"), Ok(Duration::from_micros(3)));
        assert_eq!(ok("3μs"), Ok(Duration::from_micros(3)));
        assert_eq!(ok("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(ok("0.25s"), Ok(Duration::from_millis(250)));
        assert_eq!(ok("1.5ms"), Ok(Duration::from_micros(1500)));
        assert_eq!(ok("2.5us"), Ok(Duration::from_nanos(2500)));
        // A fraction below a nanosecond is dropped, as Go drops it.
        assert_eq!(ok("1.9ns"), Ok(Duration::from_nanos(1)));
        // Fractional digits past the 18th cannot change the result.
        assert_eq!(
            ok("1.0000000000000000009999h"),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(ok("0.1234567891s"), Ok(Duration::from_nanos(123_456_789)));
        // Units in any order and repeated, as Go allows: they add up.
        assert_eq!(ok("1s1h"), Ok(Duration::from_secs(3601)));
        assert_eq!(ok("1m1m"), Ok(Duration::from_secs(120)));
        assert_eq!(ok("00010s"), Ok(Duration::from_secs(10)));
        // The largest duration that fits, and one nanosecond more.
        assert_eq!(
            ok("18446744073709551615ns"),
            Ok(Duration::from_nanos(u64::MAX))
        );
        assert_eq!(ok("18446744073709551616ns"), Err(DurationError::Overflow));
        assert_eq!(
            ok("18446744073709551615ns1ns"),
            Err(DurationError::Overflow)
        );
        // Each error names what is wrong.
        assert_eq!(ok(""), Err(DurationError::Empty));
        assert_eq!(ok("5.m"), Err(DurationError::Syntax));
        assert_eq!(ok(".m"), Err(DurationError::Syntax));
        assert_eq!(ok("5"), Err(DurationError::Syntax));
        assert_eq!(
            ok("00"),
            Err(DurationError::Syntax),
            "only a bare 0 needs no unit"
        );
        assert_eq!(ok("5x"), Err(DurationError::Syntax));
        assert_eq!(ok("5mm"), Err(DurationError::Syntax));
        assert_eq!(ok("1e3s"), Err(DurationError::Syntax));
    }

    #[test]
    fn formats_every_boundary() {
        for (d, s) in [
            (Duration::from_micros(999), "0s"),
            (Duration::from_millis(1), "1ms"),
            (Duration::from_millis(999), "999ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_secs(59), "59s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_millis(59_500), "1m0s"),
            (Duration::from_secs(3599), "59m59s"),
            (Duration::from_secs(7322), "2h2m2s"),
            (Duration::from_secs(36_000), "10h0m0s"),
        ] {
            assert_eq!(format_duration(d), s, "{d:?}");
        }
    }
}
