//! Bulk loads of profiles: `herald user import` (NDJSON or CSV), `herald seed` and
//! `POST /v1/bulk/user/import/` all go through [`apply_chunk`]: records are read and parsed,
//! gathered into chunks of [`CHUNK`], and each chunk goes to the store as one unit of work
//! ([`profiles::upsert_many`]): each record is one upsert, with the same rules, history and
//! index as `POST /v1/user/{id}/`, all or nothing on its own. A record that breaks a rule is
//! refused alone, with its line number and reason; the others are kept.
//!
//! Upserts set values and add identities, so loading the same input again leaves every profile
//! as the input says and records no new history: an interrupted import is resumed by running it
//! again. A chunk that returned is committed.

pub mod csv;

use herald_core::service::profiles::{self, Upsert};
use herald_core::service::{Ctx, Error};
use herald_core::store::Store;
use herald_core::{DistinctId, Invalid};
use serde_json::{json, Value};
use std::io::BufRead;

/// Records `herald user import` and `herald seed` apply at once, as one unit of work in the
/// store: enough to share one commit among many lines (1,024 spent 24 % less CPU a line than 256,
/// and imported ~1.6× faster), few enough to keep the CLI's memory small (~14 KB a line in flight).
pub const CHUNK: usize = 1024;

/// Records `POST /v1/bulk/user/import/` applies at once: smaller than [`CHUNK`] because its
/// lines are held in the server, whose memory every request shares (with 1,024, two concurrent
/// bulk loads took a node's peak RSS from 204 to 223 MiB in the benchmark).
pub const BULK_CHUNK: usize = 256;

/// The input formats of `herald user import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line: `distinct_id` beside the keys of an upsert body.
    Ndjson,
    /// A header row naming the columns, then one profile per record (see [`csv`]).
    Csv,
}

impl Format {
    /// The format a file name says: `.csv` is CSV, `.ndjson`, `.jsonl` and `.json` NDJSON.
    pub fn of_path(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "ndjson" | "jsonl" | "json" => Some(Format::Ndjson),
            _ => None,
        }
    }
}

/// One record of an input: the number of the line it starts on, its text as read (without the
/// final line end), and the upsert it asks for or why it cannot be one.
#[derive(Debug)]
pub struct Record {
    pub line: u64,
    pub input: String,
    pub upsert: Result<Upsert, Error>,
}

/// A record that was not applied, and why.
#[derive(Debug)]
pub struct Refused {
    pub line: u64,
    pub error: Error,
    pub input: String,
}

impl Refused {
    /// The line of a rejects file: `{"line": N, "reason": "...", "input": "<the record as read>"}`.
    pub fn reject_line(&self) -> String {
        json!({"line": self.line, "reason": self.error.to_string(), "input": self.input})
            .to_string()
    }
}

/// What one chunk did.
#[derive(Debug, Default)]
pub struct ChunkOutcome {
    pub applied: u64,
    /// In line order.
    pub refused: Vec<Refused>,
}

/// Applies one chunk of records as one unit of work (or, with `dry_run`, checks them by the same
/// rules against the profiles as stored, writing nothing). When this returns `Ok`, the chunk's
/// applied records are committed. A storage fault is the caller's error (`Err`), not a refused
/// record: the import stops, and running it again completes it.
pub async fn apply_chunk(
    store: &dyn Store,
    ctx: &Ctx,
    records: Vec<Record>,
    dry_run: bool,
) -> Result<ChunkOutcome, Error> {
    let mut outcome = ChunkOutcome::default();
    let mut pending = Vec::with_capacity(records.len());
    let mut items = Vec::with_capacity(records.len());
    for record in records {
        match record.upsert {
            Ok(upsert) => {
                pending.push((record.line, record.input));
                items.push(upsert);
            }
            Err(error) => outcome.refused.push(Refused {
                line: record.line,
                error,
                input: record.input,
            }),
        }
    }
    let answers = if dry_run {
        profiles::upsert_preview(store, ctx, &items).await?
    } else {
        profiles::upsert_many(store, ctx, items).await
    };
    for ((line, input), answer) in pending.into_iter().zip(answers) {
        match answer {
            Ok(()) => outcome.applied += 1,
            Err(Error::Store(e)) => return Err(Error::Store(e)),
            Err(error) => outcome.refused.push(Refused { line, error, input }),
        }
    }
    outcome.refused.sort_by_key(|r| r.line);
    Ok(outcome)
}

/// One NDJSON line (without its line end) as a record: a JSON object with `distinct_id` beside
/// the keys of an upsert body.
pub fn ndjson_record(line: u64, input: String) -> Record {
    // Files saved by spreadsheet tools may start with a byte-order mark.
    let upsert = parse_ndjson(input.trim_start_matches('\u{feff}')).map_err(Error::from);
    Record {
        line,
        input,
        upsert,
    }
}

fn parse_ndjson(text: &str) -> Result<Upsert, Invalid> {
    let mut body: Value =
        serde_json::from_str(text).map_err(|e| Invalid::new("", format!("not valid JSON: {e}")))?;
    let object = body.as_object_mut().ok_or_else(|| {
        Invalid::new(
            "",
            "must be a JSON object with distinct_id and the profile's properties",
        )
    })?;
    let id = match object.shift_remove("distinct_id") {
        Some(Value::String(id)) => DistinctId::parse(&id)?,
        _ => {
            return Err(Invalid::new(
                "distinct_id",
                "is required and must be a string",
            ))
        }
    };
    Ok(Upsert::new(id, body))
}

/// Reads records from a file or standard input, in either format.
pub struct Reader<R> {
    input: R,
    header: Option<csv::Header>,
    /// The number of the last line read.
    line: u64,
    /// Bytes consumed so far.
    pub bytes: u64,
}

impl<R: BufRead> Reader<R> {
    /// A reader of `format`; for CSV, the header row is read now (and refused if it names no
    /// `distinct_id` column).
    pub fn new(input: R, format: Format) -> Result<Self, String> {
        let mut reader = Reader {
            input,
            header: None,
            line: 0,
            bytes: 0,
        };
        if format == Format::Csv {
            let (line, text) = reader
                .csv_text()?
                .ok_or("the CSV input is empty: it needs a header row")?;
            let fields = csv::fields(&text).map_err(|e| format!("line {line} (header): {e}"))?;
            reader.header = Some(
                csv::Header::parse(&fields).map_err(|e| format!("line {line} (header): {e}"))?,
            );
        }
        Ok(reader)
    }

    /// The next record, skipping blank lines; `None` at the end of the input. An error is a
    /// fault of reading, not of a record.
    pub fn next_record(&mut self) -> Result<Option<Record>, String> {
        match self.header.is_some() {
            true => {
                let Some((line, input)) = self.csv_text()? else {
                    return Ok(None);
                };
                let header = self.header.as_ref().expect("a CSV reader has a header");
                let upsert = csv::fields(&input)
                    .and_then(|f| header.body(f))
                    .and_then(|(id, body)| Ok(Upsert::new(DistinctId::parse(&id)?, body)))
                    .map_err(Error::from);
                Ok(Some(Record {
                    line,
                    input,
                    upsert,
                }))
            }
            false => loop {
                let Some(text) = self.physical_line()? else {
                    return Ok(None);
                };
                if !text.trim().is_empty() {
                    return Ok(Some(ndjson_record(self.line, text)));
                }
            },
        }
    }

    /// Up to `n` records (fewer only at the end of the input).
    pub fn next_chunk(&mut self, n: usize) -> Result<Vec<Record>, String> {
        let mut chunk = Vec::with_capacity(n);
        while chunk.len() < n {
            match self.next_record()? {
                Some(r) => chunk.push(r),
                None => break,
            }
        }
        Ok(chunk)
    }

    /// The next line without its line end (`\n` or `\r\n`), or `None` at the end.
    fn physical_line(&mut self) -> Result<Option<String>, String> {
        let mut text = String::new();
        let read = self
            .input
            .read_line(&mut text)
            .map_err(|e| format!("line {}: cannot read: {e}", self.line + 1))?;
        if read == 0 {
            return Ok(None);
        }
        self.line += 1;
        self.bytes += read as u64;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        Ok(Some(text))
    }

    /// The next non-blank CSV record as text (physical lines joined by `\n` while a quoted field
    /// is open) with the number of its first line.
    fn csv_text(&mut self) -> Result<Option<(u64, String)>, String> {
        loop {
            let Some(mut text) = self.physical_line()? else {
                return Ok(None);
            };
            let first = self.line;
            if text.is_empty() {
                continue;
            }
            while csv::open_quote(&text) {
                match self.physical_line()? {
                    Some(more) => {
                        text.push('\n');
                        text.push_str(&more);
                    }
                    None => break,
                }
            }
            return Ok(Some((first, text)));
        }
    }
}

/// What a whole import did.
#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    /// Records applied (a profile created, changed, or already as the record says); with
    /// `dry_run`, records that would be.
    pub applied: u64,
    /// Records refused.
    pub refused: u64,
    /// The number of the last line read.
    pub lines: u64,
}

/// After each chunk: the chunk's outcome, the last line it covers and the bytes read so far.
pub struct Progress<'a> {
    pub outcome: &'a ChunkOutcome,
    pub last_line: u64,
    pub bytes: u64,
}

/// Imports every record of `reader`, a chunk at a time, in input order. Reading and parsing
/// the next chunk (on a thread of its own) overlaps writing the current one. `on_chunk` hears of
/// each chunk once it is committed (or checked, with `dry_run`); its error stops the import.
pub async fn run<R: BufRead + Send + 'static>(
    store: &dyn Store,
    ctx: &Ctx,
    mut reader: Reader<R>,
    dry_run: bool,
    mut on_chunk: impl FnMut(Progress<'_>) -> Result<(), String>,
) -> Result<Summary, String> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<(Vec<Record>, u64, u64), String>>(2);
    let reading = tokio::task::spawn_blocking(move || loop {
        let chunk = reader.next_chunk(CHUNK);
        let end = match &chunk {
            Ok(records) => records.is_empty(),
            Err(_) => true,
        };
        let sent = chunk.map(|records| (records, reader.line, reader.bytes));
        if tx.blocking_send(sent).is_err() || end {
            return;
        }
    });
    let mut summary = Summary::default();
    while let Some(next) = rx.recv().await {
        let (records, last_line, bytes) = next?;
        summary.lines = last_line;
        if records.is_empty() {
            break;
        }
        let outcome = apply_chunk(store, ctx, records, dry_run)
            .await
            .map_err(|e| {
                format!(
                    "stopped at the chunk ending on line {last_line} (every line before it is committed): {e}"
                )
            })?;
        summary.applied += outcome.applied;
        summary.refused += outcome.refused.len() as u64;
        on_chunk(Progress {
            outcome: &outcome,
            last_line,
            bytes,
        })?;
    }
    drop(rx);
    reading
        .await
        .map_err(|e| format!("the reader failed: {e}"))?;
    Ok(summary)
}
