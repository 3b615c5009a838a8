//! What the agent's streams cost, exactly, from the chain's own events: every transaction the
//! user engine (or the agent) submits goes through [`Recorder`], which reads the included
//! transaction's `StreamCreated`, `StreamToppedUp` and `StreamClosed` events for this owner
//! and keeps, per stream, what was allocated (creation plus top-ups) and what was released
//! back to the vault at the close. What a live stream has spent is then its allocated total
//! minus what was released minus what is still unaccrued on chain.
//!
//! The ledger is kept in a small JSON file next to the user store (`<home>/agent/<owner>.json`,
//! mode 0600), rewritten atomically (temporary file, then rename) after every change.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use paystreams_lez_core::{AccountId, crypto::SecretKey};
use paystreams_program::{Event, client::Call};
use paystreams_rpc::{
    chain_view::{ChainError, ChainHead, ChainView, ChainWriter, SubmitOutcome},
    types::{StreamView, VaultView},
};
use serde::{Deserialize, Serialize};
use tracing::warn;

/// Largest ledger file read (a stream entry is about 250 bytes).
pub const LEDGER_FILE_MAX: u64 = 16 * 1024 * 1024;

/// What one stream of the owner cost.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct StreamSpend {
    pub vault_id: u64,
    pub stream_id: u64,
    /// The provider account (base58 text).
    pub provider: String,
    /// The service the stream backs, once known (the session that created it).
    pub service_id: Option<String>,
    /// Creation allocation plus every top-up.
    #[serde(with = "paystreams_lez_core::account::decimal_u128")]
    pub allocated: u128,
    /// Returned to the vault when the stream closed.
    #[serde(with = "paystreams_lez_core::account::decimal_u128")]
    pub refunded: u128,
    pub closed: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct LedgerFile {
    version: u8,
    streams: Vec<StreamSpend>,
}

/// The per-stream spending ledger of one owner.
#[derive(Debug)]
pub struct Ledger {
    owner: AccountId,
    path: Option<PathBuf>,
    streams: Mutex<Vec<StreamSpend>>,
}

/// A ledger failure (reading or writing its file).
#[derive(Debug, thiserror::Error)]
#[error("spending ledger {path}: {detail}")]
pub struct LedgerError {
    pub path: String,
    pub detail: String,
}

impl Ledger {
    /// The file of `owner` under `home`: `<home>/agent/<owner>.json`.
    #[must_use]
    pub fn default_path(home: &Path, owner: &str) -> PathBuf {
        home.join("agent").join(format!("{owner}.json"))
    }

    /// A ledger kept in memory only.
    #[must_use]
    pub fn memory(owner: AccountId) -> Self {
        Self { owner, path: None, streams: Mutex::new(Vec::new()) }
    }

    /// Loads (or starts) the ledger at `path`. Blocking.
    ///
    /// # Errors
    /// An unreadable, oversized or malformed file.
    pub fn open(owner: AccountId, path: &Path) -> Result<Self, LedgerError> {
        let err = |detail: String| LedgerError { path: path.display().to_string(), detail };
        let streams = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(err(e.to_string())),
            Ok(meta) if meta.len() > LEDGER_FILE_MAX => {
                return Err(err(format!("larger than {LEDGER_FILE_MAX} bytes; move it aside")));
            }
            Ok(_) => {
                let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
                let file: LedgerFile = serde_json::from_slice(&text)
                    .map_err(|e| err(format!("not a spending ledger ({e}); move it aside to start afresh")))?;
                file.streams
            }
        };
        Ok(Self { owner, path: Some(path.to_owned()), streams: Mutex::new(streams) })
    }

    /// Every stream recorded so far.
    #[must_use]
    pub fn streams(&self) -> Vec<StreamSpend> {
        self.streams.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// What all recorded streams were allocated (creations and top-ups), summed.
    #[must_use]
    pub fn total_allocated(&self) -> Option<u128> {
        self.streams().iter().try_fold(0u128, |sum, s| sum.checked_add(s.allocated))
    }

    /// Names the service a stream backs.
    pub fn set_service(&self, vault_id: u64, stream_id: u64, service_id: &str) {
        if let Ok(mut streams) = self.streams.lock()
            && let Some(s) = streams.iter_mut().find(|s| s.vault_id == vault_id && s.stream_id == stream_id)
        {
            s.service_id = Some(service_id.to_owned());
        }
    }

    /// Applies the events of one included transaction; whether anything of this owner changed.
    pub fn apply(&self, events: &[Event]) -> bool {
        let Ok(mut streams) = self.streams.lock() else { return false };
        let mut changed = false;
        for event in events {
            let Some(stream) = event.stream().filter(|s| s.owner == self.owner) else { continue };
            let entry = |streams: &mut Vec<StreamSpend>| -> Option<usize> {
                streams.iter().position(|s| s.vault_id == stream.vault_id && s.stream_id == stream.stream_id)
            };
            match event {
                Event::StreamCreated { allocation, .. } => {
                    let record = StreamSpend {
                        vault_id: stream.vault_id,
                        stream_id: stream.stream_id,
                        provider: stream.provider.to_string(),
                        service_id: None,
                        allocated: *allocation,
                        refunded: 0,
                        closed: false,
                    };
                    match entry(&mut streams).and_then(|i| streams.get_mut(i)) {
                        Some(existing) => *existing = record,
                        None => streams.push(record),
                    }
                    changed = true;
                }
                Event::StreamToppedUp { amount, .. } => {
                    if let Some(s) = entry(&mut streams).and_then(|i| streams.get_mut(i)) {
                        match s.allocated.checked_add(*amount) {
                            Some(total) => s.allocated = total,
                            None => warn!(stream_id = s.stream_id, "top-up overflows the ledger; not recorded"),
                        }
                        changed = true;
                    }
                }
                Event::StreamClosed { released, .. } => {
                    if let Some(s) = entry(&mut streams).and_then(|i| streams.get_mut(i)) {
                        match s.refunded.checked_add(*released) {
                            Some(total) => s.refunded = total,
                            None => warn!(stream_id = s.stream_id, "refund overflows the ledger; not recorded"),
                        }
                        s.closed = true;
                        changed = true;
                    }
                }
                _ => {}
            }
        }
        changed
    }

    /// Writes the ledger (temporary file, then rename; mode 0600). Blocking.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self) -> Result<(), LedgerError> {
        let Some(path) = &self.path else { return Ok(()) };
        let err = |detail: String| LedgerError { path: path.display().to_string(), detail };
        let file = LedgerFile { version: 1, streams: self.streams() };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| err(e.to_string()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write as _;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            let mut out = options.open(&tmp).map_err(|e| err(e.to_string()))?;
            out.write_all(&bytes).map_err(|e| err(e.to_string()))?;
            out.sync_all().map_err(|e| err(e.to_string()))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    }
}

/// A chain view and writer that records, in the [`Ledger`], what every included transaction
/// did to this owner's streams. Reads pass through unchanged.
#[derive(Clone, Debug)]
pub struct Recorder<C> {
    inner: C,
    ledger: Arc<Ledger>,
}

impl<C> Recorder<C> {
    pub const fn new(inner: C, ledger: Arc<Ledger>) -> Self {
        Self { inner, ledger }
    }

    pub const fn inner(&self) -> &C {
        &self.inner
    }
}

impl<C: ChainView> ChainView for Recorder<C> {
    async fn head(&self) -> Result<ChainHead, ChainError> {
        self.inner.head().await
    }

    async fn vault(&self, owner: &AccountId, vault_id: u64) -> Result<Option<VaultView>, ChainError> {
        self.inner.vault(owner, vault_id).await
    }

    async fn stream(&self, owner: &AccountId, vault_id: u64, stream_id: u64) -> Result<Option<StreamView>, ChainError> {
        self.inner.stream(owner, vault_id, stream_id).await
    }

    async fn stream_fresh(
        &self,
        owner: &AccountId,
        vault_id: u64,
        stream_id: u64,
    ) -> Result<Option<StreamView>, ChainError> {
        self.inner.stream_fresh(owner, vault_id, stream_id).await
    }

    fn forget_stream(&self, owner: &AccountId, vault_id: u64, stream_id: u64) {
        self.inner.forget_stream(owner, vault_id, stream_id);
    }
}

impl<C: ChainWriter> ChainWriter for Recorder<C> {
    async fn submit(&self, call: &Call, signers: &[&SecretKey]) -> Result<SubmitOutcome, ChainError> {
        let outcome = self.inner.submit(call, signers).await?;
        if let SubmitOutcome::Included { events, .. } = &outcome
            && self.ledger.apply(events)
        {
            let ledger = Arc::clone(&self.ledger);
            match tokio::task::spawn_blocking(move || ledger.save()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, "could not write the spending ledger"),
                Err(e) => warn!(error = %e, "the spending-ledger writer failed"),
            }
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use paystreams_program::event::{Closer, StreamRef};

    use super::*;

    fn stream(owner: AccountId, stream_id: u64) -> StreamRef {
        StreamRef { owner, vault_id: 0, stream_id, provider: AccountId([9; 32]), stream_config: AccountId([8; 32]) }
    }

    #[test]
    fn creation_top_up_and_close_add_up_and_survive_a_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let owner = AccountId([1; 32]);
        let path = Ledger::default_path(dir.path(), "owner");
        let ledger = Ledger::open(owner, &path).expect("new ledger");
        let other = AccountId([2; 32]);
        // Another owner's stream is not this ledger's business.
        assert!(!ledger.apply(&[Event::StreamCreated { stream: stream(other, 0), rate: 1, allocation: 7, at: 1 }]));
        assert!(ledger.apply(&[Event::StreamCreated { stream: stream(owner, 3), rate: 2, allocation: 500, at: 1 }]));
        assert!(ledger.apply(&[Event::StreamToppedUp {
            stream: stream(owner, 3),
            amount: 250,
            allocation: 750,
            at: 5
        }]));
        ledger.set_service(0, 3, "/vac/waku/store-query/3.0.0");
        assert!(ledger.apply(&[Event::StreamClosed {
            stream: stream(owner, 3),
            by: Closer::Owner,
            released: 730,
            accrued: 20,
            at: 15
        }]));
        assert_eq!(ledger.total_allocated(), Some(750));
        ledger.save().expect("save");
        let reloaded = Ledger::open(owner, &path).expect("reload");
        let streams = reloaded.streams();
        assert_eq!(streams, ledger.streams());
        let [s] = streams.as_slice() else { panic!("one stream: {streams:?}") };
        assert_eq!((s.allocated, s.refunded, s.closed), (750, 730, true));
        assert_eq!(s.service_id.as_deref(), Some("/vac/waku/store-query/3.0.0"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        }
        // A file that is not a ledger is refused with advice, not read as empty.
        std::fs::write(&path, b"not json").expect("write");
        let err = Ledger::open(owner, &path).expect_err("refused");
        assert!(err.to_string().contains("move it aside"), "{err}");
    }
}
