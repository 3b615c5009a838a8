//! The chain's event feed as the off-chain engines see it: an [`EventSource`] opens
//! subscriptions, an [`EventSubscription`] yields [`EventNotification`]s, and a shared
//! [`Liveness`] records when the subscription was last known to be open.
//!
//! Transport-agnostic: the `client` feature implements the source over a node's WebSocket
//! (`remote::WsEvents`); tests replay recorded events. The provider's follower drives it.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::{clock::wall_clock_ms, types::EventNotification};

/// When the follower last knew its subscription to be open (wall-clock Unix ms), shared with
/// the chain view. Clones share the same value.
#[derive(Clone, Debug, Default)]
pub struct Liveness(Arc<AtomicU64>);

impl Liveness {
    /// A liveness marked alive now.
    #[must_use]
    pub fn new() -> Self {
        let liveness = Self::default();
        liveness.mark(wall_clock_ms());
        liveness
    }

    /// Records that the subscription was open at `now_ms`.
    pub fn mark(&self, now_ms: u64) {
        self.0.fetch_max(now_ms, Ordering::Relaxed);
    }

    /// The last time the subscription was known to be open (0: never).
    #[must_use]
    pub fn last_alive_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One open subscription.
pub trait EventSubscription: Send {
    /// The next notification, or `None` when the subscription ended (connection lost,
    /// server stopped): the follower then reconnects.
    fn next_event(&mut self) -> impl Future<Output = Option<EventNotification>> + Send;
}

/// Opens subscriptions (again after each end).
pub trait EventSource: Send + Sync {
    type Subscription: EventSubscription;

    /// Opens a subscription to the provider's events.
    fn subscribe(&self) -> impl Future<Output = Result<Self::Subscription, String>> + Send;
}
