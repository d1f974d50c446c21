//! Profiles as NDJSON, one JSON object per line: `distinct_id` beside the keys of an upsert body.
//!
//! `herald user export` writes every profile of an environment so; `herald user import` loads such
//! lines (or any the user wrote), one upsert per line, with the same rules, history and index as
//! `POST /v1/user/{id}/`. A line that breaks a rule is reported with its
//! number and skipped; the others are kept. Upserts set values and add identities, so running the
//! same file again leaves every profile as the file says: an interrupted import is resumed by
//! running it again.

use herald_core::service::{profiles, Ctx};
use herald_core::store::Store;
use herald_core::{DistinctId, EnvScope};
use serde_json::Value;
use std::io::{BufRead, Write};
use std::sync::Arc;

/// Lines read and applied at once, as one unit of work in the store: enough to share one commit
/// among many lines, few enough to keep memory small.
const CHUNK: usize = 256;

/// What an import did.
#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    /// Lines applied (a profile created, changed, or already as the line says).
    pub applied: u64,
    /// Refused lines: `(line number, reason)`, in line order.
    pub refused: Vec<(u64, String)>,
}

/// Imports every line of `input`. `progress` is told the bytes consumed after each chunk. Each
/// chunk of lines goes to the store as one unit ([`profiles::upsert_many`]), in file order; a
/// line that breaks a rule is refused alone.
pub async fn import(
    store: Arc<dyn Store>,
    ctx: &Ctx,
    mut input: impl BufRead,
    progress: impl Fn(u64),
) -> Result<Summary, String> {
    let mut summary = Summary::default();
    let mut number = 0;
    loop {
        let chunk = read_chunk(&mut input, &mut number)?;
        if chunk.bytes == 0 {
            return Ok(summary);
        }
        summary.refused.extend(chunk.refused);
        let (numbers, items): (Vec<u64>, Vec<(DistinctId, Value)>) = chunk
            .lines
            .into_iter()
            .map(|(number, id, body)| (number, (id, body)))
            .unzip();
        let results = profiles::upsert_many(store.as_ref(), ctx, items).await;
        for (number, result) in numbers.into_iter().zip(results) {
            match result {
                Ok(()) => summary.applied += 1,
                Err(e) => summary.refused.push((number, e.to_string())),
            }
        }
        summary.refused.sort_by_key(|(number, _)| *number);
        progress(chunk.bytes);
    }
}

/// Up to [`CHUNK`] lines: the parsed ones in file order (number, id, body) and the lines refused
/// while parsing.
struct Chunk {
    bytes: u64,
    lines: Vec<(u64, DistinctId, Value)>,
    refused: Vec<(u64, String)>,
}

/// Reads the next chunk; `number` is the number of the last line read, carried across chunks.
fn read_chunk(input: &mut impl BufRead, number: &mut u64) -> Result<Chunk, String> {
    let mut chunk = Chunk {
        bytes: 0,
        lines: Vec::new(),
        refused: Vec::new(),
    };
    let mut line = String::new();
    for _ in 0..CHUNK {
        line.clear();
        let read = input
            .read_line(&mut line)
            .map_err(|e| format!("line {}: cannot read: {e}", *number + 1))?;
        if read == 0 {
            break;
        }
        *number += 1;
        chunk.bytes += read as u64;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line) {
            Ok((id, body)) => chunk.lines.push((*number, id, body)),
            Err(reason) => chunk.refused.push((*number, reason)),
        }
    }
    Ok(chunk)
}

/// One line: a JSON object with `distinct_id` beside the keys of an upsert body.
fn parse_line(line: &str) -> Result<(DistinctId, Value), String> {
    // Files saved by spreadsheet tools may start with a byte-order mark.
    let line = line.trim_start_matches('\u{feff}');
    let mut body: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let object = body
        .as_object_mut()
        .ok_or("must be a JSON object with distinct_id and the profile's properties")?;
    let id = match object.shift_remove("distinct_id") {
        Some(Value::String(id)) => DistinctId::parse(&id).map_err(|e| e.to_string())?,
        _ => return Err("distinct_id: is required and must be a string".into()),
    };
    Ok((id, body))
}

/// Profiles read per query while exporting.
const EXPORT_PAGE: usize = 1000;

/// Writes every profile of `scope` as one line (see [`Profile::to_upsert_body`]), in distinct_id
/// order, and returns how many. `progress` hears of each page written.
///
/// [`Profile::to_upsert_body`]: herald_core::Profile::to_upsert_body
pub async fn export(
    store: &dyn Store,
    scope: EnvScope,
    out: &mut impl Write,
    progress: impl Fn(u64),
) -> Result<u64, String> {
    let mut all = profiles::AllProfiles::new(scope);
    let mut written = 0;
    loop {
        let page = all
            .next_page(store, EXPORT_PAGE)
            .await
            .map_err(|e| e.to_string())?;
        if page.is_empty() {
            return Ok(written);
        }
        for p in &page {
            let mut line = serde_json::Map::new();
            line.insert(
                "distinct_id".into(),
                Value::String(p.distinct_id.to_string()),
            );
            line.extend(p.to_upsert_body());
            serde_json::to_writer(&mut *out, &line).map_err(|e| e.to_string())?;
            out.write_all(b"\n")
                .map_err(|e| format!("cannot write: {e}"))?;
        }
        written += page.len() as u64;
        progress(page.len() as u64);
    }
}
