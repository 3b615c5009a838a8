//! How the off-chain engines read and write the chain.
//!
//! [`ChainView`] is the read side the provider and user engines are generic over: the chain head
//! (height, chain time, and when this process last heard from the chain, for staleness bounds)
//! and decoded vault and stream views folded at head time. [`ChainWriter`] submits a program
//! call signed by the given keys and reports inclusion or the runtime's refusal.
//!
//! `InMemoryChain` (feature `testkit`) implements both over the runtime's in-memory
//! `LocalChain`, so tests apply real transactions. An RPC-backed implementation maps
//! `getLastBlockId`/`getBlock` to [`ChainView::head`], `getVault`/`getStream` to the views and
//! `sendTransaction` + `getTransactionReceipt` to [`ChainWriter::submit`].

use std::{fmt, future::Future};

use paystreams_lez_core::{AccountId, crypto::SecretKey};
use paystreams_program::client::Call;

use crate::types::{HexHash, StreamView, VaultView};

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

    /// Submits several calls signed by the same `signers`, all sent before any inclusion is
    /// awaited (one signer's nonces in the order given). The answer has one outcome per call,
    /// in order. The default submits one by one.
    fn submit_batch(
        &self,
        calls: &[Call],
        signers: &[&SecretKey],
    ) -> impl Future<Output = Result<Vec<SubmitOutcome>, ChainError>> + Send {
        async move {
            let mut out = Vec::with_capacity(calls.len());
            for call in calls {
                out.push(self.submit(call, signers).await?);
            }
            Ok(out)
        }
    }
}

#[cfg(any(test, feature = "testkit"))]
pub use in_memory::{InMemoryChain, InMemoryInner};

/// The in-memory chain (feature `testkit`): the runtime's [`LocalChain`] shared behind a lock,
/// plus what an RPC view adds (observation time, the event log).
///
/// [`LocalChain`]: paystreams_runtime::testkit::LocalChain
#[cfg(any(test, feature = "testkit"))]
mod in_memory {
    use std::sync::{Arc, Mutex, MutexGuard};

    use paystreams_lez_core::{AccountId, ProgramId, crypto::SecretKey};
    use paystreams_program::client::Call;
    use paystreams_runtime::{ReceiptEvent, testkit::LocalChain};

    use super::{ChainError, ChainHead, ChainView, ChainWriter, SubmitOutcome};
    use crate::{
        types::{EventNotification, HexHash, StreamView, VaultView},
        views,
    };

    /// Shared state behind [`InMemoryChain`]; public so tests can inspect or tamper.
    #[derive(Debug)]
    pub struct InMemoryInner {
        /// Runtime, state and current block.
        pub chain: LocalChain,
        /// What [`ChainHead::observed_at_ms`] reports; follows the chain clock unless frozen.
        pub observed_at_ms: Option<u64>,
        /// Every payment-stream event committed so far, in order.
        pub events: Vec<EventNotification>,
    }

    /// A single-writer chain in memory over the real runtime, shared by clones. Every submitted
    /// transaction is executed and committed in the current block at once;
    /// [`InMemoryChain::advance_to`] opens a new block at a later time (running the clock
    /// program, as the sequencer does).
    #[derive(Clone, Debug)]
    pub struct InMemoryChain {
        inner: Arc<Mutex<InMemoryInner>>,
        program_id: ProgramId,
    }

    fn chain_error(error: impl std::fmt::Display) -> ChainError {
        ChainError::Internal(error.to_string())
    }

    impl InMemoryChain {
        /// Genesis with native balances at chain time `time_secs`.
        ///
        /// # Errors
        /// When `time_secs` overflows milliseconds.
        pub fn new(funded: &[(AccountId, u128)], time_secs: u64) -> Result<Self, ChainError> {
            let chain = LocalChain::new(funded, time_secs).map_err(chain_error)?;
            let inner = InMemoryInner { chain, observed_at_ms: None, events: Vec::new() };
            Ok(Self {
                inner: Arc::new(Mutex::new(inner)),
                program_id: paystreams_program::payment_streams_program_id(),
            })
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
            Ok(self.lock()?.chain.now_secs())
        }

        /// Opens the next block at `time_secs` (never earlier than now).
        ///
        /// # Errors
        /// Time going backwards, overflow, or the clock update being refused.
        pub fn advance_to(&self, time_secs: u64) -> Result<(), ChainError> {
            self.lock()?.chain.advance_to(time_secs).map_err(chain_error)
        }

        /// Opens the next block `seconds` later.
        ///
        /// # Errors
        /// As [`InMemoryChain::advance_to`].
        pub fn advance_by(&self, seconds: u64) -> Result<(), ChainError> {
            self.lock()?.chain.advance_by(seconds).map_err(chain_error)
        }

        /// Freezes (or with `None`, unfreezes) the reported observation time, to simulate a
        /// lagging view.
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
            match inner.chain.submit(call, signers) {
                Ok(applied) => {
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
                    let block = inner.chain.block();
                    inner.events.extend(events.iter().map(|event| EventNotification {
                        block_id: block.block_id,
                        timestamp_ms: block.timestamp_ms,
                        tx_hash,
                        event: event.clone(),
                    }));
                    Ok(SubmitOutcome::Included { tx_hash, block_id: block.block_id, events })
                }
                Err(e) => Ok(SubmitOutcome::Failed { code: e.code(), name: e.name().to_owned() }),
            }
        }
    }

    impl ChainView for InMemoryChain {
        async fn head(&self) -> Result<ChainHead, ChainError> {
            let inner = self.lock()?;
            Ok(ChainHead {
                height: inner.chain.height(),
                time_secs: inner.chain.now_secs(),
                observed_at_ms: inner.observed_at_ms.unwrap_or_else(|| inner.chain.timestamp_ms()),
            })
        }

        async fn vault(&self, owner: &AccountId, vault_id: u64) -> Result<Option<VaultView>, ChainError> {
            let inner = self.lock()?;
            Ok(views::vault_view(inner.chain.state(), &self.program_id, owner, vault_id))
        }

        async fn stream(
            &self,
            owner: &AccountId,
            vault_id: u64,
            stream_id: u64,
        ) -> Result<Option<StreamView>, ChainError> {
            let inner = self.lock()?;
            let now = inner.chain.now_secs();
            Ok(views::stream_view(inner.chain.state(), &self.program_id, owner, vault_id, stream_id, now))
        }
    }

    impl ChainWriter for InMemoryChain {
        async fn submit(&self, call: &Call, signers: &[&SecretKey]) -> Result<SubmitOutcome, ChainError> {
            self.submit_now(call, signers)
        }
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
