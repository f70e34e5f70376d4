//! Events: what users do (view, cart, purchase...), when, where and through which surface.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::error::{CoreError, Result};
use crate::ids::{ItemId, UserId};
use crate::limits::{HARD_MAX_QUANTITY, MAX_ID_CHARS, MAX_RATING, MAX_TEXT_CHARS, check_price, check_text};
use crate::time::{MAX_MILLIS, Timestamp};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A product or page was viewed.
    View,
    /// A recommendation or link was clicked.
    Click,
    /// An item was put in the cart.
    AddToCart,
    /// An item was taken out of the cart.
    RemoveFromCart,
    /// An item was bought.
    Purchase,
    /// A bought item was returned (or an order line cancelled).
    Return,
    /// An item was shown (e.g. in a recommendation slot).
    Impression,
    /// A search was made.
    Search,
    /// An explicit rating was given.
    Rating,
    /// An item was added to a wish list.
    Wishlist,
}

impl EventKind {
    /// Every kind, in code order (`as u8` indexes this).
    pub const ALL: [EventKind; 10] = [
        Self::View,
        Self::Click,
        Self::AddToCart,
        Self::RemoveFromCart,
        Self::Purchase,
        Self::Return,
        Self::Impression,
        Self::Search,
        Self::Rating,
        Self::Wishlist,
    ];

    /// The snake_case name used in files, config and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Click => "click",
            Self::AddToCart => "add_to_cart",
            Self::RemoveFromCart => "remove_from_cart",
            Self::Purchase => "purchase",
            Self::Return => "return",
            Self::Impression => "impression",
            Self::Search => "search",
            Self::Rating => "rating",
            Self::Wishlist => "wishlist",
        }
    }

    /// Stable one-byte code for storage.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Inverse of [`EventKind::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(code as usize).copied()
    }

    /// Whether the kind needs an item (views of non-product pages and searches do not).
    pub fn needs_item(self) -> bool {
        !matches!(self, Self::View | Self::Search)
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let norm = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        let alias = match norm.as_str() {
            "addtocart" | "cart" | "add" => "add_to_cart",
            "removefromcart" | "remove" => "remove_from_cart",
            "buy" | "order" | "transaction" => "purchase",
            "cancel" | "refund" => "return",
            "pageview" | "page_view" | "detail" => "view",
            other => other,
        };
        Self::ALL.iter().copied().find(|k| k.as_str() == alias).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown event kind {s:?} (expected one of {})", names.join(", "))
        })
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and through which surface an event happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Context {
    /// `mobile`, `desktop`, `tablet`, `app`...
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_ID_CHARS), pattern(crate::schema::NON_BLANK))]
    pub device: Option<String>,
    /// Country name or ISO code.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_ID_CHARS), pattern(crate::schema::NON_BLANK))]
    pub country: Option<String>,
    /// Region or state.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_ID_CHARS), pattern(crate::schema::NON_BLANK))]
    pub region: Option<String>,
    /// City the visitor browses from, as the shop reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_ID_CHARS), pattern(crate::schema::NON_BLANK))]
    pub city: Option<String>,
    /// `web`, `app`, `email`, `push`...
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_ID_CHARS), pattern(crate::schema::NON_BLANK))]
    pub channel: Option<String>,
    /// Page type (`home`, `product`, `cart`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_ID_CHARS), pattern(crate::schema::NON_BLANK))]
    pub page: Option<String>,
    /// Recommendation slot on the page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_ID_CHARS), pattern(crate::schema::NON_BLANK))]
    pub slot: Option<String>,
    /// Referrer URL or source.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_ID_CHARS), pattern(crate::schema::NON_BLANK))]
    pub referrer: Option<String>,
}

impl Context {
    /// Field names in storage order, as written in mappings (`context.<name>`).
    pub const FIELDS: [&'static str; 8] =
        ["device", "country", "region", "city", "channel", "page", "slot", "referrer"];

    /// Fields in [`Context::FIELDS`] order.
    pub fn fields(&self) -> [&Option<String>; 8] {
        [&self.device, &self.country, &self.region, &self.city, &self.channel, &self.page, &self.slot, &self.referrer]
    }

    /// Mutable fields in [`Context::FIELDS`] order.
    pub fn fields_mut(&mut self) -> [&mut Option<String>; 8] {
        [
            &mut self.device,
            &mut self.country,
            &mut self.region,
            &mut self.city,
            &mut self.channel,
            &mut self.page,
            &mut self.slot,
            &mut self.referrer,
        ]
    }
}

/// Identity of an event, used to make ingestion idempotent. 128 bits, shown as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub u128);

impl EventId {
    /// The id for a caller-given id string: 32 hex digits are taken as they are (so exported
    /// ids re-import unchanged); anything else is hashed.
    pub fn from_given(s: &str) -> Self {
        if s.len() == 32
            && let Ok(v) = u128::from_str_radix(s, 16)
        {
            return Self(v);
        }
        let mut h = Xxh3::new();
        h.update(b"given\0");
        h.update(s.as_bytes());
        Self(h.digest128())
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let n = s.chars().count();
        if n == 0 || n > MAX_ID_CHARS {
            return Err(serde::de::Error::custom(format!("an event id has 1 to {MAX_ID_CHARS} characters, not {n}")));
        }
        Ok(Self::from_given(&s))
    }
}

fn default_quantity() -> u32 {
    1
}

/// One thing a user (or an anonymous session) did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = event_rules)]
pub struct Event {
    /// Idempotency key (for old events together with `ts`, which a retry resends); derived
    /// from the other fields when absent ([`Event::derive_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<EventId>,
    /// Known user; `None` for anonymous visitors (then `session` is required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    /// Browser or app session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_ID_CHARS), pattern(crate::schema::NON_BLANK))]
    pub session: Option<String>,
    /// The item concerned; optional for page views and searches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<ItemId>,
    /// The event's kind.
    pub kind: EventKind,
    /// When it happened.
    pub ts: Timestamp,
    /// Units (purchases, returns, carts); 1 otherwise.
    #[serde(default = "default_quantity")]
    #[schemars(range(min = 1, max = HARD_MAX_QUANTITY))]
    #[serde(deserialize_with = "crate::schema::whole::deserialize")]
    pub quantity: u32,
    /// Price of one unit at the time of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = crate::limits::HARD_MAX_PRICE))]
    pub unit_price: Option<f64>,
    /// Order (invoice) the line belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_ID_CHARS), pattern(crate::schema::NON_BLANK))]
    pub order_id: Option<String>,
    /// Device, location, channel, page and slot.
    #[serde(default, skip_serializing_if = "is_default")]
    pub context: Context,
    /// The recommendation list this event is attributed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_ID_CHARS), pattern(crate::schema::NON_BLANK))]
    pub rec_id: Option<String>,
    /// Explicit rating (kind `rating`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -MAX_RATING, max = MAX_RATING))]
    pub rating: Option<f32>,
    /// Search query (kind `search`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_TEXT_CHARS))]
    pub query: Option<String>,
}

/// The rules of [`Event::validate`] that span fields, in the schema: a user or a session;
/// an item unless the kind is `view` or `search`; a rating for `rating` events; a time
/// from 1970 on.
fn event_rules(schema: &mut schemars::Schema) {
    let needs_item: Vec<&str> = EventKind::ALL.iter().filter(|k| k.needs_item()).map(|k| k.as_str()).collect();
    // "Given" means present and not null.
    let given =
        |field: &str| serde_json::json!({"required": [field], "properties": {field: {"not": {"type": "null"}}}});
    let rules = serde_json::json!([
        {"anyOf": [given("user"), given("session")]},
        {"if": {"properties": {"kind": {"enum": needs_item}}, "required": ["kind"]}, "then": given("item")},
        {"if": {"properties": {"kind": {"const": "rating"}}, "required": ["kind"]}, "then": given("rating")},
    ]);
    schema.insert("allOf".into(), rules);
    if let Some(props) = schema.get_mut("properties").and_then(serde_json::Value::as_object_mut) {
        props.insert("ts".into(), crate::schema::timestamp_between(0, MAX_MILLIS).to_value());
    }
}

fn is_default(c: &Context) -> bool {
    *c == Context::default()
}

impl Event {
    /// A minimal event; fill the other fields as needed.
    pub fn new(user: Option<&str>, item: Option<&str>, kind: EventKind, ts: Timestamp) -> Self {
        Self {
            id: None,
            user: user.map(UserId::from),
            session: None,
            item: item.map(ItemId::from),
            kind,
            ts,
            quantity: 1,
            unit_price: None,
            order_id: None,
            context: Context::default(),
            rec_id: None,
            rating: None,
            query: None,
        }
    }

    /// Checks every rule an event must satisfy before it is stored.
    pub fn validate(&self) -> Result<()> {
        check_text("user", self.user.as_ref().map(UserId::as_str), MAX_ID_CHARS)?;
        check_text("session", self.session.as_deref(), MAX_ID_CHARS)?;
        if self.user.is_none() && self.session.is_none() {
            return Err(CoreError::invalid("user", "is missing (an event needs a user or a session id)"));
        }
        check_text("item", self.item.as_ref().map(ItemId::as_str), MAX_ID_CHARS)?;
        if self.item.is_none() && self.kind.needs_item() {
            return Err(CoreError::invalid("item", format!("is missing (a {} event needs an item)", self.kind)));
        }
        if self.ts.0 < 0 {
            return Err(CoreError::invalid(
                "ts",
                format!("{} is before 1970-01-01 (events must be from 1970 on)", self.ts),
            ));
        }
        if self.ts.0 >= MAX_MILLIS {
            return Err(CoreError::invalid("ts", format!("{} is after 2200-01-01", self.ts.0)));
        }
        if self.quantity == 0 {
            return Err(CoreError::invalid("quantity", "must be at least 1"));
        }
        if self.quantity > HARD_MAX_QUANTITY {
            return Err(CoreError::invalid("quantity", format!("{} is above {HARD_MAX_QUANTITY}", self.quantity)));
        }
        check_price("unit_price", self.unit_price)?;
        check_text("order_id", self.order_id.as_deref(), MAX_ID_CHARS)?;
        check_text("rec_id", self.rec_id.as_deref(), MAX_ID_CHARS)?;
        for (name, v) in Context::FIELDS.iter().zip(self.context.fields()) {
            check_text(context_field_name(name), v.as_deref(), MAX_ID_CHARS)?;
        }
        match self.rating {
            Some(r) if !r.is_finite() => {
                return Err(CoreError::invalid("rating", format!("{r} is not a finite number")));
            }
            Some(r) if r.abs() > MAX_RATING => {
                return Err(CoreError::invalid("rating", format!("{r} is outside -1e6..=1e6")));
            }
            None if self.kind == EventKind::Rating => {
                return Err(CoreError::invalid("rating", "is missing (a rating event needs a value)"));
            }
            _ => {}
        }
        if let Some(q) = &self.query
            && q.chars().count() > MAX_TEXT_CHARS
        {
            return Err(CoreError::invalid("query", format!("is longer than {MAX_TEXT_CHARS} characters")));
        }
        Ok(())
    }

    /// The idempotency id: the given one, or a hash of every field plus `ordinal`, the number
    /// of identical events before this one in the same source. The ordinal keeps genuinely
    /// repeated lines of one file (same customer, item, minute) while a re-import of the same
    /// file, which yields the same ordinals, adds nothing.
    pub fn derive_id(&self, ordinal: u32) -> EventId {
        if let Some(id) = self.id {
            return id;
        }
        EventId(self.content_hash() ^ u128::from(ordinal).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835))
    }

    /// Hash of every field except the id.
    pub fn content_hash(&self) -> u128 {
        fn opt(h: &mut Xxh3, v: Option<&str>) {
            match v {
                Some(s) => {
                    h.update(&[1]);
                    h.update(&(s.len() as u64).to_le_bytes());
                    h.update(s.as_bytes());
                }
                None => h.update(&[0]),
            }
        }
        let mut h = Xxh3::new();
        opt(&mut h, self.user.as_ref().map(UserId::as_str));
        opt(&mut h, self.session.as_deref());
        opt(&mut h, self.item.as_ref().map(ItemId::as_str));
        h.update(&[self.kind.code()]);
        h.update(&self.ts.0.to_le_bytes());
        h.update(&self.quantity.to_le_bytes());
        h.update(&self.unit_price.map_or(u64::MAX, f64::to_bits).to_le_bytes());
        opt(&mut h, self.order_id.as_deref());
        for v in self.context.fields() {
            opt(&mut h, v.as_deref());
        }
        opt(&mut h, self.rec_id.as_deref());
        h.update(&self.rating.map_or(u32::MAX, f32::to_bits).to_le_bytes());
        opt(&mut h, self.query.as_deref());
        h.digest128()
    }

    /// Revenue of the line (`quantity * unit_price`), zero without a price.
    pub fn amount(&self) -> f64 {
        self.unit_price.unwrap_or(0.0) * f64::from(self.quantity)
    }
}

/// `context.device` etc. as a `&'static str` for error messages.
pub fn context_field_name(name: &str) -> &'static str {
    match name {
        "device" => "context.device",
        "country" => "context.country",
        "region" => "context.region",
        "city" => "context.city",
        "channel" => "context.channel",
        "page" => "context.page",
        "slot" => "context.slot",
        _ => "context.referrer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> Event {
        let mut e = Event::new(Some("u1"), Some("i1"), EventKind::Purchase, Timestamp::from_secs(1_300_000_000));
        e.unit_price = Some(2.5);
        e.quantity = 3;
        e
    }

    #[test]
    fn kinds_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_code(k.code()), Some(k));
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(k));
        }
        assert_eq!("Add-To-Cart".parse::<EventKind>(), Ok(EventKind::AddToCart));
        assert!("teleport".parse::<EventKind>().unwrap_err().contains("expected one of view, click"));
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(ev().validate(), Ok(()));
        let mut e = ev();
        e.unit_price = Some(f64::NAN);
        assert_eq!(e.validate().map_err(|e| e.to_string()), Err("unit_price: NaN is not a finite number".into()));
        let mut e = ev();
        e.unit_price = Some(-1.0);
        assert_eq!(e.validate().map_err(|e| e.to_string()), Err("unit_price: -1 is negative".into()));
        let mut e = ev();
        e.user = None;
        assert_eq!(e.validate().map_err(|e| e.field()), Err("user"));
        e.session = Some("s".into());
        assert_eq!(e.validate(), Ok(()));
        let mut e = ev();
        e.item = None;
        assert!(e.validate().unwrap_err().to_string().contains("a purchase event needs an item"));
        e.kind = EventKind::View;
        assert_eq!(e.validate(), Ok(()));
    }

    #[test]
    fn ids_are_stable_and_ordinal_sensitive() {
        let e = ev();
        assert_eq!(e.derive_id(0), ev().derive_id(0));
        assert_ne!(e.derive_id(0), e.derive_id(1));
        let mut f = ev();
        f.quantity = 4;
        assert_ne!(e.derive_id(0), f.derive_id(0));
        let id = e.derive_id(0);
        assert_eq!(EventId::from_given(&id.to_string()), id);
        assert_ne!(EventId::from_given("abc"), EventId::from_given("abd"));
    }

    #[test]
    fn json_shape() {
        let e = ev();
        let s = serde_json::to_string(&e).expect("serializes");
        assert_eq!(
            s,
            r#"{"user":"u1","item":"i1","kind":"purchase","ts":1300000000000,"quantity":3,"unit_price":2.5}"#
        );
        let back: Event = serde_json::from_str(&s).expect("parses");
        assert_eq!(back, e);
    }
}
