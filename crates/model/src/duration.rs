//! Gcore's duration strings: `"43200s"`, `"30m"`, `"12h"`, `"4d"`, or bare seconds.

/// Seconds in a Gcore duration string.
pub fn parse_gcore_duration(s: &str) -> Result<u64, String> {
    let err = || format!("{s:?} is not a duration like \"3600s\", \"30m\", \"12h\" or \"4d\"");
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| err())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(err()),
    };
    n.checked_mul(mult).ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::parse_gcore_duration as d;

    #[test]
    fn table() {
        assert_eq!(d("43200s"), Ok(43200));
        assert_eq!(d("30m"), Ok(1800));
        assert_eq!(d("2h"), Ok(7200));
        assert_eq!(d("4d"), Ok(345_600));
        assert_eq!(d("0s"), Ok(0));
        assert_eq!(d("15"), Ok(15));
        for bad in ["", "s", "1x", "-1s", "1.5h", "99999999999999999999s"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }
}
