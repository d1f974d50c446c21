//! Listing profiles: sort order, keyset cursors and pages.

use crate::error::Invalid;
use crate::filter::Filter;
use crate::profile::{micros, Profile};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

pub const MAX_LIMIT: usize = 1000;
pub const DEFAULT_LIMIT: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    CreatedAt,
    UpdatedAt,
    DistinctId,
}

impl SortField {
    pub fn as_str(self) -> &'static str {
        match self {
            SortField::CreatedAt => "created_at",
            SortField::UpdatedAt => "updated_at",
            SortField::DistinctId => "distinct_id",
        }
    }
}

/// `created_at`, `-created_at`, `updated_at`, … A leading `-` means newest (or last) first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

impl Default for Sort {
    /// Newest profiles first.
    fn default() -> Self {
        Sort {
            field: SortField::CreatedAt,
            descending: true,
        }
    }
}

impl Sort {
    pub fn parse(raw: &str) -> Result<Sort, Invalid> {
        let (descending, name) = raw.strip_prefix('-').map_or((false, raw), |n| (true, n));
        let field = match name {
            "created_at" => SortField::CreatedAt,
            "updated_at" => SortField::UpdatedAt,
            "distinct_id" => SortField::DistinctId,
            _ => {
                return Err(Invalid::new(
                    "sort",
                    format!("'{raw}' is not a sort order (created_at, updated_at or distinct_id, with - for descending)"),
                ))
            }
        };
        Ok(Sort { field, descending })
    }

    pub fn as_string(self) -> String {
        format!(
            "{}{}",
            if self.descending { "-" } else { "" },
            self.field.as_str()
        )
    }
}

/// The value a profile sorts by, with distinct_id as the tie-breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortValue {
    Time(i64),
    Text(String),
}

/// A position between two profiles in one sort order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub sort: Sort,
    pub value: SortValue,
    pub distinct_id: String,
}

impl Cursor {
    pub fn of(profile: &Profile, sort: Sort) -> Cursor {
        let value = match sort.field {
            SortField::CreatedAt => SortValue::Time(micros(profile.created_at)),
            SortField::UpdatedAt => SortValue::Time(micros(profile.updated_at)),
            SortField::DistinctId => SortValue::Text(profile.distinct_id.to_string()),
        };
        Cursor {
            sort,
            value,
            distinct_id: profile.distinct_id.to_string(),
        }
    }

    /// Opaque to callers: base64url of `[sort, value, distinct_id]`.
    pub fn encode(&self) -> String {
        let v = match &self.value {
            SortValue::Time(t) => json!(t),
            SortValue::Text(s) => json!(s),
        };
        URL_SAFE_NO_PAD.encode(json!([self.sort.as_string(), v, self.distinct_id]).to_string())
    }

    pub fn decode(raw: &str, field: &str, sort: Sort) -> Result<Cursor, Invalid> {
        let bad = || Invalid::new(field, "is not a cursor returned by this listing");
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).map_err(|_| bad())?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let (Some(s), Some(val), Some(id)) = (
            v.get(0).and_then(Value::as_str),
            v.get(1),
            v.get(2).and_then(Value::as_str),
        ) else {
            return Err(bad());
        };
        if s != sort.as_string() {
            return Err(Invalid::new(
                field,
                format!("was made for sort={s}, not sort={}", sort.as_string()),
            ));
        }
        let value = match sort.field {
            SortField::DistinctId => SortValue::Text(val.as_str().ok_or_else(bad)?.to_owned()),
            _ => SortValue::Time(val.as_i64().ok_or_else(bad)?),
        };
        Ok(Cursor {
            sort,
            value,
            distinct_id: id.to_owned(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PagePosition {
    First,
    /// Items that come after the cursor in the sort order.
    After(Cursor),
    /// Items that come before the cursor in the sort order.
    Before(Cursor),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filter: Filter,
    pub sort: Sort,
    pub limit: usize,
    pub position: PagePosition,
}

/// Counts of filtered listings are exact up to this many profiles; above it they are estimated
/// from a random sample, so a count never scans a million rows.
pub const EXACT_COUNT_LIMIT: u64 = 10_000;
/// Profiles sampled for an estimated count.
pub const COUNT_SAMPLE: usize = 2_000;

/// How many profiles a listing holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub value: u64,
    pub is_estimate: bool,
}

impl Count {
    pub fn exact(value: u64) -> Count {
        Count {
            value,
            is_estimate: false,
        }
    }

    /// Scales a sample up: `matched` of `sampled` existing profiles passed the filter, out of
    /// `total`. Never below the `floor` already counted exactly.
    pub fn estimated(matched: u64, sampled: u64, total: u64, floor: u64) -> Count {
        let scaled = if sampled == 0 {
            0
        } else {
            (matched as f64 / sampled as f64 * total as f64).round() as u64
        };
        Count {
            value: scaled.clamp(floor, total.max(floor)),
            is_estimate: true,
        }
    }
}

/// `n` pseudo-random ids in `min..=max` (a splitmix64 sequence from `seed`), for count sampling.
pub fn sample_ids(min: i64, max: i64, n: usize, seed: u64) -> Vec<i64> {
    let span = (max - min + 1).max(1) as u64;
    let mut state = seed;
    let mut ids: Vec<i64> = (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            min + ((z ^ (z >> 31)) % span) as i64
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// A listing of profiles as a query string asks for it: the filters of [`Filter::parse`] plus
/// `limit` (1–1000, default 20), `sort`, one cursor (`after` or `before`, made for that sort) and
/// `with_count`. The users API (`GET /v1/user/`) and the dashboard's users page both read it
/// here; parameters it does not know are left to the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct ListRequest {
    pub query: ListQuery,
    pub with_count: bool,
}

impl ListRequest {
    pub fn parse(pairs: &[(String, String)]) -> Result<ListRequest, Invalid> {
        let filter = Filter::parse(pairs)?;
        let mut limit = DEFAULT_LIMIT;
        let (mut after, mut before, mut sort, mut with_count) =
            (None, None, Sort::default(), false);
        for (k, v) in pairs {
            match k.as_str() {
                "limit" => limit = parse_limit(v)?,
                "after" if !v.is_empty() => after = Some(v),
                "before" if !v.is_empty() => before = Some(v),
                "sort" => sort = Sort::parse(v)?,
                "with_count" => with_count = parse_flag("with_count", v)?,
                _ => {}
            }
        }
        let position = match (after, before) {
            (Some(_), Some(_)) => {
                return Err(Invalid::new("after", "cannot be combined with before"))
            }
            (Some(a), None) => PagePosition::After(Cursor::decode(a, "after", sort)?),
            (None, Some(b)) => PagePosition::Before(Cursor::decode(b, "before", sort)?),
            (None, None) => PagePosition::First,
        };
        Ok(ListRequest {
            query: ListQuery {
                filter,
                sort,
                limit,
                position,
            },
            with_count,
        })
    }
}

/// A page size: a whole number from 1 to [`MAX_LIMIT`].
pub fn parse_limit(raw: &str) -> Result<usize, Invalid> {
    match raw.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(Invalid::new(
            "limit",
            format!("must be an integer from 1 to {MAX_LIMIT}, got '{raw}'"),
        )),
    }
}

/// `true`/`1` or `false`/`0`/empty.
pub fn parse_flag(field: &str, raw: &str) -> Result<bool, Invalid> {
    match raw.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        other => Err(Invalid::new(
            field,
            format!("must be true or false, got '{other}'"),
        )),
    }
}

impl ListQuery {
    /// Whether the store should scan against the sort order (to find the page before a cursor).
    pub fn scans_backwards(&self) -> bool {
        matches!(self.position, PagePosition::Before(_))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_prev: bool,
    pub has_next: bool,
    /// Cursor to pass as `before` for the previous page.
    pub before: Option<String>,
    /// Cursor to pass as `after` for the next page.
    pub after: Option<String>,
}

impl Page<Profile> {
    /// Builds a page from what the store scanned: up to `limit + 1` rows in scan order.
    pub fn assemble(query: &ListQuery, mut rows: Vec<Profile>) -> Self {
        let more = rows.len() > query.limit;
        rows.truncate(query.limit);
        let (has_prev, has_next) = match query.position {
            PagePosition::First => (false, more),
            PagePosition::After(_) => (true, more),
            PagePosition::Before(_) => {
                rows.reverse();
                (more, true)
            }
        };
        let before = rows
            .first()
            .filter(|_| has_prev)
            .map(|p| Cursor::of(p, query.sort).encode());
        let after = rows
            .last()
            .filter(|_| has_next)
            .map(|p| Cursor::of(p, query.sort).encode());
        Page {
            items: rows,
            has_prev,
            has_next,
            before,
            after,
        }
    }
}
