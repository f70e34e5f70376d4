//! Versioned model files: the model with its parameters, the ids it was trained on, a
//! fingerprint of the training data and its offline metrics. JSON (callers may compress it);
//! [`FORMAT_VERSION`] changes when the layout does, and older versions stay loadable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tailor_core::Interactions;
use xxhash_rust::xxh3::Xxh3;

use crate::als::AlsModel;
use crate::bpr::BprModel;
use crate::content::ContentModel;
use crate::ease::EaseModel;
use crate::error::{RecommendError, Result};
use crate::hybrid::HybridModel;
use crate::knn::ItemKnn;
use crate::popularity::{Popularity, Trending};
use crate::{Filter, History, Model};

/// Newest layout this build writes.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &str = "tailor-model";

/// Any trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AnyModel {
    /// Most interacted items, the same list for everyone.
    Popular(Popularity),
    /// Trending (time-decayed popularity).
    Trending(Trending),
    /// Item-kNN.
    Itemknn(ItemKnn),
    /// Implicit ALS.
    Als(AlsModel),
    /// BPR.
    Bpr(BprModel),
    /// EASE.
    Ease(EaseModel),
    /// Content-based TF-IDF.
    Content(ContentModel),
    /// EASE + content blended by item interaction count.
    Hybrid(HybridModel),
    /// Baseline rating predictor.
    Biases(crate::biases::BiasModel),
}

impl AnyModel {
    /// The model behind the enum.
    pub fn as_model(&self) -> &dyn Model {
        match self {
            Self::Popular(m) => m,
            Self::Trending(m) => m,
            Self::Itemknn(m) => m,
            Self::Als(m) => m,
            Self::Bpr(m) => m,
            Self::Ease(m) => m,
            Self::Content(m) => m,
            Self::Hybrid(m) => m,
            Self::Biases(m) => m,
        }
    }
}

impl Model for AnyModel {
    fn name(&self) -> &'static str {
        self.as_model().name()
    }

    fn n_items(&self) -> usize {
        self.as_model().n_items()
    }

    fn score(&self, user: Option<u32>, history: History<'_>, out: &mut [f32]) {
        self.as_model().score(user, history, out);
    }

    fn similar_items(&self, item: u32, k: usize) -> Vec<(u32, f32)> {
        self.as_model().similar_items(item, k)
    }

    fn recommend_batch(&self, users: &[(Option<u32>, History<'_>)], k: usize, filter: &Filter) -> Vec<Vec<(u32, f32)>> {
        self.as_model().recommend_batch(users, k, filter)
    }

    fn explain(&self, history: History<'_>, item: u32) -> Vec<(u32, f32)> {
        self.as_model().explain(history, item)
    }
}

/// The content of a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// Always `tailor-model`.
    pub format: String,
    /// Layout version.
    pub version: u32,
    /// When it was trained (RFC 3339).
    pub created_at: String,
    /// xxh3-128 of the training matrix (shape, pointers, indices, weights), hex.
    pub fingerprint: String,
    /// Offline metrics measured for it (name → value), if any.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// User ids in row order.
    pub users: Vec<String>,
    /// Item ids in column order.
    pub items: Vec<String>,
    /// The model.
    pub model: AnyModel,
}

/// Fingerprint of a training matrix.
pub fn fingerprint(m: &Interactions) -> String {
    let mut h = Xxh3::new();
    h.update(&(m.n_users() as u64).to_le_bytes());
    h.update(&(m.n_items() as u64).to_le_bytes());
    for p in m.indptr() {
        h.update(&(*p as u64).to_le_bytes());
    }
    for i in m.indices() {
        h.update(&i.to_le_bytes());
    }
    for w in m.data() {
        h.update(&w.to_bits().to_le_bytes());
    }
    format!("{:032x}", h.digest128())
}

/// The id an erased user's row keeps in a model file.
pub const ERASED_USER: &str = "\u{0}erased";

impl ModelFile {
    /// Forgets the users `erased(id)` names (right to erasure): their id becomes
    /// [`ERASED_USER`] and every per-user parameter of the model (factor rows, biases) is
    /// zeroed. Returns the rows forgotten, each with its row index (the user's dense index
    /// at training, which companion files such as a context model share).
    pub fn forget_users(&mut self, erased: impl Fn(&str) -> bool) -> Vec<usize> {
        self.forget_users_at(|_, id| erased(id))
    }

    /// [`ModelFile::forget_users`] deciding by (row, id); rows already forgotten are skipped.
    pub fn forget_users_at(&mut self, erased: impl Fn(usize, &str) -> bool) -> Vec<usize> {
        let rows: Vec<usize> =
            (0..self.users.len()).filter(|&r| self.users[r] != ERASED_USER && erased(r, &self.users[r])).collect();
        for &r in &rows {
            self.users[r] = ERASED_USER.to_string();
            let zero = |v: &mut Vec<f32>, k: usize| {
                if let Some(row) = v.get_mut(r * k..(r + 1) * k) {
                    row.fill(0.0);
                }
            };
            match &mut self.model {
                AnyModel::Als(m) => zero(&mut m.user_factors, m.k),
                AnyModel::Bpr(m) => zero(&mut m.user_factors, m.k),
                AnyModel::Biases(m) => zero(&mut m.user_bias, 1),
                // Item-side models keep nothing per user.
                AnyModel::Popular(_)
                | AnyModel::Trending(_)
                | AnyModel::Itemknn(_)
                | AnyModel::Ease(_)
                | AnyModel::Content(_)
                | AnyModel::Hybrid(_) => {}
            }
        }
        rows
    }

    /// A file for `model` trained on `m` with these ids.
    pub fn new(model: AnyModel, m: &Interactions, users: Vec<String>, items: Vec<String>, created_at: String) -> Self {
        Self::with_fingerprint(model, fingerprint(m), users, items, created_at)
    }

    /// A file for `model` whose training data had this [`fingerprint`] (computed when the
    /// matrix was at hand).
    pub fn with_fingerprint(
        model: AnyModel,
        fingerprint: String,
        users: Vec<String>,
        items: Vec<String>,
        created_at: String,
    ) -> Self {
        Self {
            format: MAGIC.into(),
            version: FORMAT_VERSION,
            created_at,
            fingerprint,
            metrics: BTreeMap::new(),
            users,
            items,
            model,
        }
    }

    /// The model as JSON bytes (what the registry gzips into a version's file).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| RecommendError::InvalidData(format!("cannot encode the model: {e}")))
    }

    /// Parses and checks a file (any version up to [`FORMAT_VERSION`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        #[derive(Deserialize)]
        struct Head {
            format: String,
            version: u32,
        }
        let head: Head = serde_json::from_slice(bytes)
            .map_err(|e| RecommendError::InvalidData(format!("not a tailor model file: {e}")))?;
        if head.format != MAGIC {
            return Err(RecommendError::InvalidData(format!("not a tailor model file (format {:?})", head.format)));
        }
        if head.version > FORMAT_VERSION {
            return Err(RecommendError::InvalidData(format!(
                "model file version {} is newer than this tailor understands ({FORMAT_VERSION}); upgrade tailor",
                head.version
            )));
        }
        let f: ModelFile = serde_json::from_slice(bytes)
            .map_err(|e| RecommendError::InvalidData(format!("damaged model file: {e}")))?;
        if f.model.n_items() != f.items.len() {
            return Err(RecommendError::InvalidData(format!(
                "damaged model file: the model knows {} items but the file lists {}",
                f.model.n_items(),
                f.items.len()
            )));
        }
        Ok(f)
    }
}
