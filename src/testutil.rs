//! Test support shared by unit tests across modules: [`Rng`], a deterministic pseudo-random
//! generator (xorshift64*) for generated cases and random chunking that reproduce run to run
//! without a dependency.

/// xorshift64*: deterministic and dependency-free. Seed with any non-zero value.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// One of `items` (the empty string if there are none).
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = (self.next() % items.len().max(1) as u64) as usize;
        items.get(i).copied().unwrap_or_default()
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}
