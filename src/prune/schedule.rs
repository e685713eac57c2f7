//! The pruner's `schedule`: standard five-field cron ("minute hour day-of-month month
//! day-of-week", UTC), as OpenShift's ImagePruner CronJob takes it. Fields accept `*`, numbers,
//! ranges `a-b`, lists `a,b` and steps `*/n` or `a-b/n`; day-of-week 0 and 7 are Sunday; when
//! both day fields are restricted a day matching either runs, as cron does.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_restricted: bool,
    weekdays_restricted: bool,
}

/// Why a schedule is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule {schedule:?}: {problem}")]
pub struct InvalidSchedule {
    pub schedule: String,
    pub problem: String,
}

impl InvalidSchedule {
    pub fn reason(&self) -> &'static str {
        "InvalidSchedule"
    }
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, InvalidSchedule> {
        let invalid = |problem: String| InvalidSchedule {
            schedule: text.into(),
            problem,
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(invalid(format!("{} fields, want 5", fields.len())));
        };
        let minutes = field(minute, 0, 59).map_err(&invalid)?;
        let hours = field(hour, 0, 23).map_err(&invalid)?;
        let days = field(day, 1, 31).map_err(&invalid)?;
        let months = field(month, 1, 12).map_err(&invalid)?;
        let mut weekdays = field(weekday, 0, 7).map_err(&invalid)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Schedule {
            minutes,
            hours: u32::try_from(hours).unwrap_or(u32::MAX),
            days: u32::try_from(days).unwrap_or(u32::MAX),
            months: u16::try_from(months).unwrap_or(u16::MAX),
            weekdays: u8::try_from(weekdays & 0x7f).unwrap_or(u8::MAX),
            days_restricted: day != "*",
            weekdays_restricted: weekday != "*",
        })
    }

    fn matches(&self, t: DateTime) -> bool {
        let bit = |set: u64, v: i8| set & (1u64 << v) != 0;
        let day = bit(u64::from(self.days), t.day());
        let weekday = bit(
            u64::from(self.weekdays),
            t.weekday().to_sunday_zero_offset(),
        );
        let day_ok = match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => day || weekday,
            (true, false) => day,
            (false, true) => weekday,
            (false, false) => true,
        };
        bit(self.minutes, t.minute())
            && bit(u64::from(self.hours), t.hour())
            && bit(u64::from(self.months), t.month())
            && day_ok
    }

    /// The first time after `after` (to the minute) the schedule fires; `None` if it never
    /// does within four years (say, February 30th).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let utc = TimeZone::UTC;
        let start = after.to_zoned(utc.clone()).datetime();
        let mut t = start
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(jiff::Span::new().minutes(1))
            .ok()?;
        // day by day until a matching day, then minute by minute within it
        for _ in 0..(4 * 366) {
            let day_start = t.date().to_datetime(jiff::civil::Time::midnight());
            let day_ok = self.matches_day(t);
            if day_ok {
                while t.date() == day_start.date() {
                    if self.matches(t) {
                        return t.to_zoned(utc.clone()).ok().map(|z| z.timestamp());
                    }
                    t = t.checked_add(jiff::Span::new().minutes(1)).ok()?;
                }
            } else {
                t = day_start.checked_add(jiff::Span::new().days(1)).ok()?;
            }
        }
        None
    }

    fn matches_day(&self, t: DateTime) -> bool {
        let midnight = t.date().to_datetime(jiff::civil::Time::midnight());
        // any minute and hour: does the day itself qualify?
        let mut any = self.clone();
        any.minutes = u64::MAX;
        any.hours = u32::MAX;
        any.matches(midnight)
    }
}

/// A bit set of the values `text` selects in `min..=max`.
fn field(text: &str, min: u8, max: u8) -> Result<u64, String> {
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u8>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        let number = |s: &str| {
            s.parse::<u8>()
                .ok()
                .filter(|v| (min..=max).contains(v))
                .ok_or_else(|| format!("{s:?} is not in {min}-{max}"))
        };
        let (from, to) = match range {
            "*" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if step > 1 => (number(r)?, max),
                None => {
                    let v = number(r)?;
                    (v, v)
                }
            },
        };
        if from > to {
            return Err(format!("empty range {range:?}"));
        }
        let mut v = from;
        while v <= to {
            set |= 1 << v;
            v = match v.checked_add(step) {
                Some(n) => n,
                None => break,
            };
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(schedule: &str, after: &str) -> String {
        Schedule::parse(schedule)
            .unwrap()
            .next_after(at(after))
            .unwrap()
            .to_string()
    }

    #[test]
    fn daily_at_midnight_is_the_default() {
        assert_eq!(
            next("0 0 * * *", "2026-11-22T10:15:00Z"),
            "2026-11-23T00:00:00Z"
        );
        assert_eq!(
            next("0 0 * * *", "2026-11-22T00:00:00Z"),
            "2026-11-23T00:00:00Z"
        );
    }

    #[test]
    fn steps_ranges_lists_and_weekdays() {
        assert_eq!(
            next("*/15 * * * *", "2026-11-22T10:15:30Z"),
            "2026-11-22T10:30:00Z"
        );
        assert_eq!(
            next("30 9-17/4 * * *", "2026-11-22T14:00:00Z"),
            "2026-11-22T17:30:00Z"
        );
        assert_eq!(
            next("0 3 1,15 * *", "2026-11-16T00:00:00Z"),
            "2026-12-01T03:00:00Z"
        );
        // 2026-11-22 is a Sunday; 7 is Sunday too
        assert_eq!(
            next("0 6 * * 1", "2026-11-22T12:00:00Z"),
            "2026-11-23T06:00:00Z"
        );
        assert_eq!(
            next("0 6 * * 7", "2026-11-21T12:00:00Z"),
            "2026-11-22T06:00:00Z"
        );
        // both day fields restricted: either matches
        assert_eq!(
            next("0 0 1 * 1", "2026-11-22T12:00:00Z"),
            "2026-11-23T00:00:00Z"
        );
        assert_eq!(
            next("* * * * *", "2026-11-22T12:00:59Z"),
            "2026-11-22T12:01:00Z"
        );
    }

    #[test]
    fn invalid_schedules_say_why() {
        for bad in [
            "",
            "0 0 * *",
            "60 * * * *",
            "* 24 * * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "a * * * *",
        ] {
            let err = Schedule::parse(bad).unwrap_err();
            assert_eq!(err.reason(), "InvalidSchedule");
        }
        assert_eq!(
            Schedule::parse("0 0 30 2 *")
                .unwrap()
                .next_after(at("2026-01-01T00:00:00Z")),
            None
        );
    }
}
