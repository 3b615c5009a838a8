//! Text for people, shared by the CLI and the dashboard: amounts with their token, chain times as
//! UTC dates (with the chain's offset from this machine's clock), durations, and a stream's story
//! told from its events (what was funded, claimed, released, and why it stopped).
//!
//! Amounts are whole base units of a vault's token: the chain has no decimals, so `3,000 native`
//! is three thousand of the smallest native unit. Integer arithmetic only; money is never a float.
//! Machine output (`--json`, `data-` attributes) keeps raw numbers; only human text comes here.

use std::collections::BTreeMap;

use paystreams_lez_core::AccountId;
use paystreams_program::{
    Event,
    event::Closer,
    state::{NATIVE_TOKEN_ID, StreamState, token_label},
};
use paystreams_rpc::{EventNotification, StreamView};
use serde::Serialize;

/// Groups a string of decimal digits by thousands with `,`: `1234567` → `1,234,567`.
#[must_use]
pub fn group_digits(digits: &str) -> String {
    let len = digits.len();
    let mut out = String::with_capacity(len.saturating_add(len / 3));
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (len.saturating_sub(i)) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An amount, digits grouped: `1234567` → `1,234,567`.
#[must_use]
pub fn amount(value: u128) -> String {
    group_digits(&value.to_string())
}

/// The unit an amount of `token` is counted in, for people: `native` for the native token, the
/// token's keystore name (`USDX` for the key `token-USDX`) when known, else `token ` and a short
/// id. `token` is a token label as views carry it (`"native"` or a base58 definition id).
#[must_use]
pub fn token_unit(token: &str, names: &BTreeMap<AccountId, String>) -> String {
    let native = token_label(&NATIVE_TOKEN_ID);
    if token == native {
        return native;
    }
    match token.parse::<AccountId>() {
        Ok(id) => names.get(&id).map_or_else(
            || format!("token {}", short_id(&id)),
            |name| name.strip_prefix("token-").unwrap_or(name).to_owned(),
        ),
        Err(_) => token.to_owned(),
    }
}

/// An amount with its unit: `3,000 native`, `500 USDX`.
#[must_use]
pub fn amount_in(value: u128, unit: &str) -> String {
    format!("{} {unit}", amount(value))
}

/// A rate with its unit: `10 native/s`.
#[must_use]
pub fn rate_in(rate: u64, unit: &str) -> String {
    format!("{} {unit}/s", amount(u128::from(rate)))
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if m <= 2 { y + 1 } else { y };
    (year, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

/// Seconds since the Unix epoch → `2026-05-01 12:00:03 UTC`.
#[must_use]
pub fn time(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Milliseconds since the Unix epoch → `2026-05-01 12:00:03.250 UTC`.
#[must_use]
pub fn time_ms(ms: u64) -> String {
    let text = time(ms / 1000);
    let head = text.strip_suffix(" UTC").unwrap_or(&text);
    format!("{head}.{:03} UTC", ms % 1000)
}

/// Nanoseconds since the Unix epoch (a Waku message timestamp) → `2026-05-01 12:00:03.250 UTC`;
/// times before 1970 (never valid for a message) as `before 1970 (N ns)`.
#[must_use]
pub fn time_ns(ns: i64) -> String {
    u64::try_from(ns).map_or_else(|_| format!("before 1970 ({ns} ns)"), |ns| time_ms(ns / 1_000_000))
}

/// Seconds since midnight → `12:00:03` (time of day, UTC).
#[must_use]
pub fn time_of_day(secs: u64) -> String {
    let rem = secs % 86_400;
    format!("{:02}:{:02}:{:02}", rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// Two most significant units: `3725` → `1h 2m`, `125` → `2m 5s`, `0` → `0s`.
#[must_use]
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, (secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d}d"));
    }
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 && d == 0 {
        parts.push(format!("{m}m"));
    }
    if (s > 0 || parts.is_empty()) && d == 0 && h == 0 {
        parts.push(format!("{s}s"));
    }
    parts.join(" ")
}

/// First 6 and last 4 characters of a base58 id.
#[must_use]
pub fn short_id(id: &AccountId) -> String {
    let text = id.to_string();
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 12 {
        return text;
    }
    let head: String = chars.iter().take(6).collect();
    let tail: String = chars.iter().skip(chars.len().saturating_sub(4)).collect();
    format!("{head}…{tail}")
}

/// Chain time next to this machine's clock. The chain's clock is its latest block's time: a dev
/// chain that advanced time runs ahead of the wall clock, a chain that produced no block lately
/// (automine) lags behind it. Dates are shown as chain time, and the offset is said once.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ChainClock {
    /// The chain's time (seconds).
    pub chain_secs: u64,
    /// This machine's time when the chain time was read (seconds).
    pub wall_secs: u64,
}

impl ChainClock {
    /// Differences up to this many seconds are block timing, not worth a word.
    pub const SAME_WITHIN_SECS: u64 = 2;

    #[must_use]
    pub const fn new(chain_secs: u64, wall_secs: u64) -> Self {
        Self { chain_secs, wall_secs }
    }

    /// Chain time minus this machine's time, seconds (positive: the chain is ahead).
    #[must_use]
    pub fn offset_secs(&self) -> i64 {
        let chain = i128::from(self.chain_secs);
        let wall = i128::from(self.wall_secs);
        i64::try_from(chain.saturating_sub(wall)).unwrap_or(if chain > wall { i64::MAX } else { i64::MIN })
    }

    /// `None` when the two clocks agree (within [`Self::SAME_WITHIN_SECS`]), else
    /// `chain time, +3600 s ahead of this machine` or `chain time, 42 s behind this machine`.
    #[must_use]
    pub fn offset_note(&self) -> Option<String> {
        let offset = self.offset_secs();
        if offset.unsigned_abs() <= Self::SAME_WITHIN_SECS {
            return None;
        }
        Some(if offset > 0 {
            format!("chain time, +{offset} s ahead of this machine")
        } else {
            format!("chain time, {} s behind this machine", offset.unsigned_abs())
        })
    }

    /// The chain's current time as a date, with the offset when the clocks differ:
    /// `2026-12-07 12:00:05 UTC (chain time, +3600 s ahead of this machine)`.
    #[must_use]
    pub fn now(&self) -> String {
        self.date_with_offset(self.chain_secs)
    }

    /// A chain time as a date, with the chain's offset when the clocks differ.
    #[must_use]
    pub fn date_with_offset(&self, secs: u64) -> String {
        match self.offset_note() {
            Some(note) => format!("{} ({note})", time(secs)),
            None => time(secs),
        }
    }

    /// A chain time as a date and how far it is from the chain's now:
    /// `2026-12-07 12:05:05 UTC (in 5m)`, `… (3m 20s ago)`, `… (now)`.
    #[must_use]
    pub fn date_relative(&self, secs: u64) -> String {
        let when = match secs.cmp(&self.chain_secs) {
            std::cmp::Ordering::Greater => format!("in {}", duration(secs.saturating_sub(self.chain_secs))),
            std::cmp::Ordering::Less => format!("{} ago", duration(self.chain_secs.saturating_sub(secs))),
            std::cmp::Ordering::Equal => "now".to_owned(),
        };
        format!("{} ({when})", time(secs))
    }
}

/// Why a stream is not accruing.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The owner paused it.
    PausedByOwner,
    /// Everything allocated has accrued (a top-up makes it run again).
    Depleted,
    /// The auto-pause extension's running time ran out (the owner resumes it).
    AutoPaused,
    /// Paused; the chain's events that would say why are not available.
    Paused,
    /// The owner closed it for good.
    ClosedByOwner,
    /// The provider closed it for good.
    ClosedByProvider,
    /// Closed for good; the event naming who closed it is not available.
    Closed,
}

impl StopReason {
    /// One word for tables: `paused`, `depleted`, `auto-paused`, `closed`.
    #[must_use]
    pub const fn short(self) -> &'static str {
        match self {
            Self::PausedByOwner | Self::Paused => "paused",
            Self::Depleted => "depleted",
            Self::AutoPaused => "auto-paused",
            Self::ClosedByOwner | Self::ClosedByProvider | Self::Closed => "closed",
        }
    }

    /// In words, with what can be done about it.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::PausedByOwner => "paused by the owner (resume to restart accrual)",
            Self::Depleted => "depleted: everything allocated has accrued (top up to keep it running)",
            Self::AutoPaused => "auto-paused: its running time ran out (the owner resumes it)",
            Self::Paused => "paused",
            Self::ClosedByOwner => "closed by the owner (for good)",
            Self::ClosedByProvider => "closed by the provider (for good)",
            Self::Closed => "closed (for good)",
        }
    }
}

/// One top-up of a stream.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct TopUp {
    #[serde(with = "paystreams_lez_core::account::decimal_u128")]
    pub amount: u128,
    /// Chain time (seconds).
    pub at: u64,
    pub tx_hash: String,
}

/// A stream's money and state told from its events and its current view.
///
/// The allocation is what the stream still holds: a claim pays out of it (3000 allocated, 70
/// claimed → 2930 allocated) and a close releases the unaccrued part back to the vault. So
/// `funded = created allocation + top-ups = claimed + allocation + released`, to the unit.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct StreamStory {
    /// Allocation at creation; `None` when the creation event is not among the events.
    #[serde(with = "opt_decimal")]
    pub created_allocation: Option<u128>,
    /// Chain time of creation (seconds).
    pub created_at: Option<u64>,
    pub top_ups: Vec<TopUp>,
    /// Created allocation plus top-ups.
    #[serde(with = "opt_decimal")]
    pub funded: Option<u128>,
    /// Paid to the provider so far (sum of the claims).
    #[serde(with = "paystreams_lez_core::account::decimal_u128")]
    pub claimed: u128,
    pub claims: u64,
    /// Activation fees charged (part of what accrued).
    #[serde(with = "paystreams_lez_core::account::decimal_u128")]
    pub activation_fees: u128,
    /// Returned to the vault when the stream was closed.
    #[serde(with = "paystreams_lez_core::account::decimal_u128")]
    pub released: u128,
    /// Why the stream is not accruing; `None` while it runs.
    pub stopped: Option<StopReason>,
    /// When it stopped (chain seconds), when known.
    pub stopped_at: Option<u64>,
    /// False when the events could not be read (the story is then the view's alone).
    pub from_events: bool,
}

mod opt_decimal {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(value: &Option<u128>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serializer.collect_str(v),
            None => serializer.serialize_none(),
        }
    }
}

impl StreamStory {
    /// The story of `view`'s stream from `events` (that stream's, in chain order; others are
    /// skipped). `events = None` when they could not be read: the stop reason is then what the
    /// view alone shows.
    #[must_use]
    pub fn new<'a>(view: &StreamView, events: Option<impl IntoIterator<Item = &'a EventNotification>>) -> Self {
        let mut story = Self {
            created_allocation: None,
            created_at: None,
            top_ups: Vec::new(),
            funded: None,
            claimed: 0,
            claims: 0,
            activation_fees: 0,
            released: 0,
            stopped: None,
            stopped_at: None,
            from_events: events.is_some(),
        };
        // The last event that stopped or restarted the stream.
        let mut last_stop: Option<(StopReason, u64)> = None;
        for n in events.into_iter().flatten() {
            let Some(stream) = n.event.stream() else { continue };
            if (stream.owner, stream.vault_id, stream.stream_id) != (view.owner, view.vault_id, view.stream_id) {
                continue;
            }
            match &n.event {
                Event::StreamCreated { allocation, at, .. } => {
                    story.created_allocation = Some(*allocation);
                    story.created_at = Some(*at);
                    last_stop = None;
                }
                Event::StreamToppedUp { amount, at, .. } => {
                    story.top_ups.push(TopUp { amount: *amount, at: *at, tx_hash: n.tx_hash.to_string() });
                    last_stop = None;
                }
                Event::StreamResumed { .. } => last_stop = None,
                Event::StreamPaused { at, .. } => last_stop = Some((StopReason::PausedByOwner, *at)),
                Event::StreamAutoPaused { at, depleted, .. } => {
                    let reason = if *depleted { StopReason::Depleted } else { StopReason::AutoPaused };
                    last_stop = Some((reason, *at));
                }
                Event::StreamClosed { by, released, at, .. } => {
                    story.released = story.released.saturating_add(*released);
                    let reason = match by {
                        Closer::Owner => StopReason::ClosedByOwner,
                        Closer::Provider => StopReason::ClosedByProvider,
                    };
                    last_stop = Some((reason, *at));
                }
                Event::Claimed { amount, .. } => {
                    story.claimed = story.claimed.saturating_add(*amount);
                    story.claims = story.claims.saturating_add(1);
                }
                Event::ActivationFeeCharged { fee, .. } => {
                    story.activation_fees = story.activation_fees.saturating_add(*fee);
                }
                Event::VaultInitialized { .. } | Event::Deposited { .. } | Event::Withdrawn { .. } => {}
            }
        }
        story.funded = story
            .created_allocation
            .map(|created| story.top_ups.iter().fold(created, |sum, t| sum.saturating_add(t.amount)));
        let (reason, at) = stop_reason(view, last_stop, story.from_events);
        story.stopped = reason;
        story.stopped_at = at;
        story
    }
}

/// Why the stream of `view` does not accrue (and since when), from the view and the last
/// stopping event. A paused stream with nothing left to accrue is depleted whatever paused it;
/// one the view's fold paused (stored active, effective paused) stopped at the fold's instant.
fn stop_reason(
    view: &StreamView,
    last_stop: Option<(StopReason, u64)>,
    from_events: bool,
) -> (Option<StopReason>, Option<u64>) {
    match view.state {
        StreamState::Active => (None, None),
        StreamState::Closed => match last_stop {
            Some((reason @ (StopReason::ClosedByOwner | StopReason::ClosedByProvider), at)) => (Some(reason), Some(at)),
            _ => (Some(StopReason::Closed), None),
        },
        StreamState::Paused => {
            let folded_now = view.stored_state == StreamState::Active;
            if view.unaccrued.0 == 0 {
                let at = if folded_now {
                    Some(view.accrued_as_of)
                } else {
                    last_stop.filter(|(r, _)| *r == StopReason::Depleted).map(|(_, at)| at)
                };
                return (Some(StopReason::Depleted), at);
            }
            if folded_now {
                return (Some(StopReason::AutoPaused), Some(view.accrued_as_of));
            }
            match last_stop {
                Some((reason @ (StopReason::PausedByOwner | StopReason::AutoPaused), at)) => (Some(reason), Some(at)),
                _ if from_events => (Some(StopReason::PausedByOwner), None),
                _ => (Some(StopReason::Paused), None),
            }
        }
    }
}

/// What one event says, in words, with amounts in `unit` (for history listings).
#[must_use]
pub fn describe_event(event: &Event, unit: &str, names: &BTreeMap<AccountId, String>) -> String {
    let who = |id: &AccountId| names.get(id).cloned().unwrap_or_else(|| short_id(id));
    match event {
        Event::VaultInitialized { vault_id, token_id, .. } => format!("vault {vault_id} created ({token_id})"),
        Event::Deposited { vault_id, amount: a, .. } => {
            format!("deposited {} into vault {vault_id}", amount_in(*a, unit))
        }
        Event::Withdrawn { vault_id, to, amount: a, .. } => {
            format!("withdrew {} from vault {vault_id} to {}", amount_in(*a, unit), who(to))
        }
        Event::StreamCreated { stream, rate, allocation, .. } => format!(
            "created: {} to {}, allocation {}",
            rate_in(*rate, unit),
            who(&stream.provider),
            amount_in(*allocation, unit)
        ),
        Event::StreamAutoPaused { depleted: true, .. } => "stopped: depleted (everything allocated accrued)".to_owned(),
        Event::StreamAutoPaused { depleted: false, .. } => "stopped: auto-paused (running time ran out)".to_owned(),
        Event::StreamPaused { .. } => "paused by the owner".to_owned(),
        Event::StreamResumed { .. } => "resumed by the owner".to_owned(),
        Event::StreamToppedUp { amount: a, allocation, .. } => {
            format!("topped up by {} (allocation now {})", amount_in(*a, unit), amount_in(*allocation, unit))
        }
        Event::ActivationFeeCharged { fee, .. } => format!("activation fee {} accrued", amount_in(*fee, unit)),
        Event::StreamClosed { by, released, accrued, .. } => format!(
            "closed by the {}: {} released to the vault, {} accrued left to claim",
            match by {
                Closer::Owner => "owner",
                Closer::Provider => "provider",
            },
            amount_in(*released, unit),
            amount_in(*accrued, unit)
        ),
        Event::Claimed { amount: a, to, .. } => format!("claimed {} (paid to {})", amount_in(*a, unit), who(to)),
    }
}

/// An event's own chain time (seconds), when it carries one.
#[must_use]
pub const fn event_time(event: &Event) -> Option<u64> {
    match event {
        Event::StreamCreated { at, .. }
        | Event::StreamAutoPaused { at, .. }
        | Event::StreamPaused { at, .. }
        | Event::StreamResumed { at, .. }
        | Event::StreamToppedUp { at, .. }
        | Event::ActivationFeeCharged { at, .. }
        | Event::StreamClosed { at, .. }
        | Event::Claimed { at, .. } => Some(*at),
        Event::VaultInitialized { .. } | Event::Deposited { .. } | Event::Withdrawn { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped_and_carry_their_unit() {
        assert_eq!(amount(0), "0");
        assert_eq!(amount(999), "999");
        assert_eq!(amount(1000), "1,000");
        assert_eq!(amount(1_234_567), "1,234,567");
        assert_eq!(amount(u128::MAX), "340,282,366,920,938,463,463,374,607,431,768,211,455");
        assert_eq!(amount_in(3000, "native"), "3,000 native");
        assert_eq!(rate_in(10, "native"), "10 native/s");
        let id = AccountId([7; 32]);
        let mut names = BTreeMap::new();
        assert_eq!(token_unit("native", &names), "native");
        assert_eq!(token_unit(&id.to_string(), &names), format!("token {}", short_id(&id)));
        names.insert(id, "token-USDX".to_owned());
        assert_eq!(token_unit(&id.to_string(), &names), "USDX");
    }

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(time(1_777_636_803), "2026-05-01 12:00:03 UTC");
        assert_eq!(time_ms(1_777_636_803_250), "2026-05-01 12:00:03.250 UTC");
        assert_eq!(time_ns(1_777_636_803_250_000_000), "2026-05-01 12:00:03.250 UTC");
        assert_eq!(time_ns(-5), "before 1970 (-5 ns)");
        assert_eq!(time_of_day(3725), "01:02:05");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(3725), "1h 2m");
        assert_eq!(duration(125), "2m 5s");
        assert_eq!(duration(90_000), "1d 1h");
    }

    #[test]
    fn the_chain_offset_is_said_only_when_the_clocks_differ() {
        let same = ChainClock::new(1_796_604_541, 1_796_604_540);
        assert_eq!(same.offset_note(), None);
        assert_eq!(same.now(), "2026-12-07 00:49:01 UTC");
        let ahead = ChainClock::new(1_796_608_141, 1_796_604_541);
        assert_eq!(ahead.offset_secs(), 3600);
        assert_eq!(ahead.now(), "2026-12-07 01:49:01 UTC (chain time, +3600 s ahead of this machine)");
        let behind = ChainClock::new(1_796_604_499, 1_796_604_541);
        assert_eq!(behind.offset_note().as_deref(), Some("chain time, 42 s behind this machine"));
        assert_eq!(ahead.date_relative(1_796_608_141 + 125), "2026-12-07 01:51:06 UTC (in 2m 5s)");
        assert_eq!(ahead.date_relative(1_796_608_141 - 60), "2026-12-07 01:48:01 UTC (1m ago)");
        assert_eq!(ChainClock::new(u64::MAX, 0).offset_secs(), i64::MAX);
    }
}
