//! The promise ledger: what each vault has promised to providers through pending proposals.
//!
//! Every provider sees only its own proposal, so a user could show the same unallocated funds
//! to several providers at once. An honest user never does: a new proposal may promise at most
//! `unallocated - outstanding promises`, and a promise lasts until its stream exists (the
//! stream's allocation then leaves `unallocated` on chain), it is rejected, or its deadline
//! passes.

use std::collections::BTreeMap;

/// A vault: owner account bytes and vault id.
pub type VaultRefKey = ([u8; 32], u64);

/// One outstanding promise.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Promise {
    pub allocation: u128,
    /// Chain time after which the promise lapses.
    pub deadline: u64,
}

/// Promises per vault, per provider.
#[derive(Clone, Debug, Default)]
pub struct PromiseLedger {
    promises: BTreeMap<VaultRefKey, BTreeMap<[u8; 32], Promise>>,
}

/// A promise the vault cannot back.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("vault can back {available} more, {requested} requested")]
pub struct Overpromise {
    pub available: u128,
    pub requested: u128,
}

impl PromiseLedger {
    /// Sum of live promises of `vault` at chain time `now`.
    #[must_use]
    pub fn outstanding(&self, vault: VaultRefKey, now: u64) -> u128 {
        self.promises.get(&vault).map_or(0, |m| {
            m.values().filter(|p| p.deadline >= now).fold(0_u128, |acc, p| acc.saturating_add(p.allocation))
        })
    }

    /// What `vault` can still promise given its on-chain `unallocated`.
    #[must_use]
    pub fn available(&self, vault: VaultRefKey, unallocated: u128, now: u64) -> u128 {
        unallocated.saturating_sub(self.outstanding(vault, now))
    }

    /// Records a promise to `provider`, replacing a lapsed one.
    ///
    /// # Errors
    /// [`Overpromise`] when the vault cannot back it.
    pub fn promise(
        &mut self,
        vault: VaultRefKey,
        provider: [u8; 32],
        promise: Promise,
        unallocated: u128,
        now: u64,
    ) -> Result<(), Overpromise> {
        self.expire(now);
        let available = self.available(vault, unallocated, now);
        if promise.allocation > available {
            return Err(Overpromise { available, requested: promise.allocation });
        }
        self.promises.entry(vault).or_default().insert(provider, promise);
        Ok(())
    }

    /// The promise to `provider`, if live.
    #[must_use]
    pub fn get(&self, vault: VaultRefKey, provider: &[u8; 32]) -> Option<Promise> {
        self.promises.get(&vault).and_then(|m| m.get(provider)).copied()
    }

    /// Releases the promise to `provider` (stream created, rejected, or abandoned).
    pub fn release(&mut self, vault: VaultRefKey, provider: &[u8; 32]) {
        if let Some(m) = self.promises.get_mut(&vault) {
            m.remove(provider);
            if m.is_empty() {
                self.promises.remove(&vault);
            }
        }
    }

    /// Drops promises whose deadline passed.
    pub fn expire(&mut self, now: u64) {
        for m in self.promises.values_mut() {
            m.retain(|_, p| p.deadline >= now);
        }
        self.promises.retain(|_, m| !m.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_promises_more_than_unallocated_minus_outstanding() {
        let mut ledger = PromiseLedger::default();
        let vault = ([1; 32], 0);
        ledger.promise(vault, [2; 32], Promise { allocation: 600, deadline: 100 }, 1000, 10).expect("fits");
        assert_eq!(ledger.available(vault, 1000, 10), 400);
        assert_eq!(
            ledger.promise(vault, [3; 32], Promise { allocation: 500, deadline: 100 }, 1000, 10),
            Err(Overpromise { available: 400, requested: 500 })
        );
        ledger.promise(vault, [3; 32], Promise { allocation: 400, deadline: 100 }, 1000, 10).expect("fits");
        // Another vault is independent.
        ledger.promise(([1; 32], 1), [3; 32], Promise { allocation: 900, deadline: 100 }, 1000, 10).expect("fits");
        ledger.release(vault, &[2; 32]);
        assert_eq!(ledger.available(vault, 1000, 10), 600);
        // Lapsed promises free the funds.
        assert_eq!(ledger.available(vault, 1000, 101), 1000);
        ledger.expire(101);
        assert!(ledger.get(vault, &[3; 32]).is_none());
    }
}
