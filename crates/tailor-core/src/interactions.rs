//! The user × item interaction matrix in CSR form, and its builder.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::event::EventKind;
use crate::ids::{ItemIdx, UserIdx};
use crate::time::Timestamp;

/// How much each event kind counts, and how fast old events fade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InteractionWeights {
    /// Weight of a view.
    pub view: f32,
    /// Weight of a click.
    pub click: f32,
    /// Weight of an add-to-cart.
    pub add_to_cart: f32,
    /// Weight of a remove-from-cart (negative undoes part of a cart).
    pub remove_from_cart: f32,
    /// Weight of a purchase (per unit when `use_quantity`).
    pub purchase: f32,
    /// Weight of a return (negative undoes a purchase).
    pub r#return: f32,
    /// Weight of an impression (0: impressions are not interest).
    pub impression: f32,
    /// Weight of a search with an item.
    pub search: f32,
    /// Multiplier of the rating value of a rating event.
    pub rating: f32,
    /// Weight of a wish-list add.
    pub wishlist: f32,
    /// Multiply purchase and return weights by the quantity.
    pub use_quantity: bool,
    /// Half-life of an event's weight in days; 0 turns decay off.
    pub half_life_days: f64,
}

impl Default for InteractionWeights {
    fn default() -> Self {
        Self {
            view: 1.0,
            click: 1.0,
            add_to_cart: 3.0,
            remove_from_cart: -1.0,
            purchase: 5.0,
            r#return: -5.0,
            impression: 0.0,
            search: 0.0,
            rating: 1.0,
            wishlist: 2.0,
            use_quantity: false,
            half_life_days: 0.0,
        }
    }
}

impl InteractionWeights {
    /// The weight of one event of `kind`.
    pub fn weight(&self, kind: EventKind) -> f32 {
        match kind {
            EventKind::View => self.view,
            EventKind::Click => self.click,
            EventKind::AddToCart => self.add_to_cart,
            EventKind::RemoveFromCart => self.remove_from_cart,
            EventKind::Purchase => self.purchase,
            EventKind::Return => self.r#return,
            EventKind::Impression => self.impression,
            EventKind::Search => self.search,
            EventKind::Rating => self.rating,
            EventKind::Wishlist => self.wishlist,
        }
    }

    /// Checks every weight is finite and the half-life is not negative.
    pub fn validate(&self) -> Result<()> {
        for k in EventKind::ALL {
            if !self.weight(k).is_finite() {
                return Err(CoreError::invalid("interactions.weights", format!("weight of {k} is not finite")));
            }
        }
        if !(self.half_life_days >= 0.0 && self.half_life_days.is_finite()) {
            return Err(CoreError::invalid(
                "interactions.half_life_days",
                format!("{} must be a finite number >= 0", self.half_life_days),
            ));
        }
        Ok(())
    }
}

/// Sparse user × item matrix of summed, positive weights (CSR: rows are users, sorted columns).
#[derive(Debug, Clone, PartialEq)]
pub struct Interactions {
    n_users: usize,
    n_items: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<f32>,
}

impl Interactions {
    /// Builds from raw CSR arrays, checking their shape.
    pub fn from_csr(
        n_users: usize,
        n_items: usize,
        indptr: Vec<usize>,
        indices: Vec<u32>,
        data: Vec<f32>,
    ) -> Result<Self> {
        let ok = indptr.len() == n_users + 1
            && indptr.first() == Some(&0)
            && indptr.last() == Some(&indices.len())
            && indices.len() == data.len()
            && indptr.windows(2).all(|w| w[0] <= w[1])
            && indptr.windows(2).all(|w| indices[w[0]..w[1]].windows(2).all(|p| p[0] < p[1]))
            && indices.iter().all(|&i| (i as usize) < n_items);
        if !ok {
            return Err(CoreError::invalid("interactions", "malformed CSR arrays"));
        }
        Ok(Self { n_users, n_items, indptr, indices, data })
    }

    /// Number of rows (users).
    pub fn n_users(&self) -> usize {
        self.n_users
    }

    /// Number of columns (items).
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// Number of stored (user, item) pairs.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// The items of `user` (sorted) and their weights.
    pub fn row(&self, user: UserIdx) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[user.index()], self.indptr[user.index() + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// Row pointers (`n_users + 1`).
    pub fn indptr(&self) -> &[usize] {
        &self.indptr
    }

    /// Column indices.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// The weights, aligned with [`Self::indices`].
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The weight of (user, item), zero when absent.
    pub fn get(&self, user: UserIdx, item: ItemIdx) -> f32 {
        let (idx, w) = self.row(user);
        idx.binary_search(&item.0).map_or(0.0, |p| w[p])
    }

    /// The item × user matrix.
    pub fn transpose(&self) -> Interactions {
        let mut counts = vec![0usize; self.n_items + 1];
        for &i in &self.indices {
            counts[i as usize + 1] += 1;
        }
        for i in 0..self.n_items {
            counts[i + 1] += counts[i];
        }
        let indptr = counts.clone();
        let mut next = counts;
        let mut indices = vec![0u32; self.nnz()];
        let mut data = vec![0f32; self.nnz()];
        for u in 0..self.n_users {
            for p in self.indptr[u]..self.indptr[u + 1] {
                let i = self.indices[p] as usize;
                indices[next[i]] = u as u32;
                data[next[i]] = self.data[p];
                next[i] += 1;
            }
        }
        Interactions { n_users: self.n_items, n_items: self.n_users, indptr, indices, data }
    }
}

/// Collects weighted events and turns them into [`Interactions`].
#[derive(Debug, Clone)]
pub struct InteractionsBuilder {
    weights: InteractionWeights,
    per_kind: [f32; 10],
    as_of: Option<Timestamp>,
    users: Vec<u32>,
    items: Vec<u32>,
    values: Vec<f32>,
    times: Vec<i64>,
    max_ts: i64,
}

impl InteractionsBuilder {
    /// A builder using `weights`; decay (if on) is relative to the newest event seen.
    pub fn new(weights: InteractionWeights) -> Self {
        let per_kind = EventKind::ALL.map(|k| weights.weight(k));
        Self {
            weights,
            per_kind,
            as_of: None,
            users: vec![],
            items: vec![],
            values: vec![],
            times: vec![],
            max_ts: i64::MIN,
        }
    }

    /// Decay relative to `as_of` instead of the newest event.
    pub fn as_of(mut self, as_of: Timestamp) -> Self {
        self.as_of = Some(as_of);
        self
    }

    /// Reserves room for `n` more events.
    pub fn reserve(&mut self, n: usize) {
        self.users.reserve(n);
        self.items.reserve(n);
        self.values.reserve(n);
        if self.weights.half_life_days > 0.0 {
            self.times.reserve(n);
        }
    }

    /// Adds one event. `rating` is the value of rating events (ignored for other kinds).
    pub fn push(&mut self, user: UserIdx, item: ItemIdx, kind: EventKind, ts: Timestamp, quantity: u32) {
        self.push_rated(user, item, kind, ts, quantity, 1.0);
    }

    /// Adds one event with its rating value.
    pub fn push_rated(
        &mut self,
        user: UserIdx,
        item: ItemIdx,
        kind: EventKind,
        ts: Timestamp,
        quantity: u32,
        rating: f32,
    ) {
        let mut w = self.per_kind[kind.code() as usize];
        if w == 0.0 {
            return;
        }
        match kind {
            EventKind::Rating => w *= rating,
            EventKind::Purchase | EventKind::Return if self.weights.use_quantity => w *= quantity as f32,
            _ => {}
        }
        self.users.push(user.0);
        self.items.push(item.0);
        self.values.push(w);
        if self.weights.half_life_days > 0.0 {
            self.times.push(ts.0);
        }
        self.max_ts = self.max_ts.max(ts.0);
    }

    /// Number of events kept so far.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when no event was kept.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Sums repeated (user, item) pairs, drops pairs whose total is not positive, and returns
    /// the CSR matrix of shape `n_users × n_items` (both at least one past the largest index).
    pub fn build(mut self, n_users: usize, n_items: usize) -> Interactions {
        if self.weights.half_life_days > 0.0 {
            let now = self.as_of.map_or(self.max_ts, |t| t.0);
            let per_ms = std::f64::consts::LN_2 / (self.weights.half_life_days * 86_400_000.0);
            for (v, &t) in self.values.iter_mut().zip(&self.times) {
                let age = (now - t).max(0) as f64;
                *v *= (-age * per_ms).exp() as f32;
            }
        }
        let n_users = n_users.max(self.users.iter().map(|&u| u as usize + 1).max().unwrap_or(0));
        let n_items = n_items.max(self.items.iter().map(|&i| i as usize + 1).max().unwrap_or(0));
        // Counting sort by user keeps event order inside each row, so sums are reproducible.
        let mut start = vec![0usize; n_users + 1];
        for &u in &self.users {
            start[u as usize + 1] += 1;
        }
        for u in 0..n_users {
            start[u + 1] += start[u];
        }
        let mut next = start.clone();
        let mut pairs = vec![(0u32, 0f32); self.users.len()];
        for ((&u, &i), &v) in self.users.iter().zip(&self.items).zip(&self.values) {
            pairs[next[u as usize]] = (i, v);
            next[u as usize] += 1;
        }
        let mut indptr = Vec::with_capacity(n_users + 1);
        let mut indices = Vec::with_capacity(pairs.len());
        let mut data = Vec::with_capacity(pairs.len());
        indptr.push(0);
        for u in 0..n_users {
            let row = &mut pairs[start[u]..start[u + 1]];
            row.sort_by_key(|p| p.0); // stable: equal items keep event order
            let mut k = 0;
            while k < row.len() {
                let item = row[k].0;
                let mut sum = 0f32;
                while k < row.len() && row[k].0 == item {
                    sum += row[k].1;
                    k += 1;
                }
                if sum > 0.0 {
                    indices.push(item);
                    data.push(sum);
                }
            }
            indptr.push(indices.len());
        }
        Interactions { n_users, n_items, indptr, indices, data }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn naive(events: &[(u32, u32, EventKind, i64)], w: &InteractionWeights) -> BTreeMap<(u32, u32), f32> {
        let mut m = BTreeMap::new();
        for &(u, i, k, _) in events {
            let x = w.weight(k);
            if x != 0.0 {
                *m.entry((u, i)).or_insert(0f32) += x;
            }
        }
        m.retain(|_, v| *v > 0.0);
        m
    }

    fn kind() -> impl Strategy<Value = EventKind> {
        (0u8..10).prop_map(|c| EventKind::from_code(c).expect("code < 10"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn csr_equals_naive_map(events in prop::collection::vec((0u32..20, 0u32..30, kind(), 0i64..1000), 0..400)) {
            let w = InteractionWeights::default();
            let mut b = InteractionsBuilder::new(w.clone());
            for &(u, i, k, t) in &events {
                b.push(UserIdx(u), ItemIdx(i), k, Timestamp(t), 1);
            }
            let m = b.build(20, 30);
            let expect = naive(&events, &w);
            let mut got = BTreeMap::new();
            for u in 0..m.n_users() {
                let (idx, vals) = m.row(UserIdx(u as u32));
                prop_assert!(idx.windows(2).all(|p| p[0] < p[1]));
                for (&i, &v) in idx.iter().zip(vals) {
                    got.insert((u as u32, i), v);
                }
            }
            prop_assert_eq!(got.len(), expect.len());
            for (k, v) in &expect {
                prop_assert!((got[k] - v).abs() < 1e-4, "{:?}: {} vs {}", k, got[k], v);
            }
            let t = m.transpose();
            prop_assert_eq!(t.nnz(), m.nnz());
            prop_assert_eq!(t.transpose(), m);
        }
    }

    #[test]
    fn decay_halves_per_half_life() {
        let w = InteractionWeights { half_life_days: 1.0, ..InteractionWeights::default() };
        let mut b = InteractionsBuilder::new(w);
        b.push(UserIdx(0), ItemIdx(0), EventKind::Purchase, Timestamp(0), 1);
        b.push(UserIdx(0), ItemIdx(1), EventKind::Purchase, Timestamp(86_400_000), 1);
        let m = b.build(1, 2);
        assert!((m.get(UserIdx(0), ItemIdx(0)) - 2.5).abs() < 1e-5);
        assert!((m.get(UserIdx(0), ItemIdx(1)) - 5.0).abs() < 1e-5);
    }

    #[test]
    fn returns_cancel_purchases_and_quantity_scales() {
        let w = InteractionWeights { use_quantity: true, ..InteractionWeights::default() };
        let mut b = InteractionsBuilder::new(w);
        b.push(UserIdx(0), ItemIdx(0), EventKind::Purchase, Timestamp(0), 2);
        b.push(UserIdx(0), ItemIdx(0), EventKind::Return, Timestamp(1), 2);
        b.push(UserIdx(1), ItemIdx(1), EventKind::Purchase, Timestamp(0), 3);
        let m = b.build(2, 2);
        assert_eq!(m.nnz(), 1);
        assert_eq!(m.get(UserIdx(1), ItemIdx(1)), 15.0);
        assert!(Interactions::from_csr(1, 1, vec![0, 1], vec![3], vec![1.0]).is_err());
    }
}
