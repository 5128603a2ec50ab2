//! Calendar arithmetic for the date formats the APIs use, written by hand (no chrono):
//! Flash Cache's `dd/MM/yyyy HH:mm:ss` and RFC 3339 (`2026-04-10T09:38:52Z`).
//!
//! Days are converted with Howard Hinnant's `civil_from_days` / `days_from_civil`.

const MS_PER_SEC: u64 = 1_000;
const SECS_PER_DAY: i64 = 86_400;

/// A UTC calendar time with second resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// The expiry the engine stores for `ms`: whole seconds, rounded up so that nothing expires
/// early; `None` (never) past `u32::MAX` seconds, 2106-02-07 (ARCHITECTURE.md "Index"). Every
/// API rounds with this before it answers, so a response reports the expiry that a later
/// read shows.
pub fn stored_expiry(ms: u64) -> Option<u64> {
    let secs = ms.max(1).div_ceil(MS_PER_SEC);
    (secs <= u64::from(u32::MAX)).then(|| secs * MS_PER_SEC)
}

impl Civil {
    /// The calendar time of a Unix time in milliseconds (sub-second part dropped).
    pub fn from_unix_ms(ms: u64) -> Self {
        let secs = i64::try_from(ms / MS_PER_SEC).unwrap_or(i64::MAX / 2);
        let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
        let rem = secs.rem_euclid(SECS_PER_DAY);
        Self {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    /// Unix time in milliseconds, or `None` before 1970 or for an impossible date.
    pub fn to_unix_ms(self) -> Option<u64> {
        if !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 59
        {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * SECS_PER_DAY
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        u64::try_from(secs).ok()?.checked_mul(MS_PER_SEC)
    }
}

/// `dd/MM/yyyy HH:mm:ss` in UTC, as Flash Cache shows `ExpiresUtc`.
pub fn format_flash(ms: u64) -> String {
    let c = Civil::from_unix_ms(ms);
    let mut s = String::with_capacity(19);
    push2(&mut s, c.day);
    s.push('/');
    push2(&mut s, c.month);
    s.push('/');
    push_year(&mut s, c.year);
    s.push(' ');
    push_clock(&mut s, &c);
    s
}

/// RFC 3339 in UTC with a `Z`, e.g. `2026-04-10T09:38:52Z`.
pub fn format_rfc3339(ms: u64) -> String {
    let c = Civil::from_unix_ms(ms);
    let mut s = String::with_capacity(20);
    push_year(&mut s, c.year);
    s.push('-');
    push2(&mut s, c.month);
    s.push('-');
    push2(&mut s, c.day);
    s.push('T');
    push_clock(&mut s, &c);
    s.push('Z');
    s
}

// Digit by digit instead of `format!`: these run on every Flash and IronCache read.
fn push2(s: &mut String, n: u32) {
    s.push(char::from(b'0' + (n / 10 % 10) as u8));
    s.push(char::from(b'0' + (n % 10) as u8));
}

/// `HH:mm:ss`.
fn push_clock(s: &mut String, c: &Civil) {
    push2(s, c.hour);
    s.push(':');
    push2(s, c.minute);
    s.push(':');
    push2(s, c.second);
}

/// At least four digits, as `{:04}`.
fn push_year(s: &mut String, year: i64) {
    match u32::try_from(year) {
        Ok(y) if y <= 9999 => {
            push2(s, y / 100);
            push2(s, y % 100);
        }
        _ => {
            use std::fmt::Write as _;
            let _ = write!(s, "{year:04}");
        }
    }
}

fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses `dd/MM/yyyy HH:mm:ss` (UTC).
pub fn parse_flash(s: &str) -> Option<u64> {
    let (date, time) = s.trim().split_once(' ')?;
    let mut d = date.split('/');
    let (day, month, year) = (d.next()?, d.next()?, d.next()?);
    if d.next().is_some() || day.len() > 2 || month.len() > 2 || year.len() != 4 {
        return None;
    }
    let (hour, minute, second) = parse_hms(time.trim())?;
    Civil {
        year: i64::from(number(year)?),
        month: number(month)?,
        day: number(day)?,
        hour,
        minute,
        second,
    }
    .to_unix_ms()
}

fn parse_hms(s: &str) -> Option<(u32, u32, u32)> {
    let mut t = s.split(':');
    let (h, m, sec) = (t.next()?, t.next()?, t.next()?);
    if t.next().is_some() || h.len() > 2 || m.len() != 2 || sec.len() != 2 {
        return None;
    }
    Some((number(h)?, number(m)?, number(sec)?))
}

/// Parses RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`), returning Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.len() < 20 || !s.is_ascii() {
        return None;
    }
    let (date, rest) = (&s[..10], &s[10..]);
    let mut d = date.split('-');
    let (year, month, day) = (d.next()?, d.next()?, d.next()?);
    if year.len() != 4
        || month.len() != 2
        || day.len() != 2
        || !matches!(&rest[..1], "T" | "t" | " ")
    {
        return None;
    }
    let (hour, minute, second) = parse_hms(rest.get(1..9)?)?;
    let mut tail = &rest[9..];
    let mut frac_ms = 0u64;
    if let Some(frac) = tail.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &frac[..digits.min(3)]);
        frac_ms = u64::from(number(&padded)?);
        tail = &frac[digits..];
    }
    let offset_secs: i64 = match tail {
        "Z" | "z" => 0,
        _ => {
            let sign = match tail.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = tail[1..].split_once(':')?;
            if oh.len() != 2 || om.len() != 2 {
                return None;
            }
            sign * (i64::from(number(oh)?) * 3600 + i64::from(number(om)?) * 60)
        }
    };
    let local = Civil {
        year: i64::from(number(year)?),
        month: number(month)?,
        day: number(day)?,
        hour,
        minute,
        second,
    }
    .to_unix_ms()?;
    let utc = i64::try_from(local).ok()? - offset_secs * 1000;
    u64::try_from(utc).ok().map(|ms| ms + frac_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_flash_format() {
        let ms = parse_flash("10/04/2026 09:38:52").expect("valid");
        assert_eq!(format_flash(ms), "10/04/2026 09:38:52");
        assert_eq!(format_rfc3339(ms), "2026-04-10T09:38:52Z");
        assert_eq!(parse_rfc3339("2026-04-10T09:38:52Z"), Some(ms));
        assert_eq!(parse_rfc3339("2026-04-10T11:38:52+02:00"), Some(ms));
        assert_eq!(parse_rfc3339("2026-04-10T09:38:52.250Z"), Some(ms + 250));
    }

    // The server answers with this rule before the engine applies its own: they must agree.
    #[test]
    fn stored_expiry_is_the_engines_rounding() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ttlcask_engine::Store::builder()
            .clock(ttlcask_engine::ManualClock::new(1_000))
            .compaction_interval(None)
            .open(dir.path())
            .expect("open");
        let cases = [
            1_001,
            1_999,
            2_000,
            2_001,
            1_773_221_932_345,
            u64::from(u32::MAX) * 1000 - 1,
            u64::from(u32::MAX) * 1000 + 5,
            u64::MAX,
        ];
        for (i, ms) in cases.into_iter().enumerate() {
            let key = i.to_le_bytes();
            let options = ttlcask_engine::PutOptions::expiring_at(ms);
            store.put(b"ns", &key, b"v", options).expect("put");
            let item = store.get(b"ns", &key).expect("get").expect("live");
            assert_eq!(item.expires_at_ms, stored_expiry(ms), "{ms}");
        }
    }

    #[test]
    fn known_epochs() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        // Year 10000 needs a fifth digit, as `{:04}` gives.
        assert_eq!(format_rfc3339(253_402_300_800_000), "10000-01-01T00:00:00Z");
        assert_eq!(format_flash(253_402_300_800_000), "01/01/10000 00:00:00");
        assert_eq!(
            parse_rfc3339("9999-01-01T00:00:00Z")
                .map(format_rfc3339)
                .as_deref(),
            Some("9999-01-01T00:00:00Z")
        );
    }

    #[test]
    fn rejects_impossible_dates() {
        assert_eq!(parse_flash("31/02/2026 00:00:00"), None);
        assert_eq!(parse_flash("10/04/2026 24:00:00"), None);
        assert_eq!(parse_flash("10-04-2026 09:38:52"), None);
        assert_eq!(parse_flash(""), None);
        assert_eq!(parse_rfc3339("2026-04-10"), None);
        assert_eq!(parse_rfc3339("2026-04-10T09:38:52"), None);
        assert_eq!(parse_rfc3339("２026-04-10T09:38:52Z"), None);
    }
}
