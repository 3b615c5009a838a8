//! The stream page's chart: accrued (lifetime, claimed included) versus chain time, replayed
//! from the stream's events with the program's own fold, drawn as inline SVG with integer
//! coordinates. Pause, resume, top-up, close and claim are marked.

use std::fmt::Write as _;

use paystreams_program::{
    Event,
    fold::{activate, fold, restart_auto_pause},
    state::{DEFAULT_VERSION, STREAM_VERSION_EXTENDED, StreamConfig, StreamExtensions, StreamState},
};
use paystreams_rpc::{EventNotification, StreamView};

use crate::{format, hub};

/// Chart width in SVG units.
pub const CHART_WIDTH: u64 = 640;
/// Chart height in SVG units.
pub const CHART_HEIGHT: u64 = 240;
/// Most points drawn (events beyond are still listed in the history).
pub const CHART_POINTS_MAX: usize = 2_000;

const PAD_LEFT: u64 = 16;
const PAD_RIGHT: u64 = 16;
const PAD_TOP: u64 = 16;
const PAD_BOTTOM: u64 = 28;

/// A mark on the time axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    pub at: u64,
    pub label: &'static str,
    pub class: &'static str,
    pub text: String,
}

/// The replayed curve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Curve {
    /// (chain seconds, lifetime accrued), time non-decreasing.
    pub points: Vec<(u64, u128)>,
    /// Projection from now to the planned stop, if the stream runs.
    pub projection: Option<((u64, u128), (u64, u128))>,
    pub marks: Vec<Mark>,
    /// True when the stream's creation is in the history.
    pub complete: bool,
    /// Total claimed so far according to the history.
    pub claimed: u128,
}

fn extensions_of(view: &StreamView) -> Option<StreamExtensions> {
    view.extensions.as_ref().map(|e| StreamExtensions {
        auto_pause_after: e.auto_pause_after,
        auto_pause_anchor: e.auto_pause_anchor,
        activation_fee: e.activation_fee.0,
        auto_claim_on_provider_close: e.auto_claim_on_provider_close,
        receipt_key: None,
        receipt_paid: 0,
    })
}

fn mark_for(event: &Event) -> Option<(&'static str, &'static str)> {
    match event {
        Event::StreamPaused { .. } => Some(("P", "pause")),
        Event::StreamAutoPaused { .. } => Some(("A", "pause")),
        Event::StreamResumed { .. } => Some(("R", "resume")),
        Event::StreamToppedUp { .. } => Some(("T", "topup")),
        Event::StreamClosed { .. } => Some(("X", "close")),
        Event::Claimed { .. } => Some(("C", "claim")),
        _ => None,
    }
}

const fn event_time(event: &Event) -> Option<u64> {
    match event {
        Event::StreamCreated { at, .. }
        | Event::StreamAutoPaused { at, .. }
        | Event::StreamPaused { at, .. }
        | Event::StreamResumed { at, .. }
        | Event::StreamToppedUp { at, .. }
        | Event::ActivationFeeCharged { at, .. }
        | Event::StreamClosed { at, .. }
        | Event::Claimed { at, .. } => Some(*at),
        _ => None,
    }
}

/// Replays `events` (one stream's, oldest first) and ends at the current `view`.
#[must_use]
pub fn replay(view: &StreamView, events: &[EventNotification]) -> Curve {
    let mut curve = Curve::default();
    let mut stream: Option<StreamConfig> = None;
    let mut claimed: u128 = 0;
    let push = |curve: &mut Curve, at: u64, value: u128| {
        if curve.points.len() < CHART_POINTS_MAX && curve.points.last().is_none_or(|(t, v)| *t != at || *v != value) {
            curve.points.push((at, value));
        }
    };
    for n in events {
        let event = &n.event;
        let Some(at) = event_time(event) else { continue };
        if let Event::StreamCreated { stream: r, rate, allocation, at } = event {
            let extensions = extensions_of(view).map(|mut e| {
                e.auto_pause_anchor = *at;
                e
            });
            let mut created = StreamConfig {
                version: if extensions.is_some() { STREAM_VERSION_EXTENDED } else { DEFAULT_VERSION },
                stream_id: r.stream_id,
                provider: r.provider,
                rate: *rate,
                allocation: *allocation,
                accrued: 0,
                state: StreamState::Active,
                accrued_as_of: *at,
                extensions,
            };
            push(&mut curve, *at, 0);
            let _ = activate(&mut created, *at);
            push(&mut curve, *at, created.accrued);
            stream = Some(created);
            curve.complete = true;
            continue;
        }
        let Some(current) = stream.as_mut() else { continue };
        // Fold up to the event (the program folds before applying every operation).
        if at >= current.accrued_as_of
            && let Ok(folded) = fold(current, at)
        {
            if let Some(stop) = folded.auto_paused {
                let lifetime_at_stop = folded.stream.accrued.saturating_add(claimed);
                push(&mut curve, stop.at, lifetime_at_stop);
            }
            *current = folded.stream;
            push(&mut curve, at, current.accrued.saturating_add(claimed));
        }
        match event {
            Event::StreamPaused { .. } => current.state = StreamState::Paused,
            Event::StreamResumed { .. } => {
                let _ = activate(current, at);
            }
            Event::StreamToppedUp { allocation, .. } => {
                current.allocation = *allocation;
                if current.state == StreamState::Paused {
                    let _ = activate(current, at);
                } else {
                    restart_auto_pause(current, at);
                }
            }
            Event::Claimed { amount, .. } => {
                current.accrued = current.accrued.saturating_sub(*amount);
                current.allocation = current.allocation.saturating_sub(*amount);
                claimed = claimed.saturating_add(*amount);
            }
            Event::StreamClosed { accrued, .. } => {
                current.allocation = *accrued;
                current.accrued = *accrued;
                current.state = StreamState::Closed;
            }
            _ => {}
        }
        push(&mut curve, at, current.accrued.saturating_add(claimed));
        if let Some((label, class)) = mark_for(event) {
            curve.marks.push(Mark {
                at,
                label,
                class,
                text: format!("{} — {}", format::time(at), hub::describe(event)),
            });
        }
    }
    curve.claimed = claimed;
    // End at the chain's own view.
    let now_value = view.accrued.0.saturating_add(claimed);
    if curve.complete {
        if view.state == StreamState::Paused
            && let Some(current) = stream.as_ref()
            && current.state == StreamState::Active
            && view.accrued_as_of > current.accrued_as_of
        {
            // Stopped (depleted or auto-paused) without a transaction: the curve flattens there.
            push(&mut curve, view.accrued_as_of, now_value);
        }
        push(&mut curve, view.as_of, now_value);
    } else {
        push(&mut curve, view.accrued_as_of.min(view.as_of), now_value);
        push(&mut curve, view.as_of, now_value);
    }
    curve.points.sort_by_key(|(t, _)| *t);
    if view.state == StreamState::Active
        && let Some(stop) = view.planned_stop
        && stop > view.as_of
    {
        let gain = u128::from(view.rate).saturating_mul(u128::from(stop - view.as_of)).min(view.unaccrued.0);
        curve.projection = Some(((view.as_of, now_value), (stop, now_value.saturating_add(gain))));
    }
    curve
}

fn scale(value: u128, span: u128, size: u64) -> u64 {
    if span == 0 {
        return 0;
    }
    u64::try_from(value.saturating_mul(u128::from(size)) / span).unwrap_or(size).min(size)
}

/// Draws the curve as an accessible inline SVG (numbers only; no text from outside is
/// embedded unescaped).
#[must_use]
pub fn svg(curve: &Curve, title: &str) -> String {
    let plot_w = CHART_WIDTH - PAD_LEFT - PAD_RIGHT;
    let plot_h = CHART_HEIGHT - PAD_TOP - PAD_BOTTOM;
    let t0 = curve.points.first().map_or(0, |p| p.0);
    let history_end = curve.points.last().map_or(t0, |p| p.0);
    // Show the projection for at most as long again as the history (at least a minute).
    let projection_end =
        curve.projection.map(|(_, (stop, _))| stop.min(history_end.saturating_add((history_end - t0).max(60))));
    let t1 = projection_end.unwrap_or(history_end).max(t0.saturating_add(1));
    let v_max = curve.points.iter().map(|p| p.1).chain(curve.projection.map(|(_, (_, v))| v)).max().unwrap_or(0).max(1);
    let span_t = u128::from(t1 - t0);
    let x = |t: u64| PAD_LEFT + scale(u128::from(t.clamp(t0, t1) - t0), span_t, plot_w);
    let y = |v: u128| PAD_TOP + plot_h - scale(v, v_max, plot_h);
    let escaped = escape(title);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" preserveAspectRatio="xMidYMid meet"><title id="chart-title">{escaped}</title><desc id="chart-desc">Accrued over time from {} to {}, up to {}; marks: P pause, A auto-pause, R resume, T top-up, C claim, X close.</desc>"#,
        format::time(t0),
        format::time(t1),
        format::amount(v_max),
    );
    let _ = write!(
        out,
        r#"<line class="axis" x1="{PAD_LEFT}" y1="{}" x2="{}" y2="{}"/><line class="axis" x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" y2="{}"/>"#,
        PAD_TOP + plot_h,
        PAD_LEFT + plot_w,
        PAD_TOP + plot_h,
        PAD_TOP + plot_h
    );
    let _ = write!(
        out,
        r#"<text class="tick" x="{PAD_LEFT}" y="{}">{}</text><text class="tick end" x="{}" y="{}">{}</text><text class="tick" x="{}" y="{}">{}</text>"#,
        CHART_HEIGHT - 8,
        format::time_of_day(t0),
        PAD_LEFT + plot_w,
        CHART_HEIGHT - 8,
        format::time_of_day(t1),
        PAD_LEFT + 4,
        PAD_TOP + 10,
        format::amount(v_max)
    );
    if !curve.points.is_empty() {
        out.push_str(r#"<polyline class="accrued" points=""#);
        for (i, (t, v)) in curve.points.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let _ = write!(out, "{},{}", x(*t), y(*v));
        }
        out.push_str(r#""/>"#);
    }
    if let Some(((ta, va), (tb, vb))) = curve.projection {
        // Clip the projection to the visible window, keeping the slope (integer math).
        let (tb_c, vb_c) = if tb > t1 && tb > ta {
            let frac_num = u128::from(t1 - ta);
            let frac_den = u128::from(tb - ta);
            (t1, va.saturating_add(vb.saturating_sub(va).saturating_mul(frac_num) / frac_den))
        } else {
            (tb, vb)
        };
        let _ = write!(
            out,
            r#"<line class="projection" x1="{}" y1="{}" x2="{}" y2="{}"><title>planned: {} by {}</title></line>"#,
            x(ta),
            y(va),
            x(tb_c),
            y(vb_c),
            format::amount(vb),
            format::time(tb)
        );
    }
    for mark in &curve.marks {
        let mx = x(mark.at);
        let _ = write!(
            out,
            r#"<g class="mark {}"><line x1="{mx}" y1="{PAD_TOP}" x2="{mx}" y2="{}"/><text x="{mx}" y="{}">{}</text><title>{}</title></g>"#,
            mark.class,
            PAD_TOP + plot_h,
            PAD_TOP + plot_h + 12,
            mark.label,
            escape(&mark.text)
        );
    }
    out.push_str("</svg>");
    out
}

/// Minimal HTML escaping for text placed inside the SVG.
#[must_use]
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use paystreams_lez_core::AccountId;
    use paystreams_program::event::StreamRef;
    use paystreams_rpc::{Amount, HexHash};

    use super::*;

    const OWNER: AccountId = AccountId([1; 32]);
    const PROVIDER: AccountId = AccountId([2; 32]);

    fn stream_ref() -> StreamRef {
        StreamRef { owner: OWNER, vault_id: 0, stream_id: 0, provider: PROVIDER, stream_config: AccountId([3; 32]) }
    }

    fn note(event: Event) -> EventNotification {
        EventNotification { block_id: 1, timestamp_ms: 0, tx_hash: HexHash::default(), event }
    }

    fn view(
        state: StreamState,
        allocation: u128,
        accrued: u128,
        accrued_as_of: u64,
        as_of: u64,
        planned_stop: Option<u64>,
    ) -> StreamView {
        StreamView {
            owner: OWNER,
            vault_id: 0,
            stream_id: 0,
            stream_config: AccountId([3; 32]),
            provider: PROVIDER,
            token_id: "native".to_owned(),
            rate: 10,
            state,
            allocation: Amount(allocation),
            accrued: Amount(accrued),
            unaccrued: Amount(allocation - accrued),
            accrued_as_of,
            as_of,
            planned_stop,
            stored_state: state,
            stored_accrued: Amount(accrued),
            stored_accrued_as_of: accrued_as_of,
            extensions: None,
        }
    }

    #[test]
    fn replays_pause_resume_and_claim_to_the_current_view() {
        let s = stream_ref();
        let events = [
            note(Event::StreamCreated { stream: s, rate: 10, allocation: 1000, at: 100 }),
            note(Event::StreamPaused { stream: s, at: 110 }),
            note(Event::StreamResumed { stream: s, at: 120 }),
            note(Event::Claimed { stream: s, amount: 50, to: PROVIDER, state: StreamState::Active, at: 130 }),
        ];
        let curve = replay(&view(StreamState::Active, 950, 850, 200, 200, Some(210)), &events);
        assert!(curve.complete);
        assert_eq!(curve.claimed, 50);
        assert_eq!(curve.points, vec![(100, 0), (110, 100), (120, 100), (130, 200), (200, 900)]);
        assert_eq!(curve.projection, Some(((200, 900), (210, 1000))));
        let labels: Vec<(u64, &str)> = curve.marks.iter().map(|m| (m.at, m.label)).collect();
        assert_eq!(labels, vec![(110, "P"), (120, "R"), (130, "C")]);
        let svg = svg(&curve, "a <title> & more");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("a &lt;title&gt; &amp; more"));
        assert!(svg.contains("<polyline class=\"accrued\""));
    }

    #[test]
    fn depletion_without_a_transaction_flattens_the_curve() {
        let s = stream_ref();
        let events = [note(Event::StreamCreated { stream: s, rate: 10, allocation: 100, at: 0 })];
        let curve = replay(&view(StreamState::Paused, 100, 100, 10, 50, None), &events);
        assert_eq!(curve.points, vec![(0, 0), (10, 100), (50, 100)]);
        assert_eq!(curve.projection, None);
    }

    #[test]
    fn a_stream_older_than_the_history_shows_its_current_value() {
        let curve = replay(&view(StreamState::Active, 1000, 300, 40, 40, Some(110)), &[]);
        assert!(!curve.complete);
        assert_eq!(curve.points, vec![(40, 300)]);
        assert!(svg(&curve, "t").contains("polyline"));
    }
}
