//! Structured values drawn from fuzz input bytes: each read consumes bytes from the front and
//! reads zeros once the input is exhausted, so every input maps to exactly one value.

/// A cursor over fuzz input.
pub struct Source<'a> {
    data: &'a [u8],
}

impl<'a> Source<'a> {
    #[must_use]
    pub const fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// True once every byte was consumed.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The unread bytes, consuming them.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// Up to `len` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(len.min(self.data.len()));
        self.data = tail;
        head
    }

    pub fn byte(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// One time in `n` (on the next byte); `n` of zero or one is always true.
    pub fn one_in(&mut self, n: u8) -> bool {
        n <= 1 || self.byte().is_multiple_of(n)
    }

    /// An index below `n`; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        match n {
            0 | 1 => 0,
            2..=256 => usize::from(self.byte()) % n,
            _ => usize::try_from(self.u32()).unwrap_or(0) % n,
        }
    }

    /// Picks one of `items` (the first when the input is exhausted).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        items.get(self.below(items.len())).copied()
    }

    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0_u8; N];
        let read = self.bytes(N);
        if let Some(prefix) = out.get_mut(..read.len()) {
            prefix.copy_from_slice(read);
        }
        out
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    pub fn u128(&mut self) -> u128 {
        u128::from_le_bytes(self.array())
    }

    /// A `u64` biased to the values arithmetic goes wrong at: zero, small numbers, powers of
    /// two and the top of the range.
    pub fn interesting_u64(&mut self) -> u64 {
        match self.byte() % 8 {
            0 => 0,
            1 => u64::from(self.byte()),
            2 => u64::from(self.u16()),
            3 => u64::MAX.saturating_sub(u64::from(self.byte())),
            4 => 1_u64.checked_shl(u32::from(self.byte() % 64)).unwrap_or(1),
            5 => u64::from(self.u32()),
            _ => self.u64(),
        }
    }

    /// A `u128` biased like [`Source::interesting_u64`], plus the `u64` boundary.
    pub fn interesting_u128(&mut self) -> u128 {
        match self.byte() % 10 {
            0 => 0,
            1 => u128::from(self.byte()),
            2 => u128::from(self.u16()),
            3 => u128::MAX.saturating_sub(u128::from(self.byte())),
            4 => 1_u128.checked_shl(u32::from(self.byte() % 128)).unwrap_or(1),
            5 => u128::from(u64::MAX).saturating_add(u128::from(self.byte())).saturating_sub(128),
            6 => u128::from(self.u32()),
            7 => u128::from(self.u64()),
            _ => self.u128(),
        }
    }

    /// A vector of up to `max_len` bytes, its length drawn first.
    pub fn vec(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len.saturating_add(1));
        self.bytes(len).to_vec()
    }

    /// Up to `max_len` instruction words, drawn as their little-endian bytes.
    pub fn words(&mut self, max_len: usize) -> Vec<u32> {
        let bytes = self.vec(max_len.saturating_mul(4));
        pack_words(&bytes)
    }

    /// [`Source::mutate`] on the little-endian bytes of `words`, repacked (the last word
    /// zero-padded).
    pub fn mutate_words(&mut self, words: &mut Vec<u32>, max_edits: usize) {
        let mut bytes = paystreams_lez_core::risc0_words::words_to_le_bytes(words);
        self.mutate(&mut bytes, max_edits);
        *words = pack_words(&bytes);
    }

    /// Flips, overwrites, inserts or removes bytes of `bytes`, as many times as the input asks
    /// (at most `max_edits`).
    pub fn mutate(&mut self, bytes: &mut Vec<u8>, max_edits: usize) {
        let edits = self.below(max_edits.saturating_add(1));
        for _ in 0..edits {
            let at = self.below(bytes.len().saturating_add(1));
            match self.byte() % 5 {
                0 => {
                    let bit = self.byte() % 8;
                    if let Some(b) = bytes.get_mut(at) {
                        *b ^= 1 << bit;
                    }
                }
                1 => {
                    let value = self.byte();
                    if let Some(b) = bytes.get_mut(at) {
                        *b = value;
                    }
                }
                2 => {
                    let value = self.byte();
                    bytes.insert(at, value);
                }
                3 => {
                    if at < bytes.len() {
                        bytes.remove(at);
                    }
                }
                _ => bytes.truncate(at),
            }
        }
    }
}

/// Bytes packed little-endian into words, the last zero-padded.
fn pack_words(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(4)
        .map(|chunk| {
            let mut four = [0_u8; 4];
            for (to, from) in four.iter_mut().zip(chunk) {
                *to = *from;
            }
            u32::from_le_bytes(four)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausted_input_reads_zeros() {
        let mut source = Source::new(&[1, 2]);
        assert_eq!(source.u32(), 0x0201);
        assert!(source.is_empty());
        assert_eq!(source.u64(), 0);
        assert_eq!(source.below(7), 0);
        assert_eq!(source.pick(&[9, 8]), Some(9));
        assert_eq!(source.pick::<u8>(&[]), None);
    }

    #[test]
    fn mutation_is_bounded_and_deterministic() {
        let input = [3, 0, 4, 1, 1, 7, 2, 0, 9];
        let mut a = vec![10, 20, 30];
        let mut b = a.clone();
        Source::new(&input).mutate(&mut a, 3);
        Source::new(&input).mutate(&mut b, 3);
        assert_eq!(a, b);
        assert!(a.len() <= 6);
    }
}
