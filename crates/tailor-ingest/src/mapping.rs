//! Column mapping: which file column (or constant) fills which field.
//!
//! Keys are field names (`user`, `ts`, `context.country`, `item.title`, `attr.color`);
//! values are column names. Unmapped fields take the column of the same name when the file
//! has one, so files written by `tailor export` import without any mapping.

use tailor_core::{Context, Event, EventId, EventKind, Item, ItemId, Timestamp, Urbanicity, User, UserId};

use crate::error::{IngestError, Result, RowError};
use crate::source::{Encoding, Row};

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Events (may also create the items and users they mention).
    Events,
    /// Catalog items.
    Items,
    /// User profiles (demographics and attributes).
    Users,
}

/// Event fields.
#[derive(Debug, Clone, PartialEq)]
enum EvField {
    Id,
    User,
    Session,
    Item,
    Kind,
    Ts,
    Quantity,
    Price,
    /// The line's total value: the unit price is amount / quantity.
    Amount,
    Order,
    RecId,
    Rating,
    Query,
    Value,
    Ctx(usize),
}

/// A column an item file can map (`id`, `price`, `category`, ...).
#[derive(Debug, Clone, PartialEq)]
enum ItemField {
    Id,
    Title,
    Description,
    Category,
    Brand,
    Price,
    SalePrice,
    Currency,
    Tags,
    Stock,
    InStock,
    CreatedAt,
    Attr(String),
}

/// A column a user file can map (`id`, `country`, `age`, ...).
#[derive(Debug, Clone, PartialEq)]
enum UserField {
    Id,
    Age,
    BirthYear,
    Gender,
    Country,
    Region,
    City,
    Urbanicity,
    SignupAt,
    Device,
    ConsentEmail,
    ConsentPush,
    Attr(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    Ev(EvField),
    Item(ItemField),
    User(UserField),
}

const EVENT_FIELDS: &[&str] = &[
    "id",
    "user",
    "session",
    "item",
    "kind",
    "ts",
    "quantity",
    "unit_price",
    "amount",
    "order_id",
    "rec_id",
    "rating",
    "query",
    "value",
    "context.device",
    "context.country",
    "context.region",
    "context.city",
    "context.channel",
    "context.page",
    "context.slot",
    "context.referrer",
];
/// Event fields whose columns older exports named differently: (field, old column).
const LEGACY_COLUMNS: &[(&str, &str)] = &[("unit_price", "price"), ("order_id", "order")];

const ITEM_FIELDS: &[&str] = &[
    "id",
    "title",
    "description",
    "category",
    "brand",
    "price",
    "sale_price",
    "currency",
    "tags",
    "stock",
    "in_stock",
    "created_at",
];
const USER_FIELDS: &[&str] = &[
    "id",
    "age",
    "birth_year",
    "gender",
    "country",
    "region",
    "city",
    "urbanicity",
    "signup_at",
    "preferred_device",
    "consent_email",
    "consent_push",
];

fn item_field(name: &str) -> Option<ItemField> {
    if let Some(a) = name.strip_prefix("attr.").or_else(|| name.strip_prefix("attributes.")) {
        return (!a.is_empty()).then(|| ItemField::Attr(a.to_owned()));
    }
    Some(match name {
        "id" => ItemField::Id,
        "title" | "name" => ItemField::Title,
        "description" => ItemField::Description,
        "category" => ItemField::Category,
        "brand" => ItemField::Brand,
        "price" => ItemField::Price,
        "sale_price" => ItemField::SalePrice,
        "currency" => ItemField::Currency,
        "tags" => ItemField::Tags,
        "stock" => ItemField::Stock,
        "in_stock" => ItemField::InStock,
        "created_at" => ItemField::CreatedAt,
        _ => return None,
    })
}

fn user_field(name: &str) -> Option<UserField> {
    if let Some(a) = name.strip_prefix("attr.").or_else(|| name.strip_prefix("attributes.")) {
        return (!a.is_empty()).then(|| UserField::Attr(a.to_owned()));
    }
    Some(match name {
        "id" => UserField::Id,
        "age" => UserField::Age,
        "birth_year" => UserField::BirthYear,
        "gender" => UserField::Gender,
        "country" => UserField::Country,
        "region" => UserField::Region,
        "city" => UserField::City,
        "urbanicity" => UserField::Urbanicity,
        "signup_at" => UserField::SignupAt,
        "preferred_device" | "device" => UserField::Device,
        "consent_email" => UserField::ConsentEmail,
        "consent_push" => UserField::ConsentPush,
        _ => return None,
    })
}

fn event_field(name: &str) -> Option<Field> {
    if let Some(rest) = name.strip_prefix("item.") {
        return item_field(rest).filter(|f| *f != ItemField::Id).map(Field::Item);
    }
    if let Some(rest) = name.strip_prefix("user.") {
        return user_field(rest).filter(|f| *f != UserField::Id).map(Field::User);
    }
    if let Some(rest) = name.strip_prefix("context.").or_else(|| name.strip_prefix("context_")) {
        return Context::FIELDS.iter().position(|f| *f == rest).map(|k| Field::Ev(EvField::Ctx(k)));
    }
    Some(Field::Ev(match name {
        "id" | "event_id" => EvField::Id,
        "user" | "user_id" => EvField::User,
        "session" | "session_id" => EvField::Session,
        "item" | "item_id" => EvField::Item,
        "kind" | "type" | "event" => EvField::Kind,
        "ts" | "timestamp" | "time" => EvField::Ts,
        "quantity" | "qty" => EvField::Quantity,
        "price" | "unit_price" => EvField::Price,
        "amount" | "line_total" => EvField::Amount,
        "order" | "order_id" => EvField::Order,
        "rec_id" => EvField::RecId,
        "rating" => EvField::Rating,
        "query" => EvField::Query,
        "value" => EvField::Value,
        _ => return None,
    }))
}

fn parse_field(target: Target, name: &str) -> Option<Field> {
    match target {
        Target::Events => event_field(name),
        Target::Items => item_field(name).map(Field::Item),
        Target::Users => user_field(name).map(Field::User),
    }
}

/// Where a field's value comes from.
#[derive(Debug, Clone, PartialEq)]
enum Src {
    Column(String),
    Const(String),
}

#[derive(Debug, Clone)]
struct Spec {
    field: Field,
    name: String,
    src: Src,
}

/// Dataset-specific conventions (set by presets).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    /// A negative quantity makes the row a return of `|quantity|` units.
    pub negative_quantity_is_return: bool,
    /// An order id with this prefix makes the row a return.
    pub return_order_prefix: Option<String>,
    /// A negative unit price makes the row a return of `|price|` (bad-debt adjustments).
    pub negative_price_is_return: bool,
    /// Rows without a user get the order id as their session.
    pub session_from_order: bool,
}

/// A validated mapping for one target.
#[derive(Debug, Clone)]
pub struct Mapping {
    target: Target,
    specs: Vec<Spec>,
    /// Dataset conventions.
    pub rules: Rules,
    /// strftime format for timestamps (`--ts-format`); auto-detected when `None`.
    pub ts_format: Option<String>,
    /// Text encoding of the input.
    pub encoding: Encoding,
}

fn split_pair<'a>(flag: &str, s: &'a str) -> Result<(&'a str, &'a str)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim(), v.trim())),
        _ => Err(IngestError::Usage(format!("{flag} {s:?}: expected FIELD=VALUE"))),
    }
}

fn field_list(target: Target) -> String {
    let names: &[&str] = match target {
        Target::Events => EVENT_FIELDS,
        Target::Items => ITEM_FIELDS,
        Target::Users => USER_FIELDS,
    };
    let mut s = names.join(", ");
    s.push_str(match target {
        Target::Events => ", item.<item field>, user.<user field>",
        _ => ", attr.<name>",
    });
    s
}

/// A mapping resolved against a file's columns.
pub struct Resolved {
    mapping: Mapping,
    /// Per spec: index into `columns` for column sources.
    slots: Vec<Option<usize>>,
    /// The columns to select from the source, in order.
    pub columns: Vec<String>,
}

impl Mapping {
    /// Builds a mapping from `--map FIELD=COLUMN` and `--set FIELD=VALUE` pairs.
    pub fn parse(target: Target, maps: &[String], sets: &[String]) -> Result<Self> {
        let mut specs: Vec<Spec> = Vec::new();
        for (flag, list) in [("--map", maps), ("--set", sets)] {
            for entry in list {
                for part in entry.split(',').filter(|p| !p.trim().is_empty()) {
                    let (k, v) = split_pair(flag, part)?;
                    let field = parse_field(target, k).ok_or_else(|| {
                        IngestError::Usage(format!(
                            "{flag} {k}={v}: unknown field {k:?} (known: {})",
                            field_list(target)
                        ))
                    })?;
                    if v.is_empty() {
                        return Err(IngestError::Usage(format!("{flag} {k}=: the value is empty")));
                    }
                    if let Some(prev) = specs.iter().find(|s| s.field == field) {
                        return Err(IngestError::Usage(format!(
                            "{flag} {k}={v}: {k} is already given ({})",
                            prev.name
                        )));
                    }
                    let src = if flag == "--map" { Src::Column(v.to_owned()) } else { Src::Const(v.to_owned()) };
                    specs.push(Spec { field, name: k.to_owned(), src });
                }
            }
        }
        let mapping = Self { target, specs, rules: Rules::default(), ts_format: None, encoding: Encoding::Utf8 };
        if target == Target::Events
            && let Some(Spec { src: Src::Const(k), .. }) =
                mapping.specs.iter().find(|s| s.field == Field::Ev(EvField::Kind))
        {
            k.parse::<EventKind>().map_err(|e| IngestError::Usage(format!("--set kind={k}: {e}")))?;
        }
        Ok(mapping)
    }

    /// The target.
    pub fn target(&self) -> Target {
        self.target
    }

    /// Resolves column names against the file's header (`columns` empty = JSON Lines, where
    /// every field may appear under its own name).
    pub fn resolve(&self, columns: &[String]) -> std::result::Result<Resolved, String> {
        let mut specs = self.specs.clone();
        let names: &[&str] = match self.target {
            Target::Events => EVENT_FIELDS,
            Target::Items => ITEM_FIELDS,
            Target::Users => USER_FIELDS,
        };
        let open_schema = columns.is_empty();
        let mut extra: Vec<&str> = names.to_vec();
        if self.target == Target::Events && !open_schema {
            // Exports of items/users mentioned by events use `item.title` etc.
            extra.extend(
                columns.iter().map(String::as_str).filter(|c| c.starts_with("item.") || c.starts_with("user.")),
            );
        }
        for name in extra {
            let Some(field) = parse_field(self.target, name) else { continue };
            if specs.iter().any(|s| s.field == field) {
                continue;
            }
            // Parquet exports spell `context.device` as `context_device`; exports before
            // the API's names were adopted wrote `price` and `order`.
            let flat = name.replace('.', "_");
            let legacy = LEGACY_COLUMNS.iter().find(|(n, _)| *n == name && self.target == Target::Events).map(|x| x.1);
            if open_schema || columns.iter().any(|c| c == name) {
                specs.push(Spec { field, name: name.to_owned(), src: Src::Column(name.to_owned()) });
            } else if columns.contains(&flat) {
                specs.push(Spec { field, name: name.to_owned(), src: Src::Column(flat) });
            } else if let Some(old) = legacy.filter(|old| columns.iter().any(|c| c == old)) {
                specs.push(Spec { field, name: name.to_owned(), src: Src::Column(old.to_owned()) });
            }
        }
        if !open_schema
            && specs.iter().any(|s| s.field == Field::Ev(EvField::Price))
            && let Some(a) = specs.iter().find(|s| s.field == Field::Ev(EvField::Amount))
        {
            return Err(format!(
                "both a unit price and a line total ({:?}) are mapped: map one (--map unit_price=COLUMN or --map amount=COLUMN)",
                a.name
            ));
        }
        let required: &[(&str, Field)] = match self.target {
            Target::Events => &[("ts", Field::Ev(EvField::Ts)), ("kind", Field::Ev(EvField::Kind))],
            Target::Items => &[("id", Field::Item(ItemField::Id))],
            Target::Users => &[("id", Field::User(UserField::Id))],
        };
        for (name, f) in required {
            if !specs.iter().any(|s| s.field == *f) {
                let how =
                    if *name == "kind" { "--set kind=purchase or --map kind=COLUMN" } else { "--map FIELD=COLUMN" };
                return Err(format!("no column for the required field {name:?} (pass {how})"));
            }
        }
        if self.target == Target::Events
            && !specs.iter().any(|s| matches!(s.field, Field::Ev(EvField::User | EvField::Session)))
        {
            return Err("no column for \"user\" or \"session\" (pass --map user=COLUMN)".into());
        }
        let mut columns_out: Vec<String> = Vec::new();
        let mut slots = Vec::with_capacity(specs.len());
        for s in &specs {
            slots.push(match &s.src {
                Src::Column(c) => Some(match columns_out.iter().position(|x| x == c) {
                    Some(k) => k,
                    None => {
                        columns_out.push(c.clone());
                        columns_out.len() - 1
                    }
                }),
                Src::Const(_) => None,
            });
        }
        Ok(Resolved { mapping: Mapping { specs, ..self.clone() }, slots, columns: columns_out })
    }
}

fn bad(line: u64, field: &str, reason: impl Into<String>) -> RowError {
    RowError::new(line, field, reason)
}

fn num(line: u64, field: &str, s: &str) -> std::result::Result<f64, RowError> {
    s.parse::<f64>().map_err(|_| bad(line, field, format!("{s:?} is not a number")))
}

fn int(line: u64, field: &str, s: &str) -> std::result::Result<i64, RowError> {
    if let Ok(v) = s.parse::<i64>() {
        return Ok(v);
    }
    match s.parse::<f64>() {
        // "3.0" (spreadsheets) is a whole number; "1.5" and "NaN" are not.
        Ok(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9e15 => Ok(f as i64),
        Ok(_) => Err(bad(line, field, format!("{s:?} is not a whole number"))),
        Err(_) => Err(bad(line, field, format!("{s:?} is not a number"))),
    }
}

fn boolean(line: u64, field: &str, s: &str) -> std::result::Result<bool, RowError> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "t" => Ok(true),
        "0" | "false" | "no" | "n" | "f" => Ok(false),
        _ => Err(bad(line, field, format!("{s:?} is not a boolean (true/false)"))),
    }
}

fn list(s: &str) -> Vec<String> {
    s.split(['|', ';']).map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

impl Resolved {
    fn text<'r>(&'r self, row: &'r Row, k: usize) -> std::result::Result<Option<std::borrow::Cow<'r, str>>, RowError> {
        let spec = &self.mapping.specs[k];
        match (&spec.src, self.slots[k]) {
            (Src::Const(v), _) => Ok(Some(std::borrow::Cow::Borrowed(v.as_str()))),
            (Src::Column(_), Some(slot)) => match row.raw(slot) {
                None => Ok(None),
                Some(b) => match self.mapping.encoding {
                    Encoding::Latin1 => Ok(Some(std::borrow::Cow::Owned(b.iter().map(|&c| char::from(c)).collect()))),
                    Encoding::Utf8 => {
                        std::str::from_utf8(b).map(|s| Some(std::borrow::Cow::Borrowed(s))).map_err(|e| {
                            bad(
                                row.line,
                                &spec.name,
                                format!(
                                    "invalid UTF-8 (byte 0x{:02X} at offset {})",
                                    b[e.valid_up_to()],
                                    e.valid_up_to()
                                ),
                            )
                        })
                    }
                },
            },
            (Src::Column(_), None) => Ok(None),
        }
    }

    fn time(&self, line: u64, field: &str, s: &str) -> std::result::Result<Timestamp, RowError> {
        match &self.mapping.ts_format {
            Some(f) => Timestamp::parse_with_format(s, f),
            None => Timestamp::parse_auto(s),
        }
        .map_err(|r| bad(line, field, r))
    }

    fn fill_item(
        &self,
        item: &mut Item,
        f: &ItemField,
        line: u64,
        name: &str,
        v: &str,
    ) -> std::result::Result<(), RowError> {
        match f {
            ItemField::Id => item.id = ItemId::from(v),
            ItemField::Title => item.title = Some(v.to_owned()),
            ItemField::Description => item.description = Some(v.to_owned()),
            ItemField::Category => item.category = tailor_core::item::parse_category_path(v),
            ItemField::Brand => item.brand = Some(v.to_owned()),
            ItemField::Price => item.price = Some(num(line, name, v)?),
            ItemField::SalePrice => item.sale_price = Some(num(line, name, v)?),
            ItemField::Currency => item.currency = Some(v.to_owned()),
            ItemField::Tags => item.tags = list(v),
            ItemField::Stock => {
                let n = int(line, name, v)?;
                item.stock = Some(n);
                item.in_stock = n > 0;
            }
            ItemField::InStock => item.in_stock = boolean(line, name, v)?,
            ItemField::CreatedAt => item.created_at = Some(self.time(line, name, v)?),
            ItemField::Attr(a) => {
                item.attributes.insert(a.clone(), v.to_owned());
            }
        }
        Ok(())
    }

    fn fill_user(
        &self,
        user: &mut User,
        f: &UserField,
        line: u64,
        name: &str,
        v: &str,
    ) -> std::result::Result<(), RowError> {
        match f {
            UserField::Id => user.id = UserId::from(v),
            UserField::Age => {
                let a = int(line, name, v)?;
                user.age = Some(u16::try_from(a).map_err(|_| bad(line, name, format!("{a} is not an age")))?);
            }
            UserField::BirthYear => {
                let y = int(line, name, v)?;
                user.birth_year = Some(i32::try_from(y).map_err(|_| bad(line, name, format!("{y} is not a year")))?);
            }
            UserField::Gender => user.gender = Some(v.to_owned()),
            UserField::Country => user.country = Some(v.to_owned()),
            UserField::Region => user.region = Some(v.to_owned()),
            UserField::City => user.city = Some(v.to_owned()),
            UserField::Urbanicity => user.urbanicity = Some(v.parse::<Urbanicity>().map_err(|r| bad(line, name, r))?),
            UserField::SignupAt => user.signup_at = Some(self.time(line, name, v)?),
            UserField::Device => user.preferred_device = Some(v.to_owned()),
            UserField::ConsentEmail => user.consent_email = boolean(line, name, v)?,
            UserField::ConsentPush => user.consent_push = boolean(line, name, v)?,
            UserField::Attr(a) => {
                user.attributes.insert(a.clone(), v.to_owned());
            }
        }
        Ok(())
    }

    /// Converts a row of an events file: the event, and the item / user records it carries.
    pub fn event(&self, row: &Row) -> std::result::Result<(Event, Option<Item>, Option<User>), RowError> {
        let line = row.line;
        let mut e = Event::new(None, None, EventKind::View, Timestamp(0));
        let mut kind: Option<EventKind> = None;
        let mut ts: Option<Timestamp> = None;
        let mut quantity: Option<i64> = None;
        let mut amount: Option<f64> = None;
        let mut item = Item::default();
        let mut user = User::default();
        let (mut has_item, mut has_user) = (false, false);
        let mut value: Option<(String, String)> = None;
        for (k, spec) in self.mapping.specs.iter().enumerate() {
            let Some(v) = self.text(row, k)? else { continue };
            let v = v.as_ref();
            let name = spec.name.as_str();
            match &spec.field {
                Field::Ev(f) => match f {
                    EvField::Id => e.id = Some(EventId::from_given(v)),
                    EvField::User => e.user = Some(UserId::from(v)),
                    EvField::Session => e.session = Some(v.to_owned()),
                    EvField::Item => e.item = Some(ItemId::from(v)),
                    EvField::Kind => kind = Some(v.parse().map_err(|r: String| bad(line, name, r))?),
                    EvField::Ts => ts = Some(self.time(line, name, v)?),
                    EvField::Quantity => quantity = Some(int(line, name, v)?),
                    EvField::Price => e.unit_price = Some(num(line, name, v)?),
                    EvField::Amount => amount = Some(num(line, name, v)?),
                    EvField::Order => e.order_id = Some(v.to_owned()),
                    EvField::RecId => e.rec_id = Some(v.to_owned()),
                    EvField::Rating => e.rating = Some(num(line, name, v)? as f32),
                    EvField::Query => e.query = Some(v.to_owned()),
                    EvField::Value => value = Some((name.to_owned(), v.to_owned())),
                    EvField::Ctx(c) => *e.context.fields_mut()[*c] = Some(v.to_owned()),
                },
                Field::Item(f) => {
                    has_item = true;
                    self.fill_item(&mut item, f, line, name, v)?;
                }
                Field::User(f) => {
                    has_user = true;
                    self.fill_user(&mut user, f, line, name, v)?;
                }
            }
        }
        let rules = &self.mapping.rules;
        let mut kind = kind.ok_or_else(|| bad(line, "kind", "is missing"))?;
        e.ts = ts.ok_or_else(|| bad(line, "ts", "is missing"))?;
        if let Some(q) = quantity {
            if q < 0 && rules.negative_quantity_is_return {
                kind = EventKind::Return;
            } else if q < 0 {
                return Err(bad(
                    line,
                    "quantity",
                    format!("{q} is negative (record returns as kind=return with a positive quantity)"),
                ));
            }
            if q == 0 {
                return Err(bad(line, "quantity", "must be at least 1"));
            }
            e.quantity =
                u32::try_from(q.unsigned_abs()).map_err(|_| bad(line, "quantity", format!("{q} is too large")))?;
        }
        if let Some(a) = amount {
            if e.unit_price.is_some() {
                return Err(bad(line, "amount", "the row gives both unit_price and amount (a line total); give one"));
            }
            e.unit_price = Some(a / f64::from(e.quantity));
        }
        if let (Some(prefix), Some(order)) = (&rules.return_order_prefix, &e.order_id)
            && order.starts_with(prefix.as_str())
        {
            kind = EventKind::Return;
        }
        if rules.negative_price_is_return
            && let Some(p) = e.unit_price
            && p < 0.0
        {
            kind = EventKind::Return;
            e.unit_price = Some(-p);
        }
        if rules.session_from_order && e.user.is_none() && e.session.is_none() {
            e.session = e.order_id.clone();
        }
        if let Some((name, v)) = value {
            match kind {
                EventKind::Search => e.query = Some(v),
                _ => e.rating = Some(num(line, &name, &v)? as f32),
            }
        }
        e.kind = kind;
        e.validate().map_err(|err| bad(line, err.field(), reason_of(&err)))?;
        let item = match (&e.item, has_item) {
            (Some(id), true) => {
                item.id = id.clone();
                item.validate().map_err(|err| bad(line, &format!("item.{}", err.field()), reason_of(&err)))?;
                Some(item)
            }
            _ => None,
        };
        let user = match (&e.user, has_user) {
            (Some(id), true) => {
                user.id = id.clone();
                user.validate().map_err(|err| bad(line, &format!("user.{}", err.field()), reason_of(&err)))?;
                Some(user)
            }
            _ => None,
        };
        Ok((e, item, user))
    }

    /// Converts a row of an items file.
    pub fn item(&self, row: &Row) -> std::result::Result<Item, RowError> {
        let mut item = Item::default();
        for (k, spec) in self.mapping.specs.iter().enumerate() {
            if let (Field::Item(f), Some(v)) = (&spec.field, self.text(row, k)?) {
                self.fill_item(&mut item, f, row.line, &spec.name, v.as_ref())?;
            }
        }
        if item.id.0.is_empty() {
            return Err(bad(row.line, "id", "is missing"));
        }
        item.validate().map_err(|err| bad(row.line, err.field(), reason_of(&err)))?;
        Ok(item)
    }

    /// Converts a row of a users file.
    pub fn user(&self, row: &Row) -> std::result::Result<User, RowError> {
        let mut user = User::default();
        for (k, spec) in self.mapping.specs.iter().enumerate() {
            if let (Field::User(f), Some(v)) = (&spec.field, self.text(row, k)?) {
                self.fill_user(&mut user, f, row.line, &spec.name, v.as_ref())?;
            }
        }
        if user.id.0.is_empty() {
            return Err(bad(row.line, "id", "is missing"));
        }
        user.validate().map_err(|err| bad(row.line, err.field(), reason_of(&err)))?;
        Ok(user)
    }
}

fn reason_of(err: &tailor_core::CoreError) -> String {
    match err {
        tailor_core::CoreError::Invalid { reason, .. } => reason.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_are_usage_errors() {
        let e = Mapping::parse(Target::Events, &["usr=CustomerID".into()], &[]).expect_err("unknown");
        assert!(e.to_string().starts_with("--map usr=CustomerID: unknown field \"usr\" (known: id, user,"), "{e}");
        let e = Mapping::parse(Target::Events, &[], &["kind=teleport".into()]).expect_err("kind");
        assert!(e.to_string().starts_with("--set kind=teleport: unknown event kind"), "{e}");
        let e = Mapping::parse(Target::Events, &["user=a,user=b".into()], &[]).expect_err("dup");
        assert_eq!(e.to_string(), "--map user=b: user is already given (user)");
        assert!(Mapping::parse(Target::Items, &["title=Name,attr.color=Colour".into()], &[]).is_ok());
    }

    #[test]
    fn a_line_total_or_a_unit_price_but_not_both() {
        let m = Mapping::parse(Target::Events, &["user=u,ts=t,amount=total".into()], &["kind=purchase".into()])
            .expect("ok");
        let cols: Vec<String> = ["u", "t", "total", "unit_price"].map(String::from).to_vec();
        let e = m.resolve(&cols).err().unwrap_or_default();
        assert!(e.starts_with("both a unit price and a line total (\"amount\") are mapped"), "{e}");
        assert!(m.resolve(&cols[..3]).is_ok());
    }

    #[test]
    fn resolve_requires_ts_and_kind() {
        let m = Mapping::parse(Target::Events, &["user=u".into()], &[]).expect("ok");
        let cols = vec!["u".to_owned(), "item".to_owned()];
        assert_eq!(
            m.resolve(&cols).err().as_deref(),
            Some("no column for the required field \"ts\" (pass --map FIELD=COLUMN)")
        );
    }
}
