//! Exact, order-independent summation of f64 values.
//!
//! [`ExactSum`] keeps the exact sum of everything added as a fixed-point
//! integer, so the result does not depend on chunking, on the order of the
//! values, or on how partial accumulators are merged: the same multiset of
//! values always gives the same bits. `sum`/`mean`/`var` reductions that must
//! not depend on the chunk grid build on it.
//!
//! # Representation
//!
//! A finite f64 is `±m · 2^(e − 1075)` with `e` its biased exponent (1..=2046;
//! subnormals use `e = 1` and no hidden bit) and `m < 2^53` an integer. So every
//! finite value, and every sum of them, is an integer multiple of the unit
//! `2^−1075`. The sum, in that unit, is held in 65 `i128` bins: bin `b < 64`
//! has weight `2^(32 b)`, and a value goes to bin `e / 32` as `±(m << (e % 32))`
//! (`< 2^85`). Bin 64 (weight `2^2048`) only receives carries.
//!
//! Bins are not kept carry-propagated; [`ExactSum`] counts the contributions
//! since the last normalisation (`load`, each one `< 2^95`) and carry-propagates
//! when `load` reaches `2^31`, so an `i128` bin stays below
//! `(2^31 + 2) · 2^95 < 2^127`. Normalised, bins 0..64 are digits in `[0, 2^32)`
//! and bin 64 is the signed rest. Bin 64 wraps, making the whole value a
//! two's-complement integer of 2176 bits: exact whenever the true sum is below
//! `2^1100` in magnitude (2^76 times `f64::MAX`; out of reach of any real
//! number of additions), whatever the intermediate sums. 65 bins are about
//! 1 KiB, which stays in L1.
//!
//! [`ExactSum::add_slice`] on slices of 384 values or more first sums the
//! integer mantissas per (sign, exponent) in a 4096-entry table of `u64` (32
//! KiB, on the stack), and moves an entry into the bins only when it reaches
//! `2^63` (about every 1024 values of one binade) and at the end. The hot loop
//! is then one load/add/store per value, with no dependency between values of
//! different binades: about twice a plain `iter().sum()` on one core.
//!
//! # Special values
//!
//! NaNs, `+inf` and `−inf` are counted separately. The result is NaN if any
//! NaN, or both infinities, were added; else `±inf` if any infinity was; else
//! the correctly rounded (round half to even) exact sum, which may itself
//! overflow to `±inf`.
//!
//! Sign of zero: the sum of no values is `+0.0`; a sum of only `−0.0` values
//! is `−0.0` (as in IEEE arithmetic, where `−0 + −0 = −0`); any other sum that
//! is exactly zero is `+0.0`. Rounding a nonzero sum to f32 can underflow to
//! zero: that zero has the sum's sign.
//!
//! # Wire form
//!
//! [`ExactSum::to_words`] gives [`WIRE_WORDS`] (38) `i64` words:
//! - `0..34`: the normalised sum as a 2176-bit two's-complement integer in
//!   units of `2^−1075`, 64-bit limbs, least significant first;
//! - `34`, `35`, `36`: the counts of NaNs, `+inf` and `−inf` (as `u64` bits);
//! - `37`: the zero-sign state: 0 nothing added, 1 only `−0.0` added,
//!   2 anything else.
//!
//! The form is canonical (equal sums of equal multisets give equal words).
//! [`ExactSum::from_words`] rejects a wrong length and decodes any other word
//! contents to some accumulator (an unknown zero-sign state reads as 2).

use crate::error::{Error, Result};

/// Length of [`ExactSum::to_words`].
pub const WIRE_WORDS: usize = VALUE_LIMBS + 4;

const FRAC_MASK: u64 = (1 << 52) - 1;
const HIDDEN_BIT: u64 = 1 << 52;
const NEG_ZERO_BITS: u64 = 1 << 63;
const EXP_NON_FINITE: u32 = 0x7FF;

/// Bins with a 32-bit digit once normalised; one more bin holds the signed top.
const DIGIT_BINS: usize = 64;
const BINS: usize = DIGIT_BINS + 1;
const DIGIT_BITS: u32 = 32;
const DIGIT_MASK: i128 = (1 << DIGIT_BITS) - 1;
/// 64-bit limbs of the wire value: 32 for the digits, 2 for the top bin.
const VALUE_LIMBS: usize = DIGIT_BINS / 2 + 2;
/// 32-bit digits of the whole two's-complement value (2176 bits).
const VALUE_DIGITS: usize = DIGIT_BINS + 4;

/// Bit of the integer sum (unit `2^−1075`) that is f32's smallest subnormal.
const F32_MIN_EXP: u64 = 1075 - 149;

/// Normalise before this many contributions (each `< 2^95`) have been added
/// since the last normalisation: `(2^31 + 2) · 2^95 < 2^127`.
const LOAD_LIMIT: u64 = 1 << 31;

/// Slices at least this long go through a [`Batch`] table (below, its fixed
/// cost, zeroing and scanning 32 KiB, outweighs its faster loop).
const BATCH_MIN: usize = 384;

/// Whether everything added so far was `−0.0`; decides the sign of a zero sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ZeroSign {
    #[default]
    Empty,
    OnlyNegZero,
    Other,
}

impl ZeroSign {
    fn merge(self, other: ZeroSign) -> ZeroSign {
        match (self, other) {
            (ZeroSign::Empty, z) | (z, ZeroSign::Empty) => z,
            (ZeroSign::OnlyNegZero, ZeroSign::OnlyNegZero) => ZeroSign::OnlyNegZero,
            _ => ZeroSign::Other,
        }
    }

    fn code(self) -> i64 {
        match self {
            ZeroSign::Empty => 0,
            ZeroSign::OnlyNegZero => 1,
            ZeroSign::Other => 2,
        }
    }

    fn from_code(code: i64) -> ZeroSign {
        match code {
            0 => ZeroSign::Empty,
            1 => ZeroSign::OnlyNegZero,
            _ => ZeroSign::Other,
        }
    }
}

/// Exact sum of f64 values; see the module documentation.
#[derive(Clone, Debug)]
pub struct ExactSum {
    bins: [i128; BINS],
    /// Contributions (each `< 2^95` in magnitude) added to the bins since they
    /// were last normalised, so that `|bin| < (load + 1) · 2^95`; kept below
    /// `LOAD_LIMIT`.
    load: u64,
    nans: u64,
    pos_infs: u64,
    neg_infs: u64,
    zero_sign: ZeroSign,
}

impl Default for ExactSum {
    fn default() -> Self {
        Self::new()
    }
}

/// Equality of the exact state (sum, special counts, zero sign), as on the wire.
impl PartialEq for ExactSum {
    fn eq(&self, other: &Self) -> bool {
        self.to_words() == other.to_words()
    }
}

impl Eq for ExactSum {}

impl ExactSum {
    /// The empty sum (`+0.0`).
    pub fn new() -> Self {
        ExactSum {
            bins: [0; BINS],
            load: 0,
            nans: 0,
            pos_infs: 0,
            neg_infs: 0,
            zero_sign: ZeroSign::Empty,
        }
    }

    /// An accumulator holding the exact sum of `xs`.
    pub fn of(xs: &[f64]) -> Self {
        let mut sum = Self::new();
        sum.add_slice(xs);
        sum
    }

    /// Adds one value.
    #[inline]
    pub fn add(&mut self, x: f64) {
        let bits = x.to_bits();
        if self.zero_sign != ZeroSign::Other {
            self.zero_sign = if bits == NEG_ZERO_BITS {
                ZeroSign::OnlyNegZero
            } else {
                ZeroSign::Other
            };
        }
        self.add_bits(bits);
    }

    /// Adds every value of `xs`.
    pub fn add_slice(&mut self, xs: &[f64]) {
        self.note_zero_signs(xs);
        if xs.len() >= BATCH_MIN {
            self.add_batched(xs);
        } else {
            self.add_direct(xs);
        }
    }

    /// Adds the exact sum held by `other`.
    pub fn merge(&mut self, other: &ExactSum) {
        // Both loads are below the limit; make room for their sum (+1 for
        // `other`'s normalised part) first if needed.
        if self.load.saturating_add(other.load) >= LOAD_LIMIT {
            self.normalise();
        }
        for (bin, add) in self.bins.iter_mut().zip(&other.bins) {
            *bin = bin.wrapping_add(*add);
        }
        self.count_load(other.load.saturating_add(1));
        self.nans = self.nans.saturating_add(other.nans);
        self.pos_infs = self.pos_infs.saturating_add(other.pos_infs);
        self.neg_infs = self.neg_infs.saturating_add(other.neg_infs);
        self.zero_sign = self.zero_sign.merge(other.zero_sign);
    }

    /// Whether the sum is exactly zero (of either sign) with no NaN or infinity.
    pub fn is_zero(&self) -> bool {
        self.nans == 0
            && self.pos_infs == 0
            && self.neg_infs == 0
            && self.value_digits().iter().all(|&d| d == 0)
    }

    /// The exact sum correctly rounded to f64 (round half to even).
    pub fn to_f64(&self) -> f64 {
        if let Some(special) = self.non_finite() {
            return special;
        }
        let (negative, magnitude) = self.magnitude();
        let Some((mantissa, exp)) = round_magnitude(&magnitude, 53, 1) else {
            return self.zero();
        };
        // A 53-bit mantissa's leading bit carries into the biased exponent
        // (`exp` for a normal result, 0 for a subnormal one, where exp = 1).
        let bits = if exp > 2047 {
            f64::INFINITY.to_bits()
        } else {
            (((exp - 1) << 52) + mantissa).min(f64::INFINITY.to_bits())
        };
        let magnitude = f64::from_bits(bits);
        if negative { -magnitude } else { magnitude }
    }

    /// The exact sum correctly rounded to f32 (round half to even), in one
    /// rounding (not through f64).
    pub fn to_f32(&self) -> f32 {
        if let Some(special) = self.non_finite() {
            return special as f32;
        }
        let (negative, magnitude) = self.magnitude();
        // f32's smallest subnormal, 2^−149, is bit 926 of the integer sum.
        let Some((mantissa, exp)) = round_magnitude(&magnitude, 24, F32_MIN_EXP) else {
            return self.zero() as f32;
        };
        let inf = u64::from(f32::INFINITY.to_bits());
        let bits = if exp - F32_MIN_EXP >= 255 {
            inf
        } else {
            (((exp - F32_MIN_EXP) << 23) + mantissa).min(inf)
        };
        // Fits: bits <= f32::INFINITY.to_bits().
        let magnitude = f32::from_bits(bits as u32);
        if negative { -magnitude } else { magnitude }
    }

    /// The wire form: [`WIRE_WORDS`] words, laid out as in the module docs.
    pub fn to_words(&self) -> [i64; WIRE_WORDS] {
        let digits = self.value_digits();
        let mut words = [0i64; WIRE_WORDS];
        for (word, pair) in words.iter_mut().zip(digits.chunks_exact(2)) {
            let (lo, hi) = (u64::from(pair[0]), u64::from(pair[1]));
            *word = (lo | (hi << 32)) as i64;
        }
        words[VALUE_LIMBS..].copy_from_slice(&[
            self.nans as i64,
            self.pos_infs as i64,
            self.neg_infs as i64,
            self.zero_sign.code(),
        ]);
        words
    }

    /// Decodes [`to_words`](Self::to_words); any words of the right length
    /// decode to some accumulator.
    pub fn from_words(words: &[i64]) -> Result<ExactSum> {
        let Some((value, rest)) = words.split_first_chunk::<VALUE_LIMBS>() else {
            return Err(wire_length_error(words.len()));
        };
        let &[nans, pos_infs, neg_infs, zero_sign] = rest else {
            return Err(wire_length_error(words.len()));
        };
        let mut bins = [0i128; BINS];
        let (digit_limbs, top_limbs) = value.split_at(DIGIT_BINS / 2);
        for (pair, &limb) in bins.chunks_exact_mut(2).zip(digit_limbs) {
            let limb = limb as u64;
            pair[0] = i128::from(limb & 0xFFFF_FFFF);
            pair[1] = i128::from(limb >> 32);
        }
        let top_lo = u128::from(top_limbs[0] as u64);
        let top_hi = u128::from(top_limbs[1] as u64);
        bins[DIGIT_BINS] = (top_lo | (top_hi << 64)) as i128;
        Ok(ExactSum {
            bins,
            load: 0,
            nans: nans as u64,
            pos_infs: pos_infs as u64,
            neg_infs: neg_infs as u64,
            zero_sign: ZeroSign::from_code(zero_sign),
        })
    }

    /// Updates the zero-sign state for `xs`; scans only until something other
    /// than −0.0 shows up (usually the first value of the first slice).
    fn note_zero_signs(&mut self, xs: &[f64]) {
        if self.zero_sign != ZeroSign::Other && !xs.is_empty() {
            self.zero_sign = if xs.iter().all(|x| x.to_bits() == NEG_ZERO_BITS) {
                self.zero_sign.merge(ZeroSign::OnlyNegZero)
            } else {
                ZeroSign::Other
            };
        }
    }

    #[inline]
    fn add_bits(&mut self, bits: u64) {
        if self.add_to_bins(bits) {
            self.count_load(1);
        }
    }

    /// Adds one value to the bins (or the special counts) without counting
    /// its load; true if it went to the bins.
    #[inline(always)]
    fn add_to_bins(&mut self, bits: u64) -> bool {
        let negative = bits >> 63 != 0;
        let biased = ((bits >> 52) as u32) & EXP_NON_FINITE;
        let frac = bits & FRAC_MASK;
        if biased == EXP_NON_FINITE {
            self.add_non_finite(negative, frac);
            return false;
        }
        let mantissa = if biased == 0 { frac } else { frac | HIDDEN_BIT };
        self.bin_add(negative, biased.max(1), mantissa);
        true
    }

    fn add_direct(&mut self, xs: &[f64]) {
        let mut rest = xs;
        while !rest.is_empty() {
            // The load is counted per run, not per value (it would be a
            // store-to-load dependency between consecutive values).
            let room = LOAD_LIMIT.saturating_sub(self.load).max(1);
            let room = usize::try_from(room).unwrap_or(usize::MAX);
            let (now, later) = rest.split_at(room.min(rest.len()));
            for &x in now {
                self.add_to_bins(x.to_bits());
            }
            self.count_load(now.len() as u64);
            rest = later;
        }
    }

    fn add_non_finite(&mut self, negative: bool, frac: u64) {
        let count = if frac != 0 {
            &mut self.nans
        } else if negative {
            &mut self.neg_infs
        } else {
            &mut self.pos_infs
        };
        *count = count.saturating_add(1);
    }

    /// Adds `±mantissa · 2^(exp − 1075)` to the bins, for `exp < 2048` (the
    /// shifted mantissa is `< 2^95`, one unit of `load`, counted by the caller).
    #[inline(always)]
    fn bin_add(&mut self, negative: bool, exp: u32, mantissa: u64) {
        let shifted = i128::from(mantissa) << (exp % DIGIT_BITS);
        let signed = if negative { -shifted } else { shifted };
        let bin = ((exp / DIGIT_BITS) as usize) % DIGIT_BINS;
        self.bins[bin] = self.bins[bin].wrapping_add(signed);
    }

    /// Counts `units` contributions added to the bins (at most the room left
    /// below `LOAD_LIMIT`), normalising when the limit is reached.
    #[inline]
    fn count_load(&mut self, units: u64) {
        self.load = self.load.saturating_add(units);
        if self.load >= LOAD_LIMIT {
            self.normalise();
        }
    }

    /// Carry-propagates the bins: digits in `[0, 2^32)` and a signed top bin.
    fn normalise(&mut self) {
        let mut carry = 0i128;
        let (digits, top) = self.bins.split_at_mut(DIGIT_BINS);
        for digit in digits {
            let value = digit.wrapping_add(carry);
            carry = value >> DIGIT_BITS;
            *digit = value & DIGIT_MASK;
        }
        top[0] = top[0].wrapping_add(carry);
        self.load = 0;
    }

    /// The sum as a 2176-bit two's-complement integer, 32-bit digits, least
    /// significant first.
    fn value_digits(&self) -> [u32; VALUE_DIGITS] {
        let mut normal = self.clone();
        if normal.load > 0 {
            normal.normalise();
        }
        let mut digits = [0u32; VALUE_DIGITS];
        for (digit, &bin) in digits.iter_mut().zip(&normal.bins[..DIGIT_BINS]) {
            *digit = bin as u32;
        }
        let top = normal.bins[DIGIT_BINS] as u128;
        for (k, digit) in digits[DIGIT_BINS..].iter_mut().enumerate() {
            *digit = (top >> (32 * k)) as u32;
        }
        digits
    }

    /// Sign and magnitude of the sum (digits as in `value_digits`).
    fn magnitude(&self) -> (bool, [u32; VALUE_DIGITS]) {
        let mut digits = self.value_digits();
        let negative = digits[VALUE_DIGITS - 1] >> 31 != 0;
        if negative {
            // Two's-complement negation; −2^2175 maps to itself, which is its
            // magnitude read as unsigned.
            let mut carry = 1u64;
            for digit in digits.iter_mut() {
                let value = u64::from(!*digit) + carry;
                *digit = value as u32;
                carry = value >> 32;
            }
        }
        (negative, digits)
    }

    fn non_finite(&self) -> Option<f64> {
        if self.nans > 0 || (self.pos_infs > 0 && self.neg_infs > 0) {
            Some(f64::NAN)
        } else if self.pos_infs > 0 {
            Some(f64::INFINITY)
        } else if self.neg_infs > 0 {
            Some(f64::NEG_INFINITY)
        } else {
            None
        }
    }

    /// The zero for an exactly zero finite sum.
    fn zero(&self) -> f64 {
        if self.zero_sign == ZeroSign::OnlyNegZero {
            -0.0
        } else {
            0.0
        }
    }

    fn add_batched(&mut self, xs: &[f64]) {
        let mut batch = Batch::new();
        self.batch_slice(&mut batch, xs);
        self.drain(&mut batch);
    }

    fn batch_slice(&mut self, batch: &mut Batch, xs: &[f64]) {
        // Unrolled by hand: the rare flush call keeps the compiler from it.
        let mut quads = xs.chunks_exact(4);
        for quad in &mut quads {
            for x in quad {
                self.batch_add(batch, x.to_bits());
            }
        }
        for x in quads.remainder() {
            self.batch_add(batch, x.to_bits());
        }
    }

    /// Moves every entry of `batch` into the bins and empties it.
    fn drain(&mut self, batch: &mut Batch) {
        // Non-finite entries are back at their start value: each NaN or
        // infinity went to the counts at once.
        batch.words[0x7FF] = 0;
        batch.words[0xFFF] = 0;
        // Most of the table is untouched: skip blocks of zeros.
        for (block, words) in batch.words.chunks_exact_mut(8).enumerate() {
            if words.iter().fold(0, |any, &w| any | w) == 0 {
                continue;
            }
            for (k, word) in words.iter_mut().enumerate() {
                if *word != 0 {
                    let w = std::mem::take(word);
                    self.flush_word(8 * block + k, w);
                }
            }
        }
        batch.words[0x7FF] = Batch::NON_FINITE_EMPTY;
        batch.words[0xFFF] = Batch::NON_FINITE_EMPTY;
    }

    #[inline(always)]
    fn batch_add(&mut self, batch: &mut Batch, bits: u64) {
        let entry = (bits >> 52) as usize;
        // The hidden bit, for every exponent but 0: (e + 2047) >> 11 == (e != 0).
        let hidden = (((entry as u64 & 0x7FF) + 0x7FF) >> 11) << 52;
        let word = batch.words[entry] + ((bits & FRAC_MASK) | hidden);
        if word >= Batch::FULL {
            batch.words[entry] = Batch::empty(entry);
            self.flush_word(entry, word);
        } else {
            batch.words[entry] = word;
        }
    }

    /// Adds a batch entry's word to the bins.
    #[inline(never)]
    fn flush_word(&mut self, entry: usize, word: u64) {
        let negative = entry >> 11 & 1 != 0;
        let biased = (entry as u32) & EXP_NON_FINITE;
        if biased == EXP_NON_FINITE {
            // Non-finite entries start at FULL − 2^52: this is one value,
            // `FULL + its fraction`.
            self.add_non_finite(negative, word & FRAC_MASK);
        } else {
            self.bin_add(negative, biased.max(1), word);
            self.count_load(1);
        }
    }
}

/// An [`ExactSum`] fed by many slices, short ones included, at the speed of
/// long ones: its batch table (32 KiB, on the heap) lives across calls and
/// is drained once, by [`ExactStream::finish`]. The table is set up only once
/// the stream has seen [`BATCH_MIN`] values: a stream of a few values (a tiny
/// chunk) adds them straight to the bins instead of clearing and scanning it.
#[derive(Clone, Default)]
pub struct ExactStream {
    sum: ExactSum,
    batch: Option<Box<Batch>>,
    direct: usize,
}

impl std::fmt::Debug for ExactStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExactStream({:?})", self.sum)
    }
}

impl ExactStream {
    /// Adds every value of `xs`.
    pub fn add_slice(&mut self, xs: &[f64]) {
        self.sum.note_zero_signs(xs);
        if self.batch.is_none() && self.direct + xs.len() < BATCH_MIN {
            self.direct += xs.len();
            self.sum.add_direct(xs);
            return;
        }
        let batch = self.batch.get_or_insert_with(|| Box::new(Batch::new()));
        self.sum.batch_slice(batch, xs);
    }

    /// The exact sum of everything added.
    pub fn finish(mut self) -> ExactSum {
        if let Some(batch) = &mut self.batch {
            self.sum.drain(batch);
        }
        self.sum
    }
}

/// Values gathered per (sign, biased exponent), the top 12 bits of an f64: a
/// word holds the sum of their integer mantissas (`< 2^53` each). It goes to
/// the bins once it reaches `2^63` (so it stays below `2^63 + 2^53`), after
/// about 1024 values of one binade. Non-finite entries start at `2^63 − 2^52`,
/// so each NaN or infinity (whose mantissa has the hidden bit) goes alone.
#[derive(Clone)]
struct Batch {
    words: [u64; Batch::ENTRIES],
}

impl Batch {
    const ENTRIES: usize = 4096;
    const FULL: u64 = 1 << 63;
    const NON_FINITE_EMPTY: u64 = Self::FULL - HIDDEN_BIT;

    fn new() -> Batch {
        let mut words = [0; Batch::ENTRIES];
        words[0x7FF] = Self::NON_FINITE_EMPTY;
        words[0xFFF] = Self::NON_FINITE_EMPTY;
        Batch { words }
    }

    fn empty(entry: usize) -> u64 {
        if entry as u32 & EXP_NON_FINITE == EXP_NON_FINITE {
            Self::NON_FINITE_EMPTY
        } else {
            0
        }
    }
}

fn wire_length_error(len: usize) -> Error {
    Error::Invalid(format!("exact sum: expected {WIRE_WORDS} words, got {len}"))
}

/// Rounds a nonzero magnitude (unsigned digits) to `precision` significant
/// bits, half to even, with no bit below `min_exp` kept. Returns the mantissa
/// (`<= 2^precision`) and the position `exp` of its lowest bit; `None` for 0.
fn round_magnitude(
    digits: &[u32; VALUE_DIGITS],
    precision: u64,
    min_exp: u64,
) -> Option<(u64, u64)> {
    let (top_index, &top_digit) = digits.iter().enumerate().rev().find(|(_, d)| **d != 0)?;
    let highest = 32 * top_index as u64 + 31 - u64::from(top_digit.leading_zeros());
    let exp = (highest + 1).saturating_sub(precision).max(min_exp);
    let mut mantissa = bits_at(digits, exp, precision);
    let round_bit = exp > 0 && bits_at(digits, exp - 1, 1) != 0;
    let sticky = exp > 1 && any_below(digits, exp - 1);
    if round_bit && (sticky || mantissa & 1 != 0) {
        mantissa += 1;
    }
    Some((mantissa, exp))
}

/// `len <= 64` bits starting at bit `lo` (bits past the end read as 0).
fn bits_at(digits: &[u32; VALUE_DIGITS], lo: u64, len: u64) -> u64 {
    let first = (lo / 32) as usize;
    let mut window = 0u128;
    for k in 0..3 {
        let digit = digits.get(first + k).copied().unwrap_or(0);
        window |= u128::from(digit) << (32 * k);
    }
    let shifted = window >> (lo % 32);
    (shifted & ((1u128 << len) - 1)) as u64
}

/// Whether any bit below bit `end` is set.
fn any_below(digits: &[u32; VALUE_DIGITS], end: u64) -> bool {
    let full = ((end / 32) as usize).min(VALUE_DIGITS);
    if digits[..full].iter().any(|&d| d != 0) {
        return true;
    }
    let partial = end % 32;
    full < VALUE_DIGITS && partial > 0 && digits[full] & ((1u32 << partial) - 1) != 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    // ---- Independent reference: Shewchuk's partials, as in Python's math.fsum.

    /// Correctly rounded sum of finite values whose partial sums cannot overflow.
    fn fsum(xs: &[f64]) -> f64 {
        let mut partials: Vec<f64> = Vec::new();
        for &value in xs {
            let mut x = value;
            let mut kept = 0;
            for j in 0..partials.len() {
                let mut y = partials[j];
                if x.abs() < y.abs() {
                    std::mem::swap(&mut x, &mut y);
                }
                let hi = x + y;
                let lo = y - (hi - x);
                if lo != 0.0 {
                    partials[kept] = lo;
                    kept += 1;
                }
                x = hi;
            }
            partials.truncate(kept);
            if x != 0.0 {
                assert!(x.is_finite(), "reference overflowed");
                partials.push(x);
            }
        }
        // Sum from the top while exact, then fix a half-way case that the
        // partials below break.
        let mut n = partials.len();
        if n == 0 {
            return 0.0;
        }
        n -= 1;
        let mut hi = partials[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = partials[n];
            hi = x + y;
            let yr = hi - x;
            lo = y - yr;
            if lo != 0.0 {
                break;
            }
        }
        if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            let yr = x - hi;
            if y == yr {
                hi = x;
            }
        }
        hi
    }

    /// 2^k for -1074 <= k <= 1023.
    fn pow2(k: i32) -> f64 {
        if k < -1022 {
            f64::from_bits(1 << (k + 1074))
        } else {
            f64::from_bits(((k + 1023) as u64) << 52)
        }
    }

    fn is_neg_zero(x: f64) -> bool {
        x.to_bits() == NEG_ZERO_BITS
    }

    /// Expected correctly rounded sum. Sums that may pass 2^990 are scaled
    /// down by 2^200 (exact: such vectors hold no nonzero value below 2^-800),
    /// summed, and scaled back, which overflows exactly when IEEE rounding does.
    fn reference(xs: &[f64]) -> f64 {
        let big = xs.iter().any(|x| x.abs() >= pow2(990));
        let sum = if big {
            assert!(xs.iter().all(|&x| x == 0.0 || x.abs() >= pow2(-800)));
            let scaled: Vec<f64> = xs.iter().map(|x| x * pow2(-200)).collect();
            fsum(&scaled) * pow2(200)
        } else {
            fsum(xs)
        };
        if sum != 0.0 {
            sum
        } else if !xs.is_empty() && xs.iter().all(|&x| is_neg_zero(x)) {
            -0.0
        } else {
            0.0
        }
    }

    fn same_bits(got: f64, want: f64) -> bool {
        (got.is_nan() && want.is_nan()) || got.to_bits() == want.to_bits()
    }

    // ---- Ways to accumulate.

    fn sum_each(xs: &[f64]) -> ExactSum {
        let mut sum = ExactSum::new();
        for &x in xs {
            sum.add(x);
        }
        sum
    }

    fn sum_direct(xs: &[f64]) -> ExactSum {
        let mut sum = ExactSum::new();
        sum.note_zero_signs(xs);
        sum.add_direct(xs);
        sum
    }

    fn sum_batched(xs: &[f64]) -> ExactSum {
        let mut sum = ExactSum::new();
        sum.note_zero_signs(xs);
        sum.add_batched(xs);
        sum
    }

    fn via_wire(sum: &ExactSum) -> ExactSum {
        let words = sum.to_words();
        assert_eq!(words.len(), WIRE_WORDS);
        ExactSum::from_words(&words).unwrap()
    }

    /// Through an [`ExactStream`], in slices of varied lengths: the first
    /// few go straight to the bins, the rest through the batch table.
    fn sum_streamed(xs: &[f64]) -> ExactSum {
        let mut stream = ExactStream::default();
        let mut rest = xs;
        for len in [1, 2, 0, 5, 100, 1, 300, 3, 700].into_iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at(len.min(rest.len()));
            stream.add_slice(now);
            rest = later;
        }
        stream.finish()
    }

    fn check_all_ways(xs: &[f64]) {
        let want = reference(xs);
        for (name, sum) in [
            ("add", sum_each(xs)),
            ("direct", sum_direct(xs)),
            ("batched", sum_batched(xs)),
            ("add_slice", ExactSum::of(xs)),
            ("stream", sum_streamed(xs)),
        ] {
            let got = sum.to_f64();
            assert!(
                same_bits(got, want),
                "{name}: {xs:?}: got {got:e}, want {want:e}"
            );
            let wired = via_wire(&sum).to_f64();
            assert!(same_bits(wired, want), "{name} via wire: {xs:?}");
        }
    }

    // ---- Generators.

    fn from_parts(negative: bool, biased: u64, frac: u64) -> f64 {
        f64::from_bits((u64::from(negative) << 63) | (biased << 52) | (frac & FRAC_MASK))
    }

    fn special_finite() -> impl Strategy<Value = f64> {
        prop::sample::select(vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            3.0,
            f64::EPSILON,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            f64::from_bits(1),
            -f64::from_bits(1),
            f64::from_bits(FRAC_MASK),
            pow2(53),
            pow2(-53),
        ])
    }

    /// Any exponent from subnormal up to 2^(biased_max − 1023).
    fn value_in(biased_min: u64, biased_max: u64) -> impl Strategy<Value = f64> {
        prop_oneof![
            6 => (any::<bool>(), biased_min..=biased_max, any::<u64>())
                .prop_map(|(n, e, f)| from_parts(n, e, f)),
            1 => (any::<bool>(), any::<u64>()).prop_map(|(n, f)| from_parts(n, 0, f)),
            1 => (any::<bool>(), any::<u64>(), 0u32..52)
                .prop_map(move |(n, f, s)| from_parts(n, biased_min.max(1), f >> s)),
            1 => (-1000i32..1000).prop_map(f64::from),
            1 => special_finite(),
        ]
    }

    /// Values within a few dozen binades of `base`, where ties and carries happen.
    fn clustered(base: u64) -> impl Strategy<Value = f64> {
        (any::<bool>(), 0u64..60, any::<u64>(), 0u32..53).prop_map(move |(n, down, f, s)| {
            let e = base.saturating_sub(down).max(1);
            // Few significant bits now and then, so sums land on ties.
            from_parts(n, e, (f >> s) << s)
        })
    }

    /// Appends the negations of a random subset and shuffles.
    fn with_cancellation(v: Vec<f64>) -> impl Strategy<Value = Vec<f64>> {
        let n = v.len();
        prop::collection::vec(any::<bool>(), n).prop_flat_map(move |negate| {
            let mut out = v.clone();
            out.extend(v.iter().zip(negate).filter(|(_, m)| *m).map(|(x, _)| -x));
            Just(out).prop_shuffle()
        })
    }

    /// Finite values below 2^990 (subnormals included).
    fn small_range_vec() -> impl Strategy<Value = Vec<f64>> {
        let wide = prop::collection::vec(value_in(0, 1023 + 989), 0..48);
        let near =
            (1u64..=1023 + 989).prop_flat_map(|base| prop::collection::vec(clustered(base), 0..48));
        prop_oneof![wide, near].prop_flat_map(with_cancellation)
    }

    /// Finite values from 2^-800 up to f64::MAX, and zeros; sums may overflow.
    fn large_range_vec() -> impl Strategy<Value = Vec<f64>> {
        let value = prop_oneof![
            // Keep the reference's scaling exact: nothing nonzero below 2^-800.
            8 => value_in(1023 - 800, 2046)
                .prop_map(|x| if x.abs() < pow2(-800) { x * 0.0 } else { x }),
            1 => prop::sample::select(vec![0.0, -0.0, f64::MAX, -f64::MAX]),
        ];
        let wide = prop::collection::vec(value, 0..48);
        let near =
            (1960u64..=2046).prop_flat_map(|base| prop::collection::vec(clustered(base), 0..48));
        prop_oneof![wide, near].prop_flat_map(with_cancellation)
    }

    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    // ---- to_f64 against the reference.

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn matches_fsum_small_range(xs in small_range_vec()) {
            check_all_ways(&xs);
        }

        #[test]
        fn matches_fsum_large_range(xs in large_range_vec()) {
            check_all_ways(&xs);
        }

        /// A stream long enough to set up its batch table part way through
        /// holds the same sum as the values added at once.
        #[test]
        fn long_streams_match(
            xs in prop_oneof![small_range_vec(), large_range_vec()],
            reps in 1usize..60,
        ) {
            let all = xs.repeat(reps);
            let want = ExactSum::of(&all);
            prop_assert!(sum_streamed(&all) == want);
            prop_assert!(same_bits(sum_streamed(&all).to_f64(), want.to_f64()));
        }

        /// Pieces accumulated separately (each way, some through the wire)
        /// and merged in a random order and shape equal the whole, bit for bit.
        #[test]
        fn chunking_and_merge_order_do_not_matter(
            xs in prop_oneof![small_range_vec(), large_range_vec()],
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
            seed in any::<u64>(),
        ) {
            let whole = ExactSum::of(&xs);
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(xs.len() + 1)).collect();
            points.extend([0, xs.len()]);
            points.sort_unstable();
            let mut state = seed;
            let mut pieces: Vec<ExactSum> = points
                .windows(2)
                .map(|w| {
                    let piece = &xs[w[0]..w[1]];
                    let sum = match splitmix(&mut state) % 4 {
                        0 => sum_each(piece),
                        1 => sum_direct(piece),
                        2 => sum_batched(piece),
                        _ => ExactSum::of(piece),
                    };
                    if splitmix(&mut state).is_multiple_of(2) { via_wire(&sum) } else { sum }
                })
                .collect();
            for k in (1..pieces.len()).rev() {
                let j = (splitmix(&mut state) % (k as u64 + 1)) as usize;
                pieces.swap(k, j);
            }
            let merged = if splitmix(&mut state).is_multiple_of(2) {
                pieces.iter().fold(ExactSum::new(), |mut acc, p| {
                    acc.merge(p);
                    acc
                })
            } else {
                // Pairwise tree, through the wire at each level.
                while pieces.len() > 1 {
                    pieces = pieces
                        .chunks(2)
                        .map(|pair| {
                            let mut acc = pair[0].clone();
                            if let Some(b) = pair.get(1) {
                                acc.merge(b);
                            }
                            via_wire(&acc)
                        })
                        .collect();
                }
                pieces.pop().unwrap_or_default()
            };
            prop_assert_eq!(merged.to_words(), whole.to_words());
            prop_assert!(same_bits(merged.to_f64(), reference(&xs)));
            prop_assert_eq!(merged.to_f32().to_bits(), whole.to_f32().to_bits());
        }
    }

    #[test]
    fn hand_picked_sums() {
        let max = f64::MAX;
        let tiny = f64::from_bits(1);
        let cases: Vec<(Vec<f64>, f64)> = vec![
            (vec![], 0.0),
            (vec![1e308, 1.0, -1e308], 1.0),
            (vec![1e-16, 1.0, 1e16], 10000000000000002.0),
            (vec![pow2(53), 1.0], pow2(53)),
            (vec![pow2(53), 1.0, 1.0], pow2(53) + 2.0),
            (vec![pow2(53) + 2.0, 1.0], pow2(53) + 4.0),
            (vec![pow2(53), 1.0, tiny], pow2(53) + 2.0),
            (vec![pow2(53), 1.0, -tiny], pow2(53)),
            (vec![1.0, pow2(-53)], 1.0),
            (vec![1.0, pow2(-53), pow2(-105)], 1.0 + pow2(-52)),
            (vec![1.0, pow2(-53), tiny], 1.0 + pow2(-52)),
            (vec![-1.0, -pow2(-53), -tiny], -1.0 - pow2(-52)),
            (vec![0.1; 10], 1.0),
            (vec![max, max], f64::INFINITY),
            (vec![-max, -max], f64::NEG_INFINITY),
            (vec![max, max, -max], max),
            (vec![max, pow2(970)], f64::INFINITY),
            (vec![max, pow2(970), -tiny], max),
            (vec![max, pow2(969)], max),
            (vec![f64::MIN_POSITIVE, -tiny], f64::from_bits(FRAC_MASK)),
            (vec![tiny, tiny], f64::from_bits(2)),
            (vec![f64::from_bits(FRAC_MASK), tiny], f64::MIN_POSITIVE),
            (vec![1.0, -1.0], 0.0),
            (vec![tiny, -tiny, -0.0], 0.0),
        ];
        for (xs, want) in cases {
            for sum in [sum_each(&xs), sum_direct(&xs), sum_batched(&xs)] {
                let got = sum.to_f64();
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{xs:?}: got {got:e}, want {want:e}"
                );
            }
            if want.is_finite() && xs.iter().all(|x| x.abs() < pow2(990)) {
                assert_eq!(
                    reference(&xs).to_bits(),
                    want.to_bits(),
                    "reference on {xs:?}"
                );
            }
        }
    }

    #[test]
    fn long_runs_through_the_batch_table() {
        // 0.1 = m · 2^-56: the exact sum of n copies is n·m·2^-56, and i128 →
        // f64 conversion rounds correctly.
        let tenth_mantissa = (0.1f64.to_bits() & FRAC_MASK) | HIDDEN_BIT;
        for n in [1usize, 31, 32, 33, 1000, 100_003] {
            let xs = vec![0.1; n];
            let want = (n as i128 * i128::from(tenth_mantissa)) as f64 * pow2(-56);
            for sum in [sum_direct(&xs), sum_batched(&xs), ExactSum::of(&xs)] {
                assert_eq!(sum.to_f64().to_bits(), want.to_bits(), "{n} copies");
            }
        }
        // Mixed signs, subnormals and exponents, long enough for every path.
        let mut state = 7;
        let xs: Vec<f64> = (0..50_000)
            .map(|i| {
                let r = splitmix(&mut state);
                match i % 5 {
                    0 => from_parts(r >> 63 != 0, 0, r),
                    1 => from_parts(r >> 63 != 0, 1020 + (r >> 60), r),
                    2 => -0.0,
                    _ => from_parts(r >> 63 != 0, (r >> 52) % 1990, r),
                }
            })
            .collect();
        check_all_ways(&xs);
    }

    #[test]
    fn normalises_before_bins_can_overflow() {
        // Push the load to its limit many times with the largest contributions.
        let big = from_parts(false, 2046, FRAC_MASK);
        let mut sum = ExactSum::new();
        for len in [100, 5000] {
            for _ in 0..50 {
                sum.load = LOAD_LIMIT - 3;
                sum.add_slice(&vec![big; len]);
                assert!(sum.load < LOAD_LIMIT);
            }
        }
        assert_eq!(sum.to_f64(), f64::INFINITY);
        let mut back = ExactSum::new();
        back.add_slice(&vec![-big; 50 * (100 + 5000)]);
        back.load = LOAD_LIMIT - 1;
        sum.load = LOAD_LIMIT - 1;
        sum.merge(&back);
        assert!(sum.load < LOAD_LIMIT);
        sum.add(1.5);
        assert_eq!(sum.to_f64(), 1.5);
    }

    // ---- Special values and the sign of zero.

    #[test]
    fn non_finite_rules() {
        let inf = f64::INFINITY;
        let nan = f64::NAN;
        let cases: Vec<(Vec<f64>, f64)> = vec![
            (vec![inf, 1.0], inf),
            (vec![-inf, 1.0, f64::MAX, f64::MAX], -inf),
            (vec![inf, -inf], nan),
            (vec![nan], nan),
            (vec![-nan, 1.0], nan),
            (vec![inf, inf, -1e308], inf),
            (vec![f64::from_bits(0x7FF0_0000_0000_0001), inf], nan),
        ];
        for (xs, want) in cases {
            let mut long = xs.clone();
            long.extend(vec![0.25; 3000]);
            for sum in [
                sum_each(&xs),
                sum_direct(&xs),
                sum_batched(&xs),
                ExactSum::of(&long),
            ] {
                assert!(same_bits(sum.to_f64(), want), "{xs:?}");
                assert!(same_bits(f64::from(sum.to_f32()), want), "{xs:?} f32");
                assert!(same_bits(via_wire(&sum).to_f64(), want), "{xs:?} wire");
                assert!(!sum.is_zero());
            }
        }
        // Counts travel separately and merge.
        let mut a = ExactSum::of(&[inf, inf, 2.0]);
        let b = ExactSum::of(&[-inf, nan, -nan]);
        let words = b.to_words();
        assert_eq!(&words[VALUE_LIMBS..VALUE_LIMBS + 3], &[2, 0, 1]);
        assert_eq!(a.to_words()[VALUE_LIMBS + 1], 2);
        a.merge(&b);
        assert!(a.to_f64().is_nan());
    }

    #[test]
    fn sign_of_zero() {
        let neg = |xs: &[f64]| {
            let sums = [sum_each(xs), sum_direct(xs), sum_batched(xs)];
            let signs: Vec<bool> = sums.iter().map(|s| s.to_f64().is_sign_negative()).collect();
            assert!(
                sums.iter().all(|s| s.to_f64() == 0.0 && s.is_zero()),
                "{xs:?}"
            );
            assert!(sums.iter().all(|s| s.to_f32() == 0.0), "{xs:?}");
            assert!(
                sums.iter()
                    .all(|s| s.to_f32().is_sign_negative() == signs[0]),
                "{xs:?}"
            );
            assert!(signs.iter().all(|&s| s == signs[0]), "{xs:?}");
            assert_eq!(via_wire(&sums[0]).to_f64().is_sign_negative(), signs[0]);
            signs[0]
        };
        assert!(!neg(&[]));
        assert!(neg(&[-0.0]));
        assert!(neg(&[-0.0, -0.0]));
        assert!(neg(&vec![-0.0; 5000]));
        assert!(!neg(&[-0.0, 0.0]));
        assert!(!neg(&[0.0, -0.0]));
        assert!(!neg(&[1.0, -1.0]));
        assert!(!neg(&[-1.0, 1.0, -0.0]));
        assert!(!neg(&[-0.0, -pow2(-1074), pow2(-1074)]));
        assert!(ExactSum::new().is_zero());
        assert_eq!(ExactSum::default().to_f64().to_bits(), 0);

        let only_neg = || ExactSum::of(&[-0.0]);
        let merged = |a: ExactSum, b: ExactSum| {
            let mut a = a;
            a.merge(&b);
            a.to_f64().is_sign_negative()
        };
        assert!(merged(ExactSum::new(), only_neg()));
        assert!(merged(only_neg(), ExactSum::new()));
        assert!(merged(only_neg(), only_neg()));
        assert!(!merged(only_neg(), ExactSum::of(&[0.0])));
        assert!(!merged(ExactSum::of(&[2.0, -2.0]), only_neg()));
        assert!(!merged(ExactSum::new(), ExactSum::new()));

        // Slices continue the state left by earlier values.
        let mut sum = ExactSum::new();
        sum.add(-0.0);
        sum.add_slice(&[-0.0, -0.0]);
        assert!(sum.to_f64().is_sign_negative());
        sum.add_slice(&[0.0]);
        sum.add(-0.0);
        assert!(sum.to_f64().is_sign_positive());

        // A nonzero sum that underflows f32 keeps its sign.
        assert_eq!(
            ExactSum::of(&[-pow2(-200)]).to_f32().to_bits(),
            (-0.0f32).to_bits()
        );
        assert_eq!(ExactSum::of(&[pow2(-200)]).to_f32().to_bits(), 0);
    }

    // ---- to_f32.

    /// Correct f32 rounding of `total · 2^q`, by Rust's i128 → f32 conversion
    /// (round half to even) where the result is normal, and by integer
    /// rounding to multiples of 2^-149 where it is subnormal.
    fn f32_of_scaled_integer(total: i128, q: i32) -> f32 {
        let magnitude = total.unsigned_abs();
        let normal = q >= -126 || magnitude >= 1u128 << (-126 - q);
        let rounded = if normal {
            // Exact in f64 (24 significant bits, exponent in range); as f32
            // it is exact too, or overflows to inf as IEEE rounding would.
            ((magnitude as f32) as f64 * pow2(q)) as f32
        } else {
            let shift = -149 - q;
            let units = if shift <= 0 {
                magnitude << -shift
            } else {
                let quotient = magnitude >> shift;
                let rest = magnitude & ((1u128 << shift) - 1);
                let half = 1u128 << (shift - 1);
                if rest > half || (rest == half && quotient & 1 == 1) {
                    quotient + 1
                } else {
                    quotient
                }
            };
            (units as f64 * pow2(-149)) as f32
        };
        if total < 0 { -rounded } else { rounded }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Sums of integers scaled by 2^q, q from below f32's subnormals to
        /// past its overflow, against exact i128 arithmetic.
        #[test]
        fn f32_matches_integer_reference(
            q in -200i32..=80,
            parts in prop::collection::vec((any::<bool>(), 0u64..1 << 53, 0u32..54), 0..40),
        ) {
            let ks: Vec<i64> = parts
                .iter()
                .map(|&(n, m, s)| {
                    let k = (m >> s) as i64;
                    if n { -k } else { k }
                })
                .collect();
            let xs: Vec<f64> = ks.iter().map(|&k| k as f64 * pow2(q)).collect();
            let total: i128 = ks.iter().map(|&k| i128::from(k)).sum();
            let want = f32_of_scaled_integer(total, q);
            for sum in [sum_each(&xs), sum_batched(&xs), via_wire(&ExactSum::of(&xs))] {
                prop_assert_eq!(sum.to_f32().to_bits(), want.to_bits(), "{:?} q={}", ks, q);
            }
        }

        /// Midpoints between neighbouring f32 values round to the even one;
        /// anything beyond them, however far below, decides the direction.
        #[test]
        fn f32_ties_and_sticky_bits(
            bits in 0u32..0x7F80_0000,
            negative in any::<bool>(),
            split in any::<u64>(),
            far in 1u64..2000,
        ) {
            let a = f32::from_bits(bits);
            let b = f32::from_bits(bits + 1);
            let mid = (f64::from(a) + f64::from(b)) / 2.0; // exact in f64
            let even = if bits.is_multiple_of(2) { a } else { b };
            // Split the midpoint into two parts that sum to it exactly, and
            // add a cancelling pair.
            let part = f64::from_bits(mid.to_bits() & !((1u64 << (split % 53)) - 1));
            let rest = mid - part;
            let noise = f64::from_bits(split >> 1 & !(0x7FF << 52)) * pow2(split as i32 % 900);
            let sign = if negative { -1.0 } else { 1.0 };
            let signed = |x: f32| if negative { -x } else { x };
            let tie = ExactSum::of(&[sign * part, noise, sign * rest, -noise]);
            prop_assert_eq!(tie.to_f32().to_bits(), signed(even).to_bits());
            // Anything beyond the midpoint, however small, rounds away from it.
            let tiny = if far.is_multiple_of(2) { f64::from_bits(far) } else { mid * pow2(-60) };
            let up = ExactSum::of(&[sign * part, sign * tiny, noise, sign * rest, -noise]);
            prop_assert_eq!(up.to_f32().to_bits(), signed(b).to_bits());
            let down = ExactSum::of(&[sign * part, -sign * tiny, sign * rest]);
            prop_assert_eq!(down.to_f32().to_bits(), signed(a).to_bits());
        }

        /// A sum that is exactly an f32 comes back as that f32.
        #[test]
        fn f32_exact_sums(x in any::<f32>(), ys in prop::collection::vec(any::<f32>(), 0..10)) {
            prop_assume!(x.is_finite() && ys.iter().all(|y| y.is_finite()));
            let mut xs: Vec<f64> = vec![f64::from(x)];
            for &y in &ys {
                xs.push(f64::from(y));
                xs.push(-f64::from(y));
            }
            let sum = sum_batched(&xs);
            let want = if x == 0.0 { 0.0 } else { x };
            let want = if x.to_bits() == (-0.0f32).to_bits() && ys.is_empty() { -0.0 } else { want };
            prop_assert_eq!(sum.to_f32().to_bits(), want.to_bits());
            prop_assert_eq!(sum.to_f64().to_bits(), f64::from(want).to_bits());
        }
    }

    #[test]
    fn f32_hand_picked() {
        let max = f64::from(f32::MAX);
        let cases: Vec<(Vec<f64>, f32)> = vec![
            (vec![1.0, pow2(-24)], 1.0),
            // Through f64 this would round to 1 + 2^-24 first, then to 1.
            (vec![1.0, pow2(-24), pow2(-80)], 1.0 + f32::EPSILON),
            (vec![1.0, pow2(-24), pow2(-1074)], 1.0 + f32::EPSILON),
            (vec![1.0 + pow2(-23), pow2(-24)], 1.0 + 2.0 * f32::EPSILON),
            (vec![pow2(-150)], 0.0),
            (vec![pow2(-150), pow2(-1074)], f32::from_bits(1)),
            (vec![pow2(-150), pow2(-149)], f32::from_bits(2)),
            (vec![max, pow2(103)], f32::INFINITY),
            (vec![max, pow2(103), -pow2(-1074)], f32::MAX),
            (vec![-max, -pow2(102)], -f32::MAX),
            (vec![f64::MAX, f64::MAX, -f64::MAX], f32::INFINITY),
            (vec![1e300, 1.0, -1e300], 1.0),
        ];
        for (xs, want) in cases {
            let got = ExactSum::of(&xs).to_f32();
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{xs:?}: got {got:e}, want {want:e}"
            );
        }
    }

    // ---- Wire form.

    #[test]
    fn wire_rejects_wrong_lengths() {
        for len in [0, 1, WIRE_WORDS - 1, WIRE_WORDS + 1, 100] {
            assert!(ExactSum::from_words(&vec![0; len]).is_err(), "length {len}");
        }
        assert!(ExactSum::from_words(&[0; WIRE_WORDS]).unwrap().is_zero());
    }

    #[test]
    fn wire_extremes() {
        // The most negative and most positive 2176-bit values overflow.
        let mut words = vec![0i64; WIRE_WORDS];
        words[VALUE_LIMBS - 1] = i64::MIN;
        assert_eq!(
            ExactSum::from_words(&words).unwrap().to_f64(),
            f64::NEG_INFINITY
        );
        let mut words = vec![-1i64; WIRE_WORDS];
        words[VALUE_LIMBS - 1] = i64::MAX;
        words[VALUE_LIMBS..].fill(0);
        assert_eq!(
            ExactSum::from_words(&words).unwrap().to_f64(),
            f64::INFINITY
        );
        // All ones: −1 unit, i.e. −2^-1075, which rounds half-even to −0.
        let mut words = vec![-1i64; WIRE_WORDS];
        words[VALUE_LIMBS..].fill(0);
        let sum = ExactSum::from_words(&words).unwrap();
        assert_eq!(sum.to_f64().to_bits(), (-0.0f64).to_bits());
        assert!(!sum.is_zero());
    }

    proptest! {
        /// Any words of the right length decode, and everything done with the
        /// result stays panic-free and canonical.
        #[test]
        fn wire_fuzz(
            a in prop::collection::vec(any::<i64>(), WIRE_WORDS),
            b in prop::collection::vec(any::<i64>(), WIRE_WORDS),
            xs in prop::collection::vec(any::<f64>(), 0..8),
        ) {
            let mut sum = ExactSum::from_words(&a).unwrap();
            let other = ExactSum::from_words(&b).unwrap();
            let _ = (sum.to_f64(), sum.to_f32(), sum.is_zero());
            let mut value_only = a.clone();
            value_only[VALUE_LIMBS..].fill(0);
            prop_assert_eq!(&ExactSum::from_words(&value_only).unwrap().to_words()[..], &value_only[..]);
            sum.merge(&other);
            sum.add_slice(&xs);
            for &x in &xs {
                sum.add(x);
            }
            let words = sum.to_words();
            let back = ExactSum::from_words(&words).unwrap();
            prop_assert_eq!(back.to_words(), words);
            prop_assert!(same_bits(back.to_f64(), sum.to_f64()));
            prop_assert_eq!(back.to_f32().to_bits(), sum.to_f32().to_bits());
        }
    }

    // ---- Speed (run with --ignored --nocapture in release).

    #[test]
    #[ignore]
    fn bench_add_slice() {
        use std::hint::black_box;
        use std::time::Instant;
        let n = 1 << 20;
        let mut state = 1;
        let uniform: Vec<f64> = (0..n)
            .map(|_| (splitmix(&mut state) >> 11) as f64 * pow2(-52) - 1.0)
            .collect();
        let wide: Vec<f64> = (0..n)
            .map(|_| {
                let r = splitmix(&mut state);
                from_parts(r >> 63 != 0, 700 + (r >> 52) % 600, r)
            })
            .collect();
        let best = |f: &dyn Fn() -> f64| {
            let mut best = f64::INFINITY;
            for _ in 0..30 {
                let start = Instant::now();
                black_box(f());
                best = best.min(start.elapsed().as_secs_f64());
            }
            best * 1e9 / n as f64
        };
        for (name, xs) in [
            ("uniform [-1, 1)", &uniform),
            ("exponents 2^-323..2^277", &wide),
        ] {
            let plain = best(&|| black_box(xs.as_slice()).iter().sum::<f64>());
            let exact = best(&|| ExactSum::of(black_box(xs)).to_f64());
            let direct = best(&|| sum_direct(black_box(xs)).to_f64());
            println!(
                "{name}: plain sum {plain:.3} ns/elem, add_slice {exact:.3} ns/elem, \
                 per-value path {direct:.3} ns/elem"
            );
        }
        for len in [256usize, 384, 512, 768, 1024, 4096, 16384] {
            let xs = &uniform[..len];
            let per = |f: &dyn Fn() -> f64| {
                let start = Instant::now();
                for _ in 0..2000 {
                    black_box(f());
                }
                start.elapsed().as_secs_f64() * 1e9 / (2000 * len) as f64
            };
            let direct = per(&|| sum_direct(black_box(xs)).to_f64());
            let batched = per(&|| sum_batched(black_box(xs)).to_f64());
            println!("len {len}: per-value {direct:.3} ns/elem, batched {batched:.3} ns/elem");
        }
    }
}
