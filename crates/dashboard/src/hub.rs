//! The live side: one background task follows the node over WebSocket
//! (`paystreams_subscribeEvents` for every payment-streams event, `paystreams_subscribeBlocks`
//! for the chain head), keeps a bounded log of
//! events (read back at start from the node's event index, `paystreams_getEvents`, for the
//! recent blocks, so stream pages have a history), and
//! broadcasts [`Push`] messages that the `/events` server-sent-events endpoint forwards to
//! browsers.

use paystreams_lez_core::lez_block::GENESIS_BLOCK_ID;
use std::{
    collections::VecDeque,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use jsonrpsee::ws_client::WsClientBuilder;
use paystreams_client::Client;
use paystreams_lez_core::AccountId;
use paystreams_program::Event;
use paystreams_rpc::{EventCursor, EventFilter, EventNotification, PaystreamsApiClient as _};
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use crate::format;

/// Most events kept in memory (oldest dropped first).
pub const EVENT_LOG_MAX: usize = 20_000;

/// Blocks read back at start for stream histories (default of `--history-blocks`).
pub const HISTORY_BLOCKS_DEFAULT: u64 = 20_000;

/// Messages buffered per browser before it is told to resynchronise.
pub const PUSH_CHANNEL_CAPACITY: usize = 256;

/// Longest wait between reconnection attempts to the node's WebSocket.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The latest block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Head {
    pub height: u64,
    /// Block time, seconds.
    pub time: u64,
}

/// What the browsers are told.
#[derive(Clone, Debug)]
pub enum Push {
    /// A new block.
    Head(Head),
    /// A payment-streams event: refresh what it touched.
    Event(Box<EventNotification>),
    /// The connection to the node came up or went down.
    Status { connected: bool, text: String },
}

#[derive(Default)]
struct Inner {
    log: VecDeque<EventNotification>,
    /// Lowest block the history covers, once read back.
    history_from: Option<u64>,
    /// Highest block whose events are in the log.
    seen_to: Option<u64>,
    head: Option<Head>,
    connected: bool,
    status: String,
}

/// Shared live state.
pub struct Hub {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Push>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    #[must_use]
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(PUSH_CHANNEL_CAPACITY);
        Self { inner: Mutex::new(Inner { status: "connecting to the node…".to_owned(), ..Inner::default() }), tx }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A receiver of every push from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Push> {
        self.tx.subscribe()
    }

    /// True while the WebSocket to the node is open; and the status sentence.
    #[must_use]
    pub fn status(&self) -> (bool, String) {
        let inner = self.lock();
        (inner.connected, inner.status.clone())
    }

    /// The latest block seen over the subscription, if any.
    #[must_use]
    pub fn head(&self) -> Option<Head> {
        self.lock().head
    }

    /// Lowest block covered by the history (None while it is being read).
    #[must_use]
    pub fn history_from(&self) -> Option<u64> {
        self.lock().history_from
    }

    /// The logged events of one stream, oldest first.
    #[must_use]
    pub fn stream_events(&self, owner: AccountId, vault_id: u64, stream_id: u64) -> Vec<EventNotification> {
        self.lock()
            .log
            .iter()
            .filter(|n| {
                n.event.stream().is_some_and(|s| s.owner == owner && s.vault_id == vault_id && s.stream_id == stream_id)
            })
            .cloned()
            .collect()
    }

    fn set_status(&self, connected: bool, text: String) {
        {
            let mut inner = self.lock();
            if inner.connected == connected && inner.status == text {
                return;
            }
            inner.connected = connected;
            inner.status.clone_from(&text);
        }
        let _ = self.tx.send(Push::Status { connected, text });
    }

    fn set_head(&self, head: Head) {
        {
            let mut inner = self.lock();
            if inner.head.is_some_and(|h| h.height >= head.height) {
                return;
            }
            inner.head = Some(head);
        }
        let _ = self.tx.send(Push::Head(head));
    }

    fn append(inner: &mut Inner, notification: EventNotification) {
        if inner.log.len() >= EVENT_LOG_MAX {
            inner.log.pop_front();
        }
        inner.seen_to = Some(inner.seen_to.map_or(notification.block_id, |s| s.max(notification.block_id)));
        inner.log.push_back(notification);
    }

    /// Records a live event and pushes it.
    fn record(&self, notification: EventNotification) {
        Self::append(&mut self.lock(), notification.clone());
        let _ = self.tx.send(Push::Event(Box::new(notification)));
    }

    /// Records events read back from blocks, and what range they cover.
    fn record_history(&self, events: Vec<EventNotification>, from: u64, to: u64) {
        let mut inner = self.lock();
        for n in events {
            Self::append(&mut inner, n);
        }
        inner.seen_to = Some(inner.seen_to.map_or(to, |s| s.max(to)));
        if inner.history_from.is_none() {
            inner.history_from = Some(from);
        }
    }

    fn seen_to(&self) -> Option<u64> {
        self.lock().seen_to
    }
}

/// Keys of the page parts an event changes (`data-refresh-key` values).
#[must_use]
pub fn refresh_keys(event: &Event) -> Vec<String> {
    let (owner, vault_id) = event.vault();
    let mut keys = vec![format!("vaults:{owner}"), format!("vault:{owner}:{vault_id}")];
    match event {
        Event::VaultInitialized { .. } => keys.push(format!("account:{owner}")),
        Event::Deposited { .. } => keys.push(format!("account:{owner}")),
        Event::Withdrawn { to, .. } => {
            keys.push(format!("account:{owner}"));
            keys.push(format!("account:{to}"));
        }
        _ => {}
    }
    if let Some(stream) = event.stream() {
        keys.push(format!("stream:{}:{}:{}", stream.owner, stream.vault_id, stream.stream_id));
        keys.push(format!("provider:{}", stream.provider));
        if matches!(event, Event::StreamCreated { .. }) {
            keys.push(format!("streams:{owner}"));
            keys.push("providers".to_owned());
        }
        if let Event::Claimed { to, .. } = event {
            keys.push(format!("account:{to}"));
            keys.push(format!("account:{}", stream.provider));
        }
    }
    keys
}

/// One line about an event, for history tables and announcements.
#[must_use]
pub fn describe(event: &Event) -> String {
    let stream_name =
        |s: &paystreams_program::event::StreamRef| format!("stream {} of vault {}", s.stream_id, s.vault_id);
    match event {
        Event::VaultInitialized { vault_id, token_id, .. } => format!("vault {vault_id} created ({token_id})"),
        Event::Deposited { vault_id, amount, .. } => {
            format!("{} deposited into vault {vault_id}", format::amount(*amount))
        }
        Event::Withdrawn { vault_id, amount, to, .. } => {
            format!("{} withdrawn from vault {vault_id} to {}", format::amount(*amount), format::short_id(to))
        }
        Event::StreamCreated { stream, rate, allocation, .. } => format!(
            "{} created: {} per second, allocation {}",
            stream_name(stream),
            format::amount(u128::from(*rate)),
            format::amount(*allocation)
        ),
        Event::StreamAutoPaused { stream, depleted: true, .. } => {
            format!("{} paused itself: allocation used up", stream_name(stream))
        }
        Event::StreamAutoPaused { stream, depleted: false, .. } => {
            format!("{} paused itself: auto-pause duration reached", stream_name(stream))
        }
        Event::StreamPaused { stream, .. } => format!("{} paused", stream_name(stream)),
        Event::StreamResumed { stream, .. } => format!("{} resumed", stream_name(stream)),
        Event::StreamToppedUp { stream, amount, allocation, .. } => format!(
            "{} topped up by {} (allocation now {})",
            stream_name(stream),
            format::amount(*amount),
            format::amount(*allocation)
        ),
        Event::ActivationFeeCharged { stream, fee, .. } => {
            format!("{}: activation fee {} charged", stream_name(stream), format::amount(*fee))
        }
        Event::StreamClosed { stream, by, released, accrued, .. } => format!(
            "{} closed by the {}: {} returned to the vault, {} left to claim",
            stream_name(stream),
            match by {
                paystreams_program::event::Closer::Owner => "owner",
                paystreams_program::event::Closer::Provider => "provider",
            },
            format::amount(*released),
            format::amount(*accrued)
        ),
        Event::Claimed { stream, amount, to, .. } => {
            format!("{}: {} claimed to {}", stream_name(stream), format::amount(*amount), format::short_id(to))
        }
    }
}

/// Short name of an event kind, for history tables and chart marks.
#[must_use]
pub const fn kind(event: &Event) -> &'static str {
    match event {
        Event::VaultInitialized { .. } => "vault created",
        Event::Deposited { .. } => "deposit",
        Event::Withdrawn { .. } => "withdrawal",
        Event::StreamCreated { .. } => "created",
        Event::StreamAutoPaused { .. } => "auto-paused",
        Event::StreamPaused { .. } => "paused",
        Event::StreamResumed { .. } => "resumed",
        Event::StreamToppedUp { .. } => "top-up",
        Event::ActivationFeeCharged { .. } => "activation fee",
        Event::StreamClosed { .. } => "closed",
        Event::Claimed { .. } => "claim",
    }
}

/// What [`read_history`] read.
struct History {
    /// Oldest first, at most [`EVENT_LOG_MAX`].
    events: Vec<EventNotification>,
    /// The first block whose events are all in `events`.
    covered_from: u64,
    /// `paystreams_getEvents` calls made.
    calls: u64,
}

/// Reads the newest payment-streams events of blocks `from..=to` from the node's event index
/// (`paystreams_getEvents`), as many as the log keeps ([`EVENT_LOG_MAX`]): block ranges from the
/// head backwards, each twice as long as the one before, until the log is full or `from` is
/// reached. The work is bounded by the log's size, not by the chain's length.
async fn read_history(client: &Client, from: u64, to: u64) -> Result<History, String> {
    let mut ranges: Vec<Vec<EventNotification>> = Vec::new();
    let (mut end, mut span, mut read, mut calls) = (to, 1_u64, 0_usize, 0_u64);
    let mut covered_from = loop {
        let start = end.saturating_sub(span - 1).max(from);
        let (events, range_calls) = read_blocks(client, start, end).await?;
        read = read.saturating_add(events.len());
        calls = calls.saturating_add(range_calls);
        ranges.push(events);
        if read >= EVENT_LOG_MAX || start <= from {
            break start;
        }
        end = start - 1;
        span = span.saturating_mul(2);
    };
    let mut events: Vec<EventNotification> = ranges.into_iter().rev().flatten().collect();
    if let Some(cut) = events.len().checked_sub(EVENT_LOG_MAX).filter(|cut| *cut > 0) {
        // The oldest kept block is whole only if nothing of it was cut.
        let oldest = events[cut].block_id;
        covered_from = if events[cut - 1].block_id == oldest { oldest.saturating_add(1) } else { oldest };
        events.drain(..cut);
    }
    Ok(History { events, covered_from, calls })
}

/// Every payment-streams event of blocks `from..=to`, page by page. Returns them oldest first,
/// and how many calls it made.
async fn read_blocks(client: &Client, from: u64, to: u64) -> Result<(Vec<EventNotification>, u64), String> {
    let mut events = Vec::new();
    // Strictly after the last possible event of block `from - 1`: from the first of `from`.
    let mut after = from.checked_sub(1).map(|block_id| EventCursor { block_id, index: u32::MAX });
    let mut calls = 0_u64;
    loop {
        let page = client.events(EventFilter::default(), after, None).await.map_err(|e| e.to_string())?;
        calls = calls.saturating_add(1);
        let mut past_end = false;
        for indexed in page.events {
            if indexed.cursor.block_id > to {
                past_end = true;
                break;
            }
            events.push(indexed.notification);
        }
        match page.next {
            Some(next) if !past_end && next.block_id <= to && after.is_none_or(|a| next > a) => after = Some(next),
            _ => return Ok((events, calls)),
        }
    }
}

/// Follows the node until `stop` turns true: subscribes, reads back missed blocks, records
/// events and heads, and reconnects with backoff when the WebSocket drops.
pub async fn follow(hub: std::sync::Arc<Hub>, client: Client, history_blocks: u64, mut stop: watch::Receiver<bool>) {
    let ws_url = client.ws_url();
    let mut backoff = Duration::from_millis(250);
    loop {
        if *stop.borrow() {
            return;
        }
        match follow_once(&hub, &client, &ws_url, history_blocks, &mut stop).await {
            Ok(()) => return,
            Err(detail) => {
                let text = format!(
                    "live updates paused: cannot follow the node at {ws_url} ({detail}); retrying. Is `paystream node` running there?"
                );
                warn!(%detail, url = %ws_url, "dashboard lost the node subscription");
                hub.set_status(false, text);
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = backoff.saturating_mul(2).min(RECONNECT_BACKOFF_MAX);
    }
}

/// One connection's life. `Ok` when stopped, `Err` with the reason when the connection failed.
async fn follow_once(
    hub: &Hub,
    client: &Client,
    ws_url: &str,
    history_blocks: u64,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let ws = WsClientBuilder::default().build(ws_url).await.map_err(|e| e.to_string())?;
    let mut events =
        ws.subscribe_events(EventFilter::default()).await.map_err(|e| format!("paystreams_subscribeEvents: {e}"))?;
    let mut blocks = ws.subscribe_blocks().await.map_err(|e| format!("paystreams_subscribeBlocks: {e}"))?;
    let height = client.last_block_id().await.map_err(|e| e.to_string())?;
    if let Some(block) = client.block(height).await.map_err(|e| e.to_string())? {
        hub.set_head(Head { height, time: block.header.timestamp_ms / 1000 });
    }
    // Read back what the log misses (everything recent on the first connection); the chain
    // starts at LEZ's genesis block id (1).
    let oldest = height.saturating_sub(history_blocks.saturating_sub(1)).max(GENESIS_BLOCK_ID);
    let from = hub.seen_to().map_or(oldest, |seen| seen.saturating_add(1).max(oldest));
    if from <= height {
        let History { events: history, covered_from, calls } = read_history(client, from, height).await?;
        debug!(
            from = covered_from,
            to = height,
            events = history.len(),
            calls,
            "dashboard read back history from the event index"
        );
        let missed: Vec<EventNotification> = if hub.history_from().is_some() { history.clone() } else { vec![] };
        hub.record_history(history, covered_from, height);
        // After a reconnection, what happened while disconnected is pushed too.
        for n in missed {
            let _ = hub.tx.send(Push::Event(Box::new(n)));
        }
    } else {
        hub.record_history(vec![], from, height);
    }
    hub.set_status(true, "live".to_owned());
    info!(url = %ws_url, height, "dashboard following the node");
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            next = events.next() => match next {
                // Blocks up to `height` were read back above; the subscription began before.
                Some(Ok(notification)) if notification.block_id <= height => {}
                Some(Ok(notification)) => hub.record(notification),
                Some(Err(e)) => warn!(error = %e, "undecodable event notification skipped"),
                None => return Err("the event subscription closed".to_owned()),
            },
            next = blocks.next() => match next {
                Some(Ok(block)) => hub.set_head(Head { height: block.header.height, time: block.header.timestamp_ms / 1000 }),
                Some(Err(e)) => warn!(error = %e, "undecodable block notification skipped"),
                None => return Err("the block subscription closed".to_owned()),
            },
        }
    }
}
