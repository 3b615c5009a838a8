//! Pages and fragments. Every fragment carries `data-refresh-key` (what chain changes concern
//! it) and `data-fragment` (where to fetch it again), so the browser can refresh exactly the
//! parts an event touched.

use std::{collections::BTreeMap, convert::Infallible, sync::Arc, sync::atomic::Ordering, time::Duration};

use askama::Template;
use axum::{
    Form,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
};
use paystreams_client::NamedKey;
use paystreams_lez_core::AccountId;
use paystreams_rpc::{StreamFilter, StreamView};
use serde_json::json;
use tokio_stream::{StreamExt as _, wrappers::BroadcastStream};

use crate::{
    actions::{self, Input, Kind, Outcome},
    app::{AppState, Layout, render},
    chart,
    error::PageError,
    format,
    hub::{self, Push},
    view::{self, IdentityRow, Label, StreamRow, VaultRow},
};

/// Most browsers following live updates at once.
pub const SSE_CLIENTS_MAX: usize = 64;

/// Most sessions listed in the provider view (the counts cover all).
pub const SESSIONS_SHOWN_MAX: usize = 200;

/// Most history entries listed on a stream page (newest first).
pub const HISTORY_SHOWN_MAX: usize = 500;

type Page = Result<Response, PageError>;

fn parse_account(what: &str, text: &str) -> Result<AccountId, PageError> {
    if text.len() > actions::FIELD_LEN_MAX {
        return Err(PageError::BadRequest(format!("the {what} in the address is too long to be an account id")));
    }
    text.parse::<AccountId>().map_err(|e| {
        PageError::BadRequest(format!(
            "{text:?} in the address is not a {what} account id ({e}); account ids are base58, as shown on the overview"
        ))
    })
}

fn parse_u64(what: &str, text: &str) -> Result<u64, PageError> {
    text.parse::<u64>().map_err(|_| {
        PageError::BadRequest(format!("{text:?} in the address is not a {what}: use a whole number such as 0"))
    })
}

fn parse_stream_path(owner: &str, vault: &str, stream: &str) -> Result<(AccountId, u64, u64), PageError> {
    Ok((parse_account("vault owner", owner)?, parse_u64("vault id", vault)?, parse_u64("stream id", stream)?))
}

fn names(app: &AppState) -> Result<(Vec<NamedKey>, BTreeMap<AccountId, String>), PageError> {
    let keys = app.identities()?;
    let names = view::names_of(&keys);
    Ok((keys, names))
}

fn html(template: &impl Template) -> Result<String, PageError> {
    template.render().map_err(|e| PageError::Internal(format!("page rendering failed: {e}")))
}

// ----- Fragments -----

#[derive(Template)]
#[template(path = "identity.html")]
struct IdentityFragment {
    ident: IdentityRow,
}

#[derive(Template)]
#[template(path = "vaults.html")]
struct VaultsFragment {
    owner: String,
    owner_name: String,
    vaults: Vec<VaultRow>,
}

#[derive(Template)]
#[template(path = "streams.html")]
struct StreamsFragment {
    owner: String,
    owner_name: String,
    has_vaults: bool,
    first_vault: u64,
    rows: Vec<String>,
}

#[derive(Template)]
#[template(path = "stream_row.html")]
struct StreamRowFragment {
    row: StreamRow,
}

#[derive(Template)]
#[template(path = "earning_row.html")]
struct EarningRowFragment {
    row: StreamRow,
}

#[derive(Template)]
#[template(path = "provider_section.html")]
struct ProviderFragment {
    provider: Label,
    rows: Vec<String>,
    total: String,
    total_raw: String,
    streams: usize,
}

struct SessionLine {
    id_short: String,
    state: String,
    stream: String,
    vault_owner: String,
    vault_id: u64,
    service: String,
    rate: String,
    allocation: String,
    accepted: String,
    note: String,
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct SessionsFragment {
    configured: bool,
    source: String,
    error: String,
    provider: String,
    pending: u64,
    bound: u64,
    ended: u64,
    claimable: Vec<String>,
    sessions: Vec<SessionLine>,
    more: usize,
}

#[derive(Template)]
#[template(path = "stream_summary.html")]
struct SummaryFragment {
    row: StreamRow,
    claimed: String,
}

#[derive(Template)]
#[template(path = "chart.html")]
struct ChartFragment {
    key: String,
    path: String,
    svg: String,
    notes: Vec<String>,
}

struct HistoryEntry {
    time: String,
    block: u64,
    kind: &'static str,
    text: String,
    tx: String,
    tx_short: String,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryFragment {
    key: String,
    path: String,
    entries: Vec<HistoryEntry>,
    note: String,
}

async fn identity_html(app: &AppState, key: &NamedKey) -> Result<String, PageError> {
    html(&IdentityFragment { ident: view::identity(&app.client, key).await? })
}

async fn vaults_html(
    app: &AppState,
    owner: AccountId,
    names: &BTreeMap<AccountId, String>,
) -> Result<(String, Vec<VaultRow>), PageError> {
    let vaults = view::vaults(&app.client, owner, names).await?;
    let body = html(&VaultsFragment {
        owner: owner.to_string(),
        owner_name: Label::of(&owner, names).text,
        vaults: vaults.clone(),
    })?;
    Ok((body, vaults))
}

async fn streams_html(
    app: &AppState,
    owner: AccountId,
    vaults: &[VaultRow],
    names: &BTreeMap<AccountId, String>,
) -> Result<String, PageError> {
    let streams = view::streams(&app.client, StreamFilter { owner: Some(owner), provider: None }, names).await?;
    let rows = streams.into_iter().map(|row| html(&StreamRowFragment { row })).collect::<Result<Vec<_>, _>>()?;
    html(&StreamsFragment {
        owner: owner.to_string(),
        owner_name: Label::of(&owner, names).text,
        has_vaults: !vaults.is_empty(),
        first_vault: vaults.first().map_or(0, |v| v.vault_id),
        rows,
    })
}

async fn provider_html(
    app: &AppState,
    provider: AccountId,
    names: &BTreeMap<AccountId, String>,
) -> Result<(String, usize), PageError> {
    let streams = view::streams(&app.client, StreamFilter { owner: None, provider: Some(provider) }, names).await?;
    let total: u128 = streams.iter().filter_map(|r| r.accrued_raw.parse::<u128>().ok()).fold(0, u128::saturating_add);
    let count = streams.len();
    let rows = streams.into_iter().map(|row| html(&EarningRowFragment { row })).collect::<Result<Vec<_>, _>>()?;
    let body = html(&ProviderFragment {
        provider: Label::of(&provider, names),
        rows,
        total: format::amount(total),
        total_raw: total.to_string(),
        streams: count,
    })?;
    Ok((body, count))
}

async fn sessions_html(app: &AppState) -> Result<String, PageError> {
    let Some(source) = &app.sessions else {
        return html(&SessionsFragment {
            configured: false,
            source: String::new(),
            error: String::new(),
            provider: String::new(),
            pending: 0,
            bound: 0,
            ended: 0,
            claimable: vec![],
            sessions: vec![],
            more: 0,
        });
    };
    let (report, error) = match source.report().await {
        Ok(report) => (Some(report), String::new()),
        Err(e) => {
            tracing::debug!(source = %source.describe(), error = %e, "provider sessions unavailable");
            (None, e.to_string())
        }
    };
    let mut fragment = SessionsFragment {
        configured: true,
        source: source.describe(),
        error,
        provider: String::new(),
        pending: 0,
        bound: 0,
        ended: 0,
        claimable: vec![],
        sessions: vec![],
        more: 0,
    };
    if let Some(report) = report {
        fragment.provider = report.provider_id.clone();
        fragment.pending = report.pending;
        fragment.bound = report.bound;
        fragment.ended = report.ended;
        fragment.claimable = report
            .claimable
            .iter()
            .map(|(owner, vault, stream)| format!("stream {stream} of vault {vault} of {owner}"))
            .collect();
        fragment.more = report.sessions.len().saturating_sub(SESSIONS_SHOWN_MAX);
        fragment.sessions = report
            .sessions
            .iter()
            .take(SESSIONS_SHOWN_MAX)
            .map(|s| SessionLine {
                id_short: s.id.chars().take(12).collect(),
                state: if s.state == "ended" { "terminated".to_owned() } else { s.state.clone() },
                stream: s.stream_id.map_or_else(|| "—".to_owned(), |id| id.to_string()),
                vault_owner: s
                    .vault_owner
                    .parse::<AccountId>()
                    .map_or_else(|_| s.vault_owner.clone(), |id| format::short_id(&id)),
                vault_id: s.vault_id,
                service: s.service_id.clone(),
                rate: s.rate.parse::<u128>().map_or_else(|_| s.rate.clone(), format::amount),
                allocation: s.allocation.parse::<u128>().map_or_else(|_| s.allocation.clone(), format::amount),
                accepted: format::time(s.accepted_at),
                note: match (&s.end_reason, s.ended_at) {
                    (Some(reason), Some(at)) => format!("{reason} ({})", format::time(at)),
                    (Some(reason), None) => reason.clone(),
                    _ if s.state == "pending" => format!("stream due by {}", format::time(s.create_stream_deadline)),
                    _ if s.suspended_until > 0 => format!("suspended until {}", format::time(s.suspended_until)),
                    _ => String::new(),
                },
            })
            .collect();
    }
    html(&fragment)
}

fn summary_html(
    view: &StreamView,
    names: &BTreeMap<AccountId, String>,
    curve: &chart::Curve,
) -> Result<String, PageError> {
    html(&SummaryFragment { row: StreamRow::from_view(view, names), claimed: format::amount(curve.claimed) })
}

fn chart_html(app: &AppState, view: &StreamView, curve: &chart::Curve) -> Result<String, PageError> {
    let mut notes = Vec::new();
    if !curve.complete {
        notes.push(match app.hub.history_from() {
            None => "The history is still being read from the node; the chart fills in shortly.".to_owned(),
            Some(from) => format!(
                "The stream was created before block {from}, where this dashboard's history starts; the chart shows only \
                 the current value."
            ),
        });
    }
    if curve.projection.is_some() {
        notes.push(
            "The dashed line is the plan: accrual at the current rate until the allocation is used up.".to_owned(),
        );
    }
    let title = format!("Accrued on stream {} of vault {}", view.stream_id, view.vault_id);
    html(&ChartFragment {
        key: format!("stream:{}:{}:{}", view.owner, view.vault_id, view.stream_id),
        path: format!("{}/{}/{}", view.owner, view.vault_id, view.stream_id),
        svg: chart::svg(curve, &title),
        notes,
    })
}

fn history_html(app: &AppState, view: &StreamView, history: &StreamEvents) -> Result<String, PageError> {
    let entries = history
        .events
        .iter()
        .rev()
        .take(HISTORY_SHOWN_MAX)
        .map(|n| {
            let tx = n.tx_hash.to_string();
            HistoryEntry {
                time: format::time(n.timestamp_ms / 1000),
                block: n.block_id,
                kind: hub::kind(&n.event),
                text: hub::describe(&n.event),
                tx_short: tx.chars().take(12).collect(),
                tx,
            }
        })
        .collect();
    let note = match app.hub.history_from() {
        _ if history.from_index => "Every event of this stream, newest first.".to_owned(),
        None => "Reading the history from the node…".to_owned(),
        Some(from) => format!("Events from block {from} on, newest first."),
    };
    html(&HistoryFragment {
        key: format!("stream:{}:{}:{}", view.owner, view.vault_id, view.stream_id),
        path: format!("{}/{}/{}", view.owner, view.vault_id, view.stream_id),
        entries,
        note,
    })
}

fn fragment(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

pub async fn frag_identity(State(app): State<Arc<AppState>>, Path(account): Path<String>) -> Page {
    let id = parse_account("identity", &account)?;
    let (keys, _) = names(&app)?;
    let key = keys
        .iter()
        .find(|k| k.account_id() == id)
        .ok_or_else(|| PageError::NotFound(format!("{account} is not an identity in the keystore")))?;
    Ok(fragment(identity_html(&app, key).await?))
}

pub async fn frag_vaults(State(app): State<Arc<AppState>>, Path(owner): Path<String>) -> Page {
    let owner = parse_account("vault owner", &owner)?;
    let (_, names) = names(&app)?;
    Ok(fragment(vaults_html(&app, owner, &names).await?.0))
}

pub async fn frag_streams(State(app): State<Arc<AppState>>, Path(owner): Path<String>) -> Page {
    let owner = parse_account("vault owner", &owner)?;
    let (_, names) = names(&app)?;
    let vaults = view::vaults(&app.client, owner, &names).await?;
    Ok(fragment(streams_html(&app, owner, &vaults, &names).await?))
}

pub async fn frag_stream_row(
    State(app): State<Arc<AppState>>,
    Path((o, v, s)): Path<(String, String, String)>,
) -> Page {
    let (owner, vault_id, stream_id) = parse_stream_path(&o, &v, &s)?;
    let (_, names) = names(&app)?;
    let view = view::stream_view(&app.client, owner, vault_id, stream_id).await?;
    Ok(fragment(html(&StreamRowFragment { row: StreamRow::from_view(&view, &names) })?))
}

pub async fn frag_earning_row(
    State(app): State<Arc<AppState>>,
    Path((o, v, s)): Path<(String, String, String)>,
) -> Page {
    let (owner, vault_id, stream_id) = parse_stream_path(&o, &v, &s)?;
    let (_, names) = names(&app)?;
    let view = view::stream_view(&app.client, owner, vault_id, stream_id).await?;
    Ok(fragment(html(&EarningRowFragment { row: StreamRow::from_view(&view, &names) })?))
}

/// A stream's events, oldest first: its whole history from the node's event index, or (a node
/// that serves none) what the hub's log holds.
pub struct StreamEvents {
    pub events: Vec<paystreams_rpc::EventNotification>,
    /// True when read from the node's index (complete), false for the hub's bounded log.
    pub from_index: bool,
}

async fn stream_events(app: &AppState, owner: AccountId, vault_id: u64, stream_id: u64) -> StreamEvents {
    match app.client.stream_history(owner, vault_id, stream_id).await {
        Ok(events) => StreamEvents { events: events.into_iter().map(|e| e.notification).collect(), from_index: true },
        Err(e) => {
            tracing::debug!(error = %e, "the node's event index cannot be read; the stream page uses the live log");
            StreamEvents { events: app.hub.stream_events(owner, vault_id, stream_id), from_index: false }
        }
    }
}

async fn stream_parts(
    app: &AppState,
    o: &str,
    v: &str,
    s: &str,
) -> Result<(StreamView, BTreeMap<AccountId, String>, StreamEvents, chart::Curve), PageError> {
    let (owner, vault_id, stream_id) = parse_stream_path(o, v, s)?;
    let (_, names) = names(app)?;
    let view = view::stream_view(&app.client, owner, vault_id, stream_id).await?;
    let events = stream_events(app, owner, vault_id, stream_id).await;
    let curve = chart::replay(&view, &events.events);
    Ok((view, names, events, curve))
}

pub async fn frag_summary(State(app): State<Arc<AppState>>, Path((o, v, s)): Path<(String, String, String)>) -> Page {
    let (view, names, _, curve) = stream_parts(&app, &o, &v, &s).await?;
    Ok(fragment(summary_html(&view, &names, &curve)?))
}

pub async fn frag_chart(State(app): State<Arc<AppState>>, Path((o, v, s)): Path<(String, String, String)>) -> Page {
    let (view, _, _, curve) = stream_parts(&app, &o, &v, &s).await?;
    Ok(fragment(chart_html(&app, &view, &curve)?))
}

pub async fn frag_history(State(app): State<Arc<AppState>>, Path((o, v, s)): Path<(String, String, String)>) -> Page {
    let (view, _, events, _) = stream_parts(&app, &o, &v, &s).await?;
    Ok(fragment(history_html(&app, &view, &events)?))
}

pub async fn frag_provider(State(app): State<Arc<AppState>>, Path(provider): Path<String>) -> Page {
    let provider = parse_account("provider", &provider)?;
    let (_, names) = names(&app)?;
    Ok(fragment(provider_html(&app, provider, &names).await?.0))
}

pub async fn frag_sessions(State(app): State<Arc<AppState>>) -> Page {
    Ok(fragment(sessions_html(&app).await?))
}

struct AgentSessionLine {
    id: String,
    provider: String,
    service: String,
    phase: String,
    stream: String,
    state: String,
    rate: String,
    accrued: String,
    unaccrued: String,
}

#[derive(Template)]
#[template(path = "agent.html")]
struct AgentFragment {
    configured: bool,
    source: String,
    error: String,
    owner: String,
    vault: String,
    /// (kind, message)
    warnings: Vec<(String, String)>,
    /// allocated, spent, refunded, unaccrued
    total: (String, String, String, String),
    cap: String,
    /// provider, service, allocated, spent, refunded, open streams
    spending: Vec<(String, String, String, String, String, String)>,
    sessions: Vec<AgentSessionLine>,
}

/// A JSON value as text: strings as they are, numbers in digits, null as a dash.
fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".to_owned(),
        other => other.to_string(),
    }
}

/// A decimal-string amount from the agent, grouped; anything else shown as it came.
fn json_amount(v: &serde_json::Value) -> String {
    match v.as_str() {
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => format::group_digits(s),
        _ => json_text(v),
    }
}

fn short(text: &str) -> String {
    text.chars().take(12).collect()
}

async fn agent_html(app: &AppState) -> Result<String, PageError> {
    let mut fragment = AgentFragment {
        configured: app.agent.is_some(),
        source: String::new(),
        error: String::new(),
        owner: String::new(),
        vault: String::new(),
        warnings: vec![],
        total: Default::default(),
        cap: String::new(),
        spending: vec![],
        sessions: vec![],
    };
    let Some(agent) = &app.agent else { return html(&fragment) };
    fragment.source = agent.url().to_owned();
    let report = match agent.report().await {
        Ok(report) => report,
        Err(e) => {
            fragment.error = e;
            return html(&fragment);
        }
    };
    let empty = Vec::new();
    fragment.owner = report.sessions["owner"].as_str().unwrap_or_default().to_owned();
    fragment.vault = json_text(&report.sessions["vault_id"]);
    fragment.warnings = report.warnings["warnings"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .rev()
        .take(SESSIONS_SHOWN_MAX)
        .map(|w| (json_text(&w["kind"]), json_text(&w["message"])))
        .collect();
    let total = &report.spending["total"];
    fragment.total = (
        json_amount(&total["allocated"]),
        json_amount(&total["spent"]),
        json_amount(&total["refunded"]),
        json_amount(&total["unaccrued"]),
    );
    fragment.cap = report.spending["spending_cap"].as_str().map(format::group_digits).unwrap_or_default();
    fragment.spending = report.spending["by_provider"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .take(SESSIONS_SHOWN_MAX)
        .map(|r| {
            (
                short(&json_text(&r["provider"])),
                json_text(&r["service_id"]),
                json_amount(&r["allocated"]),
                json_amount(&r["spent"]),
                json_amount(&r["refunded"]),
                json_text(&r["open_streams"]),
            )
        })
        .collect();
    fragment.sessions = report.sessions["sessions"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .take(SESSIONS_SHOWN_MAX)
        .map(|s| AgentSessionLine {
            id: short(&json_text(&s["id"])),
            provider: short(&json_text(&s["provider"])),
            service: json_text(&s["service_id"]),
            phase: json_text(&s["phase"]),
            stream: json_text(&s["stream_id"]),
            state: json_text(&s["state"]),
            rate: json_amount(&s["rate"]),
            accrued: json_amount(&s["accrued"]),
            unaccrued: json_amount(&s["unaccrued"]),
        })
        .collect();
    html(&fragment)
}

pub async fn frag_agent(State(app): State<Arc<AppState>>) -> Page {
    Ok(fragment(agent_html(&app).await?))
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    layout: Layout,
    agent: String,
}

pub async fn user(State(app): State<Arc<AppState>>) -> Page {
    let layout = app.layout("User sessions", "user").await?;
    let agent = agent_html(&app).await?;
    render(&UserPage { layout, agent })
}

// ----- Pages -----

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    layout: Layout,
    sections: Vec<(String, String, String)>,
    keystore_missing: bool,
}

pub async fn overview(State(app): State<Arc<AppState>>) -> Page {
    let layout = app.layout("Overview", "overview").await?;
    let (keys, names) = names(&app)?;
    let mut sections = Vec::with_capacity(keys.len());
    for key in &keys {
        let identity = identity_html(&app, key).await?;
        let (vaults_body, vaults) = vaults_html(&app, key.account_id(), &names).await?;
        let streams = streams_html(&app, key.account_id(), &vaults, &names).await?;
        sections.push((identity, vaults_body, streams));
    }
    render(&OverviewPage { layout, sections, keystore_missing: keys.is_empty() })
}

#[derive(Template)]
#[template(path = "providers.html")]
struct ProvidersFragment {
    sections: Vec<String>,
    identities: usize,
}

/// Earnings of every keystore identity some stream pays.
async fn providers_html(app: &AppState) -> Result<String, PageError> {
    let (keys, names) = names(app)?;
    let mut sections = Vec::new();
    for key in &keys {
        let (body, count) = provider_html(app, key.account_id(), &names).await?;
        if count > 0 {
            sections.push(body);
        }
    }
    html(&ProvidersFragment { sections, identities: keys.len() })
}

pub async fn frag_providers(State(app): State<Arc<AppState>>) -> Page {
    Ok(fragment(providers_html(&app).await?))
}

#[derive(Template)]
#[template(path = "provider.html")]
struct ProviderPage {
    layout: Layout,
    sessions: String,
    providers: String,
}

pub async fn provider(State(app): State<Arc<AppState>>) -> Page {
    let layout = app.layout("Provider", "provider").await?;
    let providers = providers_html(&app).await?;
    let sessions = sessions_html(&app).await?;
    render(&ProviderPage { layout, sessions, providers })
}

struct ActionLink {
    href: String,
    text: String,
    danger: bool,
}

#[derive(Template)]
#[template(path = "stream.html")]
struct StreamPage {
    layout: Layout,
    row: StreamRow,
    summary: String,
    chart: String,
    history: String,
    actions: Vec<ActionLink>,
}

pub async fn stream(State(app): State<Arc<AppState>>, Path((o, v, s)): Path<(String, String, String)>) -> Page {
    let (view, names, events, curve) = stream_parts(&app, &o, &v, &s).await?;
    let row = StreamRow::from_view(&view, &names);
    let layout = app.layout(format!("Stream {} of vault {}", view.stream_id, view.vault_id), "overview").await?;
    let query = format!("owner={}&vault_id={}&stream_id={}", view.owner, view.vault_id, view.stream_id);
    let mut links = Vec::new();
    if row.owner.ours && !row.is_closed {
        if row.is_active {
            links.push(ActionLink { href: format!("/actions/pause?{query}"), text: "Pause".to_owned(), danger: false });
        } else {
            links.push(ActionLink {
                href: format!("/actions/resume?{query}"),
                text: "Resume".to_owned(),
                danger: false,
            });
        }
        links.push(ActionLink { href: format!("/actions/top-up?{query}"), text: "Top up".to_owned(), danger: false });
        links.push(ActionLink { href: format!("/actions/close?{query}"), text: "Close".to_owned(), danger: true });
    }
    if row.provider.ours {
        links.push(ActionLink {
            href: format!("/actions/claim?{query}&provider={}", view.provider),
            text: "Claim".to_owned(),
            danger: false,
        });
    }
    let summary = summary_html(&view, &names, &curve)?;
    let chart = chart_html(&app, &view, &curve)?;
    let history = history_html(&app, &view, &events)?;
    render(&StreamPage { layout, row, summary, chart, history, actions: links })
}

// ----- Actions -----

struct OptionView {
    value: String,
    label: String,
    selected: bool,
}

struct FieldView {
    name: &'static str,
    label: &'static str,
    help: &'static str,
    value: String,
    is_select: bool,
    is_account: bool,
    inputmode: &'static str,
    options: Vec<OptionView>,
    error: String,
}

#[derive(Template)]
#[template(path = "action_form.html")]
struct ActionFormPage {
    layout: Layout,
    slug: &'static str,
    heading: &'static str,
    home: &'static str,
    fields: Vec<FieldView>,
    identities: Vec<(String, String)>,
    error_count: usize,
    no_identities: bool,
}

#[derive(Template)]
#[template(path = "action_review.html")]
struct ActionReviewPage {
    layout: Layout,
    slug: &'static str,
    heading: &'static str,
    verb: &'static str,
    home: &'static str,
    lines: Vec<String>,
    hidden: Vec<(&'static str, String)>,
    danger: bool,
}

#[derive(Template)]
#[template(path = "action_result.html")]
struct ActionResultPage {
    layout: Layout,
    outcome: Outcome,
}

fn form_values(pairs: Vec<(String, String)>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (k, v) in pairs.into_iter().take(32) {
        map.entry(k).or_insert(v);
    }
    map
}

fn kind_of(slug: &str) -> Result<Kind, PageError> {
    Kind::from_slug(slug).ok_or_else(|| {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.slug()).collect();
        PageError::NotFound(format!("there is no action {slug:?}; the actions are: {}", known.join(", ")))
    })
}

fn field_views(
    kind: Kind,
    values: &BTreeMap<String, String>,
    errors: &BTreeMap<&'static str, String>,
    keys: &[NamedKey],
) -> Vec<FieldView> {
    kind.fields()
        .iter()
        .map(|spec| {
            let value: String =
                values.get(spec.name).map(|v| v.chars().take(actions::FIELD_LEN_MAX).collect()).unwrap_or_default();
            let selected_key = keys.iter().find(|k| k.name == value || k.account_id().to_string() == value);
            FieldView {
                name: spec.name,
                label: spec.label,
                help: spec.help,
                is_select: spec.input == Input::Signer,
                is_account: spec.input == Input::Account,
                inputmode: match spec.input {
                    Input::Id | Input::Amount | Input::Rate => "numeric",
                    _ => "text",
                },
                options: keys
                    .iter()
                    .map(|k| OptionView {
                        value: k.name.clone(),
                        label: format!("{} ({})", k.name, format::short_id(&k.account_id())),
                        selected: selected_key.is_some_and(|s| s.name == k.name),
                    })
                    .collect(),
                error: errors.get(spec.name).cloned().unwrap_or_default(),
                value: if spec.input == Input::Account {
                    // Show keystore names rather than ids where possible.
                    selected_key.map_or(value, |k| k.name.clone())
                } else {
                    value
                },
            }
        })
        .collect()
}

async fn form_page(
    app: &AppState,
    kind: Kind,
    values: &BTreeMap<String, String>,
    errors: &BTreeMap<&'static str, String>,
    keys: &[NamedKey],
) -> Page {
    let layout = app.layout(kind.title(), if kind.home() == "/provider" { "provider" } else { "overview" }).await?;
    let page = ActionFormPage {
        layout,
        slug: kind.slug(),
        heading: kind.title(),
        home: kind.home(),
        fields: field_views(kind, values, errors, keys),
        identities: keys.iter().map(|k| (k.name.clone(), k.account_id().to_string())).collect(),
        error_count: errors.len(),
        no_identities: keys.is_empty(),
    };
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    render(&page).map(|r| (status, r).into_response())
}

pub async fn action_form(
    State(app): State<Arc<AppState>>,
    Path(slug): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Page {
    let kind = kind_of(&slug)?;
    let (keys, _) = names(&app)?;
    let values = form_values(query);
    form_page(&app, kind, &values, &BTreeMap::new(), &keys).await
}

pub async fn action_post(
    State(app): State<Arc<AppState>>,
    Path(slug): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Page {
    let kind = kind_of(&slug)?;
    let values = form_values(pairs);
    let token = values.get("csrf").map_or("", String::as_str);
    if !crate::security::token_matches(&app.csrf, token) {
        return Err(PageError::Forbidden(
            "this form is out of date or did not come from this dashboard (its anti-forgery token does not match); \
             reload the page and submit again"
                .to_owned(),
        ));
    }
    let (keys, _) = names(&app)?;
    let step = values.get("step").map_or("review", String::as_str);
    let validated = match actions::validate(kind, &values, &keys) {
        Ok(v) => v,
        Err(errors) => return form_page(&app, kind, &values, &errors, &keys).await,
    };
    match step {
        "edit" => form_page(&app, kind, &values, &BTreeMap::new(), &keys).await,
        "confirm" => {
            tracing::info!(action = kind.slug(), signer = %validated.signer.name, "dashboard submitting an action");
            let outcome = actions::execute(&app, &validated, &keys).await;
            let layout = app
                .layout(outcome.heading.clone(), if kind.home() == "/provider" { "provider" } else { "overview" })
                .await?;
            let status = if outcome.ok { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
            render(&ActionResultPage { layout, outcome }).map(|r| (status, r).into_response())
        }
        "review" => {
            let lines = actions::review_lines(&app, &validated, &keys).await;
            let layout = app
                .layout(
                    format!("Confirm: {}", kind.title()),
                    if kind.home() == "/provider" { "provider" } else { "overview" },
                )
                .await?;
            render(&ActionReviewPage {
                layout,
                slug: kind.slug(),
                heading: kind.title(),
                verb: kind.verb(),
                home: kind.home(),
                lines,
                hidden: validated.values,
                danger: matches!(kind, Kind::Close | Kind::Withdraw),
            })
        }
        other => Err(PageError::BadRequest(format!("unknown form step {other:?}; use the buttons on the page"))),
    }
}

// ----- Live updates -----

struct SseSlot(Arc<AppState>);

impl Drop for SseSlot {
    fn drop(&mut self) {
        self.0.sse_clients.fetch_sub(1, Ordering::SeqCst);
    }
}

fn push_event(push: &Push) -> SseEvent {
    match push {
        Push::Head(head) => SseEvent::default().event("head").data(
            json!({ "height": head.height, "time": head.time, "time_text": format::time(head.time) }).to_string(),
        ),
        Push::Event(n) => {
            let mut keys = hub::refresh_keys(&n.event);
            keys.push("sessions".to_owned());
            SseEvent::default()
                .event("touch")
                .data(json!({ "keys": keys, "text": hub::describe(&n.event) }).to_string())
        }
        Push::Status { connected, text } => {
            SseEvent::default().event("status").data(json!({ "live": connected, "text": text }).to_string())
        }
    }
}

pub async fn events(
    State(app): State<Arc<AppState>>,
    stop: axum::Extension<tokio::sync::watch::Receiver<bool>>,
) -> Result<Response, PageError> {
    if app.sse_clients.fetch_add(1, Ordering::SeqCst) >= SSE_CLIENTS_MAX {
        app.sse_clients.fetch_sub(1, Ordering::SeqCst);
        return Err(PageError::Unavailable(format!(
            "too many live connections (at most {SSE_CLIENTS_MAX}); close other dashboard tabs and reload"
        )));
    }
    let slot = SseSlot(Arc::clone(&app));
    let (live, text) = app.hub.status();
    let mut initial = vec![push_event(&Push::Status { connected: live, text })];
    if let Some(head) = app.hub.head() {
        initial.push(push_event(&Push::Head(head)));
    }
    let updates = BroadcastStream::new(app.hub.subscribe()).map(move |item| {
        let _slot = &slot;
        match item {
            Ok(push) => Some(push_event(&push)),
            Err(_) => Some(SseEvent::default().event("resync").data("{}")),
        }
    });
    let stopped = tokio_stream::wrappers::WatchStream::new(stop.0.clone())
        .map(|stop| if stop { None } else { Some(SseEvent::default().comment("")) });
    let stream = tokio_stream::iter(initial.into_iter().map(Some))
        .chain(updates.merge(stopped))
        .take_while(Option::is_some)
        .map(|event| Ok::<_, Infallible>(event.unwrap_or_default()));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

// ----- Static files -----

pub async fn static_file(Path(file): Path<String>) -> Response {
    let (body, content_type): (&'static [u8], &str) = match file.as_str() {
        "app.js" => (include_bytes!("../static/app.js"), "text/javascript; charset=utf-8"),
        "app.css" => (include_bytes!("../static/app.css"), "text/css; charset=utf-8"),
        "favicon.svg" => (include_bytes!("../static/favicon.svg"), "image/svg+xml"),
        _ => return PageError::NotFound(format!("no static file {file:?}")).into_response(),
    };
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

pub async fn not_found(uri: axum::http::Uri) -> PageError {
    PageError::NotFound(format!("nothing lives at {}; start from the overview at /", uri.path()))
}
