//! RISC Zero serde words (v3.0.5 rules): one worked example per type from the facts file
//! (`lez-facts.md` §2.2, every example there is [computed] from risc0's serializer source, not
//! pinned by risc0 or LEZ), round-trip properties, and malformed input refused with a typed error.

use paystreams_lez_core::{
    AccountId, ProgramId,
    risc0_words::{FromWords, MAX_LEN, ToWords, WordsError, from_words, to_words, words_to_le_bytes},
};
use proptest::prelude::*;

fn round_trip<T: ToWords + FromWords + PartialEq + std::fmt::Debug>(value: &T, expected: &[u32]) {
    assert_eq!(to_words(value), expected, "encoding of {value:?}");
    assert_eq!(&from_words::<T>(expected).expect("decodes"), value);
}

#[test]
fn worked_examples_per_type() {
    round_trip(&true, &[1]);
    round_trip(&false, &[0]);
    round_trip(&7_u8, &[7]);
    round_trip(&0x1234_u16, &[0x1234]);
    round_trip(&0xdead_beef_u32, &[0xdead_beef]);
    round_trip(&-1_i8, &[0xffff_ffff]);
    round_trip(&-2_i16, &[0xffff_fffe]);
    round_trip(&i32::MIN, &[0x8000_0000]);
    round_trip(&0x1122_3344_5566_7788_u64, &[0x5566_7788, 0x1122_3344]);
    round_trip(&-1_i64, &[u32::MAX, u32::MAX]);
    round_trip(&42_u128, &[42, 0, 0, 0]);
    round_trip(&0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10_u128, &[0x0d0e_0f10, 0x090a_0b0c, 0x0506_0708, 0x0102_0304]);
    round_trip(&-1_i128, &[u32::MAX; 4]);
    round_trip(&"abc".to_owned(), &[3, 0x0063_6261]);
    round_trip(&"abcde".to_owned(), &[5, 0x6463_6261, 0x0000_0065]);
    round_trip(&"abcd".to_owned(), &[4, 0x6463_6261]);
    round_trip(&String::new(), &[0]);
    round_trip(&Some(9_u64), &[1, 9, 0]);
    round_trip(&None::<u64>, &[0]);
    round_trip(&(), &[]);
    round_trip(&vec![1_u8, 2, 3], &[3, 1, 2, 3]);
    round_trip(&vec![5_u32, 6], &[2, 5, 6]);
    round_trip(&Vec::<u64>::new(), &[0]);
    round_trip(&[1_u8, 2, 3, 4], &[1, 2, 3, 4]);
    round_trip(&[0_u8; 32], &[0; 32]);
    round_trip(&(1_u8, 2_u64), &[1, 2, 0]);
    round_trip(&ProgramId([1, 2, 3, 4, 5, 6, 7, 8]), &[1, 2, 3, 4, 5, 6, 7, 8]);
    // LEZ's authenticated-transfer instruction (facts §2.1 [computed]): Transfer{100}, Initialize.
    round_trip(&AuthTransfer::Transfer { amount: 100 }, &[0, 100, 0, 0, 0]);
    round_trip(&AuthTransfer::Initialize, &[1]);
}

/// An enum with unit and struct variants, as LEZ's `authenticated_transfer_core::Instruction`.
#[derive(Debug, PartialEq)]
enum AuthTransfer {
    Transfer { amount: u128 },
    Initialize,
}

impl ToWords for AuthTransfer {
    fn write_words(&self, w: &mut paystreams_lez_core::risc0_words::WordWriter) {
        match self {
            Self::Transfer { amount } => {
                w.variant(0);
                amount.write_words(w);
            }
            Self::Initialize => w.variant(1),
        }
    }
}

impl FromWords for AuthTransfer {
    const MIN_WORDS: usize = 1;

    fn read_words(r: &mut paystreams_lez_core::risc0_words::WordReader<'_>) -> Result<Self, WordsError> {
        Ok(match r.variant("authenticated_transfer Instruction", 2)? {
            0 => Self::Transfer { amount: u128::read_words(r)? },
            _ => Self::Initialize,
        })
    }
}

#[test]
fn account_id_is_its_base58_string() {
    // Facts §2.3 [computed]: base58 of [11; 32] and its 12 words.
    let id = AccountId([11; 32]);
    assert_eq!(id.to_string(), "k7FaK87WHGVXzkaoHb7CdVPgkKDQhZ29VLDeBVbDfYn");
    let words = to_words(&id);
    assert_eq!(words.len(), 12);
    assert_eq!(
        words,
        [
            43,
            1_631_991_659,
            1_463_236_683,
            1_482_049_352,
            1_868_655_482,
            1_127_703_112,
            1_733_318_244,
            1_363_430_251,
            959_601_256,
            1_698_974_806,
            1_147_295_298,
            7_231_846
        ]
    );
    assert_eq!(from_words::<AccountId>(&words).expect("decodes"), id);
    // A 44-character id also takes 12 words.
    let long = AccountId([0xff; 32]);
    assert_eq!(long.to_string().len(), 44);
    assert_eq!(to_words(&long).len(), 12);
    // Non-canonical text (leading space) and wrong lengths are refused.
    let spaced = to_words(&format!(" {id}"));
    assert!(matches!(from_words::<AccountId>(&spaced), Err(WordsError::Invalid { what: "account id", .. })));
    let short = to_words(&"abc".to_owned());
    assert!(matches!(from_words::<AccountId>(&short), Err(WordsError::Invalid { .. })));
}

#[test]
fn le_byte_expansion() {
    assert_eq!(words_to_le_bytes(&[1, 0x0403_0201]), [1, 0, 0, 0, 1, 2, 3, 4]);
}

#[test]
fn malformed_input_is_refused_with_a_clear_error() {
    // Truncated.
    let err = from_words::<u64>(&[1]).expect_err("truncated");
    assert_eq!(err, WordsError::Truncated { what: "u64 (high word)", at: 1, needed: 1 });
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(matches!(from_words::<u128>(&[1, 2, 3]), Err(WordsError::Truncated { .. })));
    assert!(matches!(from_words::<[u8; 4]>(&[1, 2, 3]), Err(WordsError::Truncated { .. })));
    assert!(matches!(from_words::<Option<u32>>(&[1]), Err(WordsError::Truncated { .. })));
    assert!(matches!(from_words::<bool>(&[]), Err(WordsError::Truncated { .. })));
    // Trailing.
    assert_eq!(from_words::<u32>(&[1, 2]), Err(WordsError::Trailing { count: 1, consumed: 1, total: 2 }));
    // Bad bool and option tags.
    assert_eq!(from_words::<bool>(&[2]), Err(WordsError::BadBool { at: 0, value: 2 }));
    assert_eq!(from_words::<Option<u8>>(&[2, 0]), Err(WordsError::BadOptionTag { at: 0, value: 2 }));
    // Out of range for the type.
    assert_eq!(from_words::<u8>(&[256]), Err(WordsError::OutOfRange { what: "u8", at: 0, value: 256 }));
    assert!(matches!(from_words::<u16>(&[0x1_0000]), Err(WordsError::OutOfRange { .. })));
    assert!(matches!(from_words::<i8>(&[128]), Err(WordsError::OutOfRange { .. })));
    // Bad UTF-8 and non-zero padding.
    assert!(matches!(from_words::<String>(&[2, 0x0000_80c3 | 0x00ff]), Err(WordsError::BadUtf8 { at: 0, .. })));
    assert_eq!(from_words::<String>(&[1, 0x0000_6261]), Err(WordsError::BadPadding { at: 1 }));
    // Oversized lengths: beyond the words left, beyond the limit, and u32::MAX.
    assert!(matches!(
        from_words::<Vec<u8>>(&[3, 1, 2]),
        Err(WordsError::LengthTooLarge { what: "sequence", len: 3, words_left: 2, .. })
    ));
    assert!(matches!(from_words::<Vec<u64>>(&[2, 1, 0, 2]), Err(WordsError::LengthTooLarge { .. })));
    assert!(matches!(from_words::<String>(&[u32::MAX]), Err(WordsError::LengthTooLarge { what: "string", .. })));
    assert!(matches!(from_words::<String>(&[5, 0x6463_6261]), Err(WordsError::LengthTooLarge { .. })));
    let too_many_units = u32::try_from(MAX_LEN + 1).expect("fits");
    assert!(matches!(from_words::<Vec<()>>(&[too_many_units]), Err(WordsError::LengthTooLarge { .. })));
    assert_eq!(from_words::<Vec<()>>(&[3]).expect("three units"), vec![(), (), ()]);
    // Unknown enum variant.
    assert_eq!(
        from_words::<AuthTransfer>(&[2]),
        Err(WordsError::UnknownVariant { what: "authenticated_transfer Instruction", at: 0, value: 2, variants: 2 })
    );
}

proptest! {
    #[test]
    fn integers_round_trip(a: u8, b: u16, c: u32, d: u64, e: u128, f: i8, g: i16, h: i32, i: i64, j: i128, k: bool) {
        let value = ((a, b, c, d), (e, f, g, h), (i, j, k));
        let words = to_words(&value);
        // u8, u16, u32: 1 each; u64: 2; u128: 4; i8, i16, i32: 1 each; i64: 2; i128: 4; bool: 1.
        prop_assert_eq!(words.len(), 19);
        prop_assert_eq!(from_words::<((u8, u16, u32, u64), (u128, i8, i16, i32), (i64, i128, bool))>(&words), Ok(value));
    }

    #[test]
    fn containers_round_trip(s in ".{0,40}", v in proptest::collection::vec(any::<u64>(), 0..20), o: Option<u128>, bytes in proptest::collection::vec(any::<u8>(), 0..40), arr: [u8; 32]) {
        let value = (s.clone(), v, o, (bytes, arr));
        let words = to_words(&value);
        prop_assert_eq!(words[0] as usize, s.len());
        prop_assert_eq!(from_words::<(String, Vec<u64>, Option<u128>, (Vec<u8>, [u8; 32]))>(&words), Ok(value));
    }

    #[test]
    fn account_ids_round_trip(bytes: [u8; 32]) {
        let id = AccountId(bytes);
        let words = to_words(&id);
        prop_assert_eq!(words.len(), 12);
        prop_assert_eq!(from_words::<AccountId>(&words), Ok(id));
    }

    /// Arbitrary words never panic the decoder, and whatever decodes re-encodes to the same words.
    #[test]
    fn arbitrary_words_decode_or_error_never_panic(words in proptest::collection::vec(prop_oneof![0_u32..4, any::<u32>()], 0..64)) {
        type T = (Option<String>, Vec<(bool, u8)>, Vec<u64>);
        if let Ok(value) = from_words::<T>(&words) {
            prop_assert_eq!(&to_words(&value), &words);
        }
        if let Ok(value) = from_words::<AccountId>(&words) {
            prop_assert_eq!(&to_words(&value), &words);
        }
    }
}

/// Expectations pinned by RISC Zero's own serializer tests (`risc0/zkvm/src/serde/serializer.rs`
/// `test_struct` and `test_str`, read at risc0 commit `084cc37c`, an older release whose rules for
/// these types are the ones v3.0.5 states): a struct of bool, i8, u8, i16, u16, i32, u32, i64, u64
/// (signed values sign-extended), and two strings.
#[test]
fn risc0_own_serializer_test_vectors() {
    let fields = (true, -4_i8, 4_u8, -5_i16, 5_u16, -6_i32, 6_u32, (-7_i64, 7_u64));
    let expected = [
        1,
        (-4_i32).cast_unsigned(),
        4,
        (-5_i32).cast_unsigned(),
        5,
        (-6_i32).cast_unsigned(),
        6,
        (-7_i32).cast_unsigned(),
        0xffff_ffff,
        7,
        0,
    ];
    assert_eq!(to_words(&fields), expected);
    assert_eq!(from_words::<(bool, i8, u8, i16, u16, i32, u32, (i64, u64))>(&expected), Ok(fields));
    let strings = ("a".to_owned(), "abc".to_owned());
    assert_eq!(to_words(&strings), [1, 0x0000_0061, 3, 0x0063_6261]);
}
