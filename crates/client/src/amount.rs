//! Parsing amounts: `u128` decimal integers only (no floats, no signs, no exponents). `_` may
//! group digits (`1_000_000`).

/// Why an amount was refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum AmountError {
    #[error("amount is empty; give a whole number such as 1000")]
    Empty,
    #[error(
        "amount {0:?} is not a whole number: use decimal digits only (no sign, decimal point or exponent), e.g. 1000"
    )]
    NotAnInteger(String),
    #[error("amount {0:?} is too large: the largest amount is {max}", max = u128::MAX)]
    TooLarge(String),
}

/// Parses a decimal `u128`.
///
/// # Errors
/// Empty text, any non-digit (other than `_` between digits), or overflow.
pub fn parse_amount(text: &str) -> Result<u128, AmountError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(AmountError::Empty);
    }
    let mut value: u128 = 0;
    let mut digits = 0_usize;
    for c in trimmed.chars() {
        if c == '_' && digits > 0 {
            continue;
        }
        let Some(digit) = c.to_digit(10) else {
            return Err(AmountError::NotAnInteger(trimmed.to_owned()));
        };
        digits = digits.saturating_add(1);
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(digit)))
            .ok_or_else(|| AmountError::TooLarge(trimmed.to_owned()))?;
    }
    if trimmed.ends_with('_') {
        return Err(AmountError::NotAnInteger(trimmed.to_owned()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_integers_and_refuses_everything_else() {
        assert_eq!(parse_amount("0"), Ok(0));
        assert_eq!(parse_amount(" 1000 "), Ok(1000));
        assert_eq!(parse_amount("1_000_000"), Ok(1_000_000));
        assert_eq!(parse_amount(&u128::MAX.to_string()), Ok(u128::MAX));
        assert_eq!(parse_amount(""), Err(AmountError::Empty));
        for bad in ["1.5", "-1", "+1", "1e6", "abc", "_1", "1_", "0x10"] {
            assert!(matches!(parse_amount(bad), Err(AmountError::NotAnInteger(_))), "{bad}");
        }
        assert!(matches!(parse_amount("340282366920938463463374607431768211456"), Err(AmountError::TooLarge(_))));
    }
}
