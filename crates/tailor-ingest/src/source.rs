//! Row sources: CSV/TSV (plain or gzip), JSON Lines and Parquet, all yielding the raw bytes
//! of the columns a mapping asked for, with the line each row starts on.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{IngestError, Result, RowError};

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// Tab-separated values with a header row.
    Tsv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Self::Csv),
            "tsv" | "tab" => Ok(Self::Tsv),
            "jsonl" | "ndjson" | "json" => Ok(Self::Jsonl),
            "parquet" => Ok(Self::Parquet),
            _ => Err(format!("unknown format {s:?} (expected csv, tsv, jsonl or parquet)")),
        }
    }
}

impl Format {
    /// Guesses the format from the file name (`.csv`, `.tsv`, `.jsonl`, `.parquet`, each
    /// optionally followed by `.gz`).
    pub fn from_path(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        let ext = name.rsplit('.').next()?;
        match ext {
            "csv" => Some(Self::Csv),
            "tsv" | "tab" | "data" => Some(Self::Tsv),
            "jsonl" | "ndjson" | "json" => Some(Self::Jsonl),
            "parquet" | "pq" => Some(Self::Parquet),
            _ => None,
        }
    }
}

/// Text encoding of CSV/TSV input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-8; invalid bytes are a row error.
    #[default]
    Utf8,
    /// ISO-8859-1 (every byte is a character; MovieLens files use it).
    Latin1,
}

/// How to read a file.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Format; guessed from the name when `None`.
    pub format: Option<Format>,
    /// Field delimiter for CSV/TSV (default `,` / tab).
    pub delimiter: Option<u8>,
    /// Longest accepted line (row) in bytes.
    pub max_line_bytes: usize,
    /// Text encoding.
    pub encoding: Encoding,
    /// Column names for header-less CSV/TSV files (the first line is then data).
    pub columns: Option<Vec<String>>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self { format: None, delimiter: None, max_line_bytes: 1 << 20, encoding: Encoding::Utf8, columns: None }
    }
}

/// One row: the values of the selected columns (`None` = missing, empty or null).
#[derive(Debug, Default, Clone)]
pub struct Row {
    /// Line (CSV/JSONL) or row number (Parquet), 1-based, counting the header.
    pub line: u64,
    values: Vec<Vec<u8>>,
    present: Vec<bool>,
}

impl Row {
    /// Raw bytes of selected column `k`, if present and not empty.
    pub fn raw(&self, k: usize) -> Option<&[u8]> {
        if self.present.get(k).copied().unwrap_or(false) { Some(&self.values[k]) } else { None }
    }

    fn reset(&mut self, n: usize) {
        self.values.resize_with(n, Vec::new);
        self.present.clear();
        self.present.resize(n, false);
        for v in &mut self.values {
            v.clear();
        }
    }

    fn set(&mut self, k: usize, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.values[k].extend_from_slice(bytes);
            self.present[k] = true;
        }
    }
}

/// Why reading a row failed.
#[derive(Debug)]
pub enum ReadError {
    /// This row is bad; the next one may be fine.
    Row(RowError),
    /// The file cannot be read further.
    Fatal(IngestError),
}

/// A stream of rows.
pub trait Source {
    /// Column names known up front (header or schema); empty for JSON Lines.
    fn columns(&self) -> &[String];
    /// Chooses the columns [`Row::raw`] will return, in this order. Unknown names are an error
    /// for sources with a header.
    fn select(&mut self, wanted: &[String]) -> std::result::Result<(), String>;
    /// Reads the next row into `row`; `Ok(false)` at the end.
    fn next_row(&mut self, row: &mut Row) -> std::result::Result<bool, ReadError>;
    /// Input bytes consumed so far (compressed bytes for gzip), for progress.
    fn bytes_read(&self) -> u64;
}

/// Counts bytes pulled through a reader (shared with the source for progress reports).
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn file_error(path: &Path, reason: impl Into<String>) -> IngestError {
    IngestError::File { path: path.display().to_string(), reason: reason.into() }
}

/// Describes an I/O error while reading, naming gzip corruption plainly.
fn read_failure(path: &Path, line: u64, e: &std::io::Error) -> IngestError {
    let gz = path.extension().is_some_and(|x| x.eq_ignore_ascii_case("gz"));
    let what = if gz
        && matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
        ) {
        format!("the gzip data is corrupt or truncated ({e})")
    } else {
        e.to_string()
    };
    file_error(path, format!("read failed after line {line}: {what}"))
}

/// Opens `path` (decompressing `.gz`) and returns a source for its format.
pub fn open(path: &Path, opts: &SourceOptions) -> Result<Box<dyn Source>> {
    let format = opts
        .format
        .or_else(|| Format::from_path(path))
        .ok_or_else(|| file_error(path, "cannot tell the format from the name; pass --format csv|tsv|jsonl|parquet"))?;
    let file = fs_err::File::open(path).map_err(|e| file_error(path, e.to_string()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if size == 0 {
        return Err(file_error(path, "the file is empty (expected a header row)"));
    }
    if format == Format::Parquet {
        return parquet_source(path, file.into_parts().0);
    }
    let count = Arc::new(AtomicU64::new(0));
    let counted = Counting { inner: file, count: Arc::clone(&count) };
    let gz = path.extension().is_some_and(|x| x.eq_ignore_ascii_case("gz"));
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, counted)))
    } else {
        Box::new(counted)
    };
    match format {
        Format::Jsonl => Ok(Box::new(JsonlSource::new(path, reader, count, opts.max_line_bytes))),
        _ => {
            let delimiter = opts.delimiter.unwrap_or(if format == Format::Tsv { b'\t' } else { b',' });
            CsvSource::open(path, reader, count, delimiter, opts)
        }
    }
}

/// CSV/TSV reader.
struct CsvSource {
    path: std::path::PathBuf,
    reader: csv::Reader<Box<dyn Read>>,
    columns: Vec<String>,
    selected: Vec<usize>,
    record: csv::ByteRecord,
    count: Arc<AtomicU64>,
    max_line_bytes: usize,
    header_line: bool,
}

fn decode(bytes: &[u8], encoding: Encoding) -> std::result::Result<String, String> {
    match encoding {
        Encoding::Latin1 => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
        Encoding::Utf8 => std::str::from_utf8(bytes).map(str::to_owned).map_err(|e| {
            format!("invalid UTF-8 (byte 0x{:02X} at offset {})", bytes[e.valid_up_to()], e.valid_up_to())
        }),
    }
}

impl CsvSource {
    fn open(
        path: &Path,
        reader: Box<dyn Read>,
        count: Arc<AtomicU64>,
        delimiter: u8,
        opts: &SourceOptions,
    ) -> Result<Box<dyn Source>> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .buffer_capacity(1 << 16)
            .from_reader(reader);
        let mut record = csv::ByteRecord::new();
        let (columns, header_line) = if let Some(cols) = &opts.columns {
            (cols.clone(), false)
        } else {
            match reader.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => return Err(file_error(path, "the file is empty (expected a header row)")),
                Err(e) => return Err(csv_fatal(path, 1, e)),
            }
            if record.as_slice().len() > opts.max_line_bytes {
                return Err(IngestError::Header {
                    path: path.display().to_string(),
                    line: 1,
                    reason: format!(
                        "the header line is {} bytes long (the limit is {})",
                        record.as_slice().len(),
                        opts.max_line_bytes
                    ),
                });
            }
            let mut cols = Vec::with_capacity(record.len());
            for (k, f) in record.iter().enumerate() {
                let name = decode(f, opts.encoding).map_err(|r| IngestError::Header {
                    path: path.display().to_string(),
                    line: 1,
                    reason: format!("column {}: {r}", k + 1),
                })?;
                let name = name.trim().trim_start_matches('\u{feff}').to_owned();
                if let Some(first) = cols.iter().position(|c: &String| *c == name) {
                    return Err(IngestError::Header {
                        path: path.display().to_string(),
                        line: 1,
                        reason: format!("duplicate column name {name:?} (columns {} and {})", first + 1, k + 1),
                    });
                }
                cols.push(name);
            }
            (cols, true)
        };
        Ok(Box::new(Self {
            path: path.to_owned(),
            reader,
            columns,
            selected: Vec::new(),
            record,
            count,
            max_line_bytes: opts.max_line_bytes,
            header_line,
        }))
    }
}

fn csv_fatal(path: &Path, line: u64, e: csv::Error) -> IngestError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => read_failure(path, line, &io),
        other => file_error(path, format!("cannot parse after line {line}: {other:?}")),
    }
}

impl Source for CsvSource {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    fn select(&mut self, wanted: &[String]) -> std::result::Result<(), String> {
        let mut sel = Vec::with_capacity(wanted.len());
        for w in wanted {
            match self.columns.iter().position(|c| c == w) {
                Some(k) => sel.push(k),
                None => {
                    let msg = format!(
                        "column {w:?} not found; the header has {} column{}: {}",
                        self.columns.len(),
                        if self.columns.len() == 1 { "" } else { "s" },
                        self.columns.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ")
                    );
                    return Err(msg);
                }
            }
        }
        self.selected = sel;
        Ok(())
    }

    fn next_row(&mut self, row: &mut Row) -> std::result::Result<bool, ReadError> {
        let line_before = self.reader.position().line();
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => return Ok(false),
            Ok(true) => {}
            Err(e) => {
                let fatal = matches!(e.kind(), csv::ErrorKind::Io(_));
                let line = e.position().map_or(line_before, csv::Position::line);
                if fatal {
                    return Err(ReadError::Fatal(csv_fatal(&self.path, line, e)));
                }
                return Err(ReadError::Row(RowError::new(line, "row", format!("cannot parse: {e}"))));
            }
        }
        let line = self.record.position().map_or(line_before, csv::Position::line);
        row.line = line;
        row.reset(self.selected.len());
        let start = self.record.position().map_or(0, csv::Position::byte);
        let len = usize::try_from(self.reader.position().byte().saturating_sub(start)).unwrap_or(usize::MAX);
        if len > self.max_line_bytes {
            return Err(ReadError::Row(RowError::new(
                line,
                "row",
                format!(
                    "the line is {len} bytes long (the limit is {}; raise import.max_line_bytes)",
                    self.max_line_bytes
                ),
            )));
        }
        if self.header_line && self.record.len() != self.columns.len() {
            // A lone empty line is not a row.
            if self.record.len() == 1 && self.record.as_slice().is_empty() {
                return self.next_row(row);
            }
            return Err(ReadError::Row(RowError::new(
                line,
                "row",
                format!(
                    "the row has {} field{}, the header has {}",
                    self.record.len(),
                    if self.record.len() == 1 { "" } else { "s" },
                    self.columns.len()
                ),
            )));
        }
        for (k, &c) in self.selected.iter().enumerate() {
            if let Some(f) = self.record.get(c) {
                row.set(k, f.trim_ascii());
            }
        }
        Ok(true)
    }

    fn bytes_read(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// JSON Lines reader: one object per line; columns are keys, `a.b` also finds nested keys.
struct JsonlSource {
    path: std::path::PathBuf,
    reader: BufReader<Box<dyn Read>>,
    selected: Vec<String>,
    buf: Vec<u8>,
    line: u64,
    count: Arc<AtomicU64>,
    max_line_bytes: usize,
}

impl JsonlSource {
    fn new(path: &Path, reader: Box<dyn Read>, count: Arc<AtomicU64>, max_line_bytes: usize) -> Self {
        Self {
            path: path.to_owned(),
            reader: BufReader::with_capacity(1 << 16, reader),
            selected: vec![],
            buf: vec![],
            line: 0,
            count,
            max_line_bytes,
        }
    }
}

fn lookup<'v>(obj: &'v serde_json::Map<String, serde_json::Value>, key: &str) -> Option<&'v serde_json::Value> {
    if let Some(v) = obj.get(key) {
        return Some(v);
    }
    let (head, rest) = key.split_once('.')?;
    match obj.get(head)? {
        serde_json::Value::Object(inner) => lookup(inner, rest),
        _ => None,
    }
}

impl Source for JsonlSource {
    fn columns(&self) -> &[String] {
        &[]
    }

    fn select(&mut self, wanted: &[String]) -> std::result::Result<(), String> {
        self.selected = wanted.to_vec();
        Ok(())
    }

    fn next_row(&mut self, row: &mut Row) -> std::result::Result<bool, ReadError> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| ReadError::Fatal(read_failure(&self.path, self.line, &e)))?;
            if n == 0 {
                return Ok(false);
            }
            self.line += 1;
            if self.buf.trim_ascii().is_empty() {
                continue;
            }
            break;
        }
        let line = self.line;
        row.line = line;
        row.reset(self.selected.len());
        if self.buf.len() > self.max_line_bytes {
            return Err(ReadError::Row(RowError::new(
                line,
                "row",
                format!(
                    "the line is {} bytes long (the limit is {}; raise import.max_line_bytes)",
                    self.buf.len(),
                    self.max_line_bytes
                ),
            )));
        }
        let value: serde_json::Value = serde_json::from_slice(&self.buf)
            .map_err(|e| ReadError::Row(RowError::new(line, "row", format!("invalid JSON: {e}"))))?;
        let serde_json::Value::Object(obj) = value else {
            return Err(ReadError::Row(RowError::new(line, "row", "expected a JSON object")));
        };
        for (k, col) in self.selected.iter().enumerate() {
            match lookup(&obj, col) {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::String(s)) => row.set(k, s.trim().as_bytes()),
                Some(serde_json::Value::Bool(b)) => row.set(k, if *b { b"true" } else { b"false" }),
                Some(serde_json::Value::Number(n)) => row.set(k, n.to_string().as_bytes()),
                Some(serde_json::Value::Array(a)) => {
                    let mut parts = Vec::with_capacity(a.len());
                    for v in a {
                        match v {
                            serde_json::Value::String(s) => parts.push(s.clone()),
                            serde_json::Value::Number(n) => parts.push(n.to_string()),
                            _ => {
                                return Err(ReadError::Row(RowError::new(
                                    line,
                                    col.clone(),
                                    "expected a list of strings or numbers",
                                )));
                            }
                        }
                    }
                    row.set(k, parts.join("|").as_bytes());
                }
                Some(serde_json::Value::Object(_)) => {
                    return Err(ReadError::Row(RowError::new(
                        line,
                        col.clone(),
                        "expected a string or a number, found an object",
                    )));
                }
            }
        }
        Ok(true)
    }

    fn bytes_read(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

#[cfg(feature = "parquet")]
fn parquet_source(path: &Path, file: std::fs::File) -> Result<Box<dyn Source>> {
    parquet_impl::ParquetSource::open(path, file)
}

#[cfg(not(feature = "parquet"))]
fn parquet_source(path: &Path, _file: std::fs::File) -> Result<Box<dyn Source>> {
    Err(file_error(path, "this tailor was built without Parquet support (cargo feature `parquet`)"))
}

#[cfg(feature = "parquet")]
mod parquet_impl {
    use std::path::Path;

    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    use super::{ReadError, Row, Source, file_error};
    use crate::error::{Result, RowError};

    /// Parquet rows are materialised batch by batch through the record API.
    pub struct ParquetSource {
        columns: Vec<String>,
        selected: Vec<usize>,
        rows: parquet::record::reader::RowIter<'static>,
        n: u64,
        bytes: u64,
        path: std::path::PathBuf,
    }

    impl ParquetSource {
        pub fn open(path: &Path, file: std::fs::File) -> Result<Box<dyn Source>> {
            let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
            let reader = SerializedFileReader::new(file)
                .map_err(|e| file_error(path, format!("not a readable Parquet file: {e}")))?;
            let columns = reader
                .metadata()
                .file_metadata()
                .schema_descr()
                .root_schema()
                .get_fields()
                .iter()
                .map(|f| f.name().to_owned())
                .collect();
            let rows = reader.into_iter();
            Ok(Box::new(Self { columns, selected: vec![], rows, n: 0, bytes, path: path.to_owned() }))
        }
    }

    fn field_text(f: &Field) -> std::result::Result<Option<String>, String> {
        let ts = |ms: i64| tailor_core::Timestamp(ms).to_rfc3339();
        Ok(Some(match f {
            Field::Null => return Ok(None),
            Field::Bool(b) => b.to_string(),
            Field::Byte(v) => v.to_string(),
            Field::Short(v) => v.to_string(),
            Field::Int(v) => v.to_string(),
            Field::Long(v) => v.to_string(),
            Field::UByte(v) => v.to_string(),
            Field::UShort(v) => v.to_string(),
            Field::UInt(v) => v.to_string(),
            Field::ULong(v) => v.to_string(),
            Field::Float(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
            Field::Float(v) => v.to_string(),
            Field::Double(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
            Field::Double(v) => v.to_string(),
            Field::Str(s) => s.clone(),
            Field::Bytes(b) => String::from_utf8(b.data().to_vec()).map_err(|_| "invalid UTF-8".to_owned())?,
            Field::Date(d) => ts(i64::from(*d) * 86_400_000),
            Field::TimestampMillis(v) => ts(*v),
            Field::TimestampMicros(v) => ts(v.div_euclid(1000)),
            other => other.to_string(),
        }))
    }

    impl Source for ParquetSource {
        fn columns(&self) -> &[String] {
            &self.columns
        }

        fn select(&mut self, wanted: &[String]) -> std::result::Result<(), String> {
            let mut sel = Vec::new();
            for w in wanted {
                let k = self.columns.iter().position(|c| c == w).ok_or_else(|| {
                    format!(
                        "column {w:?} not found; the schema has {}",
                        self.columns.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ")
                    )
                })?;
                sel.push(k);
            }
            self.selected = sel;
            Ok(())
        }

        fn next_row(&mut self, row: &mut Row) -> std::result::Result<bool, ReadError> {
            let Some(next) = self.rows.next() else { return Ok(false) };
            self.n += 1;
            // Row numbers count a virtual header so that they match a CSV export's lines.
            row.line = self.n + 1;
            row.reset(self.selected.len());
            let r = next
                .map_err(|e| ReadError::Fatal(file_error(&self.path, format!("read failed at row {}: {e}", self.n))))?;
            let fields: Vec<&Field> = r.get_column_iter().map(|(_, f)| f).collect();
            for (k, &c) in self.selected.iter().enumerate() {
                if let Some(f) = fields.get(c) {
                    match field_text(f) {
                        Ok(Some(s)) => row.set(k, s.trim().as_bytes()),
                        Ok(None) => {}
                        Err(reason) => {
                            return Err(ReadError::Row(RowError::new(row.line, self.columns[c].clone(), reason)));
                        }
                    }
                }
            }
            Ok(true)
        }

        fn bytes_read(&self) -> u64 {
            // The record API does not expose progress; report the share of rows is not
            // possible either, so report the whole file once reading started.
            if self.n > 0 { self.bytes } else { 0 }
        }
    }
}
