//! Users (customers) and their attributes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::ids::UserId;
use crate::limits::{MAX_ID_CHARS, MAX_NAME_CHARS, check_attributes, check_text};
use crate::time::Timestamp;

/// Urban, suburban or rural residence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Urbanicity {
    /// Lives in a city.
    Urban,
    /// Suburb or town.
    Suburban,
    /// Lives in the countryside.
    Rural,
}

impl std::str::FromStr for Urbanicity {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "urban" | "city" => Ok(Self::Urban),
            "suburban" | "suburb" | "town" => Ok(Self::Suburban),
            "rural" | "countryside" => Ok(Self::Rural),
            _ => Err(format!("{s:?} is not one of urban, suburban, rural")),
        }
    }
}

impl Urbanicity {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Urban => "urban",
            Self::Suburban => "suburban",
            Self::Rural => "rural",
        }
    }
}

/// A known customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = user_rules)]
pub struct User {
    /// The shop's id.
    pub id: UserId,
    /// Age in years, when the shop knows it (MovieLens gives ages).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 130))]
    #[serde(deserialize_with = "crate::schema::whole::option")]
    pub age: Option<u16>,
    /// Year of birth, when the shop knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1850, max = 2200))]
    #[serde(deserialize_with = "crate::schema::whole::option")]
    pub birth_year: Option<i32>,
    /// Gender as the shop records it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_NAME_CHARS), pattern(crate::schema::NON_BLANK))]
    pub gender: Option<String>,
    /// Country (ISO 3166-1 alpha-2 or the shop's own names).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_NAME_CHARS), pattern(crate::schema::NON_BLANK))]
    pub country: Option<String>,
    /// Region or state.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_NAME_CHARS), pattern(crate::schema::NON_BLANK))]
    pub region: Option<String>,
    /// City of the shopper's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_NAME_CHARS), pattern(crate::schema::NON_BLANK))]
    pub city: Option<String>,
    /// Urban, suburban or rural.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urbanicity: Option<Urbanicity>,
    /// When the account was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signup_at: Option<Timestamp>,
    /// Device the user mostly shops on.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_NAME_CHARS), pattern(crate::schema::NON_BLANK))]
    pub preferred_device: Option<String>,
    /// May receive e-mail campaigns.
    pub consent_email: bool,
    /// May receive push notifications.
    pub consent_push: bool,
    /// Free key/values (occupation, zip, loyalty tier...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl Default for User {
    fn default() -> Self {
        Self {
            id: UserId(String::new()),
            age: None,
            birth_year: None,
            gender: None,
            country: None,
            region: None,
            city: None,
            urbanicity: None,
            signup_at: None,
            preferred_device: None,
            consent_email: false,
            consent_push: false,
            attributes: BTreeMap::new(),
        }
    }
}

/// Attributes (at most 64, keys and values bounded) in the user's schema.
fn user_rules(schema: &mut schemars::Schema) {
    if let Some(props) = schema.get_mut("properties").and_then(serde_json::Value::as_object_mut) {
        props.insert("attributes".into(), crate::schema::attributes().to_value());
        // Every field has a default but the id, which the record cannot go without.
        if let Some(id) = props.get_mut("id").and_then(serde_json::Value::as_object_mut) {
            id.remove("default");
        }
    }
    schema.insert("required".into(), serde_json::json!(["id"]));
}

impl User {
    /// A user with only an id.
    pub fn new(id: &str) -> Self {
        Self { id: UserId::from(id), ..Self::default() }
    }

    /// Checks the rules a user must satisfy before it is stored.
    pub fn validate(&self) -> Result<()> {
        if self.id.0.is_empty() {
            return Err(CoreError::invalid("id", "is empty"));
        }
        check_text("id", Some(&self.id.0), MAX_ID_CHARS)?;
        for (field, v) in [
            ("gender", &self.gender),
            ("country", &self.country),
            ("region", &self.region),
            ("city", &self.city),
            ("preferred_device", &self.preferred_device),
        ] {
            check_text(field, v.as_deref(), MAX_NAME_CHARS)?;
        }
        check_attributes("attributes", self.attributes.iter())?;
        if let Some(t) = self.signup_at
            && !(crate::time::MIN_MILLIS..crate::time::MAX_MILLIS).contains(&t.0)
        {
            return Err(CoreError::invalid("signup_at", "is outside 1800-01-01..2200-01-01"));
        }
        if let Some(a) = self.age
            && a > 130
        {
            return Err(CoreError::invalid("age", format!("{a} is above 130")));
        }
        if let Some(y) = self.birth_year
            && !(1850..=2200).contains(&y)
        {
            return Err(CoreError::invalid("birth_year", format!("{y} is outside 1850..=2200")));
        }
        Ok(())
    }

    /// Overlays the fields `other` sets onto `self`.
    pub fn merge_from(&mut self, other: User) {
        macro_rules! take {
            ($($f:ident),*) => {$( if other.$f.is_some() { self.$f = other.$f; } )*};
        }
        take!(age, birth_year, gender, country, region, city, urbanicity, signup_at, preferred_device);
        self.consent_email |= other.consent_email;
        self.consent_push |= other.consent_push;
        self.attributes.extend(other.attributes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let mut u = User::new("u");
        assert!(u.validate().is_ok());
        u.age = Some(200);
        assert_eq!(u.validate().unwrap_err().to_string(), "age: 200 is above 130");
        assert_eq!("City".parse::<Urbanicity>(), Ok(Urbanicity::Urban));
        assert!(User::new(" ").validate().is_err());
    }
}
