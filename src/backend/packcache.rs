//! A lazily rebuilt set of packed GEMM right-hand factors (one [`PackedB`]
//! per layer) that lives beside a network's parameters.
//!
//! Inference takes `&self` and may run on many threads at once, so the
//! packs sit behind a `RwLock`: the first reader after a change rebuilds
//! them under the write lock, every later call only takes a read lock.
//! Whoever changes the parameters (through `&mut`) calls
//! [`PackCache::invalidate`]. Buffers are kept and reused, so repacking
//! after each optimiser step allocates nothing.

use std::ops::Deref;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use super::gemm::PackedB;

#[derive(Default)]
struct State {
    fresh: bool,
    packs: Vec<PackedB>,
}

/// Packed factors, rebuilt on first use after [`PackCache::invalidate`].
/// `Clone` gives an empty (stale) cache and `==` is always true, so a
/// network holding one compares and clones by its parameters only.
#[derive(Default)]
pub struct PackCache(RwLock<State>);

/// Read access to the current packs (`[PackedB]`, one per layer).
pub struct Packs<'a>(RwLockReadGuard<'a, State>);

impl Deref for Packs<'_> {
    type Target = [PackedB];
    fn deref(&self) -> &[PackedB] {
        &self.0.packs
    }
}

impl PackCache {
    /// The packs, first rebuilt with `build` (which fills the given vector
    /// in place) if they are stale.
    pub fn get(&self, build: impl FnOnce(&mut Vec<PackedB>)) -> Packs<'_> {
        {
            let r = self.0.read().unwrap_or_else(PoisonError::into_inner);
            if r.fresh {
                return Packs(r);
            }
        }
        {
            let mut w = self.0.write().unwrap_or_else(PoisonError::into_inner);
            if !w.fresh {
                build(&mut w.packs);
                w.fresh = true;
            }
        }
        Packs(self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Mark the packs stale (the parameters they were built from changed).
    pub fn invalidate(&mut self) {
        self.0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .fresh = false;
    }
}

impl Clone for PackCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for PackCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for PackCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PackCache")
    }
}
