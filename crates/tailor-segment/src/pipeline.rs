//! From named features to the matrix the clustering sees: which features, how each is
//! transformed and weighted, and one-hot columns for categorical ones. The fitted
//! [`Encoder`] is stored with a segmentation so that a new or changed user is encoded
//! exactly like the users it was fitted on (real-time assignment).

use serde::{Deserialize, Serialize};

use crate::error::{Result, SegmentError};
use crate::features::{CATEGORICAL, FeatureTable};
use crate::scale::{ColumnTransform, Method, OneHot, Transforms};

/// One requested feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureChoice {
    /// Feature name (numeric or categorical).
    pub name: String,
    /// Transform of a numeric feature (`None`: the feature's default).
    pub method: Option<Method>,
    /// Weight (default 1).
    pub weight: f64,
}

/// The default transform of a numeric feature: log1p for money and counts, z-score else.
pub fn default_method(name: &str) -> Method {
    match name {
        "recency_days" | "frequency" | "monetary" | "aov" | "sessions" | "visit_frequency" | "session_duration_s"
        | "views_per_session" => Method::Log1p,
        _ => Method::Zscore,
    }
}

/// The features clustering uses unless told otherwise: value, engagement, price
/// sensitivity, taste for novelty and brands, time of day, device and age.
pub const DEFAULT_FEATURES: &[&str] = &[
    "recency_days",
    "frequency",
    "monetary",
    "aov",
    "visit_frequency",
    "views_per_session",
    "cart_rate",
    "cart_to_purchase",
    "return_rate",
    "discount_share",
    "price_percentile",
    "new_item_share",
    "brand_concentration",
    "tod_evening",
    "device_mobile",
    "age",
];

/// Parses `name[:method][*weight]` items separated by commas, e.g.
/// `monetary:log1p*2,recency_days,urbanicity`. Methods: zscore, robust, log1p, minmax, none.
pub fn parse_choices(spec: &str) -> Result<Vec<FeatureChoice>> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (rest, weight) = match part.split_once('*') {
            Some((r, w)) => (
                r,
                w.trim().parse::<f64>().ok().filter(|w| w.is_finite() && *w >= 0.0).ok_or_else(|| {
                    SegmentError::InvalidData(format!("feature {part:?}: weight {w:?} is not a number >= 0"))
                })?,
            ),
            None => (part, 1.0),
        };
        let (name, method) = match rest.split_once(':') {
            Some((n, m)) => {
                let method = match m.trim().to_ascii_lowercase().as_str() {
                    "zscore" | "z" => Method::Zscore,
                    "robust" => Method::Robust,
                    "log1p" | "log" => Method::Log1p,
                    "minmax" => Method::MinMax,
                    "none" | "raw" => Method::None,
                    other => {
                        return Err(SegmentError::InvalidData(format!(
                            "feature {part:?}: unknown transform {other:?} (zscore, robust, log1p, minmax, none)"
                        )));
                    }
                };
                (n.trim(), Some(method))
            }
            None => (rest.trim(), None),
        };
        out.push(FeatureChoice { name: name.to_owned(), method, weight });
    }
    Ok(out)
}

/// A fitted encoder: numeric columns with their transforms, then one-hot blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encoder {
    /// Numeric feature names, in column order.
    pub numeric: Vec<String>,
    /// Their fitted transforms.
    pub transforms: Transforms,
    /// Categorical features with vocabulary and weight.
    pub categorical: Vec<(String, OneHot, f64)>,
}

impl Encoder {
    /// Fits the encoder for `choices` on the table. Unknown names are an error that lists
    /// the known ones.
    pub fn fit(choices: &[FeatureChoice], t: &FeatureTable) -> Result<Self> {
        let mut numeric = Vec::new();
        let mut methods = Vec::new();
        let mut weights = Vec::new();
        let mut categorical = Vec::new();
        for c in choices {
            if t.column(&c.name).is_some() {
                numeric.push(c.name.clone());
                methods.push(c.method.unwrap_or_else(|| default_method(&c.name)));
                weights.push(c.weight);
            } else if let Some(k) = t.categorical_column(&c.name) {
                let values = t.categorical[k].iter().map(|v| v.as_deref());
                categorical.push((c.name.clone(), OneHot::fit(values), c.weight));
            } else {
                let mut known: Vec<&str> = t.names.iter().map(String::as_str).collect();
                known.extend(CATEGORICAL);
                return Err(SegmentError::InvalidData(format!(
                    "unknown feature {:?}; known features: {}",
                    c.name,
                    known.join(", ")
                )));
            }
        }
        if numeric.is_empty() && categorical.is_empty() {
            return Err(SegmentError::InvalidData("no features were chosen".into()));
        }
        let cols = Self::bind_names(&numeric, t);
        let x = t.select(&cols);
        let transforms = if numeric.is_empty() {
            Transforms { columns: Vec::new() }
        } else {
            Transforms::fit(&x, numeric.len(), &methods, &weights)?
        };
        Ok(Self { numeric, transforms, categorical })
    }

    fn bind_names(names: &[String], t: &FeatureTable) -> Vec<usize> {
        names.iter().filter_map(|n| t.column(n)).collect()
    }

    /// Encoded column names (`monetary`, `urbanicity=urban`...).
    pub fn names(&self) -> Vec<String> {
        let mut v = self.numeric.clone();
        for (name, oh, _) in &self.categorical {
            v.extend(oh.categories.iter().map(|c| format!("{name}={c}")));
        }
        v
    }

    /// Width of an encoded row.
    pub fn width(&self) -> usize {
        self.numeric.len() + self.categorical.iter().map(|c| c.1.categories.len()).sum::<usize>()
    }

    /// Resolves the numeric columns against a table's layout (do once, then
    /// [`Encoder::encode_row`] many times).
    pub fn bind(&self, t: &FeatureTable) -> Result<Binding> {
        let mut num = Vec::with_capacity(self.numeric.len());
        for n in &self.numeric {
            num.push(t.column(n).ok_or_else(|| SegmentError::InvalidData(format!("the features lack {n:?}")))?);
        }
        let mut cat = Vec::with_capacity(self.categorical.len());
        for (n, _, _) in &self.categorical {
            cat.push(
                t.categorical_column(n).ok_or_else(|| SegmentError::InvalidData(format!("the features lack {n:?}")))?,
            );
        }
        Ok(Binding { num, cat })
    }

    /// Encodes one user: `row` is their numeric feature row, `cats` their categorical values.
    pub fn encode_row(&self, b: &Binding, row: &[f64], cats: &[Option<&str>], out: &mut Vec<f64>) {
        for (c, t) in b.num.iter().zip(&self.transforms.columns) {
            out.push(t.apply(row.get(*c).copied().unwrap_or(0.0)));
        }
        for (k, (_, oh, w)) in b.cat.iter().zip(&self.categorical) {
            let start = out.len();
            oh.encode(cats.get(*k).copied().flatten(), out);
            out[start..].iter_mut().for_each(|v| *v *= w);
        }
    }

    /// Encodes every row of the table.
    pub fn encode_table(&self, t: &FeatureTable) -> Result<Vec<f64>> {
        let b = self.bind(t)?;
        let mut out = Vec::with_capacity(t.users.len() * self.width());
        let mut cats: Vec<Option<&str>> = vec![None; CATEGORICAL.len()];
        for i in 0..t.users.len() {
            for (k, col) in t.categorical.iter().enumerate() {
                cats[k] = col[i].as_deref();
            }
            self.encode_row(&b, t.row(i), &cats, &mut out);
        }
        Ok(out)
    }

    /// The transforms of the numeric columns (for documentation).
    pub fn column_transforms(&self) -> impl Iterator<Item = (&str, &ColumnTransform)> {
        self.numeric.iter().map(String::as_str).zip(&self.transforms.columns)
    }
}

/// Column positions of an [`Encoder`]'s inputs in a feature table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    num: Vec<usize>,
    cat: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_choices() {
        let c = parse_choices("monetary:log1p*2, recency_days ,urbanicity").expect("parses");
        assert_eq!(c.len(), 3);
        assert_eq!((c[0].method, c[0].weight), (Some(Method::Log1p), 2.0));
        assert_eq!((c[1].name.as_str(), c[1].method), ("recency_days", None));
        assert!(parse_choices("x:cube").is_err());
        assert!(parse_choices("x*-1").is_err());
    }

    #[test]
    fn encodes_like_fitted() {
        let t = FeatureTable {
            users: vec!["a".into(), "b".into(), "c".into()],
            names: vec!["monetary".into(), "age".into()],
            values: vec![0.0, 20.0, 10.0, 30.0, 100.0, 40.0],
            categorical: vec![
                vec![Some("mobile".into()), None, Some("desktop".into())],
                vec![None; 3],
                vec![None; 3],
                vec![None; 3],
                vec![Some("urban".into()), Some("rural".into()), None],
                vec![None; 3],
            ],
            top_categories: vec![],
            age_known: vec![true; 3],
            as_of: 0,
            clv: None,
        };
        let choices = parse_choices("monetary,age:none*0.5,urbanicity*2").expect("parses");
        let e = Encoder::fit(&choices, &t).expect("fits");
        assert_eq!(e.names(), vec!["monetary", "age", "urbanicity=rural", "urbanicity=urban"]);
        let x = e.encode_table(&t).expect("encodes");
        assert_eq!(x.len(), 12);
        assert_eq!(&x[1..4], &[10.0, 0.0, 2.0]);
        let mean: f64 = [x[0], x[4], x[8]].iter().sum::<f64>();
        assert!(mean.abs() < 1e-12, "log1p then z-scored");
        let err = Encoder::fit(&parse_choices("monetery").expect("parses"), &t).expect_err("unknown");
        assert!(err.to_string().contains("unknown feature \"monetery\"; known features: monetary, age, main_device"));
    }
}
