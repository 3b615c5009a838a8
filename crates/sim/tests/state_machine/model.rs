//! A naive model of LIP-155 payment streams, written from the spec's rules ("On-Chain Payment
//! Streams Protocol", "On-chain protocol extensions") and the reference's check order, without
//! looking at the program's code. It exists to disagree with the program when either is wrong.
//!
//! Accrual is simulated second by second when the elapsed time is small, and by the closed form
//! `min(allocation, accrued + rate * Δt)` otherwise.

/// Elapsed time up to which accrual is simulated one second at a time.
pub const STEPWISE_MAX_SECONDS: u64 = 5_000;

/// Error codes the model predicts (the reference's numbering plus the extension codes).
pub mod code {
    pub const ZERO_DEPOSIT: u32 = 6001;
    pub const INSUFFICIENT_FUNDS: u32 = 6004;
    pub const ZERO_WITHDRAW: u32 = 6006;
    pub const ZERO_RATE: u32 = 6007;
    pub const ZERO_ALLOCATION: u32 = 6008;
    pub const ALLOCATION_EXCEEDS_UNALLOCATED: u32 = 6011;
    pub const NOT_ACTIVE: u32 = 6016;
    pub const NOT_PAUSED: u32 = 6017;
    pub const RESUME_DEPLETED: u32 = 6018;
    pub const CLOSED: u32 = 6019;
    pub const ZERO_TOP_UP: u32 = 6020;
    pub const CLOSE_UNAUTHORIZED: u32 = 6022;
    pub const ZERO_CLAIM: u32 = 6023;
    pub const CLAIM_UNAUTHORIZED: u32 = 6024;
    pub const NO_SUCH_STREAM: u32 = 6009;
    pub const PROVIDER_IS_OWNER: u32 = 6027;
    pub const PDA_MISMATCH: u32 = 6031;
    pub const ALREADY_INITIALIZED: u32 = 6033;
    pub const NO_SUCH_ACCOUNT: u32 = 6034;
    pub const FEE_EXCEEDS_UNACCRUED: u32 = 6035;
    pub const RECEIPT_REQUIRED: u32 = 6037;
    pub const RECEIPT_NOT_EXPECTED: u32 = 6038;
    pub const RECEIPT_ACKNOWLEDGES_NOTHING: u32 = 6041;
    /// Runtime: an account listed twice (the owner acting as provider of its own vault fills
    /// both the owner and the provider slot).
    pub const DUPLICATE_ACCOUNT_IDS: u32 = 1010;
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Active,
    Paused,
    Closed,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MStream {
    pub provider: usize,
    pub rate: u64,
    pub allocation: u128,
    pub accrued: u128,
    pub phase: Phase,
    pub as_of: u64,
    pub auto_pause_after: u64,
    pub anchor: u64,
    pub fee: u128,
    pub auto_claim: bool,
    pub receipts: bool,
    pub receipt_paid: u128,
}

impl MStream {
    pub fn unaccrued(&self) -> u128 {
        self.allocation - self.accrued
    }

    pub fn has_extensions(&self) -> bool {
        self.auto_pause_after > 0 || self.fee > 0 || self.auto_claim || self.receipts
    }

    /// Brings the stream to `now`: accrual while ACTIVE, pausing at depletion (at the first
    /// whole second accrued reaches allocation) or when the auto-pause duration runs out.
    pub fn fold(&mut self, now: u64) {
        if self.phase != Phase::Active || now <= self.as_of {
            return;
        }
        let auto_pause_at = if self.auto_pause_after > 0 {
            self.anchor.checked_add(self.auto_pause_after).filter(|at| *at <= now)
        } else {
            None
        };
        let stop = auto_pause_at.map_or(now, |at| at.max(self.as_of));
        let elapsed = stop - self.as_of;
        if elapsed <= STEPWISE_MAX_SECONDS {
            for second in 1..=elapsed {
                self.accrued = (self.accrued + u128::from(self.rate)).min(self.allocation);
                if self.accrued == self.allocation {
                    self.phase = Phase::Paused;
                    self.as_of += second;
                    return;
                }
            }
            if self.accrued == self.allocation {
                self.phase = Phase::Paused;
                return;
            }
        } else {
            let remaining = self.allocation - self.accrued;
            let gain = u128::from(self.rate) * u128::from(elapsed);
            if gain >= remaining {
                let seconds = remaining.div_ceil(u128::from(self.rate));
                self.accrued = self.allocation;
                self.phase = Phase::Paused;
                self.as_of += u64::try_from(seconds).expect("bounded by elapsed");
                return;
            }
            self.accrued += gain;
        }
        self.as_of = stop;
        if auto_pause_at.is_some() {
            self.phase = Phase::Paused;
        }
    }

    /// The stream becomes ACTIVE at `now`: the activation fee moves from unaccrued to accrued
    /// and the auto-pause duration restarts. A stream the fee depletes stays PAUSED.
    fn activate(&mut self, now: u64) -> Result<(), u32> {
        if self.unaccrued() < self.fee {
            return Err(code::FEE_EXCEEDS_UNACCRUED);
        }
        self.accrued += self.fee;
        self.anchor = now;
        self.as_of = now;
        self.phase = if self.unaccrued() == 0 { Phase::Paused } else { Phase::Active };
        Ok(())
    }

    /// Applies the delivery-receipt rule and pays; returns the payout.
    fn pay(&mut self, receipt: Option<u128>) -> Result<u128, u32> {
        let payout = match (self.receipts, receipt) {
            (false, Some(_)) => return Err(code::RECEIPT_NOT_EXPECTED),
            (false, None) => self.accrued,
            (true, None) => return Err(code::RECEIPT_REQUIRED),
            (true, Some(acknowledged_total)) => {
                let new = acknowledged_total.saturating_sub(self.receipt_paid);
                if new == 0 {
                    return Err(code::RECEIPT_ACKNOWLEDGES_NOTHING);
                }
                let payout = self.accrued.min(new);
                self.receipt_paid += payout;
                payout
            }
        };
        self.accrued -= payout;
        self.allocation -= payout;
        Ok(payout)
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MVault {
    pub owner: usize,
    pub balance: u128,
    pub total_allocated: u128,
    pub streams: Vec<MStream>,
}

impl MVault {
    pub fn unallocated(&self) -> u128 {
        self.balance - self.total_allocated
    }
}

/// Extension settings of a new stream.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Ext {
    pub auto_pause_after: u64,
    pub fee: u128,
    pub auto_claim: bool,
    pub receipts: bool,
}

/// What the model expects of a transaction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expect {
    Ok,
    /// Fails with this program error code.
    Code(u32),
    /// Fails, but outside the program (e.g. the native transfer of a deposit), code not modelled.
    Fails,
}

/// Who signs an owner operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum As {
    Owner,
    /// An unauthorised account signs and stands in the owner's slot.
    Stranger,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Model {
    pub now: u64,
    pub native: Vec<u128>,
    pub vault_owner: Vec<usize>,
    pub vaults: Vec<Option<MVault>>,
}

type Outcome = Result<(), u32>;

fn to_expect(outcome: Outcome) -> Expect {
    match outcome {
        Ok(()) => Expect::Ok,
        Err(code) => Expect::Code(code),
    }
}

impl Model {
    pub fn new(native: Vec<u128>, vault_owner: Vec<usize>) -> Self {
        let vaults = vault_owner.iter().map(|_| None).collect();
        Self { now: 0, native, vault_owner, vaults }
    }

    /// Runs `f` on a copy and keeps the copy only on success (failed transactions change
    /// nothing).
    fn atomically(&mut self, f: impl FnOnce(&mut Self) -> Outcome) -> Expect {
        let mut next = self.clone();
        let outcome = f(&mut next);
        if outcome.is_ok() {
            *self = next;
        }
        to_expect(outcome)
    }

    pub fn initialize(&mut self, v: usize, who: As) -> Expect {
        self.atomically(|m| {
            if who == As::Stranger {
                return Err(code::PDA_MISMATCH);
            }
            if m.vaults[v].is_some() {
                return Err(code::ALREADY_INITIALIZED);
            }
            m.vaults[v] = Some(MVault { owner: m.vault_owner[v], balance: 0, total_allocated: 0, streams: vec![] });
            Ok(())
        })
    }

    pub fn deposit(&mut self, v: usize, amount: u128, who: As) -> Expect {
        if amount == 0 {
            return Expect::Code(code::ZERO_DEPOSIT);
        }
        if who == As::Stranger {
            return Expect::Code(code::PDA_MISMATCH);
        }
        let owner = self.vault_owner[v];
        let Some(vault) = self.vaults[v].as_mut() else { return Expect::Code(code::NO_SUCH_ACCOUNT) };
        if self.native[owner] < amount {
            return Expect::Fails;
        }
        self.native[owner] -= amount;
        vault.balance += amount;
        Expect::Ok
    }

    pub fn withdraw(&mut self, v: usize, amount: u128, to: usize, who: As) -> Expect {
        self.atomically(|m| {
            if who == As::Stranger {
                return Err(code::PDA_MISMATCH);
            }
            let vault = m.vaults[v].as_mut().ok_or(code::NO_SUCH_ACCOUNT)?;
            if amount == 0 {
                return Err(code::ZERO_WITHDRAW);
            }
            if amount > vault.unallocated() {
                return Err(code::INSUFFICIENT_FUNDS);
            }
            vault.balance -= amount;
            m.native[to] += amount;
            Ok(())
        })
    }

    pub fn create(&mut self, v: usize, provider: usize, rate: u64, allocation: u128, ext: Ext, who: As) -> Expect {
        let now = self.now;
        self.atomically(|m| {
            if rate == 0 {
                return Err(code::ZERO_RATE);
            }
            if allocation == 0 {
                return Err(code::ZERO_ALLOCATION);
            }
            if who == As::Stranger {
                return Err(code::PDA_MISMATCH);
            }
            let vault = m.vaults[v].as_mut().ok_or(code::NO_SUCH_ACCOUNT)?;
            if provider == vault.owner {
                return Err(code::PROVIDER_IS_OWNER);
            }
            if allocation > vault.unallocated() {
                return Err(code::ALLOCATION_EXCEEDS_UNALLOCATED);
            }
            let mut stream = MStream {
                provider,
                rate,
                allocation,
                accrued: 0,
                phase: Phase::Active,
                as_of: now,
                auto_pause_after: ext.auto_pause_after,
                anchor: now,
                fee: ext.fee,
                auto_claim: ext.auto_claim,
                receipts: ext.receipts,
                receipt_paid: 0,
            };
            stream.activate(now)?;
            vault.total_allocated += allocation;
            vault.streams.push(stream);
            Ok(())
        })
    }

    /// Loads a vault and stream for an owner operation, folded to now.
    fn owner_stream(&mut self, v: usize, s: u64, who: As) -> Result<(&mut MVault, usize), u32> {
        if who == As::Stranger {
            return Err(code::PDA_MISMATCH);
        }
        let now = self.now;
        let vault = self.vaults[v].as_mut().ok_or(code::NO_SUCH_ACCOUNT)?;
        let index = usize::try_from(s).ok().filter(|i| *i < vault.streams.len()).ok_or(code::NO_SUCH_STREAM)?;
        vault.streams[index].fold(now);
        Ok((vault, index))
    }

    pub fn pause(&mut self, v: usize, s: u64, who: As) -> Expect {
        self.atomically(|m| {
            let (vault, i) = m.owner_stream(v, s, who)?;
            let stream = &mut vault.streams[i];
            if stream.phase != Phase::Active {
                return Err(code::NOT_ACTIVE);
            }
            stream.phase = Phase::Paused;
            Ok(())
        })
    }

    pub fn resume(&mut self, v: usize, s: u64, who: As) -> Expect {
        let now = self.now;
        self.atomically(|m| {
            let (vault, i) = m.owner_stream(v, s, who)?;
            let stream = &mut vault.streams[i];
            if stream.phase != Phase::Paused {
                return Err(code::NOT_PAUSED);
            }
            if stream.unaccrued() == 0 {
                return Err(code::RESUME_DEPLETED);
            }
            stream.activate(now)
        })
    }

    pub fn top_up(&mut self, v: usize, s: u64, amount: u128, who: As) -> Expect {
        let now = self.now;
        self.atomically(|m| {
            let (vault, i) = m.owner_stream(v, s, who)?;
            if vault.streams[i].phase == Phase::Closed {
                return Err(code::CLOSED);
            }
            if amount == 0 {
                return Err(code::ZERO_TOP_UP);
            }
            if amount > vault.unallocated() {
                return Err(code::ALLOCATION_EXCEEDS_UNALLOCATED);
            }
            vault.total_allocated += amount;
            let stream = &mut vault.streams[i];
            stream.allocation += amount;
            if stream.phase == Phase::Paused {
                stream.activate(now)?;
            } else {
                stream.anchor = now;
            }
            Ok(())
        })
    }

    fn close(vault: &mut MVault, i: usize) -> Outcome {
        let stream = &mut vault.streams[i];
        if stream.phase == Phase::Closed {
            return Err(code::CLOSED);
        }
        let released = stream.unaccrued();
        stream.allocation = stream.accrued;
        stream.phase = Phase::Closed;
        vault.total_allocated -= released;
        Ok(())
    }

    pub fn close_by_owner(&mut self, v: usize, s: u64, who: As) -> Expect {
        self.atomically(|m| {
            let (vault, i) = m.owner_stream(v, s, who)?;
            Self::close(vault, i)
        })
    }

    /// Loads a stream for a provider operation: existence first, then the provider check,
    /// then the fold.
    fn provider_stream(
        &mut self,
        v: usize,
        s: u64,
        actor: usize,
        unauthorized: u32,
    ) -> Result<(&mut MVault, usize), u32> {
        if actor == self.vault_owner[v] {
            return Err(code::DUPLICATE_ACCOUNT_IDS);
        }
        let now = self.now;
        let vault = self.vaults[v].as_mut().ok_or(code::NO_SUCH_ACCOUNT)?;
        let index = usize::try_from(s).ok().filter(|i| *i < vault.streams.len()).ok_or(code::NO_SUCH_STREAM)?;
        if vault.streams[index].provider != actor {
            return Err(unauthorized);
        }
        vault.streams[index].fold(now);
        Ok((vault, index))
    }

    pub fn claim(&mut self, v: usize, s: u64, actor: usize, receipt: Option<u128>) -> Expect {
        self.atomically(|m| {
            let (vault, i) = m.provider_stream(v, s, actor, code::CLAIM_UNAUTHORIZED)?;
            if vault.streams[i].accrued == 0 {
                return Err(code::ZERO_CLAIM);
            }
            let payout = vault.streams[i].pay(receipt)?;
            vault.total_allocated -= payout;
            vault.balance -= payout;
            m.native[actor] += payout;
            Ok(())
        })
    }

    pub fn close_by_provider(&mut self, v: usize, s: u64, actor: usize, receipt: Option<u128>) -> Expect {
        self.atomically(|m| {
            let (vault, i) = m.provider_stream(v, s, actor, code::CLOSE_UNAUTHORIZED)?;
            Self::close(vault, i)?;
            let stream = &mut vault.streams[i];
            let payout = if stream.auto_claim && (receipt.is_some() || !stream.receipts) {
                stream.pay(receipt)?
            } else if receipt.is_some() && !stream.auto_claim {
                return Err(code::RECEIPT_NOT_EXPECTED);
            } else {
                0
            };
            vault.total_allocated -= payout;
            vault.balance -= payout;
            m.native[actor] += payout;
            Ok(())
        })
    }
}
