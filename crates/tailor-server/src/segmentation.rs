//! Segmentation runs over a store: the population's features → k-means / mini-batch /
//! DBSCAN / Ward on the encoded features, RFM scores, or a rule file → explanations
//! (CART rules, auto-names, summaries, a 2-D map) → the run and its memberships stored.
//! Also one user's placement under a stored run. Used by `tailor segment`, `tailor demo`
//! and the benchmarks; the server's real-time placement reads the records written here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tailor_core::{Classified, ErrorKind, Event, Item, Timestamp, User};
use tailor_segment::cluster::{self, ClusterReport, Matrix};
use tailor_segment::explain::{self, SegmentSummary, TreeParams};
use tailor_segment::features::{self, Activity, FeatureTable, ItemTable};
use tailor_segment::pipeline::{self, Encoder};
use tailor_segment::rules::{self, Column, Env, SegmentRule};
use tailor_store::{EventFilter, SegmentDef, SegmentationRun, Store};

/// Why a run or a placement failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options are wrong (`--names 9=X` with 5 segments, `--method rules` without a file).
    #[error("{0}")]
    Usage(String),
    /// The data or a rule file cannot be segmented as asked (no events, a rule that does not
    /// parse: `path:line:column: why`).
    #[error("{0}")]
    Data(String),
    /// No such segmentation or user.
    #[error("{0}")]
    NotFound(String),
    /// A stored record cannot be read or written.
    #[error("{0}")]
    Corrupt(String),
    /// An algorithm refused its input.
    #[error(transparent)]
    Segment(#[from] tailor_segment::SegmentError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] tailor_store::StoreError),
    /// A rule file cannot be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    fn usage(message: impl Into<String>) -> Self {
        Self::Usage(message.into())
    }
}

impl Classified for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Usage(_) | Self::Data(_) | Self::Io(_) => ErrorKind::User,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Corrupt(_) => ErrorKind::Internal,
            Self::Segment(e) => e.kind(),
            Self::Store(e) => e.kind(),
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long each step took.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    /// Reading events and computing features.
    pub features: f64,
    /// Clustering / scoring / rules (with the k scan).
    pub segment: f64,
    /// Decision tree and summaries.
    pub explain: f64,
    /// Writing the run and memberships.
    pub store: f64,
    /// All of it.
    pub total: f64,
}

/// One segment's explanation rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleText {
    /// `monetary > 512 and recency_days <= 20.5`.
    pub rule: String,
    /// Share of users the rule selects that are in the segment.
    pub precision: f64,
    /// Share of the segment the rule selects.
    pub coverage: f64,
    /// Users the rule selects.
    pub support: usize,
}

/// Everything about a run, stored as the run's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// How the run segmented (`kmeans`, `rfm`, `rules`...; [`SegmentMethod::as_str`]).
    pub method: String,
    /// Feature time (ms).
    pub as_of: i64,
    /// Users segmented.
    pub users: usize,
    /// Numeric features the explanations use.
    pub feature_names: Vec<String>,
    /// Top categories whose shares are features.
    pub top_categories: Vec<String>,
    /// The fitted encoder (clustering methods).
    pub encoder: Option<Encoder>,
    /// Centre of each segment in the encoded space (clustering methods), for assignment.
    pub centroids: Vec<Vec<f64>>,
    /// Clustering report (k, inertia, silhouette, k scan).
    pub cluster: Option<ClusterReport>,
    /// The rules of a rules run.
    pub rules: Vec<SegmentRule>,
    /// The same rules compiled against the population (percentiles resolved), for
    /// assigning one user later exactly as the run did.
    #[serde(default)]
    pub compiled_rules: Vec<rules::Rule>,
    /// Segment names, in label order.
    pub names: Vec<String>,
    /// Explanation rules per segment (label order).
    pub explanations: Vec<Vec<RuleText>>,
    /// Accuracy of the explanation tree (share of users it puts in their segment).
    pub tree_accuracy: Option<f64>,
    /// Summaries (label order).
    pub summaries: Vec<SegmentSummary>,
    /// Seconds per step of the run.
    pub timings: Timings,
    /// The 2-D PCA map of (a sample of) the users, for the dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<SegmentMap>,
    /// The population's lifetime-value models behind `clv_90d`, `p_alive` and
    /// `purchases_90d`, for placing one user as the run did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clv: Option<tailor_segment::features::ClvModel>,
    /// Decile bins of every numeric feature over the run's population: the snapshot that
    /// feature drift (PSI) is measured against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feature_bins: Vec<tailor_segment::drift::Bins>,
}

/// Users on the first two principal components of the run's space (the clustering's
/// encoded features, or z-scored raw features for RFM and rules).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentMap {
    /// Share of variance each component explains.
    pub explained: Vec<f64>,
    /// Up to [`MAP_POINTS`] users, evenly sampled: (x, y, segment label or -1 for none).
    pub points: Vec<(f32, f32, i32)>,
    /// Each point's user as [`tailor_store::map_key`] (no id is stored): an erasure finds
    /// and removes the user's point.
    #[serde(default)]
    pub keys: Vec<u64>,
}

/// Most users a stored map holds.
pub const MAP_POINTS: usize = 2000;

/// Users' coordinates on two components, and the share of variance each explains.
pub type Projection = (Vec<(f64, f64)>, Vec<f64>);

/// Projects every user of `t` on the run space's first two principal components.
pub fn pca_points(encoder: Option<&Encoder>, t: &FeatureTable) -> Result<Projection> {
    let (x, d) = match encoder {
        Some(e) => (e.encode_table(t)?, e.width()),
        None => {
            let mut x = t.values.clone();
            tailor_segment::scale::ZScore::fit(&x, t.width())?.transform(&mut x);
            (x, t.width())
        }
    };
    let pca = tailor_segment::pca::Pca::fit(&x, d, 2)?;
    let y = pca.transform(&x);
    Ok((y.chunks_exact(2).map(|p| (p[0], p[1])).collect(), pca.explained_variance_ratio.clone()))
}

/// The map stored with a run: an even sample of the projected users with their segment.
fn segment_map(encoder: Option<&Encoder>, t: &FeatureTable, primary: &[Option<usize>]) -> Result<SegmentMap> {
    let (points, explained) = pca_points(encoder, t)?;
    let chosen = map_sample(primary, MAP_POINTS, MAP_MIN_PER_SEGMENT);
    let (points, keys) = chosen
        .into_iter()
        .map(|i| {
            let (p, g) = (points[i], primary[i]);
            ((p.0 as f32, p.1 as f32, g.map_or(-1, |g| g as i32)), tailor_store::map_key(&t.users[i]))
        })
        .unzip();
    Ok(SegmentMap { explained, points, keys })
}

/// Fewest points a segment keeps on a stored map (all of them when it is smaller), so a
/// small segment stays visible beside large ones.
const MAP_MIN_PER_SEGMENT: usize = 150;

/// About `budget` row indices, evenly spread within each group (by `labels`) in proportion
/// to its size but at least `min_per_group` (or all) of each; ascending.
fn map_sample(labels: &[Option<usize>], budget: usize, min_per_group: usize) -> Vec<usize> {
    let mut groups: std::collections::BTreeMap<Option<usize>, Vec<usize>> = Default::default();
    for (i, g) in labels.iter().enumerate() {
        groups.entry(*g).or_default().push(i);
    }
    let n = labels.len().max(1);
    let mut out = Vec::new();
    for members in groups.values() {
        let share = (members.len() * budget).div_ceil(n);
        let quota = share.max(min_per_group).min(members.len());
        let step = members.len() as f64 / quota.max(1) as f64;
        out.extend((0..quota).map(|k| members[((k as f64 * step) as usize).min(members.len() - 1)]));
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// How a run segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SegmentMethod {
    /// k-means over the encoded features.
    Kmeans,
    /// Mini-batch k-means.
    Minibatch,
    /// DBSCAN.
    Dbscan,
    /// Ward's agglomerative clustering.
    Ward,
    /// RFM scores and their named segments.
    Rfm,
    /// A rule file (`--rules`).
    Rules,
}

impl SegmentMethod {
    /// The name on the command line and in stored records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kmeans => "kmeans",
            Self::Minibatch => "minibatch",
            Self::Dbscan => "dbscan",
            Self::Ward => "ward",
            Self::Rfm => "rfm",
            Self::Rules => "rules",
        }
    }
}

/// What to segment and how (`tailor segment run`'s flags, the demo's presets).
pub struct RunOptions {
    /// How to segment.
    pub method: SegmentMethod,
    /// Number of clusters (clustering methods).
    pub k: cluster::K,
    /// Feature choices (`name[:method][*weight]`, comma separated).
    pub features: Option<String>,
    /// Rule file.
    pub rules: Option<PathBuf>,
    /// Features as of this time (events before it only).
    pub as_of: Option<Timestamp>,
    /// Segmentation name (default: the method).
    pub name: Option<String>,
    /// Names for clusters: `0=VIP,1=Bargain hunters`.
    pub names: Option<String>,
    /// DBSCAN radius.
    pub eps: Option<f64>,
    /// DBSCAN core threshold.
    pub min_samples: usize,
    /// k-means restarts.
    pub n_init: usize,
    /// Seed of k-means++, mini-batches, Ward's sample and the silhouette sample.
    pub seed: u64,
    /// How many top categories get share features.
    pub top_categories: usize,
    /// Compute and print, but store nothing.
    pub dry_run: bool,
}

impl Default for RunOptions {
    /// `segment run`'s defaults: k-means with k chosen by silhouette over every feature.
    fn default() -> Self {
        Self {
            method: SegmentMethod::Kmeans,
            k: cluster::K::Auto,
            features: None,
            rules: None,
            as_of: None,
            name: None,
            names: None,
            eps: None,
            min_samples: 5,
            n_init: 1,
            seed: 0,
            top_categories: 8,
            dry_run: false,
        }
    }
}

/// Users with activity, their features and the population.
pub struct Population {
    /// The feature table.
    pub table: FeatureTable,
}

/// The stored catalog as the features see it.
pub fn item_table(store: &dyn Store) -> Result<ItemTable> {
    let mut items: Vec<Item> = Vec::new();
    store.for_each_item(&mut |_, s| items.push(s.value))?;
    Ok(ItemTable::new(&items))
}

/// Reads the catalog, users and events (before `as_of`) and computes the feature table of
/// every user with at least one counted event.
pub fn population(store: &dyn Store, as_of: Option<Timestamp>, top_n: usize) -> Result<Population> {
    let mut pop = features::Population::new(item_table(store)?);
    let mut users: HashMap<String, User> = HashMap::new();
    store.for_each_user(&mut |_, s| {
        users.insert(s.value.id.0.clone(), s.value);
    })?;
    store.scan_events(EventFilter { since: None, until: as_of, kinds: None }, &mut |_, e: Event| {
        pop.push(&e);
        std::ops::ControlFlow::Continue(())
    })?;
    if pop.is_empty() {
        return Err(Error::Data(format!(
            "no user has events{}; import events first (or run `tailor demo`)",
            match as_of {
                Some(t) => format!(" before {t}"),
                None => String::new(),
            }
        )));
    }
    Ok(Population { table: pop.table(&users, as_of.map(|t| t.0), top_n) })
}

struct TableEnv<'a>(&'a FeatureTable);

impl Env for TableEnv<'_> {
    fn column(&self, name: &str) -> Option<Column> {
        self.0.column(name).map(Column::Num).or_else(|| self.0.categorical_column(name).map(Column::Cat))
    }
    fn names(&self) -> Vec<String> {
        let mut v = self.0.names.clone();
        v.extend(features::CATEGORICAL.iter().map(|s| (*s).to_owned()));
        v
    }
    fn numeric_values(&self, col: usize) -> Vec<f64> {
        (0..self.0.users.len()).map(|i| self.0.row(i)[col]).collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    segment: Vec<toml::Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    when: toml::Spanned<String>,
    #[serde(default)]
    priority: Option<i64>,
    #[serde(default)]
    description: Option<String>,
}

fn line_col(text: &str, byte: usize) -> (usize, usize) {
    let before = text.get(..byte.min(text.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Loads and compiles a rule file; errors name the file, line and column with a caret.
pub fn load_rules(path: &Path, t: &FeatureTable) -> Result<Vec<(SegmentRule, rules::Rule)>> {
    let text = fs_err::read_to_string(path)?;
    let file: RuleFile = toml::from_str(&text).map_err(|e| {
        let at = e.span().map(|s| line_col(&text, s.start));
        match at {
            Some((l, c)) => Error::Data(format!("{}:{l}:{c}: {}", path.display(), e.message())),
            None => Error::Data(format!("{}: {}", path.display(), e.message())),
        }
    })?;
    if file.segment.is_empty() {
        return Err(Error::Data(format!(
            "{}: no [[segment]] tables (each needs name = \"...\" and when = \"...\")",
            path.display()
        )));
    }
    let env = TableEnv(t);
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for raw in file.segment {
        let span = raw.span();
        let raw = raw.into_inner();
        if !seen.insert(raw.name.clone()) {
            let (l, c) = line_col(&text, span.start);
            return Err(Error::Data(format!("{}:{l}:{c}: segment {:?} is defined twice", path.display(), raw.name)));
        }
        let when_span = raw.when.span();
        let when = raw.when.into_inner();
        let rule = rules::compile(&when, &env).map_err(|e| {
            // The expression starts after the opening quote; basic strings without escapes map
            // byte for byte onto the file.
            let raw_src = text.get(when_span.start + 1..when_span.end.saturating_sub(1)).unwrap_or("");
            let (l, c) = if raw_src == when {
                line_col(&text, when_span.start + 1 + e.start)
            } else {
                line_col(&text, when_span.start)
            };
            Error::Data(format!(
                "{}:{l}:{c}: segment {:?}: {}\n{}",
                path.display(),
                raw.name,
                e.message,
                e.render(&when)
            ))
        })?;
        out.push((SegmentRule { name: raw.name, when, priority: raw.priority, description: raw.description }, rule));
    }
    // Priority order (stable: file order among equals and for unset priorities).
    out.sort_by_key(|(r, _)| r.priority.unwrap_or(i64::MAX));
    Ok(out)
}

fn parse_names(spec: &str, k: usize) -> Result<HashMap<usize, String>> {
    let mut m = HashMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (i, n) =
            part.split_once('=').ok_or_else(|| Error::usage(format!("--names {part:?}: expected LABEL=NAME")))?;
        let i: usize =
            i.trim().parse().map_err(|_| Error::usage(format!("--names {part:?}: {i:?} is not a label number")))?;
        if i >= k {
            return Err(Error::usage(format!(
                "--names {part:?}: there are only {k} segments (0..{})",
                k.saturating_sub(1)
            )));
        }
        m.insert(i, n.trim().to_owned());
    }
    Ok(m)
}

fn unique(names: &mut [String]) {
    for i in 0..names.len() {
        let mut n = 2;
        while names[..i].contains(&names[i]) {
            let base = names[i].split(" #").next().unwrap_or("").to_owned();
            names[i] = format!("{base} #{n}");
            n += 1;
        }
    }
}

/// What a run produced.
pub struct Outcome {
    /// What the run found (stored as the run's record unless a dry run).
    pub record: Record,
    /// Stored run id (None with --dry-run).
    pub run_id: Option<u64>,
    /// The segmentation's name (the method's unless one was given).
    pub name: String,
}

/// Runs a segmentation: the population's features, then the method's segments, their
/// explanations and map, then (unless a dry run) the run and its memberships stored in one
/// transaction.
pub fn run(store: &dyn Store, o: &RunOptions) -> Result<Outcome> {
    let started = Instant::now();
    let mut timings = Timings::default();
    let pop = population(store, o.as_of, o.top_categories)?;
    let t = &pop.table;
    timings.features = started.elapsed().as_secs_f64();
    let step = Instant::now();
    let n = t.users.len();
    let mut encoder = None;
    let mut centroids = Vec::new();
    let mut cluster_report = None;
    let mut stored_rules = Vec::new();
    let mut compiled_rules = Vec::new();
    // Per segment: name, description, member rows.
    let (names, descriptions, members): (Vec<String>, Vec<Option<String>>, Vec<Vec<usize>>) = match o.method {
        SegmentMethod::Rfm => {
            let (r, f, m) = (col(t, "recency_days")?, col(t, "frequency")?, col(t, "monetary")?);
            let buyers: Vec<usize> = (0..n).filter(|&i| t.row(i)[f] > 0.0).collect();
            if buyers.is_empty() {
                return Err(Error::Data(format!(
                    "no user has a purchase{}; RFM needs purchases",
                    o.as_of.map_or(String::new(), |a| format!(" before {a}"))
                )));
            }
            let measures: Vec<(f64, u32, f64)> =
                buyers.iter().map(|&i| (t.row(i)[r], t.row(i)[f] as u32, t.row(i)[m])).collect();
            let scores = tailor_segment::rfm::score(&measures);
            let all = tailor_segment::rfm::RfmSegment::ALL;
            let mut members = vec![Vec::new(); all.len()];
            for (&i, s) in buyers.iter().zip(&scores) {
                if let Some(k) = all.iter().position(|x| *x == s.3) {
                    members[k].push(i);
                }
            }
            let names = all.iter().map(|s| s.name().to_owned()).collect();
            let desc = all.iter().map(|s| Some(s.definition().to_owned())).collect();
            (names, desc, members)
        }
        SegmentMethod::Rules => {
            let path = o.rules.as_ref().ok_or_else(|| Error::usage("--method rules needs --rules FILE"))?;
            let compiled = load_rules(path, t)?;
            let mut members = vec![Vec::new(); compiled.len()];
            let mut cats: Vec<Option<&str>> = vec![None; features::CATEGORICAL.len()];
            for i in 0..n {
                for (k, c) in t.categorical.iter().enumerate() {
                    cats[k] = c[i].as_deref();
                }
                for (k, (_, rule)) in compiled.iter().enumerate() {
                    if rule.eval(t.row(i), &cats) {
                        members[k].push(i);
                    }
                }
            }
            let names = compiled.iter().map(|(r, _)| r.name.clone()).collect();
            let desc =
                compiled.iter().map(|(r, _)| Some(r.description.clone().unwrap_or_else(|| r.when.clone()))).collect();
            (stored_rules, compiled_rules) = compiled.into_iter().unzip();
            (names, desc, members)
        }
        SegmentMethod::Kmeans | SegmentMethod::Minibatch | SegmentMethod::Dbscan | SegmentMethod::Ward => {
            let spec = o.features.clone().unwrap_or_else(|| pipeline::DEFAULT_FEATURES.join(","));
            let choices = pipeline::parse_choices(&spec).map_err(|e| Error::usage(format!("--features: {e}")))?;
            let enc = Encoder::fit(&choices, t).map_err(|e| Error::usage(format!("--features: {e}")))?;
            let x = enc.encode_table(t)?;
            let d = enc.width();
            let method = cluster_method(o)?;
            let mut m = Matrix { x, d, columns: enc.names() };
            let opts = cluster::ClusterOptions { standardize: false, method, seed: o.seed, no_silhouette: false };
            let (report, labels) = cluster::run(&mut m, &opts, step)?;
            let k = report.k;
            let mut members = vec![Vec::new(); k];
            for (i, l) in labels.iter().enumerate() {
                if let Some(l) = l {
                    members[*l].push(i);
                }
            }
            centroids = members
                .iter()
                .map(|rows| {
                    let mut c = vec![0.0; d];
                    for &i in rows {
                        c.iter_mut().zip(&m.x[i * d..(i + 1) * d]).for_each(|(a, v)| *a += v);
                    }
                    c.iter_mut().for_each(|v| *v /= rows.len().max(1) as f64);
                    c
                })
                .collect();
            // Names from the standardised centroids of the raw features.
            let raw_cols: Vec<usize> = enc.numeric.iter().filter_map(|c| t.column(c)).collect();
            let raw = t.select(&raw_cols);
            let label_vec: Vec<usize> = labels.iter().map(|l| l.unwrap_or(usize::MAX)).collect();
            let z = explain::standardized_centroids(&raw, raw_cols.len().max(1), &label_vec, k)?;
            let mut names: Vec<String> = z.iter().map(|c| explain::auto_name(c, &enc.numeric, 3)).collect();
            unique(&mut names);
            let desc = names.iter().map(|n| Some(format!("auto-named: {n}"))).collect();
            encoder = Some(enc);
            cluster_report = Some(report);
            (names, desc, members)
        }
    };
    let mut names = names;
    if let Some(spec) = &o.names {
        for (i, n) in parse_names(spec, names.len())? {
            names[i] = n;
        }
        unique(&mut names);
    }
    timings.segment = step.elapsed().as_secs_f64();

    // Explain: a depth-3 tree over the raw numeric features, from features to primary segment.
    let step = Instant::now();
    let mut primary: Vec<Option<usize>> = vec![None; n];
    for (k, rows) in members.iter().enumerate() {
        for &i in rows {
            primary[i].get_or_insert(k);
        }
    }
    // Users in no segment (rules that match nobody, DBSCAN noise) form one more class, so
    // that a rule separates a segment from everyone else.
    let k = names.len();
    let has_rest = primary.iter().any(Option::is_none);
    let classes = k + usize::from(has_rest);
    let mut explanations = vec![Vec::new(); k];
    let mut tree_accuracy = None;
    if n > 0 && classes > 1 {
        let d = t.width();
        let y: Vec<usize> = primary.iter().map(|p| p.unwrap_or(k)).collect();
        let params = TreeParams { max_depth: 3, min_leaf: (n / 100).max(5) };
        let tree = params.fit(&t.values, d, &y, classes)?;
        tree_accuracy = Some(tree.accuracy(&t.values, d, &y));
        for r in tree.rules() {
            if r.precision >= 0.5
                && let Some(e) = explanations.get_mut(r.class)
            {
                e.push(RuleText {
                    rule: explain::render(&r.conditions, &t.names),
                    precision: r.precision,
                    coverage: r.coverage,
                    support: r.support,
                });
            }
        }
    }
    let named: Vec<(String, Vec<usize>)> = names.iter().cloned().zip(members.iter().cloned()).collect();
    let summaries = explain::summarize(t, &named);
    timings.explain = step.elapsed().as_secs_f64();

    let step = Instant::now();
    let name = o.name.clone().unwrap_or_else(|| o.method.as_str().to_string());
    let mut record = Record {
        method: o.method.as_str().to_string(),
        as_of: t.as_of,
        users: n,
        feature_names: t.names.clone(),
        top_categories: t.top_categories.clone(),
        encoder,
        centroids,
        cluster: cluster_report,
        rules: stored_rules,
        compiled_rules,
        names: names.clone(),
        explanations,
        tree_accuracy,
        summaries,
        timings: Timings::default(),
        map: None,
        clv: t.clv,
        feature_bins: (0..t.width())
            .filter_map(|c| tailor_segment::drift::Bins::fit(&t.names[c], &t.select(&[c])))
            .collect(),
    };
    if n > 1 {
        // A map is a nicety: a run whose features have no spread still stores.
        record.map = segment_map(record.encoder.as_ref(), t, &primary).ok();
    }
    let mut run_id = None;
    if !o.dry_run {
        let mut user_segments: Vec<Vec<String>> = vec![Vec::new(); n];
        for (k, rows) in members.iter().enumerate() {
            for &i in rows {
                user_segments[i].push(names[k].clone());
            }
        }
        let segments = names
            .iter()
            .zip(&descriptions)
            .zip(&members)
            .map(|((n, d), m)| SegmentDef { name: n.clone(), description: d.clone(), size: m.len() as u64 })
            .collect();
        let run = SegmentationRun {
            id: 0,
            name: name.clone(),
            created_at: Timestamp::now(),
            segments,
            record: serde_json::to_value(&record)
                .map_err(|e| Error::Corrupt(format!("encoding the run's record: {e}")))?,
        };
        let mut it = t.users.iter().cloned().zip(user_segments).filter(|(_, s)| !s.is_empty());
        run_id = Some(store.save_segmentation(run, &mut it)?);
    }
    timings.store = step.elapsed().as_secs_f64();
    timings.total = started.elapsed().as_secs_f64();
    record.timings = timings;
    Ok(Outcome { record, run_id, name })
}

fn col(t: &FeatureTable, name: &str) -> Result<usize> {
    t.column(name).ok_or_else(|| Error::Corrupt(format!("the feature table lacks {name}")))
}

fn cluster_method(o: &RunOptions) -> Result<cluster::Method> {
    let k = o.k.fixed();
    Ok(match o.method {
        SegmentMethod::Dbscan => cluster::Method::Dbscan { eps: o.eps, min_samples: o.min_samples },
        SegmentMethod::Ward => cluster::Method::Ward {
            k: k.filter(|k| *k > 0).ok_or_else(|| Error::usage("--k must be a number of at least 1 for ward"))?,
        },
        SegmentMethod::Minibatch => cluster::Method::MiniBatch(tailor_segment::online::MiniBatchParams {
            k: k.filter(|k| *k > 0).ok_or_else(|| Error::usage("--k must be a number of at least 1 for minibatch"))?,
            seed: o.seed,
            ..Default::default()
        }),
        _ => {
            let params = tailor_segment::kmeans::KMeansParams {
                k: k.unwrap_or(2),
                n_init: o.n_init,
                seed: o.seed,
                ..Default::default()
            };
            params.validate().map_err(|e| Error::usage(e.to_string()))?;
            cluster::Method::KMeans { params, auto: k.is_none() }
        }
    })
}

/// The run's record.
pub fn record_of(run: &SegmentationRun) -> Result<Record> {
    serde_json::from_value(run.record.clone()).map_err(|e| {
        Error::Corrupt(format!("segmentation {:?} run {} has an unreadable record: {e}", run.name, run.id))
    })
}

/// The latest run of `name`, or of the most recent segmentation when `name` is `None`.
pub fn latest(store: &dyn Store, name: Option<&str>) -> Result<SegmentationRun> {
    let run = match name {
        Some(n) => store.segmentation(n, None)?,
        None => store.segmentation_runs()?.into_iter().next_back(),
    };
    run.ok_or_else(|| match name {
        Some(n) => Error::NotFound(format!("no segmentation named {n:?}; run `tailor segment run --name {n}` first")),
        None => Error::NotFound("no segmentation is stored yet; run `tailor segment run` first".into()),
    })
}

/// One user's features as of `as_of` (their events only), laid out like the run's table.
pub fn user_features(store: &dyn Store, user: &str, as_of: Option<Timestamp>, rec: &Record) -> Result<FeatureTable> {
    let catalog = item_table(store)?;
    let mut act = Activity::default();
    // The data's end, as a run without --as-of measures it (not the wall clock, which for
    // a historical shop would make the user look long gone and contradict the run).
    let mut data_end = i64::MIN;
    store.scan_events(EventFilter { since: None, until: as_of, kinds: None }, &mut |_, e: Event| {
        data_end = data_end.max(e.ts.0);
        if e.user.as_ref().is_some_and(|u| u.as_str() == user) && features::counts(e.kind) {
            act.push(&e, e.item.as_ref().and_then(|i| catalog.get(&i.0)));
        }
        std::ops::ControlFlow::Continue(())
    })?;
    let record = store.user(user)?.map(|s| s.value);
    if act.is_empty() && record.is_none() {
        return Err(Error::NotFound(format!("unknown user {user:?}: no events and no user record")));
    }
    let as_of = as_of.map_or_else(
        || if data_end == i64::MIN { rec.as_of } else { Timestamp::reference(Timestamp(data_end)).0 },
        |t| t.0,
    );
    Ok(assigner(rec).features(user, record.as_ref(), &act, as_of))
}

/// The assignment view of a run's record.
fn assigner(rec: &Record) -> tailor_segment::assign::Assigner {
    tailor_segment::assign::Assigner {
        method: rec.method.clone(),
        top_categories: rec.top_categories.clone(),
        encoder: rec.encoder.clone(),
        centroids: rec.centroids.clone(),
        compiled_rules: rec.compiled_rules.clone(),
        names: rec.names.clone(),
        clv: rec.clv,
    }
}

/// Where one user belongs under a stored run.
#[derive(Debug, Clone, Serialize)]
pub struct Assignment {
    /// The segmentation the user was placed in.
    pub segmentation: String,
    /// Run used.
    pub run: u64,
    /// Segments (several for rule segmentations).
    pub segments: Vec<String>,
    /// Distance to the chosen centre (clustering methods).
    pub distance: Option<f64>,
    /// Whether the stored membership changed (with --apply).
    pub changed: bool,
    /// Microseconds spent encoding and assigning (features already computed).
    pub assign_micros: f64,
}

/// Assigns one user with a stored run: nearest centre (clusterings) or the run's compiled
/// rules; `apply` stores the result (and its history) when it differs.
pub fn assign(
    store: &dyn Store,
    run: &SegmentationRun,
    user: &str,
    as_of: Option<Timestamp>,
    apply: bool,
) -> Result<Assignment> {
    let rec = record_of(run)?;
    let t = user_features(store, user, as_of, &rec)?;
    let started = Instant::now();
    let a = assigner(&rec);
    if !a.can_assign() {
        return Err(Error::usage(format!(
            "segmentation {:?} ({}) cannot assign single users; rerun it with `tailor segment run --method {}`",
            run.name, rec.method, rec.method
        )));
    }
    let placement = a.place(&t)?;
    let (segments, distance) = (placement.segments, placement.distance);
    let assign_micros = started.elapsed().as_secs_f64() * 1e6;
    let changed = apply && store.set_user_segments(&run.name, user, segments.clone(), Timestamp::now())?;
    Ok(Assignment { segmentation: run.name.clone(), run: run.id, segments, distance, changed, assign_micros })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Regression: issue #18 (a 57-user segment beside 4,300 others got about 26 points).
    #[test]
    fn small_segments_keep_their_points_on_the_map() {
        let mut labels: Vec<Option<usize>> = (0..4300).map(|i| Some(i % 3)).collect();
        labels.extend(std::iter::repeat_n(Some(3), 57));
        labels.push(None);
        let chosen = map_sample(&labels, MAP_POINTS, MAP_MIN_PER_SEGMENT);
        let count = |g: Option<usize>| chosen.iter().filter(|&&i| labels[i] == g).count();
        assert_eq!(count(Some(3)), 57, "a small segment keeps every point");
        assert_eq!(count(None), 1);
        assert!((600..=700).contains(&count(Some(0))), "{}", count(Some(0)));
        assert!(chosen.windows(2).all(|w| w[0] < w[1]));
        assert!(chosen.len() <= MAP_POINTS + 60);
    }
}
