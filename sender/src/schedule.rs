//! `strategy = "at"`: cut at fixed local times of day (`at = ["02:00", "14:30"]`).
//!
//! A schedule is due when one of its times, as an instant in the local time zone, lies
//! after the last check and not after now: a time passed while the service was busy is
//! caught up at the next pass, and each time cuts once. Daylight saving time: a local
//! time that happens twice (the clock goes back) counts at its first occurrence only;
//! one that does not happen (the clock jumps forward over it) counts at the first
//! instant after the jump. The time zone is a parameter, so tests inject the clock and
//! the zone; the service uses `chrono::Local`.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};

/// The instant local `time` on `date` stands for in `tz` (see the module docs for DST).
fn instant<Tz: TimeZone>(tz: &Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let local = date.and_time(time);
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        // Twice (the clock went back): the first.
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        // Never (the clock jumped forward): the first minute after the jump.
        LocalResult::None => (1..=180).find_map(|m| {
            tz.from_local_datetime(&(local + Duration::minutes(m)))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
        }),
    }
}

/// Whether one of `times` (local, in `tz`) falls in `(last, now]`.
pub fn due<Tz: TimeZone>(
    tz: &Tz,
    times: &[NaiveTime],
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    if now <= last {
        return false;
    }
    // Local dates from the day before `last` to the day after `now` cover every instant
    // in between, whatever the offset.
    let first = last.with_timezone(tz).date_naive() - Duration::days(1);
    let end = now.with_timezone(tz).date_naive() + Duration::days(1);
    let mut date = first;
    while date <= end {
        for &t in times {
            if instant(tz, date, t).is_some_and(|i| i > last && i <= now) {
                return true;
            }
        }
        date = match date.succ_opt() {
            Some(d) => d,
            None => break,
        };
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::FixedOffset;

    fn hm(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").unwrap()
    }

    fn at(tz: &FixedOffset, y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        tz.with_ymd_and_hms(y, mo, d, h, mi, s)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The clock injected: due exactly when a configured minute is crossed, once, in the
    /// zone's local time (here UTC+8), across midnight too.
    #[test]
    fn at_cuts_at_the_configured_minute() {
        let tz = FixedOffset::east_opt(8 * 3600).unwrap();
        let times = [hm("02:00"), hm("14:30")];
        let t = |h, m, s| at(&tz, 2026, 12, 4, h, m, s);
        assert!(!due(&tz, &times, t(14, 0, 0), t(14, 29, 59)));
        assert!(due(&tz, &times, t(14, 29, 59), t(14, 30, 0)));
        assert!(!due(&tz, &times, t(14, 30, 0), t(14, 30, 30)), "cut twice");
        assert!(!due(&tz, &times, t(14, 30, 30), t(23, 59, 0)));
        // Over midnight to 02:00 the next day.
        assert!(due(
            &tz,
            &times,
            t(23, 59, 0),
            at(&tz, 2026, 12, 5, 2, 0, 1)
        ));
        assert!(!due(
            &tz,
            &times,
            t(23, 59, 0),
            at(&tz, 2026, 12, 5, 1, 59, 0)
        ));
        // A time passed while the service was busy (a long snapshot) is caught up.
        assert!(due(&tz, &times, t(14, 0, 0), t(15, 10, 0)));
        // The same instants read in UTC are 8 hours off: 14:30 UTC is not 14:30 local.
        let utc = FixedOffset::east_opt(0).unwrap();
        assert!(!due(&utc, &times, t(14, 29, 59), t(14, 30, 0)));
    }

    /// A zone with one daylight-saving change at `switch` (UTC), from offset `before`
    /// to `after`, as Central Europe has twice a year.
    #[derive(Debug, Clone)]
    struct Dst {
        switch: chrono::NaiveDateTime,
        before: FixedOffset,
        after: FixedOffset,
    }

    impl TimeZone for Dst {
        type Offset = FixedOffset;
        fn from_offset(o: &FixedOffset) -> Dst {
            Dst {
                switch: chrono::NaiveDateTime::MIN,
                before: *o,
                after: *o,
            }
        }
        fn offset_from_local_date(&self, d: &NaiveDate) -> LocalResult<FixedOffset> {
            self.offset_from_local_datetime(&d.and_time(NaiveTime::MIN))
        }
        fn offset_from_local_datetime(
            &self,
            l: &chrono::NaiveDateTime,
        ) -> LocalResult<FixedOffset> {
            let utc = |o: FixedOffset| *l - Duration::seconds(i64::from(o.local_minus_utc()));
            let as_before = utc(self.before) < self.switch;
            let as_after = utc(self.after) >= self.switch;
            match (as_before, as_after) {
                (true, true) => LocalResult::Ambiguous(self.before, self.after),
                (true, false) => LocalResult::Single(self.before),
                (false, true) => LocalResult::Single(self.after),
                (false, false) => LocalResult::None,
            }
        }
        fn offset_from_utc_date(&self, d: &NaiveDate) -> FixedOffset {
            self.offset_from_utc_datetime(&d.and_time(NaiveTime::MIN))
        }
        fn offset_from_utc_datetime(&self, u: &chrono::NaiveDateTime) -> FixedOffset {
            if *u < self.switch {
                self.before
            } else {
                self.after
            }
        }
    }

    /// Minute by minute over two days around the change: how often `02:30` is due.
    fn hits(tz: &Dst, day: (i32, u32, u32)) -> Vec<DateTime<Utc>> {
        let start =
            Utc.with_ymd_and_hms(day.0, day.1, day.2, 12, 0, 0).unwrap() - Duration::days(1);
        let mut out = Vec::new();
        let mut last = start;
        for minute in 1..=(2 * 24 * 60) {
            let now = start + Duration::minutes(minute);
            if due(tz, &[hm("02:30")], last, now) {
                out.push(now);
            }
            last = now;
        }
        out
    }

    /// The clock going back (02:30 happens twice) cuts once, at the first; the clock
    /// jumping forward over 02:30 cuts once, at the first minute after the jump.
    #[test]
    fn daylight_saving_time_counts_each_time_once() {
        let cest = FixedOffset::east_opt(2 * 3600).unwrap();
        let cet = FixedOffset::east_opt(3600).unwrap();
        // 2026-10-25 01:00 UTC: 03:00 CEST becomes 02:00 CET.
        let fall = Dst {
            switch: NaiveDate::from_ymd_opt(2026, 10, 25)
                .unwrap()
                .and_hms_opt(1, 0, 0)
                .unwrap(),
            before: cest,
            after: cet,
        };
        let got = hits(&fall, (2026, 10, 25));
        assert_eq!(
            got,
            vec![
                // 02:30 CEST, the first of the two 02:30s of the 25th; not 01:30Z, the
                // second (02:30 CET).
                Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap(),
                // 02:30 CET on the 26th.
                Utc.with_ymd_and_hms(2026, 10, 26, 1, 30, 0).unwrap(),
            ],
        );
        // 2026-03-29 01:00 UTC: 02:00 CET becomes 03:00 CEST (02:30 does not exist).
        let spring = Dst {
            switch: NaiveDate::from_ymd_opt(2026, 3, 29)
                .unwrap()
                .and_hms_opt(1, 0, 0)
                .unwrap(),
            before: cet,
            after: cest,
        };
        let got = hits(&spring, (2026, 3, 29));
        assert_eq!(
            got,
            vec![
                // 02:30 does not exist on the 29th: 03:00 CEST, the first minute after
                // the jump.
                Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap(),
                // 02:30 CEST on the 30th.
                Utc.with_ymd_and_hms(2026, 3, 30, 0, 30, 0).unwrap(),
            ],
        );
    }
}
