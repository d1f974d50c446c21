//! `POST /v1/bulk/user/import/`: big loads of profiles over HTTP. The NDJSON body is read as a
//! stream and applied in chunks of 256 lines ([`BULK_CHUNK`]) as they arrive (never buffered whole), through the
//! import path of `herald user import` ([`crate::import::apply_chunk`]); the next chunk is read
//! while the store applies the current one. Authentication lets this route's body through
//! unread for a bearer key (see [`streams`]).

use crate::api::auth::Caller;
use crate::api::error::ApiError;
use crate::import::{apply_chunk, ndjson_record, ChunkOutcome, Record, BULK_CHUNK};
use crate::App;
use axum::body::Body;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::Method;
use axum::Json;
use futures_util::StreamExt;
use herald_core::service::{Ctx, Error};
use herald_core::store::Store;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The route's path as routing sees it (without its trailing slash).
pub const PATH: &str = "/v1/bulk/user/import";

/// Refusals listed in an answer; `refused_total` counts them all.
pub const MAX_LISTED: usize = 1000;

/// Whether this request's body is read by the handler as a stream, not by authentication.
pub fn streams(parts: &Parts) -> bool {
    parts.method == Method::POST && parts.uri.path() == PATH
}

/// The answer: lines applied, the refused ones with the error each would have had as a request
/// of its own (the first [`MAX_LISTED`]), and how many were refused.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ImportReply {
    /// Lines applied: a profile created, changed, or already as the line says.
    applied: u64,
    /// The first 1,000 refused lines, in line order.
    refused: Vec<LineRefusal>,
    /// How many lines were refused in all.
    refused_total: u64,
}

/// A refused line: its number (1-based, blank lines counted) and the error envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineRefusal {
    line: u64,
    #[schema(value_type = crate::api::doc::ErrorBody)]
    error: Value,
}

#[utoipa::path(
    post,
    path = "/v1/bulk/user/import",
    operation_id = "importUsers",
    tag = "users",
    summary = "Import users from NDJSON (big loads)",
    description = "One JSON object per line: `distinct_id` beside the keys of an upsert body (`POST /v1/user/{id}/`), the format `herald user export` writes. Any Content-Type (e.g. application/x-ndjson). The body is read as a stream and applied in chunks of 256 lines as they arrive, each chunk committed before the next; each line is one upsert, all or nothing, with the same rules and history as `POST /v1/user/{id}/`. A line that breaks a rule is refused alone and listed with its error; blank lines are skipped. Idempotent: the same body again leaves every profile as it is and records no history. Up to limits.bulk_import_max_bytes (default 256 MiB) with a bearer key; a signed request is held to limits.max_body_bytes, since its signature covers the whole body.",
    request_body(content = String, content_type = "application/x-ndjson", description = "NDJSON: one profile per line.", example = "{\"distinct_id\": \"ada\", \"name\": \"Ada\", \"$email\": [\"ada@example.com\"], \"plan\": \"pro\"}\n{\"distinct_id\": \"alan\", \"country\": \"GB\"}\n"),
    responses(
        (status = 200, description = "Every line was read: how many applied, and the refused ones.", body = ImportReply, example = json!({"applied": 2, "refused": [{"line": 3, "error": {"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "$email[0]: 'nope' is not a valid email address", "detail": "$email[0]: 'nope' is not a valid email address", "field": "$email[0]", "error": {"type": "validation_error", "message": "$email[0]: 'nope' is not a valid email address"}}}], "refused_total": 1})),
        (status = 400, description = "The body is not NDJSON (its first line is not a JSON object) or holds no line; nothing was applied.", body = crate::api::doc::ErrorBody, example = json!({"code": 400, "error_code": "validation_error", "type": "ValidationError", "message": "body: is not NDJSON (one JSON object per line): line 1: not valid JSON: expected value at line 1 column 1", "detail": "body: is not NDJSON (one JSON object per line): line 1: not valid JSON: expected value at line 1 column 1", "field": "body", "error": {"type": "validation_error", "message": "body: is not NDJSON (one JSON object per line): line 1: not valid JSON: expected value at line 1 column 1"}})),
        (status = 413, description = "The body is over limits.bulk_import_max_bytes: refused from its Content-Length before anything is read, or, for a body without one, cut off when it grows past it; the message says which lines were applied before.", body = crate::api::doc::ErrorBody, example = json!({"code": 413, "error_code": "payload_too_large", "type": "PayloadTooLarge", "message": "the request body is larger than the limit of 268435456 bytes; lines 1 to 1024 were applied (1024 applied, 0 refused), the rest was not", "detail": "the request body is larger than the limit of 268435456 bytes; lines 1 to 1024 were applied (1024 applied, 0 refused), the rest was not", "field": null, "error": {"type": "payload_too_large", "message": "the request body is larger than the limit of 268435456 bytes; lines 1 to 1024 were applied (1024 applied, 0 refused), the rest was not"}}))
    )
)]
pub async fn import(
    State(app): State<App>,
    caller: Caller,
    body: Body,
) -> Result<Json<ImportReply>, ApiError> {
    let ctx = caller.ctx();
    let store = &app.store;
    let limit = app.config.limits.bulk_import_max_bytes;
    let mut load = Load::default();
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut received: u64 = 0;
    while let Some(frame) = stream.next().await {
        let bytes = frame.map_err(|e| {
            ApiError::bad_request("body", format!("cannot read the request body: {e}"))
        })?;
        received += bytes.len() as u64;
        if received > limit {
            load.settle().await?;
            return Err(ApiError::too_large(format!(
                "the request body is larger than the limit of {limit} bytes; {}",
                load.so_far()
            )));
        }
        buf.extend_from_slice(&bytes);
        let mut start = 0;
        while let Some(end) = buf[start..].iter().position(|b| *b == b'\n') {
            load.line(&buf[start..start + end])?;
            start += end + 1;
            if load.records.len() == BULK_CHUNK {
                load.apply(store, &ctx).await?;
            }
        }
        buf.drain(..start);
    }
    if !buf.is_empty() {
        load.line(&buf)?;
    }
    load.apply(store, &ctx).await?;
    load.settle().await?;
    if load.lines_seen == 0 {
        return Err(ApiError::bad_request(
            "body",
            "holds no line: send one JSON object per line",
        ));
    }
    Ok(Json(load.reply))
}

/// An import under way: the lines read, the chunk being gathered, the chunk being applied
/// (while the next is read) and the answer so far.
#[derive(Default)]
struct Load {
    /// The chunk the store is applying, and its last line.
    in_flight: Option<(u64, tokio::task::JoinHandle<Result<ChunkOutcome, Error>>)>,
    /// The number of the last line read.
    line: u64,
    /// Non-blank lines read.
    lines_seen: u64,
    /// The last line of the last chunk applied.
    committed: u64,
    records: Vec<Record>,
    reply: ImportReply,
}

impl Load {
    /// Reads one line (without its `\n`) into the chunk being gathered. The first non-blank
    /// line decides whether the body is NDJSON at all: if it is not a JSON object, the call is
    /// refused before anything is applied.
    fn line(&mut self, raw: &[u8]) -> Result<(), ApiError> {
        self.line += 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        self.lines_seen += 1;
        let record = match String::from_utf8(raw.to_vec()) {
            Ok(text) => ndjson_record(self.line, text),
            Err(e) => Record {
                line: self.line,
                input: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                upsert: Err(herald_core::Invalid::new("", "is not UTF-8 text").into()),
            },
        };
        if self.lines_seen == 1 {
            if let Err(Error::Invalid(e)) = &record.upsert {
                if e.field.is_empty() {
                    return Err(ApiError::bad_request(
                        "body",
                        format!(
                            "is not NDJSON (one JSON object per line): line {}: {e}",
                            self.line
                        ),
                    ));
                }
            }
        }
        self.records.push(record);
        Ok(())
    }

    /// Hands the chunk gathered so far to the store, once the one before it is committed (a
    /// later line may edit the same profile), and goes back to reading while it is applied.
    async fn apply(&mut self, store: &Arc<dyn Store>, ctx: &Ctx) -> Result<(), ApiError> {
        self.settle().await?;
        if self.records.is_empty() {
            return Ok(());
        }
        let last = self.records.last().map_or(self.line, |r| r.line);
        let records = std::mem::take(&mut self.records);
        let (store, ctx) = (store.clone(), ctx.clone());
        let applying =
            tokio::spawn(async move { apply_chunk(store.as_ref(), &ctx, records, false).await });
        self.in_flight = Some((last, applying));
        Ok(())
    }

    /// Waits for the chunk being applied; it is committed when this returns.
    async fn settle(&mut self) -> Result<(), ApiError> {
        let Some((last, applying)) = self.in_flight.take() else {
            return Ok(());
        };
        let outcome = applying.await.map_err(ApiError::internal)??;
        self.reply.applied += outcome.applied;
        for refused in outcome.refused {
            self.reply.refused_total += 1;
            if self.reply.refused.len() < MAX_LISTED {
                self.reply.refused.push(LineRefusal {
                    line: refused.line,
                    error: ApiError::from(refused.error).body(),
                });
            }
        }
        self.committed = last;
        Ok(())
    }

    /// What was applied before a failure, for its message.
    fn so_far(&self) -> String {
        if self.committed == 0 {
            return "no line was applied".into();
        }
        format!(
            "lines 1 to {} were applied ({} applied, {} refused), the rest was not",
            self.committed, self.reply.applied, self.reply.refused_total
        )
    }
}

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(import))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_reply_serialises_as_documented() {
        let reply = super::ImportReply {
            applied: 2,
            refused: vec![super::LineRefusal {
                line: 3,
                error: serde_json::json!({"code": 400}),
            }],
            refused_total: 1,
        };
        assert_eq!(
            serde_json::to_value(&reply).unwrap(),
            serde_json::json!({"applied": 2, "refused": [{"line": 3, "error": {"code": 400}}], "refused_total": 1})
        );
    }
}
