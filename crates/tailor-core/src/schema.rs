//! JSON Schemas of the domain types, for the HTTP API's OpenAPI document: the bounds the
//! validators enforce, written where the types are, so the document cannot drift from them.
//! What a schema cannot say (a time relative to the server's clock, a sale price at most the
//! regular price) is in the descriptions.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::event::EventId;
use crate::ids::{ItemId, UserId};
use crate::limits::{MAX_ATTRIBUTE_KEY_CHARS, MAX_ATTRIBUTE_VALUE_CHARS, MAX_ID_CHARS, MAX_LIST_LEN};
use crate::time::{MAX_MILLIS, MIN_MILLIS, Timestamp};

/// A text that is not blank: at least one character other than space, tab or line break
/// (as [`crate::limits::is_blank`] checks).
pub const NON_BLANK: &str = "[^ \t\n\r]";

/// The numbers and texts a [`Timestamp`] reads (see its rule), from `min_ms` (inclusive)
/// to `max_ms` (exclusive).
pub fn timestamp_between(min_ms: i64, max_ms: i64) -> Schema {
    // Below 1e11 in magnitude a number is seconds (fractions truncated to the ms).
    let limit = 100_000_000_000i64;
    let mut any: Vec<serde_json::Value> = Vec::new();
    let (s_lo, s_hi) = ((min_ms as f64 / 1000.0).max(-(limit as f64)), (max_ms as f64 / 1000.0).min(limit as f64));
    if s_lo < s_hi {
        let mut b = serde_json::json!({"type": "number", "minimum": s_lo});
        if s_hi < limit as f64 {
            b["exclusiveMaximum"] = s_hi.into();
        } else {
            b["exclusiveMaximum"] = limit.into();
        }
        any.push(b);
    }
    if max_ms > limit {
        any.push(serde_json::json!({"type": "number", "minimum": min_ms.max(limit), "exclusiveMaximum": max_ms}));
    }
    if min_ms <= -limit {
        any.push(serde_json::json!({"type": "number", "minimum": min_ms, "maximum": -limit}));
    }
    any.push(serde_json::json!({"type": "string", "format": "date-time"}));
    json_schema!({
        "description": "Unix seconds (a number below 1e11 in magnitude) or milliseconds (from 1e11), or RFC 3339 text",
        "anyOf": any,
    })
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        timestamp_between(MIN_MILLIS, MAX_MILLIS)
    }
}

/// An id as shops send it: 1 to [`MAX_ID_CHARS`] characters, not blank.
pub fn id_text() -> Schema {
    json_schema!({"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS, "pattern": NON_BLANK})
}

impl JsonSchema for UserId {
    fn schema_name() -> Cow<'static, str> {
        "UserId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        id_text()
    }
}

impl JsonSchema for ItemId {
    fn schema_name() -> Cow<'static, str> {
        "ItemId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        id_text()
    }
}

impl JsonSchema for EventId {
    fn schema_name() -> Cow<'static, str> {
        "EventId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ID_CHARS,
            "description": "Idempotency key: 32 hex digits are kept as they are, any other text is hashed",
        })
    }
}

/// Free key/values: at most [`MAX_LIST_LEN`], keys 1 to [`MAX_ATTRIBUTE_KEY_CHARS`] characters
/// (not blank), values at most [`MAX_ATTRIBUTE_VALUE_CHARS`].
pub fn attributes() -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": MAX_LIST_LEN,
        "propertyNames": {"minLength": 1, "maxLength": MAX_ATTRIBUTE_KEY_CHARS, "pattern": NON_BLANK},
        "additionalProperties": {"type": "string", "maxLength": MAX_ATTRIBUTE_VALUE_CHARS},
    })
}

/// Whole numbers as JSON Schema means them: `146` and `146.0` alike (an integral float is
/// an integer there), for serde's `deserialize_with` on integer fields.
pub mod whole {
    use serde::Deserializer;
    use serde::de::{Error, Visitor};

    struct V<T>(std::marker::PhantomData<T>);

    impl<T: TryFrom<i64> + TryFrom<u64>> Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number in range")
        }
        fn visit_i64<E: Error>(self, n: i64) -> Result<T, E> {
            T::try_from(n).map_err(|_| E::custom(format!("{n} is out of range")))
        }
        fn visit_u64<E: Error>(self, n: u64) -> Result<T, E> {
            T::try_from(n).map_err(|_| E::custom(format!("{n} is out of range")))
        }
        fn visit_f64<E: Error>(self, f: f64) -> Result<T, E> {
            if f.fract() != 0.0 || !f.is_finite() || f.abs() > 9.007_199_254_740_992e15 {
                return Err(E::custom(format!("{f} is not a whole number")));
            }
            self.visit_i64(f as i64)
        }
    }

    /// A whole number.
    pub fn deserialize<'de, D: Deserializer<'de>, T: TryFrom<i64> + TryFrom<u64>>(d: D) -> Result<T, D::Error> {
        d.deserialize_any(V(std::marker::PhantomData))
    }

    /// An optional whole number (`null`: none).
    pub fn option<'de, D: Deserializer<'de>, T: TryFrom<i64> + TryFrom<u64>>(d: D) -> Result<Option<T>, D::Error> {
        struct O<T>(std::marker::PhantomData<T>);
        impl<'de, T: TryFrom<i64> + TryFrom<u64>> Visitor<'de> for O<T> {
            type Value = Option<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a whole number or null")
            }
            fn visit_none<E: Error>(self) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_unit<E: Error>(self) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Option<T>, D2::Error> {
                deserialize(d).map(Some)
            }
        }
        d.deserialize_option(O(std::marker::PhantomData))
    }
}
