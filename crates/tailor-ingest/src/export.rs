//! Exporting events to CSV, JSON Lines or Parquet. The columns are the field names the
//! importer maps by default, so an export imports back unchanged (ids included).

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use tailor_core::{Event, EventId};
use tailor_store::{EventFilter, Store};

use crate::error::{IngestError, Result};
use crate::source::Format;

/// Exported columns, in order.
pub const COLUMNS: [&str; 20] = [
    "id",
    "ts",
    "kind",
    "user",
    "session",
    "item",
    "quantity",
    "unit_price",
    "order_id",
    "rec_id",
    "rating",
    "query",
    "context.device",
    "context.country",
    "context.region",
    "context.city",
    "context.channel",
    "context.page",
    "context.slot",
    "context.referrer",
];

/// What an export did.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// Output file.
    pub path: String,
    /// Events written.
    pub events: u64,
    /// Wall time.
    pub seconds: f64,
}

/// The exported values of one event, in [`COLUMNS`] order.
pub fn values(id: EventId, e: &Event) -> [Option<String>; 20] {
    let c = &e.context;
    [
        Some(id.to_string()),
        Some(e.ts.to_rfc3339()),
        Some(e.kind.as_str().to_owned()),
        e.user.as_ref().map(|u| u.0.clone()),
        e.session.clone(),
        e.item.as_ref().map(|i| i.0.clone()),
        Some(e.quantity.to_string()),
        e.unit_price.map(|p| p.to_string()),
        e.order_id.clone(),
        e.rec_id.clone(),
        e.rating.map(|r| r.to_string()),
        e.query.clone(),
        c.device.clone(),
        c.country.clone(),
        c.region.clone(),
        c.city.clone(),
        c.channel.clone(),
        c.page.clone(),
        c.slot.clone(),
        c.referrer.clone(),
    ]
}

/// Hands the exported values of each event passing `filter` to `row`, stopping at its first
/// error; returns the number of rows.
fn for_each_row(
    store: &dyn Store,
    filter: EventFilter,
    row: &mut dyn FnMut([Option<String>; 20]) -> Result<()>,
) -> Result<u64> {
    let mut n = 0u64;
    let mut failure = None;
    store.scan_events(filter, &mut |id, e| match row(values(id, &e)) {
        Ok(()) => {
            n += 1;
            ControlFlow::Continue(())
        }
        Err(err) => {
            failure = Some(err);
            ControlFlow::Break(())
        }
    })?;
    failure.map_or(Ok(n), Err)
}

/// Writes the events passing `filter` to `out` in `format`.
pub fn export_events(store: &dyn Store, format: Format, out: &Path, filter: EventFilter) -> Result<ExportReport> {
    let start = Instant::now();
    let fail = |e: &dyn std::fmt::Display| IngestError::Output { path: out.to_owned(), reason: e.to_string() };
    let file = fs_err::File::create(out).map_err(|e| fail(&e))?;
    let n = match format {
        Format::Csv | Format::Tsv => {
            let delim = if format == Format::Tsv { b'\t' } else { b',' };
            let mut w = csv::WriterBuilder::new().delimiter(delim).from_writer(std::io::BufWriter::new(file));
            w.write_record(COLUMNS).map_err(|e| fail(&e))?;
            let n = for_each_row(store, filter, &mut |vals| {
                w.write_record(vals.iter().map(|v| v.as_deref().unwrap_or(""))).map_err(|e| fail(&e))
            })?;
            w.flush().map_err(|e| fail(&e))?;
            n
        }
        Format::Jsonl => {
            let mut w = std::io::BufWriter::new(file);
            let n = for_each_row(store, filter, &mut |vals| {
                let obj: serde_json::Map<String, serde_json::Value> = COLUMNS
                    .iter()
                    .zip(vals)
                    .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), serde_json::Value::String(v))))
                    .collect();
                serde_json::to_writer(&mut w, &obj).map_err(|e| fail(&e))?;
                w.write_all(b"\n").map_err(|e| fail(&e))
            })?;
            w.flush().map_err(|e| fail(&e))?;
            n
        }
        Format::Parquet => export_parquet(store, file, out, filter)?,
    };
    Ok(ExportReport { path: out.display().to_string(), events: n, seconds: start.elapsed().as_secs_f64() })
}

#[cfg(feature = "parquet")]
fn export_parquet(store: &dyn Store, file: fs_err::File, out: &Path, filter: EventFilter) -> Result<u64> {
    use std::sync::Arc;

    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    const GROUP_ROWS: usize = 65_536;
    let fail = |e: &dyn std::fmt::Display| IngestError::Output { path: out.to_owned(), reason: e.to_string() };
    let mut schema = String::from("message event {\n");
    for c in COLUMNS {
        schema.push_str(&format!("  OPTIONAL BYTE_ARRAY {} (UTF8);\n", c.replace('.', "_")));
    }
    schema.push('}');
    let schema = Arc::new(parse_message_type(&schema).map_err(|e| fail(&e))?);
    let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let mut writer = SerializedFileWriter::new(file.into_parts().0, schema, props).map_err(|e| fail(&e))?;
    let mut columns: Vec<Vec<Option<String>>> = vec![Vec::new(); COLUMNS.len()];
    let flush =
        |writer: &mut SerializedFileWriter<std::fs::File>, columns: &mut Vec<Vec<Option<String>>>| -> Result<()> {
            if columns[0].is_empty() {
                return Ok(());
            }
            let mut rg = writer.next_row_group().map_err(|e| fail(&e))?;
            let mut k = 0;
            while let Some(mut col) = rg.next_column().map_err(|e| fail(&e))? {
                let vals: Vec<ByteArray> = columns[k].iter().flatten().map(|s| ByteArray::from(s.as_str())).collect();
                let defs: Vec<i16> = columns[k].iter().map(|v| i16::from(v.is_some())).collect();
                col.typed::<ByteArrayType>().write_batch(&vals, Some(&defs), None).map_err(|e| fail(&e))?;
                col.close().map_err(|e| fail(&e))?;
                columns[k].clear();
                k += 1;
            }
            rg.close().map_err(|e| fail(&e))?;
            Ok(())
        };
    let n = for_each_row(store, filter, &mut |vals| {
        for (col, v) in columns.iter_mut().zip(vals) {
            col.push(v);
        }
        if columns[0].len() >= GROUP_ROWS { flush(&mut writer, &mut columns) } else { Ok(()) }
    })?;
    flush(&mut writer, &mut columns)?;
    writer.close().map_err(|e| fail(&e))?;
    Ok(n)
}

#[cfg(not(feature = "parquet"))]
fn export_parquet(_: &dyn Store, _: fs_err::File, out: &Path, _: EventFilter) -> Result<u64> {
    Err(IngestError::Output { path: out.to_owned(), reason: "this tailor was built without Parquet support".into() })
}
