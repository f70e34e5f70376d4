//! What a request reads: the served catalog and the live models, each immutable and swapped
//! whole, and the generation number that names the pair (cached lists of an older
//! generation are stale).
//!
//! **Invariant:** every swap bumps the generation after the new value is visible, so a
//! reader that saw generation `g` and then loaded the catalog and models never caches a list
//! computed from older ones under a newer `g`. Only this module writes the three.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::live::{Catalog, Live};

/// The served catalog and models of one node.
pub struct Snapshots {
    catalog: ArcSwap<Catalog>,
    live: ArcSwapOption<Live>,
    generation: AtomicU64,
}

/// One request's view: the generation it read, then the catalog and models (never older
/// than that generation).
#[derive(Clone)]
pub struct Pinned {
    /// The generation read first.
    pub generation: u64,
    /// The catalog.
    pub catalog: Arc<Catalog>,
    /// The models (`None` before the first training).
    pub live: Option<Arc<Live>>,
}

impl Snapshots {
    /// A catalog and no models yet, at generation 1.
    pub fn new(catalog: Catalog) -> Self {
        Self { catalog: ArcSwap::from_pointee(catalog), live: ArcSwapOption::empty(), generation: AtomicU64::new(1) }
    }

    /// The served catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    /// The live models, if trained.
    pub fn live(&self) -> Option<Arc<Live>> {
        self.live.load_full()
    }

    /// The live version number, if trained.
    pub fn live_version(&self) -> Option<u64> {
        self.live.load().as_ref().map(|l| l.version)
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The generation, then the catalog and models, for one request.
    pub fn pin(&self) -> Pinned {
        let generation = self.generation();
        Pinned { generation, catalog: self.catalog(), live: self.live() }
    }

    /// Serves `catalog` from now on (after upserts or events naming new items).
    pub fn set_catalog(&self, catalog: Catalog) {
        self.catalog.store(Arc::new(catalog));
        self.bump();
    }

    /// Serves a new model version with the catalog dated by its data.
    pub fn go_live(&self, live: Live, catalog: Catalog) {
        self.catalog.store(Arc::new(catalog));
        self.live.store(Some(Arc::new(live)));
        self.bump();
    }

    /// Marks every cached list stale although neither changed (an experiment started or
    /// stopped, so lists are assigned differently).
    pub fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_swap_moves_the_generation_on_and_a_pin_is_never_newer_than_what_it_holds() {
        let s = Snapshots::new(Catalog::default());
        let g0 = s.generation();
        let pinned = s.pin();
        assert_eq!(pinned.generation, g0);
        assert!(pinned.live.is_none() && s.live_version().is_none());
        s.set_catalog(Catalog::default());
        assert_eq!(s.generation(), g0 + 1);
        assert!(!Arc::ptr_eq(&pinned.catalog, &s.catalog()), "the pin keeps the catalog it read");
        s.bump();
        assert_eq!(s.generation(), g0 + 2);
    }
}
