//! Bounds on the work and memory one JSON-RPC request can claim, decided before the work is done:
//!
//! - a batch may ask for at most [`paystreams_rpc::BLOCK_RANGE_MAX`] blocks over all its range
//!   calls (`getBlockRange`, `paystreams_getBlockRange`, counted up to the head): a larger batch is
//!   refused whole, before any block is read ([`BatchBound`]);
//! - block-range reads run at most [`FrontLimits::max_range_reads`] at a time, with at most
//!   [`FrontLimits::range_read_queue`] waiting; beyond that a read is refused at once with
//!   -32009 "server is busy" ([`RpcLimits::range_read`]), so a flood of range reads cannot take
//!   the blocking threads block production needs;
//! - a `getBlockRange` answer stops being built as soon as its encoded size passes
//!   [`crate::MAX_RESPONSE_BODY_BYTES`] (see `rpc.rs`);
//! - subscriptions are bounded per connection by jsonrpsee and in all by
//!   [`RpcLimits::subscription`].

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
};

use jsonrpsee::{
    core::middleware::{Batch, BatchEntry, Notification},
    server::middleware::rpc::RpcServiceT,
    types::{
        ErrorObjectOwned, Id, Request,
        error::{OVERSIZED_RESPONSE_CODE, SERVER_IS_BUSY_CODE},
    },
};
use paystreams_rpc::BLOCK_RANGE_MAX;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{chain::Chain, front::FrontLimits};

/// The shared counters behind the limits of this module.
pub struct RpcLimits {
    range_reads: Arc<Semaphore>,
    range_waiting: AtomicU32,
    range_queue: u32,
    subscriptions: Arc<Semaphore>,
    max_subscriptions: u32,
}

fn busy(message: String) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(SERVER_IS_BUSY_CODE, message, None::<()>)
}

/// Leaves the range-read queue when dropped (the wait may be cancelled).
struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl RpcLimits {
    #[must_use]
    pub fn new(limits: &FrontLimits) -> Self {
        Self {
            range_reads: Arc::new(Semaphore::new(limits.max_range_reads as usize)),
            range_waiting: AtomicU32::new(0),
            range_queue: limits.range_read_queue,
            subscriptions: Arc::new(Semaphore::new(limits.max_subscriptions as usize)),
            max_subscriptions: limits.max_subscriptions,
        }
    }

    /// A turn to read a block range: waits behind at most [`FrontLimits::range_read_queue`]
    /// others.
    ///
    /// # Errors
    /// -32009 when the queue is full.
    pub async fn range_read(&self) -> Result<OwnedSemaphorePermit, ErrorObjectOwned> {
        if let Ok(permit) = Arc::clone(&self.range_reads).try_acquire_owned() {
            return Ok(permit);
        }
        if self.range_waiting.fetch_add(1, Ordering::SeqCst) >= self.range_queue {
            self.range_waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(busy(format!(
                "Server is busy: {} block-range reads are already waiting; retry in a moment, or read fewer blocks \
                 per call",
                self.range_queue
            )));
        }
        let _waiting = Waiting(&self.range_waiting);
        Arc::clone(&self.range_reads).acquire_owned().await.map_err(|_| busy("Server is shutting down".into()))
    }

    /// A place for one more subscription, held for its lifetime.
    ///
    /// # Errors
    /// -32009 when [`FrontLimits::max_subscriptions`] are held.
    pub fn subscription(&self) -> Result<OwnedSemaphorePermit, ErrorObjectOwned> {
        Arc::clone(&self.subscriptions).try_acquire_owned().map_err(|_| {
            busy(format!(
                "Server is busy: the node holds its maximum of {} subscriptions; retry later, or unsubscribe from \
                 streams you no longer read",
                self.max_subscriptions
            ))
        })
    }
}

/// The methods whose answer is a list of blocks, bounded per batch by [`BatchBound`].
const RANGE_METHODS: &[&str] = &["getBlockRange", "paystreams_getBlockRange"];

/// The `(start, end)` of a range call's parameters, positional or named.
fn range_params(request: &Request<'_>) -> Option<(u64, u64)> {
    let raw = request.params.as_ref()?;
    let value: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
    match value {
        serde_json::Value::Array(items) => Some((items.first()?.as_u64()?, items.get(1)?.as_u64()?)),
        serde_json::Value::Object(members) => {
            Some((members.get("start_block_id")?.as_u64()?, members.get("end_block_id")?.as_u64()?))
        }
        _ => None,
    }
}

/// How many existing blocks a range call would return (0 when it is invalid; the method refuses
/// it on its own).
fn blocks_asked(request: &Request<'_>, head: u64) -> u64 {
    if !RANGE_METHODS.contains(&request.method_name()) {
        return 0;
    }
    match range_params(request) {
        Some((start, end)) if start <= end && start <= head => end.min(head) - start + 1,
        _ => 0,
    }
}

/// Refuses, before running any of it, a batch whose range calls ask for more than
/// [`BLOCK_RANGE_MAX`] existing blocks in all.
#[derive(Clone)]
pub struct BatchBound<S> {
    service: S,
    chain: Arc<Chain>,
}

impl<S> BatchBound<S> {
    pub const fn new(service: S, chain: Arc<Chain>) -> Self {
        Self { service, chain }
    }
}

impl<S> RpcServiceT for BatchBound<S>
where
    S: RpcServiceT<
            MethodResponse = jsonrpsee::MethodResponse,
            NotificationResponse = jsonrpsee::MethodResponse,
            BatchResponse = jsonrpsee::MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = S::MethodResponse;
    type NotificationResponse = S::NotificationResponse;
    type BatchResponse = S::BatchResponse;

    fn call<'a>(&self, request: Request<'a>) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        self.service.call(request)
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        let head = self.chain.head_height();
        let asked = batch
            .iter()
            .filter_map(|entry| match entry {
                Ok(BatchEntry::Call(request)) => Some(blocks_asked(request, head)),
                _ => None,
            })
            .fold(0u64, u64::saturating_add);
        let service = self.service.clone();
        async move {
            if asked > BLOCK_RANGE_MAX {
                let error = ErrorObjectOwned::owned(
                    OVERSIZED_RESPONSE_CODE,
                    format!(
                        "Response is too big: this batch asks for {asked} blocks over its range calls; a batch may \
                         ask for at most {BLOCK_RANGE_MAX} blocks in all (as one getBlockRange call); send fewer \
                         range calls per batch"
                    ),
                    Some(serde_json::json!({ "limit": BLOCK_RANGE_MAX, "asked": asked })),
                );
                return jsonrpsee::MethodResponse::error(Id::Null, error);
            }
            service.batch(batch).await
        }
    }

    fn notification<'a>(&self, n: Notification<'a>) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        self.service.notification(n)
    }
}
