//! The driving-rules engine: lays out what a truck does between departure and arrival.
//!
//! It follows Regulation (EC) 561/2006 for vehicles above 3.5 t (and light vans abroad, see
//! below) and the traffic bans of each country on the route for the vehicle's weight (see
//! [`crate::domain::calendar`] and [`crate::domain::bans`]). It plans the *earliest lawful*
//! timeline: breaks and rests are taken when they fall due, no earlier, and by default the
//! driver uses the extensions the regulation allows (a 10-hour driving day twice a week,
//! a 9-hour reduced daily rest three times between weekly rests). Real drivers often take
//! longer; that gap is what the learned model corrects.
//!
//! Assumptions, each a choice where the input says nothing:
//! - The driver's week starts with the trip unless the [`DriverState`] carries one ([`Week`]:
//!   the driving, daily rests, reduced rests and extended days since the last weekly rest, and
//!   the week before's driving): no extended day or reduced rest used yet, and a 45-hour
//!   weekly rest after the sixth driving day or once the week's driving reaches 56 hours, or
//!   90 hours less the week before's (the 24-hour reduced weekly rest is not used, since it
//!   must be compensated later and rarely helps an estimate). A week here runs from one
//!   weekly rest to the next, not from Monday as the regulation's does: the engine knows the
//!   driver's rests, not the calendar weeks they fell in.
//! - A dwell (loading, unloading) of 45 minutes or more counts as a break, one of 15 minutes or
//!   more as the first part of a split break, and one of 30 minutes or more completes it.
//! - Waiting out a ban is time off the wheel: it counts as a break, and as a daily rest when it
//!   lasts as long as the rest that is due.
//! - A truck that reaches a ban of the country it drives in stops where it is; one whose road
//!   enters a country while that country's ban holds waits at the border, before crossing,
//!   and the wait names the country and the rule (see [`crate::domain::bans`]). Which rules
//!   cover a vehicle depends on its gross weight (declared, or its class's default).
//! - A border crossing costs the expected wait of its kind ([`BorderWaits`]): customs
//!   (Switzerland, the United Kingdom, Andorra, any border of the EU customs union) or none.
//!   The wait is neither a break nor driving.
//! - Regulation (EC) 561/2006 governs vehicles over 3.5 t and, from 1 July 2026, vans over
//!   2.5 t on international or cabotage trips (Regulation (EU) 2020/1054; see
//!   [`crate::domain::vehicle::under_driving_time_rules`]). A trip whose operation is not
//!   given is international when its road crosses from one known country into another,
//!   domestic otherwise.
//! - The spread of the working day (a daily rest within 24 hours of the previous one) and the
//!   working-time directive's own limits are not enforced.

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::calendar::{Ban, BanCalendar, BanWindow};
use crate::domain::geo::{CrossingKind, Region, Territory};
use crate::domain::vehicle::{self, Carriage, Operation, VehicleClass};

/// Longest driving before a break is due.
pub const MAX_DRIVING_BEFORE_BREAK: TimeDelta = TimeDelta::minutes(4 * 60 + 30);
/// A full break; a shorter pause does not reset the driving counter.
pub const BREAK: TimeDelta = TimeDelta::minutes(45);
/// A split break: at least 15 minutes, then at least 30 minutes.
pub const SPLIT_BREAK_FIRST: TimeDelta = TimeDelta::minutes(15);
pub const SPLIT_BREAK_SECOND: TimeDelta = TimeDelta::minutes(30);
/// Daily driving limit, and the extended one allowed twice a week.
pub const DAILY_DRIVING: TimeDelta = TimeDelta::hours(9);
pub const EXTENDED_DAILY_DRIVING: TimeDelta = TimeDelta::hours(10);
pub const EXTENDED_DAYS_PER_WEEK: u32 = 2;
/// Regular and reduced daily rests; at most three reduced ones between weekly rests.
pub const DAILY_REST: TimeDelta = TimeDelta::hours(11);
pub const REDUCED_DAILY_REST: TimeDelta = TimeDelta::hours(9);
pub const REDUCED_RESTS_PER_WEEK: u32 = 3;
/// A regular weekly rest, due at the latest after six daily driving periods.
pub const WEEKLY_REST: TimeDelta = TimeDelta::hours(45);
pub const DRIVING_DAYS_PER_WEEK: u32 = 6;
/// Driving limits of a week and of two weeks in a row (Article 6(2) and 6(3)).
pub const WEEKLY_DRIVING: TimeDelta = TimeDelta::hours(56);
pub const FORTNIGHT_DRIVING: TimeDelta = TimeDelta::hours(90);
/// The expected wait at a customs border (Switzerland, the United Kingdom, Andorra): a truck
/// whose transit or export declaration was lodged ahead clears the main crossings (Basel,
/// Geneva, Chiasso, Calais-Dover) in about half an hour; queues make it longer, which the
/// learned model corrects.
pub const CUSTOMS_BORDER_WAIT: TimeDelta = TimeDelta::minutes(30);
/// Inside the EU customs union no one stops a truck at the border, barring police spot checks.
pub const NO_CUSTOMS_BORDER_WAIT: TimeDelta = TimeDelta::zero();

/// The expected wait at a border by kind of crossing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BorderWaits {
    pub customs: TimeDelta,
    pub no_customs: TimeDelta,
}

impl BorderWaits {
    /// No wait at any border: for a caller that models borders itself (the simulator).
    pub const NONE: BorderWaits = BorderWaits {
        customs: TimeDelta::zero(),
        no_customs: TimeDelta::zero(),
    };

    pub fn of(&self, kind: CrossingKind) -> TimeDelta {
        match kind {
            CrossingKind::Customs => self.customs,
            CrossingKind::NoCustoms => self.no_customs,
        }
    }
}

impl Default for BorderWaits {
    fn default() -> Self {
        Self {
            customs: CUSTOMS_BORDER_WAIT,
            no_customs: NO_CUSTOMS_BORDER_WAIT,
        }
    }
}

/// Which of the regulation's allowances the engine plans with, and how much longer than the
/// minimum the driver's own breaks and rests last (zero for an estimate; the simulator draws
/// them per driver, since real drivers often take longer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RulesPolicy {
    pub use_extended_days: bool,
    pub use_reduced_rests: bool,
    pub break_extension: TimeDelta,
    pub rest_extension: TimeDelta,
    pub border_waits: BorderWaits,
}

impl Default for RulesPolicy {
    fn default() -> Self {
        Self {
            use_extended_days: true,
            use_reduced_rests: true,
            break_extension: TimeDelta::zero(),
            rest_extension: TimeDelta::zero(),
            border_waits: BorderWaits::default(),
        }
    }
}

/// What the driver has already done when the trip starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DriverState {
    driven_today: TimeDelta,
    driven_since_break: TimeDelta,
    week: Week,
}

/// The driver's week so far, counted from the last weekly rest: what limits the driving
/// beyond the day. All zero for a driver of whom nothing more is known, whose week starts
/// with the trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Week {
    /// Driving since the last weekly rest, today's included.
    pub driven: TimeDelta,
    /// Driving in the week that ended with the last weekly rest: the fortnight's limit
    /// counts it.
    pub driven_before: TimeDelta,
    /// Daily rests since the last weekly rest, and how many of them were reduced ones.
    pub daily_rests: u32,
    pub reduced_rests: u32,
    /// Days extended to 10 hours since the last weekly rest, today's included.
    pub extended_days: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DriverStateError {
    #[error("driving time cannot be negative")]
    Negative,
    #[error("driving today cannot exceed the 10-hour extended daily limit")]
    TodayOverLimit,
    #[error("driving since the last break cannot exceed 4 h 30")]
    SinceBreakOverLimit,
    #[error("driving since the last break cannot exceed driving today")]
    SinceBreakOverToday,
    #[error("a week's driving cannot exceed 56 h, nor two weeks' 90 h")]
    WeekOverLimit,
    #[error("a week holds at most five daily rests, three of them reduced, and two 10-hour days")]
    WeekCountsOverLimit,
}

impl DriverState {
    pub fn new(
        driven_today: TimeDelta,
        driven_since_break: TimeDelta,
    ) -> Result<Self, DriverStateError> {
        if driven_today < TimeDelta::zero() || driven_since_break < TimeDelta::zero() {
            return Err(DriverStateError::Negative);
        }
        if driven_today > EXTENDED_DAILY_DRIVING {
            return Err(DriverStateError::TodayOverLimit);
        }
        if driven_since_break > MAX_DRIVING_BEFORE_BREAK {
            return Err(DriverStateError::SinceBreakOverLimit);
        }
        if driven_since_break > driven_today {
            return Err(DriverStateError::SinceBreakOverToday);
        }
        Ok(Self {
            driven_today,
            driven_since_break,
            week: Week::default(),
        })
    }

    /// The same day, within the week `week` says.
    pub fn with_week(self, week: Week) -> Result<Self, DriverStateError> {
        if week.driven < TimeDelta::zero() || week.driven_before < TimeDelta::zero() {
            return Err(DriverStateError::Negative);
        }
        if week.driven > WEEKLY_DRIVING
            || week.driven_before > WEEKLY_DRIVING
            || week.driven + week.driven_before > FORTNIGHT_DRIVING
        {
            return Err(DriverStateError::WeekOverLimit);
        }
        if week.daily_rests >= DRIVING_DAYS_PER_WEEK
            || week.reduced_rests > REDUCED_RESTS_PER_WEEK.min(week.daily_rests)
            || week.extended_days > EXTENDED_DAYS_PER_WEEK
        {
            return Err(DriverStateError::WeekCountsOverLimit);
        }
        Ok(Self { week, ..self })
    }

    pub fn driven_today(&self) -> TimeDelta {
        self.driven_today
    }

    pub fn driven_since_break(&self) -> TimeDelta {
        self.driven_since_break
    }

    /// The week, with today in it: a state made from the day alone counts the day's driving
    /// and its extension as the week's.
    pub fn week(&self) -> Week {
        Week {
            driven: self.week.driven.max(self.driven_today),
            extended_days: self
                .week
                .extended_days
                .max(u32::from(self.driven_today > DAILY_DRIVING)),
            ..self.week
        }
    }

    /// The driving the week still allows: 56 hours, or 90 less the week before's.
    fn week_limit(&self) -> TimeDelta {
        WEEKLY_DRIVING.min(FORTNIGHT_DRIVING - self.week.driven_before)
    }

    /// The state after `duration` more driving. Each counter stops at its limit: a driver
    /// past one has nothing left there, which is all a plan needs to know.
    pub fn after_driving(self, duration: TimeDelta) -> Self {
        let duration = duration.max(TimeDelta::zero());
        let week = self.week();
        let driven_today = (self.driven_today + duration).min(EXTENDED_DAILY_DRIVING);
        let extended_now = self.driven_today <= DAILY_DRIVING && driven_today > DAILY_DRIVING;
        let week = Week {
            driven: (week.driven + driven_today - self.driven_today).min(self.week_limit()),
            extended_days: (week.extended_days + u32::from(extended_now))
                .min(EXTENDED_DAYS_PER_WEEK),
            ..week
        };
        Self {
            driven_today,
            driven_since_break: (self.driven_since_break + duration)
                .min(MAX_DRIVING_BEFORE_BREAK)
                .min(driven_today),
            week,
        }
    }

    /// The state after `duration` off the wheel: a weekly rest once it lasts 45 hours; a
    /// daily rest once it lasts 11 hours, or 9 while reduced rests remain, unless the weekly
    /// rest is what is due; a break once it lasts 45 minutes.
    pub fn after_time_off(self, duration: TimeDelta) -> Self {
        let week = self.week();
        if duration >= WEEKLY_REST {
            return Self {
                driven_today: TimeDelta::zero(),
                driven_since_break: TimeDelta::zero(),
                week: Week {
                    driven_before: week.driven,
                    ..Week::default()
                },
            };
        }
        let weekly_due =
            week.daily_rests + 1 >= DRIVING_DAYS_PER_WEEK || week.driven >= self.week_limit();
        let reduced_left = week.reduced_rests < REDUCED_RESTS_PER_WEEK;
        let daily_rest = duration >= DAILY_REST || (duration >= REDUCED_DAILY_REST && reduced_left);
        if daily_rest && !weekly_due {
            return Self {
                driven_today: TimeDelta::zero(),
                driven_since_break: TimeDelta::zero(),
                week: Week {
                    daily_rests: week.daily_rests + 1,
                    reduced_rests: week.reduced_rests + u32::from(duration < DAILY_REST),
                    ..week
                },
            };
        }
        if duration >= BREAK {
            return Self {
                driven_since_break: TimeDelta::zero(),
                week,
                ..self
            };
        }
        Self { week, ..self }
    }

    /// The state with the driving since the last break as a tachograph counts it; the day
    /// holds at least that much.
    pub fn with_driven_since_break(self, driven_since_break: TimeDelta) -> Self {
        let driven_since_break =
            driven_since_break.clamp(TimeDelta::zero(), MAX_DRIVING_BEFORE_BREAK);
        let driven_today = self.driven_today.max(driven_since_break);
        Self {
            driven_today,
            driven_since_break,
            week: Week {
                driven: self.week().driven.max(driven_today),
                ..self.week
            },
        }
    }
}

/// One step of a trip, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Driving that lies in one territory, and in one of its regions with rules of their own
    /// or in none.
    Drive {
        duration: TimeDelta,
        territory: Territory,
        region: Option<Region>,
    },
    /// Arriving at a stop and staying there for the dwell.
    Stop { dwell: TimeDelta },
}

#[derive(Debug, Clone, PartialEq)]
pub struct TripPlan {
    pub departure: DateTime<Utc>,
    pub vehicle: VehicleClass,
    pub driver: DriverState,
    pub activities: Vec<Activity>,
    /// The declared weight and kind of carriage; by default the class's weight and an
    /// operation inferred from the route.
    pub carriage: Carriage,
}

impl TripPlan {
    /// The operation as given, or inferred: international when the road crosses from one
    /// known country into another (`Elsewhere`, mostly the sea between outlines, does not
    /// count), domestic otherwise.
    pub fn operation(&self) -> Operation {
        if let Some(operation) = self.carriage.operation {
            return operation;
        }
        let mut countries = self
            .activities
            .iter()
            .filter_map(|activity| match activity {
                Activity::Drive { territory, .. } if *territory != Territory::Elsewhere => {
                    Some(*territory)
                }
                _ => None,
            });
        let first = countries.next();
        if countries.any(|country| Some(country) != first) {
            Operation::International
        } else {
            Operation::Domestic
        }
    }

    /// Whether Regulation (EC) 561/2006 governs this trip.
    pub fn follows_driving_time_rules(&self) -> bool {
        vehicle::under_driving_time_rules(
            self.vehicle,
            self.carriage.gross_weight,
            self.operation(),
            self.departure,
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    Drive,
    Break,
    Rest,
    Dwell,
    BanWait,
    /// The expected wait at a border crossing (customs or none).
    Border,
}

impl SegmentKind {
    /// The kind's name in the answers' timelines and the simulator's segment tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Drive => "drive",
            Self::Break => "break",
            Self::Rest => "rest",
            Self::Dwell => "dwell",
            Self::BanWait => "ban_wait",
            Self::Border => "border",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub kind: SegmentKind,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Where the truck drives; `None` for every other kind.
    pub territory: Option<Territory>,
    /// The country the segment is about: the one driven in, the one whose ban a `BanWait`
    /// waits out (the next one when the truck waits at its border), the one a `Border`
    /// enters, the one a break, rest or dwell is taken in; `None` before the first drive.
    pub country: Option<Territory>,
    /// The id of the ban rule a `BanWait` waits out (see [`crate::domain::bans::BanRule`]);
    /// `None` for every other kind.
    pub rule: Option<&'static str>,
}

impl Segment {
    pub fn duration(&self) -> TimeDelta {
        self.end - self.start
    }
}

/// Minutes spent in each kind of segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Breakdown {
    pub driving: TimeDelta,
    pub breaks: TimeDelta,
    pub rests: TimeDelta,
    pub dwell: TimeDelta,
    pub ban_waits: TimeDelta,
    pub borders: TimeDelta,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub departure: DateTime<Utc>,
    pub segments: Vec<Segment>,
    /// When the truck reaches each `Activity::Stop`, in order, before its dwell.
    pub stop_arrivals: Vec<DateTime<Utc>>,
    /// When the last activity ends.
    pub end: DateTime<Utc>,
}

impl Timeline {
    pub fn duration(&self) -> TimeDelta {
        self.end - self.departure
    }

    pub fn breakdown(&self) -> Breakdown {
        let mut breakdown = Breakdown::default();
        for segment in &self.segments {
            let slot = match segment.kind {
                SegmentKind::Drive => &mut breakdown.driving,
                SegmentKind::Break => &mut breakdown.breaks,
                SegmentKind::Rest => &mut breakdown.rests,
                SegmentKind::Dwell => &mut breakdown.dwell,
                SegmentKind::BanWait => &mut breakdown.ban_waits,
                SegmentKind::Border => &mut breakdown.borders,
            };
            *slot += segment.duration();
        }
        breakdown
    }
}

/// Lays out the timeline of a trip under the rules that apply to its vehicle.
pub fn plan_trip(plan: &TripPlan, bans: &BanCalendar, policy: RulesPolicy) -> Timeline {
    let mut engine = Engine::new(plan, bans, policy);
    for activity in &plan.activities {
        match *activity {
            Activity::Drive {
                duration,
                territory,
                region,
            } => engine.drive(duration, territory, region),
            Activity::Stop { dwell } => engine.stop(dwell),
        }
    }
    Timeline {
        departure: plan.departure,
        end: engine.now,
        segments: engine.segments,
        stop_arrivals: engine.stop_arrivals,
    }
}

struct Engine<'a> {
    bans: &'a BanCalendar,
    /// One window per place driven through, in the order first met.
    ban_windows: Vec<((Territory, Option<Region>), BanWindow)>,
    policy: RulesPolicy,
    follows_driving_rules: bool,
    gross_tonnes: f64,
    /// The territory of the last drive, to see borders.
    territory: Option<Territory>,
    now: DateTime<Utc>,
    segments: Vec<Segment>,
    stop_arrivals: Vec<DateTime<Utc>>,
    driven_today: TimeDelta,
    driven_since_break: TimeDelta,
    split_break_started: bool,
    day_extended: bool,
    extended_days_used: u32,
    reduced_rests_used: u32,
    driving_days: u32,
    /// Driving since the last weekly rest, and in the week before it.
    driven_week: TimeDelta,
    driven_last_week: TimeDelta,
}

impl<'a> Engine<'a> {
    fn new(plan: &TripPlan, bans: &'a BanCalendar, policy: RulesPolicy) -> Self {
        let day_extended = plan.driver.driven_today > DAILY_DRIVING;
        let week = plan.driver.week();
        Self {
            bans,
            ban_windows: Vec::new(),
            policy,
            follows_driving_rules: plan.follows_driving_time_rules(),
            gross_tonnes: plan.carriage.gross_tonnes(plan.vehicle),
            territory: None,
            now: plan.departure,
            segments: Vec::new(),
            stop_arrivals: Vec::new(),
            driven_today: plan.driver.driven_today,
            driven_since_break: plan.driver.driven_since_break,
            split_break_started: false,
            day_extended,
            extended_days_used: week.extended_days,
            reduced_rests_used: week.reduced_rests,
            driving_days: 1 + week.daily_rests,
            driven_week: week.driven,
            driven_last_week: week.driven_before,
        }
    }

    fn drive(&mut self, duration: TimeDelta, territory: Territory, region: Option<Region>) {
        if duration <= TimeDelta::zero() {
            return;
        }
        let crossing = self
            .territory
            .and_then(|previous| previous.crossing_to(territory));
        self.territory = Some(territory);
        let mut border_wait = crossing
            .map(|kind| self.policy.border_waits.of(kind))
            .filter(|wait| *wait > TimeDelta::zero());
        let window_idx = self.window_for(territory, region);
        let mut remaining = duration;
        while remaining > TimeDelta::zero() {
            if self.follows_driving_rules {
                if self.driven_week >= self.week_limit() {
                    // `rest_due` is the weekly rest now.
                    let rest = self.rest_due() + self.policy.rest_extension;
                    self.pause(SegmentKind::Rest, rest);
                    continue;
                }
                if self.driven_today >= self.daily_limit() {
                    self.end_driving_day();
                    continue;
                }
                if self.driven_since_break >= MAX_DRIVING_BEFORE_BREAK {
                    let pause = if self.split_break_started {
                        SPLIT_BREAK_SECOND
                    } else {
                        BREAK
                    };
                    self.pause(SegmentKind::Break, pause + self.policy.break_extension);
                    continue;
                }
            }
            // Before the first stint in a country this is the wait at its border.
            let window = &mut self.ban_windows[window_idx].1;
            if let Some(ban) = window.ban_and_rule_at(self.bans, self.now) {
                self.wait_out(ban, territory);
                continue;
            }
            if let Some(wait) = border_wait.take() {
                self.push(SegmentKind::Border, wait, None, Some(territory), None);
                continue;
            }
            let mut stint = remaining;
            if self.follows_driving_rules {
                stint = stint
                    .min(MAX_DRIVING_BEFORE_BREAK - self.driven_since_break)
                    .min(self.daily_limit() - self.driven_today)
                    .min(self.week_limit() - self.driven_week);
            }
            let window = &mut self.ban_windows[window_idx].1;
            if let Some(next_ban) = window.next_ban_start(self.bans, self.now) {
                stint = stint.min(next_ban - self.now);
            }
            self.push(
                SegmentKind::Drive,
                stint,
                Some(territory),
                Some(territory),
                None,
            );
            self.driven_today += stint;
            self.driven_since_break += stint;
            self.driven_week += stint;
            remaining -= stint;
        }
    }

    /// The index of the ban window of a place, made on first use.
    fn window_for(&mut self, territory: Territory, region: Option<Region>) -> usize {
        let place = (territory, region);
        if let Some(idx) = self.ban_windows.iter().position(|(key, _)| *key == place) {
            return idx;
        }
        let window = BanWindow::for_place(territory, region, self.gross_tonnes);
        self.ban_windows.push((place, window));
        self.ban_windows.len() - 1
    }

    /// Waits until `ban` ends, naming `country` and the rule. Time off the wheel.
    fn wait_out(&mut self, ban: Ban, country: Territory) {
        let rule = (!ban.rule.is_empty()).then_some(ban.rule);
        let duration = ban.interval.end - self.now;
        self.push(SegmentKind::BanWait, duration, None, Some(country), rule);
        self.credit_time_off(duration);
    }

    fn stop(&mut self, dwell: TimeDelta) {
        self.stop_arrivals.push(self.now);
        if dwell > TimeDelta::zero() {
            self.push(SegmentKind::Dwell, dwell, None, self.territory, None);
            self.credit_time_off(dwell);
        }
    }

    fn daily_limit(&self) -> TimeDelta {
        if self.day_extended {
            EXTENDED_DAILY_DRIVING
        } else {
            DAILY_DRIVING
        }
    }

    /// Called when the day's driving limit is reached: extend the day if allowed, else rest.
    fn end_driving_day(&mut self) {
        let may_extend = self.policy.use_extended_days
            && !self.day_extended
            && self.extended_days_used < EXTENDED_DAYS_PER_WEEK;
        if may_extend {
            self.day_extended = true;
            self.extended_days_used += 1;
            return;
        }
        let rest = self.rest_due() + self.policy.rest_extension;
        self.pause(SegmentKind::Rest, rest);
    }

    /// The driving this week still allows: 56 hours, or 90 less the week before's. From a
    /// week that starts with the trip it never binds before the sixth day's rest does.
    fn week_limit(&self) -> TimeDelta {
        WEEKLY_DRIVING.min(FORTNIGHT_DRIVING - self.driven_last_week)
    }

    fn rest_due(&self) -> TimeDelta {
        if self.driving_days >= DRIVING_DAYS_PER_WEEK || self.driven_week >= self.week_limit() {
            WEEKLY_REST
        } else if self.policy.use_reduced_rests && self.reduced_rests_used < REDUCED_RESTS_PER_WEEK
        {
            REDUCED_DAILY_REST
        } else {
            DAILY_REST
        }
    }

    fn pause(&mut self, kind: SegmentKind, duration: TimeDelta) {
        self.push(kind, duration, None, self.territory, None);
        self.credit_time_off(duration);
    }

    /// Applies time off the wheel to the driver's counters.
    fn credit_time_off(&mut self, duration: TimeDelta) {
        if !self.follows_driving_rules {
            return;
        }
        let rest_due = self.rest_due();
        if duration >= rest_due {
            if rest_due == WEEKLY_REST {
                self.extended_days_used = 0;
                self.reduced_rests_used = 0;
                self.driving_days = 0;
                self.driven_last_week = self.driven_week;
                self.driven_week = TimeDelta::zero();
            } else if rest_due == REDUCED_DAILY_REST {
                self.reduced_rests_used += 1;
            }
            self.driving_days += 1;
            self.driven_today = TimeDelta::zero();
            self.day_extended = false;
            self.reset_break();
        } else if duration >= BREAK || (self.split_break_started && duration >= SPLIT_BREAK_SECOND)
        {
            self.reset_break();
        } else if duration >= SPLIT_BREAK_FIRST {
            self.split_break_started = true;
        }
    }

    fn reset_break(&mut self) {
        self.driven_since_break = TimeDelta::zero();
        self.split_break_started = false;
    }

    fn push(
        &mut self,
        kind: SegmentKind,
        duration: TimeDelta,
        territory: Option<Territory>,
        country: Option<Territory>,
        rule: Option<&'static str>,
    ) {
        let end = self.now + duration;
        // Only driving merges: each dwell and pause is an event of its own, and merging two
        // would hide a split break from whoever reads the timeline.
        match self.segments.last_mut() {
            Some(last)
                if kind == SegmentKind::Drive
                    && last.kind == kind
                    && last.territory == territory =>
            {
                last.end = end;
            }
            _ => self.segments.push(Segment {
                kind,
                start: self.now,
                end,
                territory,
                country,
                rule,
            }),
        }
        self.now = end;
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod europe_tests;
