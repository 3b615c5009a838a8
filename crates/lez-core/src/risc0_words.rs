//! RISC Zero serde words: the `Vec<u32>` form LEZ carries as a public message's
//! `instruction_data` and that a guest decodes with `risc0_zkvm::serde` (v3.0.5 rules).
//!
//! The rules, restated (see `docs/lez.md`, "Wire compatibility"):
//!
//! | type | words |
//! |---|---|
//! | `bool`, `u8`, `u16`, `u32` | one word, zero-extended; `bool` is 0 or 1 |
//! | `i8`, `i16`, `i32` | one word, the value sign-extended to 32 bits |
//! | `u64`, `i64` | two words: low 32 bits, then high 32 bits |
//! | `u128`, `i128` | the 16 little-endian bytes as four words, low word first |
//! | `String` / `str` | one word byte length, then the bytes packed little-endian into words, the last zero-padded |
//! | `Vec<T>` | one word element count, then each element by its own rule (a `Vec<u8>` takes one word per byte) |
//! | `[T; N]`, tuples | the elements only, no length |
//! | `Option<T>` | `[0]` for `None`; `[1]` then the value for `Some` |
//! | `()` | nothing |
//! | struct | the fields in declaration order, no names |
//! | enum | one word variant index (declaration order), then the variant's fields |
//!
//! Types implement [`ToWords`] and [`FromWords`]; [`to_words`] and [`from_words`] are the entry
//! points. Decoding is strict and bounded: it never panics, refuses trailing words, bool and
//! option tags other than 0/1, integers out of range of their type, invalid UTF-8, non-zero
//! string padding (the encoder always writes zeros, so only a canonical encoding round-trips),
//! unknown enum variants, and any length that exceeds the words left or [`MAX_LEN`].
//!
//! Differences from `risc0_zkvm::serde` itself: this codec is explicit rather than serde-driven
//! (the risc0 crates are not available here, and an explicit trait keeps every type's encoding
//! visible and testable), and it is stricter on non-canonical string padding. On canonical
//! input both accept and produce the same words.

/// Largest sequence or string length the decoder accepts, in elements or bytes. Lengths are also
/// bounded by the words left in the input, so this bound matters only for element types that
/// take no words (such as `()`).
pub const MAX_LEN: usize = 1 << 20;

/// Why a word sequence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WordsError {
    #[error("truncated: needed {needed} more word(s) for {what} at word {at}, but the input ends")]
    Truncated { what: &'static str, at: usize, needed: usize },
    #[error("{count} trailing word(s) after the value (decoded {consumed} of {total})")]
    Trailing { count: usize, consumed: usize, total: usize },
    #[error("bad bool at word {at}: {value} (expected 0 or 1)")]
    BadBool { at: usize, value: u32 },
    #[error("bad option tag at word {at}: {value} (expected 0 for None or 1 for Some)")]
    BadOptionTag { at: usize, value: u32 },
    #[error("value {value:#x} at word {at} is out of range for {what}")]
    OutOfRange { what: &'static str, at: usize, value: u32 },
    #[error("length {len} at word {at} is too large for {what} ({words_left} word(s) left, limit {limit})")]
    LengthTooLarge { what: &'static str, at: usize, len: u32, words_left: usize, limit: usize },
    #[error("string at word {at} is not valid UTF-8: {detail}")]
    BadUtf8 { at: usize, detail: String },
    #[error("string at word {at} has non-zero padding bytes")]
    BadPadding { at: usize },
    #[error("unknown variant {value} of {what} at word {at} (it has {variants})")]
    UnknownVariant { what: &'static str, at: usize, value: u32, variants: u32 },
    #[error("invalid {what} at word {at}: {detail}")]
    Invalid { what: &'static str, at: usize, detail: String },
}

/// Accumulates words.
#[derive(Debug, Default, Clone)]
pub struct WordWriter {
    words: Vec<u32>,
}

impl WordWriter {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    pub fn word(&mut self, word: u32) {
        self.words.push(word);
    }

    /// A length or count word. Lengths above `u32::MAX` cannot be represented; the caller's
    /// types (bounded strings and vectors) never reach it, and it saturates rather than panic.
    pub fn len(&mut self, len: usize) {
        self.word(u32::try_from(len).unwrap_or(u32::MAX));
    }

    /// Bytes packed little-endian into words, the last word zero-padded (no length).
    pub fn padded_bytes(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(4) {
            let mut four = [0_u8; 4];
            four[..chunk.len()].copy_from_slice(chunk);
            self.word(u32::from_le_bytes(four));
        }
    }

    /// An enum's variant index.
    pub fn variant(&mut self, index: u32) {
        self.word(index);
    }

    #[must_use]
    pub fn into_words(self) -> Vec<u32> {
        self.words
    }
}

/// Reads words from a slice, tracking the position for error messages.
#[derive(Debug, Clone)]
pub struct WordReader<'a> {
    words: &'a [u32],
    pos: usize,
}

impl<'a> WordReader<'a> {
    #[must_use]
    pub const fn new(words: &'a [u32]) -> Self {
        Self { words, pos: 0 }
    }

    /// The index of the next word.
    #[must_use]
    pub const fn position(&self) -> usize {
        self.pos
    }

    /// Words not yet read.
    #[must_use]
    pub const fn remaining(&self) -> usize {
        self.words.len() - self.pos
    }

    /// The next word.
    ///
    /// # Errors
    /// [`WordsError::Truncated`] at the end of the input.
    pub fn word(&mut self, what: &'static str) -> Result<u32, WordsError> {
        let word = *self.words.get(self.pos).ok_or(WordsError::Truncated { what, at: self.pos, needed: 1 })?;
        self.pos += 1;
        Ok(word)
    }

    /// A length word, refused when above [`MAX_LEN`] or when `len` elements of at least
    /// `min_words_each` words could not fit in what is left.
    ///
    /// # Errors
    /// [`WordsError::LengthTooLarge`] or [`WordsError::Truncated`].
    pub fn len(&mut self, what: &'static str, min_words_each: usize) -> Result<usize, WordsError> {
        let at = self.pos;
        let len = self.word(what)?;
        let words_left = self.remaining();
        let too_large = || WordsError::LengthTooLarge { what, at, len, words_left, limit: MAX_LEN };
        let n = usize::try_from(len).map_err(|_| too_large())?;
        if n > MAX_LEN || n.saturating_mul(min_words_each) > words_left {
            return Err(too_large());
        }
        Ok(n)
    }

    /// `len` bytes packed little-endian into words; the padding must be zero.
    ///
    /// # Errors
    /// [`WordsError::Truncated`] or [`WordsError::BadPadding`].
    pub fn padded_bytes(&mut self, what: &'static str, len: usize) -> Result<Vec<u8>, WordsError> {
        let at = self.pos;
        let n_words = len.div_ceil(4);
        if n_words > self.remaining() {
            return Err(WordsError::Truncated { what, at, needed: n_words - self.remaining() });
        }
        let mut bytes = Vec::with_capacity(n_words * 4);
        for _ in 0..n_words {
            bytes.extend_from_slice(&self.word(what)?.to_le_bytes());
        }
        if bytes[len..].iter().any(|b| *b != 0) {
            return Err(WordsError::BadPadding { at });
        }
        bytes.truncate(len);
        Ok(bytes)
    }

    /// An enum's variant index, refused when not below `variants`.
    ///
    /// # Errors
    /// [`WordsError::UnknownVariant`] or [`WordsError::Truncated`].
    pub fn variant(&mut self, what: &'static str, variants: u32) -> Result<u32, WordsError> {
        let at = self.pos;
        let value = self.word(what)?;
        if value >= variants {
            return Err(WordsError::UnknownVariant { what, at, value, variants });
        }
        Ok(value)
    }

    /// Refuses any word left after a complete value.
    ///
    /// # Errors
    /// [`WordsError::Trailing`].
    pub const fn finish(&self) -> Result<(), WordsError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(WordsError::Trailing { count: self.remaining(), consumed: self.pos, total: self.words.len() })
        }
    }
}

/// A type with a RISC Zero serde word encoding.
pub trait ToWords {
    fn write_words(&self, w: &mut WordWriter);
}

/// A type decodable from RISC Zero serde words.
pub trait FromWords: Sized {
    /// The fewest words any value of this type takes; bounds sequence lengths before allocating.
    const MIN_WORDS: usize;

    /// # Errors
    /// Any [`WordsError`] for malformed input.
    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError>;
}

/// Encodes a value.
#[must_use]
pub fn to_words<T: ToWords + ?Sized>(value: &T) -> Vec<u32> {
    let mut w = WordWriter::new();
    value.write_words(&mut w);
    w.into_words()
}

/// Decodes exactly one value from `words`, refusing trailing words.
///
/// # Errors
/// Any [`WordsError`] for malformed input.
pub fn from_words<T: FromWords>(words: &[u32]) -> Result<T, WordsError> {
    let mut r = WordReader::new(words);
    let value = T::read_words(&mut r)?;
    r.finish()?;
    Ok(value)
}

/// The little-endian byte expansion of words (`u32::to_le_bytes` per word): the "instruction
/// hex" form LEZ's wallet and the reference's FFI print.
#[must_use]
pub fn words_to_le_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Writes any number of values in order: the body of a struct or enum variant encoder.
#[macro_export]
macro_rules! write_words {
    ($w:expr $(, $field:expr)* $(,)?) => {{
        $( $crate::risc0_words::ToWords::write_words($field, $w); )*
    }};
}

impl ToWords for bool {
    fn write_words(&self, w: &mut WordWriter) {
        w.word(u32::from(*self));
    }
}

impl FromWords for bool {
    const MIN_WORDS: usize = 1;

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        let at = r.position();
        match r.word("bool")? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(WordsError::BadBool { at, value }),
        }
    }
}

macro_rules! one_word_unsigned {
    ($($t:ty),*) => {$(
        impl ToWords for $t {
            fn write_words(&self, w: &mut WordWriter) {
                w.word(u32::from(*self));
            }
        }
        impl FromWords for $t {
            const MIN_WORDS: usize = 1;
            fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
                let at = r.position();
                let value = r.word(stringify!($t))?;
                <$t>::try_from(value).map_err(|_| WordsError::OutOfRange { what: stringify!($t), at, value })
            }
        }
    )*};
}
one_word_unsigned!(u8, u16, u32);

macro_rules! one_word_signed {
    ($($t:ty),*) => {$(
        impl ToWords for $t {
            fn write_words(&self, w: &mut WordWriter) {
                w.word(i32::from(*self).cast_unsigned());
            }
        }
        impl FromWords for $t {
            const MIN_WORDS: usize = 1;
            fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
                let at = r.position();
                let value = r.word(stringify!($t))?;
                <$t>::try_from(value.cast_signed()).map_err(|_| WordsError::OutOfRange { what: stringify!($t), at, value })
            }
        }
    )*};
}
one_word_signed!(i8, i16, i32);

impl ToWords for u64 {
    fn write_words(&self, w: &mut WordWriter) {
        let bytes = self.to_le_bytes();
        w.padded_bytes(&bytes);
    }
}

impl FromWords for u64 {
    const MIN_WORDS: usize = 2;

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        let low = u64::from(r.word("u64 (low word)")?);
        let high = u64::from(r.word("u64 (high word)")?);
        Ok(low | (high << 32))
    }
}

impl ToWords for i64 {
    fn write_words(&self, w: &mut WordWriter) {
        self.cast_unsigned().write_words(w);
    }
}

impl FromWords for i64 {
    const MIN_WORDS: usize = 2;

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        u64::read_words(r).map(u64::cast_signed)
    }
}

impl ToWords for u128 {
    fn write_words(&self, w: &mut WordWriter) {
        w.padded_bytes(&self.to_le_bytes());
    }
}

impl FromWords for u128 {
    const MIN_WORDS: usize = 4;

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        let mut value = 0_u128;
        for i in 0..4 {
            value |= u128::from(r.word("u128")?) << (32 * i);
        }
        Ok(value)
    }
}

impl ToWords for i128 {
    fn write_words(&self, w: &mut WordWriter) {
        self.cast_unsigned().write_words(w);
    }
}

impl FromWords for i128 {
    const MIN_WORDS: usize = 4;

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        u128::read_words(r).map(u128::cast_signed)
    }
}

impl ToWords for str {
    fn write_words(&self, w: &mut WordWriter) {
        w.len(self.len());
        w.padded_bytes(self.as_bytes());
    }
}

impl ToWords for String {
    fn write_words(&self, w: &mut WordWriter) {
        self.as_str().write_words(w);
    }
}

impl FromWords for String {
    const MIN_WORDS: usize = 1;

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        let at = r.position();
        let len_word = r.word("string length")?;
        let words_left = r.remaining();
        let too_large = || WordsError::LengthTooLarge { what: "string", at, len: len_word, words_left, limit: MAX_LEN };
        let len = usize::try_from(len_word).map_err(|_| too_large())?;
        if len > MAX_LEN || len.div_ceil(4) > words_left {
            return Err(too_large());
        }
        let bytes = r.padded_bytes("string bytes", len)?;
        Self::from_utf8(bytes).map_err(|e| WordsError::BadUtf8 { at, detail: e.to_string() })
    }
}

impl ToWords for () {
    fn write_words(&self, _w: &mut WordWriter) {}
}

impl FromWords for () {
    const MIN_WORDS: usize = 0;

    fn read_words(_r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        Ok(())
    }
}

impl<T: ToWords> ToWords for Option<T> {
    fn write_words(&self, w: &mut WordWriter) {
        match self {
            None => w.word(0),
            Some(value) => {
                w.word(1);
                value.write_words(w);
            }
        }
    }
}

impl<T: FromWords> FromWords for Option<T> {
    const MIN_WORDS: usize = 1;

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        let at = r.position();
        match r.word("option tag")? {
            0 => Ok(None),
            1 => T::read_words(r).map(Some),
            value => Err(WordsError::BadOptionTag { at, value }),
        }
    }
}

impl<T: ToWords> ToWords for [T] {
    fn write_words(&self, w: &mut WordWriter) {
        w.len(self.len());
        for item in self {
            item.write_words(w);
        }
    }
}

impl<T: ToWords> ToWords for Vec<T> {
    fn write_words(&self, w: &mut WordWriter) {
        self.as_slice().write_words(w);
    }
}

impl<T: FromWords> FromWords for Vec<T> {
    const MIN_WORDS: usize = 1;

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        let len = r.len("sequence", T::MIN_WORDS)?;
        let mut out = Self::with_capacity(len.min(r.remaining()));
        for _ in 0..len {
            out.push(T::read_words(r)?);
        }
        Ok(out)
    }
}

impl<T: ToWords, const N: usize> ToWords for [T; N] {
    fn write_words(&self, w: &mut WordWriter) {
        for item in self {
            item.write_words(w);
        }
    }
}

impl<T: FromWords, const N: usize> FromWords for [T; N] {
    const MIN_WORDS: usize = T::MIN_WORDS.saturating_mul(N);

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        let mut items = Vec::with_capacity(N.min(r.remaining()));
        for _ in 0..N {
            items.push(T::read_words(r)?);
        }
        // Exactly N items were pushed above, so this conversion cannot fail.
        items.try_into().map_err(|_| WordsError::Invalid {
            what: "fixed array",
            at: r.position(),
            detail: "wrong element count".to_owned(),
        })
    }
}

macro_rules! tuple_words {
    ($($name:ident),+) => {
        impl<$($name: ToWords),+> ToWords for ($($name,)+) {
            #[expect(non_snake_case, reason = "tuple fields are named after their type parameters")]
            fn write_words(&self, w: &mut WordWriter) {
                let ($($name,)+) = self;
                $( $name.write_words(w); )+
            }
        }
        impl<$($name: FromWords),+> FromWords for ($($name,)+) {
            const MIN_WORDS: usize = 0 $(+ $name::MIN_WORDS)+;
            fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
                Ok(($($name::read_words(r)?,)+))
            }
        }
    };
}
tuple_words!(A);
tuple_words!(A, B);
tuple_words!(A, B, C);
tuple_words!(A, B, C, D);
tuple_words!(A, B, C, D, E);
tuple_words!(A, B, C, D, E, F);
tuple_words!(A, B, C, D, E, F, G);
tuple_words!(A, B, C, D, E, F, G, H);

impl ToWords for crate::AccountId {
    /// LEZ's `AccountId` serialises through `Display` (`collect_str`), so inside an instruction
    /// it is its base58 string: a length word and 43 or 44 ASCII bytes, 12 words in all.
    fn write_words(&self, w: &mut WordWriter) {
        self.to_string().write_words(w);
    }
}

impl FromWords for crate::AccountId {
    const MIN_WORDS: usize = 1;

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        let at = r.position();
        let text = String::read_words(r)?;
        let invalid = |detail: String| WordsError::Invalid { what: "account id", at, detail };
        // Decoded strictly (no trimming, base58 alphabet only) into exactly 32 bytes. Base58 of a
        // fixed-length value has one spelling (each leading '1' is one leading zero byte, the
        // rest is the number without leading zero digits), so no re-encoding check is needed.
        let mut value = [0_u8; 32];
        let len = bs58::decode(text.as_bytes())
            .onto(&mut value[..])
            .map_err(|e| invalid(format!("{text:?} is not base58 of 32 bytes: {e}")))?;
        if len != 32 {
            return Err(invalid(format!("{text:?} decodes to {len} bytes, not 32")));
        }
        Ok(Self(value))
    }
}

impl ToWords for crate::ProgramId {
    /// `ProgramId = [u32; 8]` in LEZ: eight words, no length.
    fn write_words(&self, w: &mut WordWriter) {
        self.0.write_words(w);
    }
}

impl FromWords for crate::ProgramId {
    const MIN_WORDS: usize = 8;

    fn read_words(r: &mut WordReader<'_>) -> Result<Self, WordsError> {
        <[u32; 8]>::read_words(r).map(Self)
    }
}
