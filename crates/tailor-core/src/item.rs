//! Catalog items.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::ids::ItemId;
use crate::limits::{
    MAX_ID_CHARS, MAX_LIST_LEN, MAX_NAME_CHARS, MAX_STOCK, MAX_TEXT_CHARS, MAX_TITLE_CHARS, check_attributes,
    check_list, check_price, check_text,
};
use crate::time::Timestamp;

/// A product in the catalog. (A sale price is at most the regular price, which a schema
/// cannot say.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = item_rules)]
pub struct Item {
    /// The shop's id (SKU).
    pub id: ItemId,
    /// Product name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_TITLE_CHARS), pattern(crate::schema::NON_BLANK))]
    pub title: Option<String>,
    /// Longer text.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_TEXT_CHARS), pattern(crate::schema::NON_BLANK))]
    pub description: Option<String>,
    /// Category path from the root, e.g. `["Women", "Shoes", "Sneakers"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_LIST_LEN), inner(length(min = 1, max = MAX_NAME_CHARS), pattern(crate::schema::NON_BLANK)))]
    pub category: Vec<String>,
    /// Brand as the catalog gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_NAME_CHARS), pattern(crate::schema::NON_BLANK))]
    pub brand: Option<String>,
    /// Regular price of one unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = crate::limits::HARD_MAX_PRICE))]
    pub price: Option<f64>,
    /// Discounted price when on sale.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = crate::limits::HARD_MAX_PRICE))]
    pub sale_price: Option<f64>,
    /// ISO 4217 currency code.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(pattern("^[A-Z]{3}$"))]
    pub currency: Option<String>,
    /// Free key/values (color, size...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Free tags (genres, collections...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_LIST_LEN), inner(length(min = 1, max = MAX_NAME_CHARS), pattern(crate::schema::NON_BLANK)))]
    pub tags: Vec<String>,
    /// Units in stock, when tracked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -MAX_STOCK, max = MAX_STOCK))]
    #[serde(deserialize_with = "crate::schema::whole::option")]
    pub stock: Option<i64>,
    /// Whether the item can be sold now; `false` hides it from recommendations.
    pub in_stock: bool,
    /// When the item entered the catalog (for "new arrivals").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
}

impl Default for Item {
    fn default() -> Self {
        Self {
            id: ItemId(String::new()),
            title: None,
            description: None,
            category: Vec::new(),
            brand: None,
            price: None,
            sale_price: None,
            currency: None,
            attributes: BTreeMap::new(),
            tags: Vec::new(),
            stock: None,
            in_stock: true,
            created_at: None,
        }
    }
}

/// Attributes (at most [`MAX_LIST_LEN`], keys and values bounded) in the item's schema.
fn item_rules(schema: &mut schemars::Schema) {
    if let Some(props) = schema.get_mut("properties").and_then(serde_json::Value::as_object_mut) {
        props.insert("attributes".into(), crate::schema::attributes().to_value());
        // Every field has a default but the id, which the record cannot go without.
        if let Some(id) = props.get_mut("id").and_then(serde_json::Value::as_object_mut) {
            id.remove("default");
        }
    }
    schema.insert("required".into(), serde_json::json!(["id"]));
}

/// Splits `"Women > Shoes > Sneakers"` (also `/` or `|` separated) into its parts.
pub fn parse_category_path(s: &str) -> Vec<String> {
    let sep = if s.contains('>') {
        '>'
    } else if s.contains('|') {
        '|'
    } else {
        '/'
    };
    s.split(sep).map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect()
}

impl Item {
    /// An item with only an id.
    pub fn new(id: &str) -> Self {
        Self { id: ItemId::from(id), ..Self::default() }
    }

    /// The category path joined with `" > "`.
    pub fn category_path(&self) -> String {
        self.category.join(" > ")
    }

    /// The price a buyer pays now (sale price when on sale).
    pub fn effective_price(&self) -> Option<f64> {
        self.sale_price.or(self.price)
    }

    /// Whether the item is discounted.
    pub fn on_sale(&self) -> bool {
        matches!((self.sale_price, self.price), (Some(s), Some(p)) if s < p)
    }

    /// Checks the rules an item must satisfy before it is stored.
    pub fn validate(&self) -> Result<()> {
        if self.id.0.is_empty() {
            return Err(CoreError::invalid("id", "is empty"));
        }
        check_text("id", Some(&self.id.0), MAX_ID_CHARS)?;
        check_text("title", self.title.as_deref(), MAX_TITLE_CHARS)?;
        check_text("description", self.description.as_deref(), MAX_TEXT_CHARS)?;
        check_list("category", self.category.len())?;
        for c in &self.category {
            check_text("category", Some(c), MAX_NAME_CHARS)?;
        }
        check_text("brand", self.brand.as_deref(), MAX_NAME_CHARS)?;
        check_price("price", self.price)?;
        check_price("sale_price", self.sale_price)?;
        if let (Some(sale), Some(price)) = (self.sale_price, self.price)
            && sale > price
        {
            return Err(CoreError::invalid("sale_price", format!("{sale} is above the regular price {price}")));
        }
        if let Some(c) = &self.currency
            && (c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(CoreError::invalid("currency", format!("{c:?} is not a 3-letter ISO 4217 code like EUR")));
        }
        check_attributes("attributes", self.attributes.iter())?;
        check_list("tags", self.tags.len())?;
        for t in &self.tags {
            check_text("tags", Some(t), MAX_NAME_CHARS)?;
        }
        if let Some(n) = self.stock
            && n.abs() > MAX_STOCK
        {
            return Err(CoreError::invalid("stock", format!("{n} is outside -1e12..=1e12")));
        }
        if let Some(t) = self.created_at
            && !(crate::time::MIN_MILLIS..crate::time::MAX_MILLIS).contains(&t.0)
        {
            return Err(CoreError::invalid("created_at", "is outside 1800-01-01..2200-01-01"));
        }
        Ok(())
    }

    /// Overlays the fields `other` sets onto `self` (used when events mention items).
    pub fn merge_from(&mut self, other: Item) {
        macro_rules! take {
            ($($f:ident),*) => {$( if other.$f.is_some() { self.$f = other.$f; } )*};
        }
        take!(title, description, brand, price, sale_price, currency, stock, created_at);
        if !other.category.is_empty() {
            self.category = other.category;
        }
        for t in other.tags {
            if !self.tags.contains(&t) {
                self.tags.push(t);
            }
        }
        self.attributes.extend(other.attributes);
        if !other.in_stock {
            self.in_stock = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_paths() {
        assert_eq!(parse_category_path("Women > Shoes > Sneakers"), vec!["Women", "Shoes", "Sneakers"]);
        assert_eq!(parse_category_path("a/b"), vec!["a", "b"]);
        assert!(parse_category_path(" ").is_empty());
    }

    #[test]
    fn validation_and_merge() {
        let mut i = Item::new("sku");
        i.price = Some(10.0);
        i.sale_price = Some(8.0);
        assert!(i.validate().is_ok() && i.on_sale());
        assert_eq!(i.effective_price(), Some(8.0));
        i.currency = Some("eur".into());
        assert_eq!(i.validate().unwrap_err().field(), "currency");
        i.currency = None;
        i.sale_price = Some(12.0);
        assert_eq!(i.validate().unwrap_err().to_string(), "sale_price: 12 is above the regular price 10");
        i.sale_price = None;
        i.title = Some("t".repeat(2 << 20));
        assert_eq!(i.validate().unwrap_err().field(), "title");
        let mut a = Item::new("x");
        a.title = Some("old".into());
        a.brand = Some("b".into());
        let mut b = Item::new("x");
        b.title = Some("new".into());
        a.merge_from(b);
        assert_eq!((a.title.as_deref(), a.brand.as_deref()), (Some("new"), Some("b")));
    }
}
