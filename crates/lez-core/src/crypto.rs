//! BIP-340 Schnorr keys and signatures on secp256k1 (k256), over 32-byte prehashes, as LEZ signs
//! transactions.

use std::{cell::Cell, fmt};

use borsh::{BorshDeserialize, BorshSerialize};
use k256::schnorr::{SigningKey, VerifyingKey, signature::hazmat::PrehashVerifier as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::AccountId;

/// Why key material was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a valid secp256k1 secret key (zero or not below the curve order)")]
    InvalidSecretKey,
    #[error("not a valid x-only public key (no curve point has this x coordinate)")]
    InvalidPublicKey,
    #[error("expected {expected} hex-encoded bytes: {detail}")]
    Hex { expected: usize, detail: String },
}

/// A 32-byte x-only public key, validated on construction and in Borsh decoding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// # Errors
    /// When no curve point has this x coordinate.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, KeyError> {
        VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::InvalidPublicKey)?;
        Ok(Self(bytes))
    }

    #[must_use]
    pub const fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The LEZ public account id of this key.
    #[must_use]
    pub fn account_id(&self) -> AccountId {
        AccountId::from_public_key(&self.0)
    }

    /// Verifies a BIP-340 signature over a 32-byte prehash.
    #[must_use]
    pub fn verify(&self, prehash: &[u8; 32], signature: &Signature) -> bool {
        verify_bip340(&self.0, prehash, &signature.0)
    }
}

thread_local! {
    /// Set on this thread while [`with_key_checks_by_caller`] decodes: Borsh decoding then
    /// takes a key's bytes as they are, for the caller to check each one before returning.
    static KEY_CHECKS_BY_CALLER: Cell<bool> = const { Cell::new(false) };
}

/// Runs `decode` with [`PublicKey`]'s Borsh check (a k256 lift of the x coordinate) left to
/// the caller, who checks every key `decode` produced before anything else sees it: for a
/// verifier that lifts the keys anyway (libsecp256k1), so each key is lifted once, not twice.
/// Crate-private: [`crate::lee_transaction::LeePublicTransaction::from_envelope_with_keys`]
/// is its one caller and never returns an unchecked key.
pub(crate) fn with_key_checks_by_caller<T>(decode: impl FnOnce() -> T) -> T {
    /// Restores the flag however `decode` ends, a panic included.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            KEY_CHECKS_BY_CALLER.with(|flag| flag.set(self.0));
        }
    }
    let _restore = Restore(KEY_CHECKS_BY_CALLER.with(|flag| flag.replace(true)));
    decode()
}

impl BorshDeserialize for PublicKey {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let bytes = <[u8; 32]>::deserialize_reader(reader)?;
        if KEY_CHECKS_BY_CALLER.with(Cell::get) {
            return Ok(Self(bytes));
        }
        Self::from_bytes(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl std::str::FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_bytes(decode_hex_32(s)?)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <String as Deserialize>::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A 64-byte BIP-340 signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as Deserialize>::deserialize(deserializer)?;
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
        let array: [u8; 64] = bytes.try_into().map_err(|_| serde::de::Error::custom("a signature is 64 bytes"))?;
        Ok(Self(array))
    }
}

/// A secp256k1 secret key. Its `Debug` never prints the key.
#[derive(Clone)]
pub struct SecretKey {
    signing: SigningKey,
}

impl SecretKey {
    /// # Errors
    /// When the bytes are zero or not below the curve order.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let signing = SigningKey::from_bytes(bytes).map_err(|_| KeyError::InvalidSecretKey)?;
        Ok(Self { signing })
    }

    /// A fresh random key from the operating system's generator.
    #[must_use]
    pub fn generate() -> Self {
        Self { signing: SigningKey::random(&mut k256::elliptic_curve::rand_core::OsRng) }
    }

    #[must_use]
    pub fn to_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes().into()
    }

    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes().into())
    }

    #[must_use]
    pub fn account_id(&self) -> AccountId {
        self.public_key().account_id()
    }

    /// Signs a 32-byte prehash with BIP-340 and the given auxiliary randomness.
    #[must_use]
    pub fn sign_with_aux(&self, prehash: &[u8; 32], aux_rand: &[u8; 32]) -> Signature {
        match self.signing.sign_raw(prehash, aux_rand) {
            Ok(signature) => Signature(signature.to_bytes()),
            // `sign_raw` fails only for messages that are not 32 bytes, which the type excludes.
            Err(_) => Signature([0; 64]),
        }
    }

    /// Signs a 32-byte prehash with fresh auxiliary randomness.
    #[must_use]
    pub fn sign(&self, prehash: &[u8; 32]) -> Signature {
        let mut aux = [0_u8; 32];
        k256::elliptic_curve::rand_core::RngCore::fill_bytes(&mut k256::elliptic_curve::rand_core::OsRng, &mut aux);
        self.sign_with_aux(prehash, &aux)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public_key())
    }
}

/// Verifies a BIP-340 signature over a 32-byte prehash with raw key bytes. Returns false for an
/// invalid key or signature encoding as well as for a wrong signature.
#[must_use]
pub fn verify_bip340(x_only_public_key: &[u8; 32], prehash: &[u8; 32], signature: &[u8; 64]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(x_only_public_key) else { return false };
    let Ok(signature) = k256::schnorr::Signature::try_from(signature.as_slice()) else { return false };
    key.verify_prehash(prehash, &signature).is_ok()
}

fn decode_hex_32(text: &str) -> Result<[u8; 32], KeyError> {
    let text = text.trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    let bytes = hex::decode(text).map_err(|e| KeyError::Hex { expected: 32, detail: e.to_string() })?;
    let len = bytes.len();
    bytes.try_into().map_err(|_| KeyError::Hex { expected: 32, detail: format!("got {len} bytes") })
}

/// Parses a 32-byte hex secret key.
///
/// # Errors
/// When the text is not 32 hex bytes or not a valid scalar.
pub fn secret_key_from_hex(text: &str) -> Result<SecretKey, KeyError> {
    SecretKey::from_bytes(&decode_hex_32(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BIP-340 test vectors 0 and 1 (secret key, public key, aux, message, signature).
    const VECTORS: [(&str, &str, &str, &str, &str); 2] = [
        (
            "0000000000000000000000000000000000000000000000000000000000000003",
            "F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "E907831F80848D1069A5371B402410364BDF1C5F8307B0084C55F1CE2DCA821525F66A4A85EA8B71E482A74F382D2CE5EBEEE8FDB2172F477DF4900D310536C0",
        ),
        (
            "B7E151628AED2A6ABF7158809CF4F3C762E7160F38B4DA56A784D9045190CFEF",
            "DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
            "0000000000000000000000000000000000000000000000000000000000000001",
            "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
            "6896BD60EEAE296DB48A229FF71DFE071BDE413E6D43F917DC8DCF8C78DE33418906D11AC976ABCCB20B091292BFF4EA897EFCB639EA871CFA95F6DE339E4B0A",
        ),
    ];

    fn h32(s: &str) -> [u8; 32] {
        hex::decode(s).expect("hex").try_into().expect("32")
    }

    #[test]
    fn reproduces_bip340_vectors() {
        for (sk, pk, aux, msg, sig) in VECTORS {
            let key = SecretKey::from_bytes(&h32(sk)).expect("valid");
            assert_eq!(key.public_key().to_bytes(), h32(pk));
            let signature = key.sign_with_aux(&h32(msg), &h32(aux));
            assert_eq!(hex::encode_upper(signature.0), sig);
            assert!(key.public_key().verify(&h32(msg), &signature));
            let mut tampered = signature;
            tampered.0[0] ^= 1;
            assert!(!key.public_key().verify(&h32(msg), &tampered));
        }
    }

    #[test]
    fn rejects_invalid_keys() {
        assert_eq!(SecretKey::from_bytes(&[0; 32]).err(), Some(KeyError::InvalidSecretKey));
        assert_eq!(SecretKey::from_bytes(&[0xff; 32]).err(), Some(KeyError::InvalidSecretKey));
        // x = 5 is not on secp256k1 (BIP-340 vector 5).
        let not_on_curve = h32("EEFDEA4CDB677750A420FEE807EACF21EB9898AE79B9768766E4FAA04A2D4A34");
        assert_eq!(PublicKey::from_bytes(not_on_curve).err(), Some(KeyError::InvalidPublicKey));
        assert!(!verify_bip340(&not_on_curve, &[0; 32], &[0; 64]));
    }
}
