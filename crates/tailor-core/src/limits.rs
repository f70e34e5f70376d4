//! Bounds on what tailor accepts: string lengths, list sizes, prices, quantities and event
//! times. Every record is checked against the hard caps here before it is stored (so sums
//! over them stay finite and no field can grow without bound); [`Limits`] holds the
//! stricter, configurable bounds the edges (HTTP, streams, imports) apply.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::event::Event;
use crate::time::Timestamp;

/// Longest id (user, item, session, order, rec_id) or context value, in characters.
pub const MAX_ID_CHARS: usize = 256;
/// Longest short text (brand, category part, tag, gender, country, region, city, device...),
/// in characters (as every length here).
pub const MAX_NAME_CHARS: usize = 256;
/// Longest item title.
pub const MAX_TITLE_CHARS: usize = 1024;
/// Longest item description or search query.
pub const MAX_TEXT_CHARS: usize = 16 * 1024;
/// Longest attribute key.
pub const MAX_ATTRIBUTE_KEY_CHARS: usize = 64;
/// Longest attribute value (an image URL, say).
pub const MAX_ATTRIBUTE_VALUE_CHARS: usize = 2048;
/// Most attributes, tags or category levels on one record.
pub const MAX_LIST_LEN: usize = 64;

/// Highest unit price any record may carry, whatever the configuration: with at most
/// [`HARD_MAX_QUANTITY`] units per line, a billion lines sum to at most 1e33, far from
/// overflowing an `f64`.
pub const HARD_MAX_PRICE: f64 = 1e15;
/// Most units one event line may carry, whatever the configuration.
pub const HARD_MAX_QUANTITY: u32 = 1_000_000_000;
/// Largest absolute explicit rating.
pub const MAX_RATING: f32 = 1e6;
/// Largest absolute stock count.
pub const MAX_STOCK: i64 = 1_000_000_000_000;

/// Whether a text holds nothing but spaces, tabs and line breaks (the JSON Schemas say the
/// same with [`crate::schema::NON_BLANK`]).
pub fn is_blank(s: &str) -> bool {
    s.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// `field` is at most `max` characters long (and not blank when given).
pub(crate) fn check_text(field: &'static str, v: Option<&str>, max: usize) -> Result<()> {
    if let Some(s) = v {
        if is_blank(s) {
            return Err(CoreError::invalid(field, "is empty"));
        }
        let n = s.chars().count();
        if n > max {
            return Err(CoreError::invalid(field, format!("is {n} characters long (at most {max})")));
        }
    }
    Ok(())
}

/// A money amount: finite, not negative, at most [`HARD_MAX_PRICE`].
pub fn check_price(field: &'static str, v: Option<f64>) -> Result<()> {
    match v {
        Some(p) if !p.is_finite() => Err(CoreError::invalid(field, format!("{p} is not a finite number"))),
        Some(p) if p < 0.0 => Err(CoreError::invalid(field, format!("{} is negative", number(p)))),
        Some(p) if p > HARD_MAX_PRICE => {
            Err(CoreError::invalid(field, format!("{} is above {HARD_MAX_PRICE:e}", number(p))))
        }
        _ => Ok(()),
    }
}

/// A list of at most [`MAX_LIST_LEN`] entries.
pub(crate) fn check_list(field: &'static str, len: usize) -> Result<()> {
    if len > MAX_LIST_LEN {
        return Err(CoreError::invalid(field, format!("has {len} entries (at most {MAX_LIST_LEN})")));
    }
    Ok(())
}

/// Free key/values: at most [`MAX_LIST_LEN`] of them, keys and values bounded.
pub(crate) fn check_attributes<'a>(
    field: &'static str,
    attrs: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
) -> Result<()> {
    check_list(field, attrs.len())?;
    for (k, v) in attrs {
        if is_blank(k) || k.chars().count() > MAX_ATTRIBUTE_KEY_CHARS {
            return Err(CoreError::invalid(
                field,
                format!("key {:?} must be 1 to {MAX_ATTRIBUTE_KEY_CHARS} characters", short(k)),
            ));
        }
        let n = v.chars().count();
        if n > MAX_ATTRIBUTE_VALUE_CHARS {
            return Err(CoreError::invalid(
                field,
                format!("value of {:?} is {n} characters long (at most {MAX_ATTRIBUTE_VALUE_CHARS})", short(k)),
            ));
        }
    }
    Ok(())
}

/// A number for a message: plain when short, in scientific notation when huge or tiny.
pub fn number(x: f64) -> String {
    if x != 0.0 && (x.abs() >= 1e9 || x.abs() < 1e-4) { format!("{x:e}") } else { format!("{x}") }
}

fn short(s: &str) -> &str {
    let mut end = s.len().min(40);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The configurable bounds of `[limits]`, applied where records enter (HTTP, streams,
/// imports); each is at most its hard cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// How far an event may lie in the future, in seconds (clocks drift): later events are
    /// refused, so one event cannot move "now" for trending, recency or the dashboard.
    pub max_future_seconds: u64,
    /// Highest unit price of an event or item, in the shop's currency.
    pub max_unit_price: f64,
    /// Most units on one event line.
    pub max_quantity: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_future_seconds: 300, max_unit_price: 1e9, max_quantity: 100_000 }
    }
}

impl Limits {
    /// Checks the settings themselves.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_future_seconds > 366 * 86_400 {
            return Err(format!("limits.max_future_seconds = {}: at most a year (31622400)", self.max_future_seconds));
        }
        if !(self.max_unit_price > 0.0 && self.max_unit_price <= HARD_MAX_PRICE) {
            return Err(format!("limits.max_unit_price = {}: expected above 0 and at most 1e15", self.max_unit_price));
        }
        if self.max_quantity == 0 || self.max_quantity > HARD_MAX_QUANTITY {
            return Err(format!("limits.max_quantity = {}: expected 1 to {HARD_MAX_QUANTITY}", self.max_quantity));
        }
        Ok(())
    }

    /// The latest event time accepted at `now`.
    pub fn latest_accepted(&self, now: Timestamp) -> Timestamp {
        Timestamp(now.0.saturating_add(self.max_future_seconds as i64 * 1000))
    }

    /// Checks an event (already [`Event::validate`]d) against these bounds at `now`.
    pub fn check_event(&self, e: &Event, now: Timestamp) -> Result<()> {
        let latest = self.latest_accepted(now);
        if e.ts > latest {
            return Err(CoreError::invalid(
                "ts",
                format!(
                    "{} is in the future (more than {} s ahead of the server's clock; limits.max_future_seconds)",
                    e.ts, self.max_future_seconds
                ),
            ));
        }
        self.check_unit_price("unit_price", e.unit_price)?;
        if e.quantity > self.max_quantity {
            return Err(CoreError::invalid(
                "quantity",
                format!("{} is above {} (limits.max_quantity)", e.quantity, self.max_quantity),
            ));
        }
        Ok(())
    }

    /// Checks a price against `max_unit_price`.
    pub fn check_unit_price(&self, field: &'static str, p: Option<f64>) -> Result<()> {
        match p {
            Some(p) if p > self.max_unit_price => {
                Err(CoreError::invalid(field, format!("{p} is above {} (limits.max_unit_price)", self.max_unit_price)))
            }
            _ => Ok(()),
        }
    }

    /// Checks an item's prices against `max_unit_price`.
    pub fn check_item(&self, i: &crate::Item) -> Result<()> {
        self.check_unit_price("price", i.price)?;
        self.check_unit_price("sale_price", i.sale_price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventKind;

    #[test]
    fn events_are_bounded_by_the_clock_and_the_maxima() {
        let l = Limits::default();
        let now = Timestamp::from_secs(1_800_000_000);
        let mut e = Event::new(Some("u"), Some("i"), EventKind::Purchase, Timestamp(now.0 + 299_000));
        assert_eq!(l.check_event(&e, now), Ok(()));
        e.ts = Timestamp(now.0 + 301_000);
        let err = l.check_event(&e, now).unwrap_err();
        assert_eq!(err.field(), "ts");
        assert!(err.to_string().contains("limits.max_future_seconds"), "{err}");
        e.ts = now;
        e.unit_price = Some(2e9);
        assert_eq!(l.check_event(&e, now).unwrap_err().field(), "unit_price");
        e.unit_price = Some(10.0);
        e.quantity = 100_001;
        assert_eq!(l.check_event(&e, now).unwrap_err().field(), "quantity");
        assert!(Limits { max_quantity: 0, ..l.clone() }.validate().is_err());
        assert!(Limits { max_unit_price: f64::INFINITY, ..l.clone() }.validate().is_err());
        assert!(l.validate().is_ok());
    }

    #[test]
    fn hard_caps() {
        assert!(check_price("unit_price", Some(1e308)).is_err());
        assert!(check_price("unit_price", Some(1e15)).is_ok());
        assert!(check_text("title", Some(&"x".repeat(2000)), MAX_TITLE_CHARS).is_err());
        let attrs: std::collections::BTreeMap<String, String> =
            (0..65).map(|i| (format!("k{i}"), "v".to_string())).collect();
        assert!(check_attributes("attributes", attrs.iter()).is_err());
    }
}
