//! How the off-chain engines read and write the chain.
//!
//! [`ChainView`] is the read side the provider and user engines are generic over: the chain head
//! (height, chain time, and when this process last heard from the chain, for staleness bounds)
//! and decoded vault and stream views folded at head time. [`ChainWriter`] submits a program
//! call signed by the given keys and reports inclusion or the runtime's refusal.
//!
//! [`InMemoryChain`] implements both over a shared [`State`] driven by the real
//! [`Runtime`], so tests apply real transactions. An RPC-backed implementation maps
//! `getLastBlockId`/`getBlock` to [`ChainView::head`], `getVault`/`getStream` to the views and
//! `sendTransaction` + `getTransactionReceipt` to [`ChainWriter::submit`].

use std::{
    fmt,
    future::Future,
    sync::{Arc, Mutex, MutexGuard},
};

use paystreams_lez_core::{AccountId, ProgramId, crypto::SecretKey};
use paystreams_program::client::Call;
use paystreams_runtime::{BlockContext, Message, ReceiptEvent, Runtime, State, StateView as _, Transaction};

use crate::{
    types::{EventNotification, HexHash, StreamView, VaultView},
    views,
};

/// The chain as last observed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ChainHead {
    /// Height of the latest block.
    pub height: u64,
    /// Chain time of the latest block, in seconds (stream time).
    pub time_secs: u64,
    /// Wall-clock Unix milliseconds at which this process last heard from the chain. Engines
    /// compare it with their own wall clock to bound staleness and fail closed.
    pub observed_at_ms: u64,
}

/// A failure to read or write the chain (not a transaction's own outcome).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ChainError {
    /// The chain could not be reached or answered with an error.
    Unavailable(String),
    /// Something inside the view failed.
    Internal(String),
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(detail) => write!(f, "chain unavailable: {detail}"),
            Self::Internal(detail) => write!(f, "chain view failure: {detail}"),
        }
    }
}

impl std::error::Error for ChainError {}

/// Read access to the chain. Implementations may be local (in-memory state) or remote (RPC).
pub trait ChainView: Send + Sync {
    /// The latest block.
    fn head(&self) -> impl Future<Output = Result<ChainHead, ChainError>> + Send;

    /// The vault of `owner` with `vault_id`, or `None` when it does not exist.
    fn vault(
        &self,
        owner: &AccountId,
        vault_id: u64,
    ) -> impl Future<Output = Result<Option<VaultView>, ChainError>> + Send;

    /// The stream, folded at head time, or `None` when it does not exist.
    fn stream(
        &self,
        owner: &AccountId,
        vault_id: u64,
        stream_id: u64,
    ) -> impl Future<Output = Result<Option<StreamView>, ChainError>> + Send;

    /// As [`ChainView::stream`], read from the chain itself even when the view caches: for
    /// decisions taken right after the stream changed (claims, re-checks after an event).
    fn stream_fresh(
        &self,
        owner: &AccountId,
        vault_id: u64,
        stream_id: u64,
    ) -> impl Future<Output = Result<Option<StreamView>, ChainError>> + Send {
        self.stream(owner, vault_id, stream_id)
    }

    /// Drops any cached view of the stream (an event changed it). Views that do not cache
    /// ignore it.
    fn forget_stream(&self, _owner: &AccountId, _vault_id: u64, _stream_id: u64) {}
}

/// Outcome of a submitted transaction.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SubmitOutcome {
    /// Included; its payment-stream events in order.
    Included { tx_hash: HexHash, block_id: u64, events: Vec<paystreams_program::Event> },
    /// Refused by the runtime or the program, with its stable code and name. Nothing changed.
    Failed { code: u32, name: String },
}

impl SubmitOutcome {
    #[must_use]
    pub const fn is_included(&self) -> bool {
        matches!(self, Self::Included { .. })
    }
}

/// Write access: submit a program call signed by `signers` (nonces are read by the writer).
pub trait ChainWriter: Send + Sync {
    fn submit(
        &self,
        call: &Call,
        signers: &[&SecretKey],
    ) -> impl Future<Output = Result<SubmitOutcome, ChainError>> + Send;
}

/// Shared state behind [`InMemoryChain`].
#[derive(Debug)]
pub struct InMemoryInner {
    pub runtime: Runtime,
    pub state: State,
    pub height: u64,
    pub timestamp_ms: u64,
    /// What [`ChainHead::observed_at_ms`] reports; follows the chain clock unless frozen.
    pub observed_at_ms: Option<u64>,
    /// Every payment-stream event committed so far, in order.
    pub events: Vec<EventNotification>,
}

/// A single-writer chain in memory over the real runtime, shared by clones. Every submitted
/// transaction is executed and committed in the current block at once; [`InMemoryChain::advance_to`]
/// opens a new block at a later time (running the clock program, as the sequencer does).
#[derive(Clone, Debug)]
pub struct InMemoryChain {
    inner: Arc<Mutex<InMemoryInner>>,
    program_id: ProgramId,
}

impl InMemoryChain {
    /// Genesis with native balances at chain time `time_secs`.
    ///
    /// # Errors
    /// When `time_secs` overflows milliseconds.
    pub fn new(funded: &[(AccountId, u128)], time_secs: u64) -> Result<Self, ChainError> {
        let timestamp_ms = secs_to_ms(time_secs)?;
        let inner = InMemoryInner {
            runtime: Runtime::new(),
            state: paystreams_runtime::genesis(funded, timestamp_ms),
            height: 0,
            timestamp_ms,
            observed_at_ms: None,
            events: Vec::new(),
        };
        Ok(Self { inner: Arc::new(Mutex::new(inner)), program_id: paystreams_program::payment_streams_program_id() })
    }

    /// The payment-streams program id views are read under.
    #[must_use]
    pub const fn program_id(&self) -> ProgramId {
        self.program_id
    }

    fn lock(&self) -> Result<MutexGuard<'_, InMemoryInner>, ChainError> {
        self.inner.lock().map_err(|_| ChainError::Internal("in-memory chain lock poisoned".into()))
    }

    /// Runs `f` with the shared state (tests use it to inspect or tamper).
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn with_inner<R>(&self, f: impl FnOnce(&mut InMemoryInner) -> R) -> Result<R, ChainError> {
        Ok(f(&mut *self.lock()?))
    }

    /// Current chain time in seconds.
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn now_secs(&self) -> Result<u64, ChainError> {
        Ok(self.lock()?.timestamp_ms / 1000)
    }

    /// Opens the next block at `time_secs` (never earlier than now).
    ///
    /// # Errors
    /// Time going backwards, overflow, or the clock update being refused.
    pub fn advance_to(&self, time_secs: u64) -> Result<(), ChainError> {
        let timestamp_ms = secs_to_ms(time_secs)?;
        let mut inner = self.lock()?;
        if timestamp_ms < inner.timestamp_ms {
            return Err(ChainError::Internal(format!("time would go backwards to {time_secs} s")));
        }
        let height = inner.height.checked_add(1).ok_or_else(|| ChainError::Internal("height overflow".into()))?;
        let ctx = BlockContext { block_id: height, timestamp_ms };
        let diff = inner
            .runtime
            .clock_update(&inner.state, &ctx)
            .map_err(|e| ChainError::Internal(format!("clock update refused: {} {}", e.code(), e.name())))?;
        inner.state.apply_diff(&diff);
        inner.height = height;
        inner.timestamp_ms = timestamp_ms;
        Ok(())
    }

    /// Opens the next block `seconds` later.
    ///
    /// # Errors
    /// As [`InMemoryChain::advance_to`].
    pub fn advance_by(&self, seconds: u64) -> Result<(), ChainError> {
        let now = self.now_secs()?;
        let target = now.checked_add(seconds).ok_or_else(|| ChainError::Internal("time overflow".into()))?;
        self.advance_to(target)
    }

    /// Freezes (or with `None`, unfreezes) the reported observation time, to simulate a lagging
    /// view.
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn set_observed_at_ms(&self, observed_at_ms: Option<u64>) -> Result<(), ChainError> {
        self.lock()?.observed_at_ms = observed_at_ms;
        Ok(())
    }

    /// Events committed at index `from` and later (an index into the full event log).
    ///
    /// # Errors
    /// A poisoned lock.
    pub fn events_since(&self, from: usize) -> Result<Vec<EventNotification>, ChainError> {
        Ok(self.lock()?.events.get(from..).map(<[_]>::to_vec).unwrap_or_default())
    }

    /// Executes and commits a call signed by `signers`, synchronously.
    ///
    /// # Errors
    /// A poisoned lock (a refused transaction is [`SubmitOutcome::Failed`]).
    pub fn submit_now(&self, call: &Call, signers: &[&SecretKey]) -> Result<SubmitOutcome, ChainError> {
        let mut inner = self.lock()?;
        let nonces = signers.iter().map(|k| inner.state.account(&k.account_id()).nonce).collect();
        let message = Message {
            program_id: call.program_id,
            account_ids: call.account_ids.clone(),
            nonces,
            instruction_data: call.instruction_data(),
        };
        let tx = Transaction::sign(message, signers);
        let ctx = BlockContext { block_id: inner.height, timestamp_ms: inner.timestamp_ms };
        match inner.runtime.apply(&inner.state, &tx, &ctx) {
            Ok(applied) => {
                inner.state.apply_diff(&applied.diff);
                let tx_hash = HexHash(applied.receipt.tx_hash);
                let events: Vec<paystreams_program::Event> = applied
                    .receipt
                    .events
                    .into_iter()
                    .filter_map(|e| match e {
                        ReceiptEvent::PaymentStreams { event } => Some(event),
                        _ => None,
                    })
                    .collect();
                let (block_id, timestamp_ms) = (inner.height, inner.timestamp_ms);
                inner.events.extend(events.iter().map(|event| EventNotification {
                    block_id,
                    timestamp_ms,
                    tx_hash,
                    event: event.clone(),
                }));
                Ok(SubmitOutcome::Included { tx_hash, block_id, events })
            }
            Err(e) => Ok(SubmitOutcome::Failed { code: e.code(), name: e.name().to_owned() }),
        }
    }
}

fn secs_to_ms(secs: u64) -> Result<u64, ChainError> {
    secs.checked_mul(1000).ok_or_else(|| ChainError::Internal(format!("{secs} s overflows milliseconds")))
}

impl ChainView for InMemoryChain {
    async fn head(&self) -> Result<ChainHead, ChainError> {
        let inner = self.lock()?;
        Ok(ChainHead {
            height: inner.height,
            time_secs: inner.timestamp_ms / 1000,
            observed_at_ms: inner.observed_at_ms.unwrap_or(inner.timestamp_ms),
        })
    }

    async fn vault(&self, owner: &AccountId, vault_id: u64) -> Result<Option<VaultView>, ChainError> {
        let inner = self.lock()?;
        Ok(views::vault_view(&inner.state, &self.program_id, owner, vault_id))
    }

    async fn stream(&self, owner: &AccountId, vault_id: u64, stream_id: u64) -> Result<Option<StreamView>, ChainError> {
        let inner = self.lock()?;
        let now = inner.timestamp_ms / 1000;
        Ok(views::stream_view(&inner.state, &self.program_id, owner, vault_id, stream_id, now))
    }
}

impl ChainWriter for InMemoryChain {
    async fn submit(&self, call: &Call, signers: &[&SecretKey]) -> Result<SubmitOutcome, ChainError> {
        self.submit_now(call, signers)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        future::Future,
        pin::pin,
        task::{Context, Poll, Waker},
    };

    use paystreams_lez_core::transfer::authenticated_transfer_program_id;
    use paystreams_program::{
        ExtensionSettings,
        client::{self, VaultRef},
        state::VaultPrivacyTier,
    };

    use super::*;

    /// The in-memory futures never wait: one poll completes them.
    fn ready<T>(future: impl Future<Output = T>) -> T {
        let mut context = Context::from_waker(Waker::noop());
        match pin!(future).poll(&mut context) {
            Poll::Ready(value) => value,
            Poll::Pending => panic!("in-memory chain futures are always ready"),
        }
    }

    #[test]
    fn in_memory_chain_reads_writes_and_folds_at_head_time() {
        let owner = SecretKey::from_bytes(&[1; 32]).expect("key");
        let provider = SecretKey::from_bytes(&[2; 32]).expect("key");
        let chain = InMemoryChain::new(&[(owner.account_id(), 1_000_000)], 100).expect("chain");
        let vault = VaultRef::native(chain.program_id(), owner.account_id(), 0);
        for call in [
            client::initialize_vault(&vault, VaultPrivacyTier::Public),
            client::deposit(&vault, 5_000, authenticated_transfer_program_id(), None),
            client::create_stream(&vault, 0, provider.account_id(), 10, 1_000, ExtensionSettings::default()),
        ] {
            assert!(ready(chain.submit(&call, &[&owner])).expect("submit").is_included());
        }
        // A refused transaction reports its code and changes nothing.
        let refused = ready(chain.submit(&client::withdraw(&vault, 1_000_000, None), &[&owner])).expect("submit");
        assert!(matches!(refused, SubmitOutcome::Failed { .. }));
        let head = ready(chain.head()).expect("head");
        assert_eq!((head.height, head.time_secs, head.observed_at_ms), (0, 100, 100_000));
        let view = ready(chain.vault(&owner.account_id(), 0)).expect("read").expect("vault");
        assert_eq!((view.balance.0, view.unallocated.0), (5_000, 4_000));
        chain.advance_to(130).expect("advance");
        let stream = ready(chain.stream(&owner.account_id(), 0, 0)).expect("read").expect("stream");
        assert_eq!((stream.accrued.0, stream.as_of, stream.planned_stop), (300, 130, Some(200)));
        assert!(ready(chain.stream(&owner.account_id(), 0, 1)).expect("read").is_none());
        assert!(chain.advance_to(120).is_err());
        chain.set_observed_at_ms(Some(7)).expect("freeze");
        assert_eq!(ready(chain.head()).expect("head").observed_at_ms, 7);
        let events = chain.events_since(0).expect("events");
        assert!(matches!(events.last().map(|e| &e.event), Some(paystreams_program::Event::StreamCreated { .. })));
        assert!(chain.events_since(events.len()).expect("events").is_empty());
    }
}
