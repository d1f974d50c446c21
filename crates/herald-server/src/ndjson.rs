//! Profile exports: every profile of an environment (or those a listing filter matches), as
//! NDJSON (one JSON object per line: `distinct_id` beside the keys of an upsert body, the format
//! `herald user import` reads back) or as CSV with chosen columns. Imports are in
//! [`crate::import`].

use crate::import::csv;
use herald_core::filter::Filter;
use herald_core::service::profiles;
use herald_core::store::Store;
use herald_core::EnvScope;
use serde_json::Value;
use std::io::Write;

/// Profiles read per query while exporting.
const EXPORT_PAGE: usize = 1000;

/// How an export writes profiles.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Shape {
    /// One JSON object per line (see [`Profile::to_upsert_body`]): everything the profile holds
    /// but its history and preferences, as `herald user import` reads it back.
    #[default]
    Ndjson,
    /// A header row, then one record per profile with these columns (see [`csv_cell`]).
    Csv(Vec<String>),
}

/// The CSV columns when none are chosen.
pub const DEFAULT_COLUMNS: &str = "distinct_id,name,$email,$sms,$whatsapp,$status";

/// Writes every profile of `scope` that `filter` matches, in distinct_id order, a page at a time
/// (memory does not grow with the environment), and returns how many. `progress` hears of each
/// page written.
///
/// [`Profile::to_upsert_body`]: herald_core::Profile::to_upsert_body
pub async fn export(
    store: &dyn Store,
    scope: EnvScope,
    filter: Filter,
    shape: &Shape,
    out: &mut impl Write,
    progress: impl Fn(u64),
) -> Result<u64, String> {
    let mut all = profiles::AllProfiles::new(scope).matching(filter);
    let mut written = 0;
    let mut record = String::new();
    if let Shape::Csv(columns) = shape {
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                record.push(',');
            }
            csv::write_field(&mut record, c);
        }
        record.push('\n');
        out.write_all(record.as_bytes())
            .map_err(|e| format!("cannot write: {e}"))?;
    }
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
            match shape {
                Shape::Ndjson => {
                    serde_json::to_writer(&mut *out, &line).map_err(|e| e.to_string())?;
                }
                Shape::Csv(columns) => {
                    record.clear();
                    for (i, c) in columns.iter().enumerate() {
                        if i > 0 {
                            record.push(',');
                        }
                        csv::write_field(&mut record, &csv_cell(&line, c));
                    }
                    out.write_all(record.as_bytes())
                        .map_err(|e| format!("cannot write: {e}"))?;
                }
            }
            out.write_all(b"\n")
                .map_err(|e| format!("cannot write: {e}"))?;
        }
        written += page.len() as u64;
        progress(page.len() as u64);
    }
}

/// One CSV cell: the value of the column's key (a `:type` suffix, as imports read it, is
/// dropped) in the profile's upsert body. Strings as they are; numbers, booleans, objects and
/// lists as JSON; a channel's first identity (its token or value; CSV holds one per cell, NDJSON
/// is the lossless format); nothing when the profile has no such key.
pub fn csv_cell(body: &serde_json::Map<String, Value>, column: &str) -> String {
    let key = match column.rsplit_once(':') {
        Some((key, "string" | "number" | "boolean" | "json")) => key,
        _ => column,
    };
    let value = match body.get(key) {
        None | Some(Value::Null) => return String::new(),
        Some(Value::Array(items)) if herald_core::Channel::from_key(key).is_some() => {
            match items.first() {
                Some(Value::Object(o)) if o.contains_key("token") => &o["token"],
                Some(first) => first,
                None => return String::new(),
            }
        }
        Some(v) => v,
    };
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
