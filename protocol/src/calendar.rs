//! The RTGS business day: the calendar of the genesis's `[settlement.calendar]` table
//! (docs/SETTLEMENT.md, "The business day").
//!
//! Business days are numbered by their date: day `d` is the date `d` days after 1970-01-01
//! (UTC), the value date of the payments it settles. Every time of the schedule is given in
//! milliseconds from midnight UTC of that date; the opening may be negative (the evening of
//! the day before, as T2 opens at 19:00 CET of the previous day for night-time settlement).
//! A day runs from its opening to its end of day; between them each payment class has its
//! cut-off. A time belongs to the business day whose end of day is the first after it, so
//! the time between one end of day and the next opening belongs to the next day, before its
//! opening. Closed weekdays and holidays have no window at all.
//!
//! Everything here is arithmetic on block times: the ledger asks it at each block, so every
//! validator opens and closes the day at the same block.

use crate::genesis::DAY_MS;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The longest warehousing horizon a calendar may set (days ahead of the current business
/// day).
pub const WAREHOUSE_DAYS_MAX: u32 = 366;
/// The warehousing horizon when the calendar names none: ten days, as T2 allows.
pub const WAREHOUSE_DAYS_DEFAULT: u32 = 10;
/// Most payments the warehouse holds unless the calendar says fewer (`warehouse_full`
/// beyond), and the most it may say: the bound on the ledger's memory for them.
pub const WAREHOUSE_CAPACITY_MAX: u32 = 1 << 20;
/// Most holidays a calendar may list.
pub const HOLIDAYS_MAX: usize = 10_000;

/// Names of the weekdays, Monday first (closed weekdays are written so).
pub const WEEKDAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// The `[settlement.calendar]` table as written in the genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarSpec {
    /// When the business day opens, ms from midnight UTC of its date (negative: the day
    /// before; more than -24 h).
    pub opening_ms: i64,
    /// Cut-off of customer payments: taxed payments, refunds, and transfers (two-phase
    /// reservations and posts included) that are not between two banks. Default: the end of
    /// day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_cut_off_ms: Option<i64>,
    /// Cut-off of interbank payments: transfers (reservations and posts included) between
    /// two banks. Default: the end of day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interbank_cut_off_ms: Option<i64>,
    /// Cut-off of liquidity operations: pledge and redeem. Default: the end of day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liquidity_cut_off_ms: Option<i64>,
    /// The end of the business day, ms from midnight UTC of its date (after 0, at most
    /// 24 h): queued payments still unsettled are rejected `end_of_day_unsettled`.
    pub end_of_day_ms: i64,
    /// Weekdays without a business day (`"saturday"`, `"sunday"`...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub closed_weekdays: Vec<String>,
    /// Dates without a business day, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<String>,
    /// How many business-day numbers ahead of the current one a warehoused payment's value
    /// date may be (default [`WAREHOUSE_DAYS_DEFAULT`], at most [`WAREHOUSE_DAYS_MAX`]).
    #[serde(
        default = "default_warehouse_days",
        skip_serializing_if = "is_default_warehouse_days"
    )]
    pub warehouse_days: u32,
    /// Most payments the warehouse holds at once; one more is refused `warehouse_full`
    /// (default and at most [`WAREHOUSE_CAPACITY_MAX`], at least 1).
    #[serde(
        default = "default_warehouse_capacity",
        skip_serializing_if = "is_default_warehouse_capacity"
    )]
    pub warehouse_capacity: u32,
}

fn default_warehouse_days() -> u32 {
    WAREHOUSE_DAYS_DEFAULT
}

fn default_warehouse_capacity() -> u32 {
    WAREHOUSE_CAPACITY_MAX
}

fn is_default_warehouse_capacity(value: &u32) -> bool {
    *value == WAREHOUSE_CAPACITY_MAX
}

fn is_default_warehouse_days(value: &u32) -> bool {
    *value == WAREHOUSE_DAYS_DEFAULT
}

/// Which cut-off a payment answers to (docs/SETTLEMENT.md, "The business day").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PaymentClass {
    /// Taxed payments, refunds, transfers not between two banks.
    Customer = 0,
    /// Transfers between two banks.
    Interbank = 1,
    /// Pledge and redeem.
    Liquidity = 2,
}

impl PaymentClass {
    pub const ALL: [PaymentClass; 3] = [
        PaymentClass::Customer,
        PaymentClass::Interbank,
        PaymentClass::Liquidity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PaymentClass::Customer => "customer",
            PaymentClass::Interbank => "interbank",
            PaymentClass::Liquidity => "liquidity",
        }
    }
}

/// Why a payment may not settle now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowRefusal {
    /// Before the opening, on a closed day (the end of day has passed: the time belongs to
    /// the next day, before its opening).
    Closed,
    /// Past the class's cut-off, before the end of day.
    AfterCutOff,
}

/// Where a time stands in the business day it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The day is a closed weekday or a holiday.
    ClosedDay,
    /// Before the day's opening (the previous day has ended).
    BeforeOpening,
    /// Open for every class.
    Open,
    /// Past the cut-off of these classes (not past the end of day).
    AfterCutOff(Vec<PaymentClass>),
}

impl Phase {
    pub fn name(&self) -> String {
        match self {
            Phase::ClosedDay => "closed".into(),
            Phase::BeforeOpening => "before_opening".into(),
            Phase::Open => "open".into(),
            Phase::AfterCutOff(classes) => {
                let names: Vec<&str> = classes.iter().map(|c| c.name()).collect();
                format!("after_cut_off:{}", names.join(","))
            }
        }
    }
}

/// A boundary of the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boundary {
    Opening,
    CutOff(PaymentClass),
    EndOfDay,
}

impl Boundary {
    pub fn name(self) -> String {
        match self {
            Boundary::Opening => "opening".into(),
            Boundary::CutOff(class) => format!("{}_cut_off", class.name()),
            Boundary::EndOfDay => "end_of_day".into(),
        }
    }
}

/// A validated calendar, resolved for arithmetic (holidays as day numbers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    pub opening_ms: i64,
    /// Cut-off of each [`PaymentClass`], in its order.
    pub cut_off_ms: [i64; 3],
    pub end_of_day_ms: i64,
    /// Bit `w` set: weekday `w` (0 Monday .. 6 Sunday) is closed.
    pub closed_weekdays: u8,
    pub holidays: BTreeSet<u64>,
    pub warehouse_days: u32,
    pub warehouse_capacity: u32,
}

/// Why a calendar table is refused: the field and the reason.
pub type CalendarError = (String, String);

fn err(field: &str, reason: impl Into<String>) -> CalendarError {
    (format!("settlement.calendar.{field}"), reason.into())
}

impl CalendarSpec {
    /// Checks the table and resolves it (each refusal names its field).
    pub fn resolve(&self) -> Result<Calendar, CalendarError> {
        let day = DAY_MS as i64;
        if self.opening_ms <= -day || self.opening_ms >= day {
            return Err(err(
                "opening_ms",
                format!(
                    "{} ms is not within 24 hours either side of midnight",
                    self.opening_ms
                ),
            ));
        }
        if self.end_of_day_ms <= 0 || self.end_of_day_ms > day {
            return Err(err(
                "end_of_day_ms",
                format!(
                    "{} ms is not after midnight and at most 24 hours after it",
                    self.end_of_day_ms
                ),
            ));
        }
        if self.end_of_day_ms <= self.opening_ms {
            return Err(err(
                "end_of_day_ms",
                format!(
                    "the end of day ({} ms) is not after the opening ({} ms)",
                    self.end_of_day_ms, self.opening_ms
                ),
            ));
        }
        if self.end_of_day_ms - self.opening_ms > day {
            return Err(err(
                "end_of_day_ms",
                "the day from opening to end of day is longer than 24 hours: it would overlap \
                 the next one",
            ));
        }
        let mut cut_off_ms = [self.end_of_day_ms; 3];
        for (class, value) in [
            (PaymentClass::Customer, self.customer_cut_off_ms),
            (PaymentClass::Interbank, self.interbank_cut_off_ms),
            (PaymentClass::Liquidity, self.liquidity_cut_off_ms),
        ] {
            let Some(value) = value else { continue };
            let field = format!("{}_cut_off_ms", class.name());
            if value <= self.opening_ms {
                return Err(err(
                    &field,
                    format!(
                        "the cut-off ({value} ms) is not after the opening ({} ms)",
                        self.opening_ms
                    ),
                ));
            }
            if value > self.end_of_day_ms {
                return Err(err(
                    &field,
                    format!(
                        "the cut-off ({value} ms) is after the end of day ({} ms)",
                        self.end_of_day_ms
                    ),
                ));
            }
            cut_off_ms[class as usize] = value;
        }
        let mut closed_weekdays = 0u8;
        for name in &self.closed_weekdays {
            let Some(at) = WEEKDAY_NAMES.iter().position(|w| w == name) else {
                return Err(err(
                    "closed_weekdays",
                    format!("{name:?} is not a weekday (monday .. sunday, lower case)"),
                ));
            };
            if closed_weekdays & (1 << at) != 0 {
                return Err(err("closed_weekdays", format!("{name} is listed twice")));
            }
            closed_weekdays |= 1 << at;
        }
        if closed_weekdays == 0x7f {
            return Err(err(
                "closed_weekdays",
                "every weekday is closed: the network would never open",
            ));
        }
        if self.holidays.len() > HOLIDAYS_MAX {
            return Err(err(
                "holidays",
                format!("more than {HOLIDAYS_MAX} holidays"),
            ));
        }
        let mut holidays = BTreeSet::new();
        for (index, text) in self.holidays.iter().enumerate() {
            let day =
                parse_date(text).map_err(|reason| err(&format!("holidays[{index}]"), reason))?;
            if !holidays.insert(day) {
                return Err(err(
                    &format!("holidays[{index}]"),
                    format!("{text} is listed twice"),
                ));
            }
        }
        if self.warehouse_days > WAREHOUSE_DAYS_MAX {
            return Err(err(
                "warehouse_days",
                format!(
                    "{} days is beyond the longest horizon, {WAREHOUSE_DAYS_MAX}",
                    self.warehouse_days
                ),
            ));
        }
        if self.warehouse_capacity == 0 || self.warehouse_capacity > WAREHOUSE_CAPACITY_MAX {
            return Err(err(
                "warehouse_capacity",
                format!(
                    "{} payments is not within 1 and {WAREHOUSE_CAPACITY_MAX}",
                    self.warehouse_capacity
                ),
            ));
        }
        Ok(Calendar {
            opening_ms: self.opening_ms,
            cut_off_ms,
            end_of_day_ms: self.end_of_day_ms,
            closed_weekdays,
            holidays,
            warehouse_days: self.warehouse_days,
            warehouse_capacity: self.warehouse_capacity,
        })
    }
}

/// The day number (days since 1970-01-01) of a date written `YYYY-MM-DD`, from 1970 on.
pub fn parse_date(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a date written YYYY-MM-DD");
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = &text[range];
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<i64>().map_err(|_| bad())
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if !(1..=12).contains(&month) {
        return Err(format!("{text}: month {month} is not 01 to 12"));
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day < 1 || day > days_in_month {
        return Err(format!("{text}: day {day} is not in that month"));
    }
    if year < 1970 {
        return Err(format!(
            "{text} is before 1970-01-01, the first business day"
        ));
    }
    Ok(days_from_civil(year, month as u32, day as u32) as u64)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm); the
/// inverse of [`civil_from_days`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date (year, month, day) of a day number (days since 1970-01-01).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The date `YYYY-MM-DD` of a day number.
pub fn format_date(day: u64) -> String {
    let (y, m, d) = civil_from_days(day as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The weekday of a day number, 0 Monday .. 6 Sunday (1970-01-01 was a Thursday).
pub fn weekday(day: u64) -> usize {
    ((day + 3) % 7) as usize
}

/// A day's time `offset_ms` from midnight of date `day`, as block time (0 before 1970).
fn at(day: u64, offset_ms: i64) -> u64 {
    let ms = i128::from(day) * i128::from(DAY_MS) + i128::from(offset_ms);
    u64::try_from(ms.max(0)).unwrap_or(u64::MAX)
}

impl Calendar {
    /// The business day a block time belongs to: the day of the first end of day after it.
    pub fn day_of(&self, time_ms: u64) -> u64 {
        // end_of_day_ms is in (0, DAY_MS]: the sum never underflows
        (time_ms + DAY_MS - self.end_of_day_ms as u64) / DAY_MS
    }

    /// Whether day `day` has no business day (a closed weekday or a holiday).
    pub fn is_closed(&self, day: u64) -> bool {
        self.closed_weekdays & (1 << weekday(day)) != 0 || self.holidays.contains(&day)
    }

    /// Block time of day `day`'s opening.
    pub fn opening_at(&self, day: u64) -> u64 {
        at(day, self.opening_ms)
    }

    /// Block time of day `day`'s cut-off for `class`.
    pub fn cut_off_at(&self, day: u64, class: PaymentClass) -> u64 {
        at(day, self.cut_off_ms[class as usize])
    }

    /// Block time of day `day`'s end of day.
    pub fn end_of_day_at(&self, day: u64) -> u64 {
        at(day, self.end_of_day_ms)
    }

    /// Whether a payment of `class` may settle at `time_ms`.
    pub fn window(&self, time_ms: u64, class: PaymentClass) -> Result<(), WindowRefusal> {
        let day = self.day_of(time_ms);
        if self.is_closed(day) || time_ms < self.opening_at(day) {
            return Err(WindowRefusal::Closed);
        }
        if time_ms >= self.cut_off_at(day, class) {
            return Err(WindowRefusal::AfterCutOff);
        }
        Ok(())
    }

    /// The business day of `time_ms` and where it stands in it.
    pub fn phase(&self, time_ms: u64) -> (u64, Phase) {
        let day = self.day_of(time_ms);
        if self.is_closed(day) {
            return (day, Phase::ClosedDay);
        }
        if time_ms < self.opening_at(day) {
            return (day, Phase::BeforeOpening);
        }
        let past: Vec<PaymentClass> = PaymentClass::ALL
            .into_iter()
            .filter(|class| time_ms >= self.cut_off_at(day, *class))
            .collect();
        if past.is_empty() {
            (day, Phase::Open)
        } else {
            (day, Phase::AfterCutOff(past))
        }
    }

    /// The first boundary after `time_ms`: its block time, the business day it belongs to
    /// and what it is. `None` only if no business day follows within the horizon searched
    /// (about three years of holidays in a row).
    pub fn next_boundary(&self, time_ms: u64) -> Option<(u64, u64, Boundary)> {
        let first = self.day_of(time_ms);
        for day in first..first.saturating_add(HOLIDAYS_MAX as u64 + 8) {
            if self.is_closed(day) {
                continue;
            }
            let mut boundaries = vec![(self.opening_at(day), Boundary::Opening)];
            for class in PaymentClass::ALL {
                boundaries.push((self.cut_off_at(day, class), Boundary::CutOff(class)));
            }
            boundaries.push((self.end_of_day_at(day), Boundary::EndOfDay));
            // cut-offs at the end of day coincide with it: the end of day names the moment
            boundaries.retain(|(when, boundary)| {
                !matches!(boundary, Boundary::CutOff(_)) || *when < self.end_of_day_at(day)
            });
            boundaries.sort_by_key(|(when, _)| *when);
            if let Some((when, boundary)) = boundaries.into_iter().find(|(when, _)| *when > time_ms)
            {
                return Some((when, day, boundary));
            }
        }
        None
    }

    /// The calendar's bytes in a ledger snapshot.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.opening_ms.to_le_bytes());
        for cut_off in self.cut_off_ms {
            out.extend_from_slice(&cut_off.to_le_bytes());
        }
        out.extend_from_slice(&self.end_of_day_ms.to_le_bytes());
        out.push(self.closed_weekdays);
        out.extend_from_slice(&self.warehouse_days.to_le_bytes());
        out.extend_from_slice(&self.warehouse_capacity.to_le_bytes());
        out.extend_from_slice(&(self.holidays.len() as u64).to_le_bytes());
        for day in &self.holidays {
            out.extend_from_slice(&day.to_le_bytes());
        }
    }

    /// Reads [`Calendar::encode`] bytes; returns the calendar and the bytes read, or `None`
    /// if they are cut short or do not describe a valid calendar.
    pub fn decode(bytes: &[u8]) -> Option<(Calendar, usize)> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Option<&[u8]> {
            let slice = bytes.get(at..at.checked_add(n)?)?;
            at += n;
            Some(slice)
        };
        let i64_of = |s: &[u8]| i64::from_le_bytes(s.try_into().expect("8"));
        let opening_ms = i64_of(take(8)?);
        let mut cut_off_ms = [0i64; 3];
        for cut_off in &mut cut_off_ms {
            *cut_off = i64_of(take(8)?);
        }
        let end_of_day_ms = i64_of(take(8)?);
        let closed_weekdays = take(1)?[0];
        let warehouse_days = u32::from_le_bytes(take(4)?.try_into().expect("4"));
        let warehouse_capacity = u32::from_le_bytes(take(4)?.try_into().expect("4"));
        let count = u64::from_le_bytes(take(8)?.try_into().expect("8"));
        if count > HOLIDAYS_MAX as u64 {
            return None;
        }
        let mut holidays = BTreeSet::new();
        for _ in 0..count {
            holidays.insert(u64::from_le_bytes(take(8)?.try_into().expect("8")));
        }
        let calendar = Calendar {
            opening_ms,
            cut_off_ms,
            end_of_day_ms,
            closed_weekdays,
            holidays,
            warehouse_days,
            warehouse_capacity,
        };
        // the same checks as a genesis's table
        let spec = CalendarSpec {
            opening_ms,
            customer_cut_off_ms: Some(cut_off_ms[0]),
            interbank_cut_off_ms: Some(cut_off_ms[1]),
            liquidity_cut_off_ms: Some(cut_off_ms[2]),
            end_of_day_ms,
            closed_weekdays: (0..7)
                .filter(|w| closed_weekdays & (1 << w) != 0)
                .map(|w| WEEKDAY_NAMES[w].to_string())
                .collect(),
            holidays: calendar.holidays.iter().map(|d| format_date(*d)).collect(),
            warehouse_days,
            warehouse_capacity,
        };
        if closed_weekdays & 0x80 != 0 || spec.resolve().ok()? != calendar {
            return None;
        }
        Some((calendar, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    /// T2's schedule in UTC (CET is UTC+1): opening 19:00 CET (18:00 UTC) of the day
    /// before, customer cut-off 17:00 CET, interbank and liquidity cut-off and end of day
    /// 18:00 CET.
    fn t2() -> CalendarSpec {
        CalendarSpec {
            opening_ms: -6 * HOUR,
            customer_cut_off_ms: Some(16 * HOUR),
            interbank_cut_off_ms: Some(17 * HOUR),
            liquidity_cut_off_ms: None,
            end_of_day_ms: 17 * HOUR,
            closed_weekdays: vec!["saturday".into(), "sunday".into()],
            holidays: vec!["2026-12-25".into(), "2027-01-01".into()],
            warehouse_days: 10,
            warehouse_capacity: WAREHOUSE_CAPACITY_MAX,
        }
    }

    #[test]
    fn day_numbers_and_civil_dates_are_each_others_inverse() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(civil_from_days(20_794), (2026, 12, 7));
        // every day of about 4 400 years either side of 1970, leap rules included
        for days in (-1_600_000..1_600_000).step_by(7) {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(
                days_from_civil(year, month, day),
                days,
                "{year}-{month}-{day}"
            );
        }
    }

    #[test]
    fn dates_round_trip_and_weekdays_follow() {
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        assert_eq!(parse_date("2000-03-01"), Ok(11_017));
        assert_eq!(parse_date("2026-12-07"), Ok(20_794));
        for day in [0u64, 59, 60, 11_016, 11_017, 20_794, 50_000] {
            assert_eq!(parse_date(&format_date(day)), Ok(day), "{day}");
        }
        assert_eq!(WEEKDAY_NAMES[weekday(0)], "thursday");
        assert_eq!(WEEKDAY_NAMES[weekday(20_794)], "monday"); // 2026-12-07
        for bad in [
            "2026-2-01",
            "2026/02/01",
            "20a6-02-01",
            "2026-02-30",
            "2026-13-01",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
        assert!(parse_date("1969-12-31")
            .unwrap_err()
            .contains("before 1970"));
        assert!(parse_date("2024-02-29").is_ok() && parse_date("2023-02-29").is_err());
    }

    #[test]
    fn t2_days_open_the_evening_before_and_close_at_their_end_of_day() {
        let calendar = t2().resolve().unwrap();
        let monday = parse_date("2026-12-07").unwrap();
        let midnight = monday * DAY_MS;
        let h = |hours: i64| (midnight as i64 + hours * HOUR) as u64;
        // Sunday 18:00 UTC (19:00 CET) opens Monday's business day
        assert_eq!(calendar.opening_at(monday), h(-6));
        assert_eq!(calendar.phase(h(-6) - 1), (monday, Phase::BeforeOpening));
        assert_eq!(calendar.phase(h(-6)), (monday, Phase::Open));
        assert_eq!(
            calendar.phase(h(16)),
            (monday, Phase::AfterCutOff(vec![PaymentClass::Customer]))
        );
        assert_eq!(calendar.window(h(16) - 1, PaymentClass::Customer), Ok(()));
        assert_eq!(
            calendar.window(h(16), PaymentClass::Customer),
            Err(WindowRefusal::AfterCutOff)
        );
        assert_eq!(calendar.window(h(16), PaymentClass::Interbank), Ok(()));
        // at the end of day the time belongs to Tuesday, before its opening
        assert_eq!(calendar.day_of(h(17) - 1), monday);
        assert_eq!(calendar.day_of(h(17)), monday + 1);
        assert_eq!(
            calendar.window(h(17), PaymentClass::Interbank),
            Err(WindowRefusal::Closed)
        );
        assert_eq!(
            calendar.next_boundary(h(17) - 1),
            Some((h(17), monday, Boundary::EndOfDay))
        );
        assert_eq!(
            calendar.next_boundary(h(17)),
            Some((h(18), monday + 1, Boundary::Opening))
        );
        // Friday's end of day is followed by Monday's opening on Sunday evening
        let friday = monday + 4;
        let (when, day, boundary) = calendar
            .next_boundary(friday * DAY_MS + 17 * HOUR as u64)
            .unwrap();
        assert_eq!((day, boundary), (monday + 7, Boundary::Opening));
        assert_eq!(when, (monday + 7) * DAY_MS - 6 * HOUR as u64);
        assert_eq!(calendar.phase((monday + 5) * DAY_MS).1, Phase::ClosedDay);
        // a holiday is closed all day
        let christmas = parse_date("2026-12-25").unwrap();
        assert!(calendar.is_closed(christmas));
        assert_eq!(
            calendar.window(
                christmas * DAY_MS + 10 * HOUR as u64,
                PaymentClass::Interbank
            ),
            Err(WindowRefusal::Closed)
        );
    }

    #[test]
    fn a_calendar_encodes_and_decodes() {
        let calendar = t2().resolve().unwrap();
        let mut bytes = Vec::new();
        calendar.encode(&mut bytes);
        assert_eq!(Calendar::decode(&bytes), Some((calendar, bytes.len())));
        assert_eq!(Calendar::decode(&bytes[..bytes.len() - 1]), None);
        let mut bad = bytes.clone();
        bad[32] = 0x7f; // every weekday closed
        assert_eq!(Calendar::decode(&bad), None);
    }

    #[test]
    fn every_bad_calendar_is_refused_naming_its_field() {
        type Edit = Box<dyn Fn(&mut CalendarSpec)>;
        let cases: Vec<(Edit, &str, &str)> = vec![
            (
                Box::new(|c| c.opening_ms = -24 * HOUR),
                "opening_ms",
                "within 24 hours",
            ),
            (
                Box::new(|c| c.end_of_day_ms = 0),
                "end_of_day_ms",
                "not after midnight",
            ),
            (
                Box::new(|c| c.end_of_day_ms = 24 * HOUR + 1),
                "end_of_day_ms",
                "at most 24",
            ),
            (
                Box::new(|c| {
                    c.opening_ms = 10 * HOUR;
                    c.end_of_day_ms = 9 * HOUR;
                    c.customer_cut_off_ms = None;
                    c.interbank_cut_off_ms = None
                }),
                "end_of_day_ms",
                "not after the opening",
            ),
            (
                Box::new(|c| {
                    c.opening_ms = -12 * HOUR;
                    c.end_of_day_ms = 13 * HOUR;
                    c.interbank_cut_off_ms = None
                }),
                "end_of_day_ms",
                "longer than 24 hours",
            ),
            (
                Box::new(|c| c.customer_cut_off_ms = Some(18 * HOUR)),
                "customer_cut_off_ms",
                "after the end of day",
            ),
            (
                Box::new(|c| c.interbank_cut_off_ms = Some(-6 * HOUR)),
                "interbank_cut_off_ms",
                "not after the opening",
            ),
            (
                Box::new(|c| c.liquidity_cut_off_ms = Some(-7 * HOUR)),
                "liquidity_cut_off_ms",
                "not after the opening",
            ),
            (
                Box::new(|c| c.closed_weekdays = vec!["Sunday".into()]),
                "closed_weekdays",
                "not a weekday",
            ),
            (
                Box::new(|c| c.closed_weekdays = vec!["sunday".into(), "sunday".into()]),
                "closed_weekdays",
                "twice",
            ),
            (
                Box::new(|c| {
                    c.closed_weekdays = WEEKDAY_NAMES.iter().map(|w| w.to_string()).collect()
                }),
                "closed_weekdays",
                "never open",
            ),
            (
                Box::new(|c| c.holidays = vec!["2026-12-32".into()]),
                "holidays[0]",
                "not in that month",
            ),
            (
                Box::new(|c| c.holidays = vec!["25/12/2026".into()]),
                "holidays[0]",
                "YYYY-MM-DD",
            ),
            (
                Box::new(|c| c.holidays.push("2026-12-25".into())),
                "holidays[2]",
                "twice",
            ),
            (
                Box::new(|c| c.warehouse_days = WAREHOUSE_DAYS_MAX + 1),
                "warehouse_days",
                "longest horizon",
            ),
        ];
        for (edit, field, reason) in cases {
            let mut spec = t2();
            edit(&mut spec);
            let (named, why) = spec.resolve().unwrap_err();
            assert_eq!(named, format!("settlement.calendar.{field}"), "{why}");
            assert!(why.contains(reason), "{field}: {why}");
        }
    }
}
