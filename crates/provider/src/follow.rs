//! Chain monitoring loop: feeds every `subscribeEvents` notification to [`Provider::on_event`],
//! calls [`Provider::tick`] on an interval, reconnects with exponential backoff when the
//! subscription ends, and stops on a shutdown signal.
//!
//! Transport-agnostic: an [`EventSource`] opens subscriptions, an [`EventSubscription`] yields
//! notifications (`paystreams-rpc` defines both and, with its `client` feature, implements them
//! over the node's WebSocket).
//!
//! While the subscription is open the follower stamps a shared [`Liveness`] with the wall clock
//! (on every event and every tick). A chain view that caps its `observed_at_ms` with it (the
//! RPC-backed view does, when given one) goes stale once the follower has been disconnected for
//! longer than the engine's staleness bound, so the engine fails closed instead of serving on a
//! view that may have missed events.

use std::{
    future::Future,
    pin::{Pin, pin},
    time::Duration,
};

use paystreams_rpc::{
    EventNotification,
    chain_view::ChainView,
    clock::wall_clock_ms,
    events::{EventSource, EventSubscription, Liveness},
};
use tracing::{debug, info, warn};

use crate::{
    claims::ClaimSubmitter,
    engine::{EngineError, Provider, TickStats},
    store::SessionStore,
};

/// Follower timing.
#[derive(Clone, Debug)]
pub struct FollowerConfig {
    /// How often [`Provider::tick`] runs (connected or not).
    pub tick_interval: Duration,
    /// First reconnection delay; doubled after each failure up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Stamped while the subscription is open (share it with the chain view).
    pub liveness: Option<Liveness>,
    /// Run [`Provider::shutdown`] (claim everything claimable) when stopping.
    pub claim_on_shutdown: bool,
    /// Told the block id of each notification once the engine has handled it, so a caller can
    /// wait until the provider has seen a change it made on chain (events arrive in block
    /// order).
    pub handled: Option<tokio::sync::watch::Sender<u64>>,
}

impl Default for FollowerConfig {
    fn default() -> Self {
        Self {
            tick_interval: Duration::from_secs(5),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            liveness: None,
            claim_on_shutdown: true,
            handled: None,
        }
    }
}

/// What a follower did, returned when it stops.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct FollowerStats {
    /// Subscriptions opened.
    pub connections: u64,
    /// Notifications fed to the engine.
    pub events: u64,
    /// Notifications the engine failed on (logged; the next tick re-checks).
    pub event_errors: u64,
    pub ticks: u64,
    pub tick_errors: u64,
    /// Claims included on shutdown.
    pub shutdown_claims: u32,
}

/// A running [`Provider::tick`].
type Maintenance<'a> = Pin<Box<dyn Future<Output = Result<TickStats, EngineError>> + Send + 'a>>;

struct Run<'a, C, S, K> {
    provider: &'a Provider<C, S, K>,
    config: &'a FollowerConfig,
    stats: FollowerStats,
}

impl<C: ChainView, S: SessionStore, K: ClaimSubmitter> Run<'_, C, S, K> {
    fn alive(&self) {
        if let Some(liveness) = &self.config.liveness {
            liveness.mark(wall_clock_ms());
        }
    }

    async fn tick(&mut self) {
        let result = self.provider.tick(wall_clock_ms()).await;
        self.tick_done(result);
    }

    fn tick_done(&mut self, result: Result<TickStats, EngineError>) {
        self.stats.ticks = self.stats.ticks.saturating_add(1);
        if let Err(e) = result {
            self.stats.tick_errors = self.stats.tick_errors.saturating_add(1);
            warn!(error = %e, "provider tick failed");
        }
    }

    async fn event(&mut self, notification: &EventNotification) {
        self.alive();
        self.stats.events = self.stats.events.saturating_add(1);
        debug!(block = notification.block_id, event = ?notification.event, "event");
        if let Err(e) = self.provider.on_event(notification).await {
            self.stats.event_errors = self.stats.event_errors.saturating_add(1);
            warn!(error = %e, "provider failed on an event");
        }
        if let Some(handled) = &self.config.handled {
            handled.send_if_modified(|last| {
                let newer = notification.block_id > *last;
                if newer {
                    *last = notification.block_id;
                }
                newer
            });
        }
    }
}

/// Follows the chain for `provider` until `shutdown` completes: every notification from
/// `source` goes to [`Provider::on_event`], [`Provider::tick`] runs every
/// `config.tick_interval`, and an ended or failed subscription is reopened after a backoff
/// (`min_backoff`, doubling up to `max_backoff`, reset by a successful subscription). Ticks keep
/// running while disconnected; with a [`Liveness`] shared with the chain view, requests fail
/// closed once the disconnection outlasts the engine's staleness bound.
pub async fn run_follower<C, S, K, E>(
    provider: &Provider<C, S, K>,
    source: &E,
    config: FollowerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> FollowerStats
where
    C: ChainView,
    S: SessionStore,
    K: ClaimSubmitter,
    E: EventSource,
{
    let mut shutdown = pin!(shutdown);
    let mut run = Run { provider, config: &config, stats: FollowerStats::default() };
    let mut ticker = tokio::time::interval(config.tick_interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = config.min_backoff;
    'follow: loop {
        let subscribed = tokio::select! {
            () = &mut shutdown => break 'follow,
            subscribed = source.subscribe() => subscribed,
        };
        match subscribed {
            Ok(mut subscription) => {
                run.stats.connections = run.stats.connections.saturating_add(1);
                run.alive();
                info!("event subscription open");
                backoff = config.min_backoff;
                // Maintenance runs beside the subscription: a long tick (many claims) neither
                // delays events nor lets the liveness mark lapse while the subscription is open.
                let mut maintenance: Option<Maintenance<'_>> = None;
                loop {
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break 'follow,
                        next = subscription.next_event() => match next {
                            Some(notification) => run.event(&notification).await,
                            None => {
                                warn!("event subscription ended; reconnecting");
                                break;
                            }
                        },
                        result = async { if let Some(work) = maintenance.as_mut() { work.await } else { std::future::pending().await } }, if maintenance.is_some() => {
                            maintenance = None;
                            run.tick_done(result);
                        }
                        _ = ticker.tick() => {
                            run.alive();
                            if maintenance.is_none() {
                                maintenance = Some(Box::pin(provider.tick(wall_clock_ms())));
                            }
                        }
                    }
                }
                // An unfinished tick is dropped; the next one starts over.
            }
            Err(e) => warn!(error = %e, retry_in_ms = backoff.as_millis(), "cannot subscribe to events"),
        }
        let mut wait = pin!(tokio::time::sleep(backoff));
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break 'follow,
                () = &mut wait => break,
                _ = ticker.tick() => run.tick().await,
            }
        }
        backoff = backoff.saturating_mul(2).min(config.max_backoff.max(config.min_backoff));
    }
    if config.claim_on_shutdown {
        match provider.shutdown().await {
            Ok(claims) => run.stats.shutdown_claims = claims,
            Err(e) => warn!(error = %e, "claims on shutdown failed"),
        }
    }
    info!(stats = ?run.stats, "follower stopped");
    run.stats
}

#[cfg(test)]
mod tests {
    use std::{
        collections::VecDeque,
        sync::{
            Arc, Mutex,
            atomic::{AtomicU64, Ordering},
        },
    };

    use paystreams_lez_core::{crypto::SecretKey, transfer::authenticated_transfer_program_id};
    use paystreams_program::{
        client::{self, VaultRef},
        payment_streams_program_id,
        state::VaultPrivacyTier,
    };
    use paystreams_rpc::chain_view::InMemoryChain;
    use paystreams_wire::TokenStreamPolicy;

    use super::*;
    use crate::{MemoryStore, NoClaims, ProviderPolicy, policy::EngineLimits};

    /// Each subscription replays a batch, then ends; the source fails once in between.
    struct Batches {
        batches: Mutex<VecDeque<Result<Vec<EventNotification>, String>>>,
        opened: Arc<AtomicU64>,
    }

    struct Batch(VecDeque<EventNotification>);

    impl EventSubscription for Batch {
        async fn next_event(&mut self) -> Option<EventNotification> {
            self.0.pop_front()
        }
    }

    impl EventSource for Batches {
        type Subscription = Batch;

        async fn subscribe(&self) -> Result<Batch, String> {
            let next = self.batches.lock().map_err(|_| "poisoned".to_owned())?.pop_front();
            match next {
                Some(Ok(events)) => {
                    self.opened.fetch_add(1, Ordering::Relaxed);
                    Ok(Batch(events.into()))
                }
                Some(Err(e)) => Err(e),
                None => Err("no more".into()),
            }
        }
    }

    #[tokio::test]
    async fn follower_feeds_events_reconnects_and_stops() {
        let owner = SecretKey::from_bytes(&[1; 32]).expect("key");
        let provider_key = SecretKey::from_bytes(&[2; 32]).expect("key");
        let chain = InMemoryChain::new(&[(owner.account_id(), 1_000_000)], 1_000).expect("chain");
        let vault = VaultRef::native(payment_streams_program_id(), owner.account_id(), 0);
        for call in [
            client::initialize_vault(&vault, VaultPrivacyTier::Public),
            client::deposit(&vault, 5_000, authenticated_transfer_program_id(), None),
        ] {
            assert!(chain.submit_now(&call, &[&owner]).expect("submit").is_included());
        }
        let events = chain.events_since(0).expect("events");
        assert!(!events.is_empty());
        let policy = ProviderPolicy::new(
            provider_key.account_id().0,
            vec!["svc".into()],
            vec![TokenStreamPolicy { token_id: [0; 32], min_rate: 1, min_allocation: 1 }],
        );
        let provider =
            Provider::new(policy, EngineLimits::default(), chain, MemoryStore::new(), NoClaims).expect("provider");
        let opened = Arc::new(AtomicU64::new(0));
        let source = Batches {
            batches: Mutex::new(VecDeque::from([Ok(events.clone()), Err("refused".into()), Ok(events.clone())])),
            opened: Arc::clone(&opened),
        };
        let liveness = Liveness::default();
        let (handled_tx, handled) = tokio::sync::watch::channel(0_u64);
        let config = FollowerConfig {
            tick_interval: Duration::from_millis(5),
            min_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            liveness: Some(liveness.clone()),
            claim_on_shutdown: true,
            handled: Some(handled_tx),
        };
        let shutdown = async {
            while opened.load(Ordering::Relaxed) < 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        };
        let stats = run_follower(&provider, &source, config, shutdown).await;
        assert_eq!(stats.connections, 2);
        assert_eq!(stats.events, u64::try_from(events.len() * 2).expect("fits"));
        assert_eq!((stats.event_errors, stats.shutdown_claims), (0, 0));
        assert!(stats.ticks > 0);
        assert!(liveness.last_alive_ms() > 0);
        // The last block the engine handled is the newest block among the events.
        let newest = events.iter().map(|e| e.block_id).max().expect("events");
        assert_eq!(*handled.borrow(), newest);
    }
}
