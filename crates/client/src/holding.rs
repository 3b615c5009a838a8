//! Token holdings owned by a user key.
//!
//! A user's holding of a token is a separate account with its own key, derived deterministically
//! from the user's secret key and the token definition id, so a wallet never has to store it:
//!
//! ```text
//! secret = SHA-256("paystreams/token-holding/" || user secret (32 bytes) || definition id (32 bytes) [|| counter (u32 LE)])
//! ```
//!
//! The first attempt has no counter; if the digest is not a valid secp256k1 scalar (probability
//! about 2^-128) the counter 1, 2, ... is appended until it is. The holding's account id is the
//! public account id of that key. Whoever has the user's secret key can sign for the holding.

use paystreams_lez_core::{AccountId, crypto::SecretKey, sha256};

/// Domain prefix of the holding-key derivation.
pub const HOLDING_KEY_DOMAIN: &[u8] = b"paystreams/token-holding/";

/// The key of `user`'s holding of the token `definition`.
#[must_use]
pub fn holding_key(user: &SecretKey, definition: &AccountId) -> SecretKey {
    let secret = user.to_bytes();
    let first = sha256(&[HOLDING_KEY_DOMAIN, &secret, &definition.0]);
    if let Ok(key) = SecretKey::from_bytes(&first) {
        return key;
    }
    let mut counter: u32 = 1;
    loop {
        let digest = sha256(&[HOLDING_KEY_DOMAIN, &secret, &definition.0, &counter.to_le_bytes()]);
        if let Ok(key) = SecretKey::from_bytes(&digest) {
            return key;
        }
        // Every attempt fails with probability ~2^-128; wrapping is unreachable in practice.
        counter = counter.wrapping_add(1);
    }
}

/// The account id of `user`'s holding of `definition`.
#[must_use]
pub fn holding_id(user: &SecretKey, definition: &AccountId) -> AccountId {
    holding_key(user, definition).account_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holding_keys_are_deterministic_and_distinct() {
        let user = SecretKey::from_bytes(&[7; 32]).expect("key");
        let other = SecretKey::from_bytes(&[8; 32]).expect("key");
        let token_a = AccountId([1; 32]);
        let token_b = AccountId([2; 32]);
        assert_eq!(holding_id(&user, &token_a), holding_id(&user, &token_a));
        assert_ne!(holding_id(&user, &token_a), holding_id(&user, &token_b));
        assert_ne!(holding_id(&user, &token_a), holding_id(&other, &token_a));
        assert_ne!(holding_id(&user, &token_a), user.account_id());
        let expected = SecretKey::from_bytes(&sha256(&[HOLDING_KEY_DOMAIN, &[7; 32], &[1; 32]])).expect("key");
        assert_eq!(holding_id(&user, &token_a), expected.account_id());
    }
}
