//! Numbered, append-only program errors. Codes 6001-6028 mean what they mean in the reference
//! implementation (logos-co/lez-payment-streams) so tools agree; 6029 onwards are ours.

use paystreams_lez_core::ProgramError;

macro_rules! errors {
    ($( $(#[doc = $doc:literal])* $name:ident = $code:literal, )*) => {
        /// Every failure the program can return.
        #[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
        #[repr(u32)]
        pub enum StreamError {
            $( $(#[doc = $doc])* $name = $code, )*
        }

        impl StreamError {
            /// All errors, in code order.
            pub const ALL: &'static [StreamError] = &[$(StreamError::$name,)*];

            /// The stable numeric code.
            #[must_use]
            pub const fn code(self) -> u32 {
                self as u32
            }

            /// The variant name, e.g. `AllocationExceedsUnallocated`.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self { $( StreamError::$name => stringify!($name), )* }
            }

            /// The one-line description.
            #[must_use]
            pub const fn description(self) -> &'static str {
                match self { $( StreamError::$name => concat!($($doc),*), )* }
            }

            /// Looks an error up by code.
            #[must_use]
            pub fn from_code(code: u32) -> Option<Self> {
                Self::ALL.iter().copied().find(|e| e.code() == code)
            }
        }
    };
}

errors! {
    /// Deposit amount is zero.
    ZeroDepositAmount = 6001,
    /// Version bytes of the vault config, vault holding and stream config disagree.
    VersionMismatch = 6002,
    /// The vault config's vault id differs from the instruction's.
    VaultIdMismatch = 6003,
    /// Not enough unallocated funds (or holding balance) for this withdrawal or payout.
    InsufficientFunds = 6004,
    /// An amount computation overflowed.
    ArithmeticOverflow = 6005,
    /// Withdraw amount is zero.
    ZeroWithdrawAmount = 6006,
    /// Stream rate is zero.
    ZeroStreamRate = 6007,
    /// Stream allocation is zero (or an active stream has none).
    ZeroStreamAllocation = 6008,
    /// Stream id does not exist in this vault or differs from the expected one.
    StreamIdMismatch = 6009,
    /// Total allocated would overflow.
    TotalAllocatedOverflow = 6010,
    /// Allocation exceeds the vault's unallocated balance.
    AllocationExceedsUnallocated = 6011,
    /// The vault's next stream id is exhausted.
    NextStreamIdOverflow = 6012,
    /// The clock is earlier than the stream's last fold time.
    TimeRegression = 6013,
    /// Stored accrued exceeds the allocation (corrupt state).
    StreamExceedsAllocation = 6014,
    /// The owner account is not the vault's owner.
    VaultOwnerMismatch = 6015,
    /// The stream is not active after folding.
    StreamNotActive = 6016,
    /// The stream is not paused.
    StreamNotPaused = 6017,
    /// The stream is depleted: nothing left to accrue.
    ResumeZeroUnaccrued = 6018,
    /// The stream is closed.
    StreamClosed = 6019,
    /// Top-up amount is zero.
    ZeroTopUpAmount = 6020,
    /// Releasing more than the vault's total allocated (corrupt state).
    TotalAllocatedUnderflow = 6021,
    /// Only the stream's provider may close it this way.
    CloseUnauthorized = 6022,
    /// Nothing has accrued to claim.
    ZeroClaimAmount = 6023,
    /// Only the stream's provider may claim.
    ClaimUnauthorized = 6024,
    /// The clock account is not a system clock account or its data is malformed.
    InvalidClockAccount = 6025,
    /// Reserved: unknown privacy tier (rejected at decoding).
    InvalidPrivacyTier = 6026,
    /// A stream's provider may not be the vault owner.
    ProviderEqualsOwner = 6027,
    /// The token id is not usable for this vault.
    UnsupportedTokenId = 6028,
    /// The instruction words do not decode.
    InvalidInstruction = 6029,
    /// Wrong number of accounts for this instruction.
    WrongAccountCount = 6030,
    /// An account is not the PDA this instruction derives for it.
    PdaMismatch = 6031,
    /// A required signer did not authorise the transaction.
    MissingSignature = 6032,
    /// The account to initialise already holds state.
    AccountAlreadyInitialized = 6033,
    /// An account's data does not decode as the expected layout, or it has the wrong owner.
    InvalidAccountData = 6034,
    /// The activation fee exceeds the stream's unaccrued funds.
    ActivationFeeExceedsUnaccrued = 6035,
    /// The delivery-receipt key is not a valid x-only public key.
    InvalidReceiptKey = 6036,
    /// This stream requires a delivery receipt to claim.
    ReceiptRequired = 6037,
    /// A receipt was given for a stream without delivery receipts.
    ReceiptNotExpected = 6038,
    /// The receipt's signature does not verify under the committed key.
    InvalidReceiptSignature = 6039,
    /// The receipt names another stream or program.
    ReceiptStreamMismatch = 6040,
    /// The receipt acknowledges nothing beyond what was already paid.
    ReceiptAcknowledgesNothing = 6041,
    /// Token vaults pay out to a token holding: use Withdraw with the owner's holding.
    WithdrawToOwnerNotNative = 6042,
    /// The token holding is for another token or is not a token holding.
    TokenHoldingMismatch = 6043,
    /// The destination account is uninitialised and did not sign: initialise it first.
    DestinationUninitialized = 6044,
    /// PseudonymousFunding needs LEZ's private accounts and shielded execution, which this chain does not have: create a Public vault.
    PrivacyTierUnavailable = 6045,
}

impl From<StreamError> for ProgramError {
    fn from(error: StreamError) -> Self {
        Self::new(error.code(), error.name(), error.description())
    }
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code(), self.name(), self.description())
    }
}

impl std::error::Error for StreamError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_contiguous_and_start_at_6001() {
        for (i, error) in StreamError::ALL.iter().enumerate() {
            assert_eq!(error.code(), 6001 + u32::try_from(i).expect("small"));
            assert_eq!(StreamError::from_code(error.code()), Some(*error));
            assert!(!error.description().is_empty());
        }
    }
}
