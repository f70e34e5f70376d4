//! Layouts of well-known public datasets.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use tailor_core::{Event, EventKind, Item, Timestamp, User};
use tailor_store::{Store, UpsertMode, WriteBatch, WriteReport};

use crate::error::{IngestError, Result, RowError};
use crate::mapping::{Mapping, Rules, Target};

/// Names of the presets `--preset` accepts.
pub const PRESETS: &[&str] = &["online-retail"];

/// The mapping of a named preset.
pub fn by_name(name: &str) -> Result<Mapping> {
    match name {
        "online-retail" => online_retail(),
        _ => Err(IngestError::Usage(format!("unknown preset {name:?} (known: {})", PRESETS.join(", ")))),
    }
}

/// UCI Online Retail (`InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice,
/// CustomerID, Country`): every line is a purchase, except lines with a negative quantity,
/// an invoice starting with `C` (cancellations), or a negative unit price (the two "adjust
/// bad debt" lines), which are returns of the absolute amount. Lines without a customer keep
/// the invoice number as their session. Descriptions become item titles; countries become
/// the event's `context.country` and the customer's country.
pub fn online_retail() -> Result<Mapping> {
    let mut m = Mapping::parse(
        Target::Events,
        &["user=CustomerID,item=StockCode,ts=InvoiceDate,quantity=Quantity,price=UnitPrice,order=InvoiceNo,\
           context.country=Country,item.title=Description,user.country=Country"
            .to_owned()],
        &["kind=purchase".to_owned(), "item.currency=GBP".to_owned()],
    )?;
    m.rules = Rules {
        negative_quantity_is_return: true,
        return_order_prefix: Some("C".into()),
        negative_price_is_return: true,
        session_from_order: true,
    };
    Ok(m)
}

/// What a MovieLens import did.
#[derive(Debug, Clone, Serialize)]
pub struct MovielensReport {
    /// Ratings read.
    pub ratings: u64,
    /// Movies read.
    pub movies: u64,
    /// Users read.
    pub users: u64,
    /// Genres known.
    pub genres: u64,
    /// What the store did.
    pub written: WriteReport,
    /// Wall time.
    pub seconds: f64,
}

fn read_lines(path: &Path) -> Result<Vec<(u64, String)>> {
    let bytes = fs_err::read(path)
        .map_err(|e| IngestError::File { path: path.display().to_string(), reason: e.to_string() })?;
    // MovieLens-100K is ISO-8859-1.
    let text: String = bytes.iter().map(|&b| char::from(b)).collect();
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(k, l)| (k as u64 + 1, l.to_owned()))
        .collect())
}

fn field<'a>(parts: &[&'a str], k: usize, line: u64, name: &str) -> std::result::Result<&'a str, RowError> {
    parts.get(k).map(|s| s.trim()).ok_or_else(|| RowError::new(line, name, "is missing"))
}

/// Imports a MovieLens-100K directory (`u.data`, `u.item`, `u.user`, `u.genre`): ratings as
/// `rating` events with their value, movies with title, release date, genres (the first as
/// category, all as tags) and IMDb URL, users with age, gender, occupation and zip code.
pub fn import_movielens(dir: &Path, store: &dyn Store, max_errors: usize) -> Result<MovielensReport> {
    let start = Instant::now();
    let mut errors: Vec<(String, RowError)> = Vec::new();
    let genres: Vec<String> = read_lines(&dir.join("u.genre"))?
        .into_iter()
        .filter_map(|(_, l)| l.split('|').next().map(str::to_owned))
        .collect();
    let item_path = dir.join("u.item");
    let mut items = Vec::new();
    for (line, l) in read_lines(&item_path)? {
        let parts: Vec<&str> = l.split('|').collect();
        let parsed = (|| {
            let id = field(&parts, 0, line, "id")?;
            let mut item = Item::new(id);
            item.title = Some(field(&parts, 1, line, "title")?.to_owned()).filter(|t| !t.is_empty() && t != "unknown");
            let release = field(&parts, 2, line, "release_date")?;
            if !release.is_empty() {
                item.created_at = Some(
                    Timestamp::parse_with_format(release, "%d-%b-%Y")
                        .map_err(|r| RowError::new(line, "release_date", r))?,
                );
            }
            if let Some(url) = parts.get(4).map(|s| s.trim()).filter(|s| !s.is_empty()) {
                item.attributes.insert("imdb_url".into(), url.to_owned());
            }
            for (g, name) in genres.iter().enumerate() {
                if field(&parts, 5 + g, line, "genre")? == "1" {
                    item.tags.push(name.clone());
                }
            }
            item.category = item.tags.iter().take(1).cloned().collect();
            Ok::<_, RowError>(item)
        })();
        match parsed {
            Ok(i) => items.push(i),
            Err(e) => errors.push((item_path.display().to_string(), e)),
        }
    }
    let user_path = dir.join("u.user");
    let mut users = Vec::new();
    for (line, l) in read_lines(&user_path)? {
        let parts: Vec<&str> = l.split('|').collect();
        let parsed = (|| {
            let mut u = User::new(field(&parts, 0, line, "id")?);
            let age = field(&parts, 1, line, "age")?;
            u.age = Some(age.parse().map_err(|_| RowError::new(line, "age", format!("{age:?} is not an age")))?);
            u.gender = Some(field(&parts, 2, line, "gender")?.to_owned());
            u.attributes.insert("occupation".into(), field(&parts, 3, line, "occupation")?.to_owned());
            u.attributes.insert("zip".into(), field(&parts, 4, line, "zip")?.to_owned());
            Ok::<_, RowError>(u)
        })();
        match parsed {
            Ok(u) => users.push(u),
            Err(e) => errors.push((user_path.display().to_string(), e)),
        }
    }
    let data_path = dir.join("u.data");
    let mut events = Vec::new();
    for (line, l) in read_lines(&data_path)? {
        let parts: Vec<&str> = l.split('\t').collect();
        let parsed = (|| {
            let ts = field(&parts, 3, line, "ts")?;
            let ts = Timestamp::parse_auto(ts).map_err(|r| RowError::new(line, "ts", r))?;
            let mut e = Event::new(
                Some(field(&parts, 0, line, "user")?),
                Some(field(&parts, 1, line, "item")?),
                EventKind::Rating,
                ts,
            );
            let r = field(&parts, 2, line, "rating")?;
            e.rating = Some(r.parse().map_err(|_| RowError::new(line, "rating", format!("{r:?} is not a number")))?);
            e.validate().map_err(|err| RowError::new(line, err.field(), err.to_string()))?;
            Ok::<_, RowError>(e)
        })();
        match parsed {
            Ok(e) => events.push(e),
            Err(e) => errors.push((data_path.display().to_string(), e)),
        }
    }
    if let Some((path, _)) = errors.first() {
        let total = errors.len() as u64;
        let path = path.clone();
        return Err(IngestError::Rejected {
            path,
            errors: errors.into_iter().take(max_errors).map(|(_, e)| e).collect(),
            total,
        });
    }
    let report = MovielensReport {
        ratings: events.len() as u64,
        movies: items.len() as u64,
        users: users.len() as u64,
        genres: genres.len() as u64,
        written: WriteReport::default(),
        seconds: 0.0,
    };
    // Catalog and users first so that dense ids follow the files' numbering.
    let written = store.write(WriteBatch { items, users, events, mode: UpsertMode::Replace })?;
    Ok(MovielensReport { written, seconds: start.elapsed().as_secs_f64(), ..report })
}
