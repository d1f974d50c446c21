//! CSV with a header row (RFC 4180), read record by record: fields separated by commas, a field
//! in double quotes may hold commas, line breaks and doubled quotes (`""` is one `"`). A record
//! is one or more physical lines; its number is the line it starts on.
//!
//! The header names what each column becomes in the record's upsert body:
//! - `distinct_id` (required): the profile's id;
//! - a channel key (`$email`, `$sms`, `$whatsapp`, `$androidpush`, `$iospush`, `$webpush`,
//!   `$slack`, `$ms_teams`, `$discord`, `$inbox`): one identity, added to those the profile holds;
//!   a cell starting with `{` is read as a JSON object (for `$webpush`, `$slack`, …);
//! - any other key, exactly as an upsert body names it (`name`, `$timezone`,
//!   `$preferred_language`, `$locale`, `country`, `$status`, or a custom property): its value.
//!
//! Cells are strings. A header may give a column a type with a suffix: `age:number`,
//! `beta:boolean` (`true`/`false`), `prefs:json` (any JSON value), `code:string` (the default).
//! An empty cell sets nothing, whatever the column.

use herald_core::channel::Channel;
use herald_core::Invalid;
use serde_json::{Map, Value};

/// How a column's cells become values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Number,
    Boolean,
    Json,
    /// A channel's identity: a string, or a JSON object when the cell starts with `{`.
    Identity,
}

/// One column of the header.
#[derive(Debug, Clone, PartialEq)]
struct Column {
    key: String,
    kind: Kind,
}

/// The header row: which column is the id and what the others become.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    id: usize,
    columns: Vec<Column>,
}

impl Header {
    /// Reads the header row's fields. Refused when `distinct_id` is missing, a name is empty or
    /// given twice, or a type suffix is unknown.
    pub fn parse(fields: &[String]) -> Result<Header, String> {
        let mut columns: Vec<Column> = Vec::with_capacity(fields.len());
        for (i, raw) in fields.iter().enumerate() {
            let raw = raw.trim().trim_start_matches('\u{feff}');
            let (key, suffix) = match raw.rsplit_once(':') {
                Some((key, t)) if ["string", "number", "boolean", "json"].contains(&t) => {
                    (key.trim(), Some(t))
                }
                Some((_, t)) => {
                    return Err(format!(
                        "column {}: '{raw}' has an unknown type ':{t}' (string, number, boolean or json)",
                        i + 1
                    ))
                }
                _ => (raw, None),
            };
            if key.is_empty() {
                return Err(format!("column {}: the header names no property", i + 1));
            }
            if columns.iter().any(|c| c.key == key) {
                return Err(format!("column {}: '{key}' is named twice", i + 1));
            }
            let kind = match (suffix, Channel::from_key(key)) {
                (None, Some(_)) => Kind::Identity,
                (Some("number"), _) => Kind::Number,
                (Some("boolean"), _) => Kind::Boolean,
                (Some("json"), _) => Kind::Json,
                _ => Kind::String,
            };
            columns.push(Column {
                key: key.to_owned(),
                kind,
            });
        }
        let id = columns
            .iter()
            .position(|c| c.key == "distinct_id")
            .ok_or("the header has no distinct_id column")?;
        Ok(Header { id, columns })
    }

    /// One record's fields as `(distinct_id, upsert body)`. The id is checked by the caller.
    pub fn body(&self, fields: Vec<String>) -> Result<(String, Value), Invalid> {
        if fields.len() != self.columns.len() {
            return Err(Invalid::new(
                "",
                format!(
                    "has {} fields, the header {}",
                    fields.len(),
                    self.columns.len()
                ),
            ));
        }
        let mut body = Map::new();
        let mut id = String::new();
        for (i, (cell, column)) in fields.into_iter().zip(&self.columns).enumerate() {
            if i == self.id {
                id = cell;
                continue;
            }
            if cell.is_empty() {
                continue;
            }
            let value = cell_value(&cell, column.kind)
                .map_err(|rule| Invalid::new(column.key.as_str(), rule))?;
            body.insert(column.key.clone(), value);
        }
        Ok((id, Value::Object(body)))
    }
}

fn cell_value(cell: &str, kind: Kind) -> Result<Value, String> {
    match kind {
        Kind::String => Ok(Value::String(cell.to_owned())),
        Kind::Identity if !cell.trim_start().starts_with('{') => Ok(Value::String(cell.to_owned())),
        Kind::Identity | Kind::Json => {
            serde_json::from_str(cell).map_err(|e| format!("is not valid JSON: {e}"))
        }
        Kind::Number => cell
            .trim()
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .map_err(|_| format!("'{cell}' is not a number")),
        Kind::Boolean => match cell.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("'{cell}' is not true or false")),
        },
    }
}

/// Whether `text` (one or more physical lines) leaves a quoted field open: then the record goes
/// on on the next line. Every quote toggles: a doubled `""` inside quotes toggles twice.
pub fn open_quote(text: &str) -> bool {
    text.bytes().filter(|b| *b == b'"').count() % 2 == 1
}

/// Splits one whole record (without its final line end) into fields.
pub fn fields(record: &str) -> Result<Vec<String>, Invalid> {
    let mut out = Vec::new();
    let mut chars = record.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err(Invalid::new("", "a quoted field is not closed")),
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => out.push(field),
                Some(c) => {
                    return Err(Invalid::new(
                        "",
                        format!(
                            "field {}: '{c}' after a closing quote (a quote inside a field is written \"\")",
                            out.len() + 1
                        ),
                    ))
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(field);
                        return Ok(out);
                    }
                    Some(',') => break,
                    Some('"') => {
                        return Err(Invalid::new(
                            "",
                            format!(
                                "field {}: a quote inside an unquoted field (quote the field and double the quote)",
                                out.len() + 1
                            ),
                        ))
                    }
                    Some(c) => field.push(c),
                }
            }
            out.push(field);
        }
    }
}

/// Writes one field, quoted when it holds a comma, a quote or a line break.
pub fn write_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fields_follow_rfc_4180() {
        assert_eq!(fields("a,b,,c").unwrap(), strings(&["a", "b", "", "c"]));
        assert_eq!(fields("").unwrap(), strings(&[""]));
        assert_eq!(fields("a,").unwrap(), strings(&["a", ""]));
        assert_eq!(
            fields("\"x, y\",\"say \"\"hi\"\"\",\"two\nlines\",\"\"").unwrap(),
            strings(&["x, y", "say \"hi\"", "two\nlines", ""])
        );
        assert!(fields("\"open").is_err());
        assert!(fields("\"a\"b").is_err());
        assert!(fields("5\" screen").is_err());
    }

    #[test]
    fn open_quotes_continue_a_record() {
        assert!(!open_quote("a,b"));
        assert!(open_quote("a,\"b\n"));
        assert!(!open_quote("a,\"b\nc\""));
        assert!(!open_quote("\"say \"\"hi\"\"\""));
    }

    #[test]
    fn written_fields_read_back() {
        for f in ["plain", "a,b", "say \"hi\"", "two\nlines", ""] {
            let mut out = String::new();
            write_field(&mut out, f);
            out.push_str(",x");
            assert_eq!(fields(&out).unwrap(), strings(&[f, "x"]), "{out}");
        }
    }

    #[test]
    fn the_header_maps_columns_to_the_upsert_body() {
        let h = Header::parse(&strings(&[
            "\u{feff}name",
            "distinct_id",
            "$email",
            "$sms",
            "age:number",
            "beta:boolean",
            "prefs:json",
            "zip:string",
            "$webpush",
        ]))
        .unwrap();
        let (id, body) = h
            .body(strings(&[
                "Ada",
                "ada",
                "ada@example.com",
                "",
                "36",
                "true",
                "{\"theme\":\"dark\"}",
                "02134",
                "{\"endpoint\":\"https://p.example/1\"}",
            ]))
            .unwrap();
        assert_eq!(id, "ada");
        assert_eq!(
            body,
            json!({"name": "Ada", "$email": "ada@example.com", "age": 36, "beta": true,
                   "prefs": {"theme": "dark"}, "zip": "02134",
                   "$webpush": {"endpoint": "https://p.example/1"}})
        );
        assert_eq!(
            h.body(strings(&["Ada", "ada", "", "", "old", "", "", "", ""]))
                .unwrap_err()
                .to_string(),
            "age: 'old' is not a number"
        );
        assert!(h.body(strings(&["Ada"])).is_err());
    }

    #[test]
    fn bad_headers_are_refused() {
        assert!(Header::parse(&strings(&["name"])).is_err());
        assert!(Header::parse(&strings(&["distinct_id", "a", "a"])).is_err());
        assert!(Header::parse(&strings(&["distinct_id", "a:date"])).is_err());
        assert!(Header::parse(&strings(&["distinct_id", ""])).is_err());
    }
}
