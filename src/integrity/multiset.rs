//! Order-independent combination of record hashes into a multiset digest.
//!
//! A [`MultisetDigest`] is the pair (count, Σ h(r) mod 2^256) over the records r of a
//! group, where h is the SHA-256 record hash of [`super::canonical`] read as a big-endian
//! 256-bit integer. This is AdHash (Bellare–Micciancio, 1997) with modulus 2^256:
//! - **order-independent**: addition commutes, so storage order, return order and the
//!   split into parallel partitions do not matter (partitions are combined by adding);
//! - **a multiset, not a set**: a duplicated record adds its hash twice (XOR would cancel
//!   it out), and the count moves too;
//! - **sound against accidental change**: for any fixed difference between two graphs
//!   (records lost, added or altered) the difference of the sums is a sum of ±SHA-256
//!   outputs, which is uniformly distributed, so two different graphs collide with
//!   probability 2^-256. That is the threat model of a migration: lost or corrupted
//!   writes, not an adversary crafting records.
//! - **adversarial inputs**: someone who can choose many records freely can find AdHash
//!   collisions faster than brute force (Wagner's generalised birthday attack). When that
//!   matters, fingerprint both sides with the same fresh random salt
//!   (`FingerprintOptions::salt`); the record hashes are then unpredictable to the writer.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A 256-bit unsigned integer as four u64 limbs, most significant first; arithmetic wraps
/// modulo 2^256.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct U256([u64; 4]);

impl U256 {
    pub const ZERO: U256 = U256([0; 4]);

    /// Reads 32 big-endian bytes.
    pub fn from_be_bytes(bytes: &[u8; 32]) -> Self {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            *limb = u64::from_be_bytes(b);
        }
        U256(limbs)
    }

    /// The 32 big-endian bytes.
    pub fn to_be_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// `self + other mod 2^256`.
    pub fn wrapping_add(self, other: U256) -> U256 {
        let mut out = [0u64; 4];
        let mut carry = false;
        for i in (0..4).rev() {
            let (s1, c1) = self.0[i].overflowing_add(other.0[i]);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            out[i] = s2;
            carry = c1 || c2;
        }
        U256(out)
    }

    /// `self - other mod 2^256`.
    pub fn wrapping_sub(self, other: U256) -> U256 {
        let mut out = [0u64; 4];
        let mut borrow = false;
        for i in (0..4).rev() {
            let (d1, b1) = self.0[i].overflowing_sub(other.0[i]);
            let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
            out[i] = d2;
            borrow = b1 || b2;
        }
        U256(out)
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(self) -> String {
        hex::encode(self.to_be_bytes())
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Option<U256> {
        let bytes = hex::decode(s).ok()?;
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(U256::from_be_bytes(&arr))
    }
}

impl fmt::Display for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for U256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for U256 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        U256::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex characters"))
    }
}

/// The digest of a multiset of records: how many, and the sum of their hashes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MultisetDigest {
    pub count: u64,
    pub sum: U256,
}

impl MultisetDigest {
    /// Adds one record.
    pub fn add(&mut self, record_hash: &[u8; 32]) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(U256::from_be_bytes(record_hash));
    }

    /// Adds every record of another multiset (combining partitions).
    pub fn merge(&mut self, other: &MultisetDigest) {
        self.count += other.count;
        self.sum = self.sum.wrapping_add(other.sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    fn h(i: u32) -> [u8; 32] {
        Sha256::digest(i.to_be_bytes()).into()
    }

    #[test]
    fn carries_propagate_across_limbs() {
        let max = U256([u64::MAX; 4]);
        let one = U256([0, 0, 0, 1]);
        assert_eq!(max.wrapping_add(one), U256::ZERO);
        assert_eq!(U256::ZERO.wrapping_sub(one), max);
        let a = U256([0, 0, u64::MAX, u64::MAX]);
        assert_eq!(a.wrapping_add(one), U256([0, 1, 0, 0]));
    }

    #[test]
    fn duplicates_count_twice() {
        let mut once = MultisetDigest::default();
        once.add(&h(1));
        let mut twice = once;
        twice.add(&h(1));
        assert_ne!(once, twice);
        assert_eq!(twice.count, 2);
        // XOR would cancel a pair; the sum does not.
        let mut pair = MultisetDigest::default();
        pair.add(&h(1));
        pair.add(&h(1));
        assert_ne!(pair.sum, U256::ZERO);
    }

    #[test]
    fn hex_round_trips() {
        let mut d = MultisetDigest::default();
        d.add(&h(42));
        assert_eq!(U256::from_hex(&d.sum.to_hex()), Some(d.sum));
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<MultisetDigest>(&json).unwrap(), d);
    }

    proptest! {
        #[test]
        fn combination_is_order_independent(mut items in proptest::collection::vec(0u32..50, 0..40), seed in any::<u64>()) {
            let mut a = MultisetDigest::default();
            for i in &items { a.add(&h(*i)); }
            // A deterministic shuffle driven by the seed.
            let n = items.len();
            let mut s = seed;
            for i in (1..n).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let j = (s >> 33) as usize % (i + 1);
                items.swap(i, j);
            }
            let mut b = MultisetDigest::default();
            for i in &items { b.add(&h(*i)); }
            prop_assert_eq!(a, b);
        }

        #[test]
        fn partitions_merge_to_the_whole(items in proptest::collection::vec(0u32..50, 0..40), cut in 0usize..40) {
            let cut = cut.min(items.len());
            let mut whole = MultisetDigest::default();
            for i in &items { whole.add(&h(*i)); }
            let (mut p1, mut p2) = (MultisetDigest::default(), MultisetDigest::default());
            for i in &items[..cut] { p1.add(&h(*i)); }
            for i in &items[cut..] { p2.add(&h(*i)); }
            p2.merge(&p1);
            prop_assert_eq!(whole, p2);
        }

        #[test]
        fn different_multisets_differ(a in proptest::collection::vec(0u32..8, 0..12), b in proptest::collection::vec(0u32..8, 0..12)) {
            let mut sa = a.clone(); sa.sort();
            let mut sb = b.clone(); sb.sort();
            let mut da = MultisetDigest::default();
            for i in &a { da.add(&h(*i)); }
            let mut db = MultisetDigest::default();
            for i in &b { db.add(&h(*i)); }
            prop_assert_eq!(da == db, sa == sb);
        }
    }
}
