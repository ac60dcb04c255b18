//! RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification.
//!
//! [`Tree`] keeps every complete subtree hash, level by level (`levels[0]` are the leaf hashes,
//! `levels[k][i]` is the root of leaves `i*2^k .. (i+1)*2^k`). Those are exactly the hashes that
//! C2SP tlog-tiles publish (a level-`L` tile holds `levels[8L]`), and any hash that a proof needs,
//! `MTH(D[a:b])` for the ranges the RFC recursion visits, is one lookup or a short fold of
//! lookups. Appending a leaf costs one leaf hash plus, amortised, one node hash.
//!
//! The verifiers follow RFC 9162 section 2.1.3.2 and 2.1.4.2 literally; they take no tree and
//! are what a third party runs.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, node hash or tree root.
pub type Hash = [u8; 32];

/// A proof that cannot be built or does not verify. Names sizes and indices only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The index is not inside the tree.
    #[error("index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A size larger than the tree that is known.
    #[error("tree size {size} is larger than the log ({available})")]
    SizeOutOfRange {
        /// The size asked for.
        size: u64,
        /// The size available.
        available: u64,
    },
    /// Old size larger than new size in a consistency proof.
    #[error("consistency from size {old} to smaller size {new}")]
    SizesReversed {
        /// The first size.
        old: u64,
        /// The second size.
        new: u64,
    },
    /// The proof has the wrong number of hashes for the sizes.
    #[error("proof has the wrong number of hashes ({len}) for its sizes")]
    WrongLength {
        /// Number of hashes in the proof.
        len: usize,
    },
    /// The recomputed root does not match the expected root.
    #[error("proof does not lead to the expected root")]
    RootMismatch,
}

/// `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// An append-only Merkle tree that remembers every complete subtree hash.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Tree {
            levels: vec![Vec::new()],
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Append a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        let mut carry = leaf;
        let mut level = 0usize;
        loop {
            let Some(row) = self.levels.get_mut(level) else {
                self.levels.push(vec![carry]);
                return;
            };
            row.push(carry);
            let n = row.len();
            if n % 2 != 0 {
                return;
            }
            match (row.get(n - 2), row.get(n - 1)) {
                (Some(l), Some(r)) => carry = node_hash(l, r),
                _ => return,
            }
            level += 1;
        }
    }

    /// The complete subtree hashes at `level` (`level 0` = leaf hashes).
    pub fn level(&self, level: usize) -> &[Hash] {
        self.levels.get(level).map_or(&[], Vec::as_slice)
    }

    /// `MTH(D[start:end])` for a range the RFC recursion produces (`start` aligned to the
    /// largest power of two that fits).
    fn range_hash(&self, start: u64, end: u64) -> Result<Hash, ProofError> {
        let n = end - start;
        if n == 0 {
            return Ok(empty_root());
        }
        if n.is_power_of_two() && start.is_multiple_of(n) {
            let level = n.trailing_zeros() as usize;
            let idx = usize::try_from(start / n).map_err(|_| ProofError::SizeOutOfRange {
                size: end,
                available: self.size(),
            })?;
            return self
                .levels
                .get(level)
                .and_then(|row| row.get(idx))
                .copied()
                .ok_or(ProofError::SizeOutOfRange {
                    size: end,
                    available: self.size(),
                });
        }
        let k = split(n);
        Ok(node_hash(
            &self.range_hash(start, start + k)?,
            &self.range_hash(start + k, end)?,
        ))
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        if size > self.size() {
            return Err(ProofError::SizeOutOfRange {
                size,
                available: self.size(),
            });
        }
        Ok(())
    }

    /// The root of the tree made of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        self.range_hash(0, size)
    }

    /// The audit path for leaf `index` in the tree of the first `size` leaves (RFC 6962 2.1.1).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        let mut out = Vec::new();
        self.path(index, 0, size, &mut out)?;
        Ok(out)
    }

    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) -> Result<(), ProofError> {
        let n = end - start;
        if n <= 1 {
            return Ok(());
        }
        let k = split(n);
        if m < k {
            self.path(m, start, start + k, out)?;
            out.push(self.range_hash(start + k, end)?);
        } else {
            self.path(m - k, start + k, end, out)?;
            out.push(self.range_hash(start, start + k)?);
        }
        Ok(())
    }

    /// The consistency proof between the trees of `old` and `new` leaves (RFC 6962 2.1.2).
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(new)?;
        if old > new {
            return Err(ProofError::SizesReversed { old, new });
        }
        let mut out = Vec::new();
        if old == 0 || old == new {
            return Ok(out);
        }
        self.subproof(old, 0, new, true, &mut out)?;
        Ok(out)
    }

    fn subproof(
        &self,
        m: u64,
        start: u64,
        end: u64,
        whole: bool,
        out: &mut Vec<Hash>,
    ) -> Result<(), ProofError> {
        let n = end - start;
        if m == n {
            if !whole {
                out.push(self.range_hash(start, end)?);
            }
            return Ok(());
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, start, start + k, whole, out)?;
            out.push(self.range_hash(start + k, end)?);
        } else {
            self.subproof(m - k, start + k, end, false, out)?;
            out.push(self.range_hash(start, start + k)?);
        }
        Ok(())
    }
}

/// Verify that `leaf` is at `index` in the tree of `size` leaves with root `root`
/// (RFC 9162 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut fnode = index;
    let mut snode = size - 1;
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength { len: proof.len() });
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength { len: proof.len() });
    }
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verify that the tree of `old` leaves with root `old_root` is a prefix of the tree of `new`
/// leaves with root `new_root` (RFC 9162 2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::SizesReversed { old, new });
    }
    if old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength { len: proof.len() });
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if old == 0 {
        // Every tree extends the empty tree; a non-empty proof is malformed.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength { len: proof.len() })
        };
    }
    let Some((first, rest)) = proof.split_first() else {
        return Err(ProofError::WrongLength { len: 0 });
    };
    // If `old` is a power of two, the old root is itself the first node of the path.
    let (seed, tail): (Hash, &[Hash]) = if old.is_power_of_two() {
        (*old_root, proof)
    } else {
        (*first, rest)
    };
    let mut fnode = old - 1;
    let mut snode = new - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut fr = seed;
    let mut sr = seed;
    for c in tail {
        if snode == 0 {
            return Err(ProofError::WrongLength { len: proof.len() });
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength { len: proof.len() });
    }
    if &fr != old_root || &sr != new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The textbook recursive definitions from RFC 6962, over a slice of leaf hashes.
    fn naive_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
            }
        }
    }

    fn naive_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return vec![];
        }
        let k = split(n as u64) as usize;
        if m < k {
            let mut p = naive_path(m, &leaves[..k]);
            p.push(naive_root(&leaves[k..]));
            p
        } else {
            let mut p = naive_path(m - k, &leaves[k..]);
            p.push(naive_root(&leaves[..k]));
            p
        }
    }

    fn naive_subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b { vec![] } else { vec![naive_root(leaves)] };
        }
        let k = split(n as u64) as usize;
        if m <= k {
            let mut p = naive_subproof(m, &leaves[..k], b);
            p.push(naive_root(&leaves[k..]));
            p
        } else {
            let mut p = naive_subproof(m - k, &leaves[k..], false);
            p.push(naive_root(&leaves[..k]));
            p
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    fn tree_of(ls: &[Hash]) -> Tree {
        let mut t = Tree::new();
        for l in ls {
            t.push(*l);
        }
        t
    }

    #[test]
    fn split_is_largest_power_below() {
        assert_eq!(split(2), 1);
        assert_eq!(split(3), 2);
        assert_eq!(split(4), 2);
        assert_eq!(split(5), 4);
        assert_eq!(split(1 << 40), 1 << 39);
        assert_eq!(split((1 << 40) + 1), 1 << 40);
    }

    #[test]
    fn exhaustive_small_trees_match_naive() {
        let ls = leaves(70);
        let t = tree_of(&ls);
        for n in 0..=70usize {
            assert_eq!(t.root(n as u64).unwrap(), naive_root(&ls[..n]), "root {n}");
            for m in 0..n {
                let p = t.inclusion_proof(m as u64, n as u64).unwrap();
                assert_eq!(p, naive_path(m, &ls[..n]));
                verify_inclusion(m as u64, n as u64, &ls[m], &p, &naive_root(&ls[..n])).unwrap();
            }
            for m in 1..n {
                let p = t.consistency_proof(m as u64, n as u64).unwrap();
                assert_eq!(p, naive_subproof(m, &ls[..n], true), "consistency {m} {n}");
                verify_consistency(
                    m as u64,
                    n as u64,
                    &p,
                    &naive_root(&ls[..m]),
                    &naive_root(&ls[..n]),
                )
                .unwrap();
            }
        }
    }

    proptest! {
        #[test]
        fn proofs_match_naive_reference(n in 1usize..600, a in 0usize..600, b in 0usize..600) {
            let ls = leaves(n);
            let t = tree_of(&ls);
            let size = 1 + b % n;
            let m = a % size;
            prop_assert_eq!(t.root(size as u64).unwrap(), naive_root(&ls[..size]));
            let p = t.inclusion_proof(m as u64, size as u64).unwrap();
            prop_assert_eq!(&p, &naive_path(m, &ls[..size]));
            let root = naive_root(&ls[..size]);
            prop_assert!(verify_inclusion(m as u64, size as u64, &ls[m], &p, &root).is_ok());
            if m > 0 {
                let c = t.consistency_proof(m as u64, size as u64).unwrap();
                prop_assert_eq!(&c, &naive_subproof(m, &ls[..size], true));
                let old = naive_root(&ls[..m]);
                prop_assert!(verify_consistency(m as u64, size as u64, &c, &old, &root).is_ok());
            }
        }
    }
}
