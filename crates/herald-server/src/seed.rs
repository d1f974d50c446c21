//! `herald seed`: loads synthetic profiles fast, for benchmarks and demos. Profiles are realistic
//! enough to filter on (plans, ages, countries, tags, emails, phones, some disabled) and
//! deterministic: profile `i` is the same on every run, so runs are comparable.

use crate::import::{apply_chunk, Record};
use chrono::{DateTime, Duration, Utc};
use herald_core::service::profiles::{self, Upsert};
use herald_core::service::Ctx;
use herald_core::store::Store;
use herald_core::DistinctId;
use serde_json::{json, Value};

const FIRST: [&str; 16] = [
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Edsger",
    "Margaret",
    "Barbara",
    "Donald",
    "Ken",
    "Dennis",
    "Frances",
    "John",
    "Radia",
    "Tim",
    "Hedy",
    "Katherine",
];
const LAST: [&str; 16] = [
    "Lovelace", "Turing", "Hopper", "Torvalds", "Dijkstra", "Hamilton", "Liskov", "Knuth",
    "Thompson", "Ritchie", "Allen", "McCarthy", "Perlman", "Lee", "Lamarr", "Johnson",
];
const COUNTRIES: [&str; 8] = ["US", "GB", "IN", "DE", "FR", "BR", "JP", "NG"];
const TAGS: [&str; 4] = ["beta", "newsletter", "mobile", "web"];

/// A stable pseudo-random number for profile `i`, stream `k` (splitmix64).
pub fn rand(i: u64, k: u64) -> u64 {
    let mut z = i
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(k.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The upsert body of synthetic profile `i`. Plans: 60 % free, 25 % pro, 10 % team,
/// 5 % enterprise; 5 % disabled; 30 % with a phone.
pub fn profile(i: u64) -> Value {
    let first = FIRST[(rand(i, 1) % 16) as usize];
    let last = LAST[(rand(i, 2) % 16) as usize];
    let plan = match rand(i, 3) % 100 {
        0..=59 => "free",
        60..=84 => "pro",
        85..=94 => "team",
        _ => "enterprise",
    };
    let tags: Vec<&str> = TAGS
        .iter()
        .enumerate()
        .filter(|(t, _)| rand(i, 10 + *t as u64).is_multiple_of(3))
        .map(|(_, t)| *t)
        .collect();
    let mut body = json!({
        "name": format!("{first} {last}"),
        "country": COUNTRIES[(rand(i, 4) % 8) as usize],
        "$email": [format!("{}.{}.{i}@example.com", first.to_lowercase(), last.to_lowercase())],
        "plan": plan,
        "age": 18 + rand(i, 5) % 62,
        "tags": tags,
    });
    if rand(i, 6) % 10 < 3 {
        body["$sms"] = json!([format!("+1415{:07}", rand(i, 7) % 10_000_000)]);
    }
    if rand(i, 8) % 100 < 5 {
        body["$status"] = json!("disabled");
    }
    body
}

/// Loads profiles `from..from + count` as `user-0000001`, … through the import path
/// ([`crate::import::apply_chunk`], chunks of `batch`), each created (if it does not exist yet)
/// at a time one second after the previous one, the last ending now. Profiles that exist are
/// upserted with the same body, which changes nothing. Returns how many profiles were created.
pub async fn run(
    store: &dyn Store,
    ctx: &Ctx,
    from: u64,
    count: u64,
    batch: usize,
) -> Result<u64, String> {
    let bar = crate::profiles_bar(count);
    let start: DateTime<Utc> = ctx.now - Duration::seconds(count as i64);
    let before = profiles::count_all(store, ctx.scope)
        .await
        .map_err(|e| e.to_string())?;
    let mut i = from;
    while i < from + count {
        let end = (i + batch as u64).min(from + count);
        let records: Vec<Record> = (i..end)
            .map(|n| {
                let id = DistinctId::parse(&format!("user-{n:07}")).expect("a valid id");
                let upsert = Upsert {
                    id,
                    body: profile(n),
                    created_at: Some(start + Duration::seconds((n - from) as i64)),
                };
                Record {
                    line: n - from + 1,
                    input: String::new(),
                    upsert: Ok(upsert),
                }
            })
            .collect();
        let outcome = apply_chunk(store, ctx, records, false)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(refused) = outcome.refused.first() {
            return Err(format!(
                "profile {}: {}",
                refused.line - 1 + from,
                refused.error
            ));
        }
        bar.inc(end - i);
        i = end;
    }
    bar.finish();
    store
        .refresh_statistics()
        .await
        .map_err(|e| e.to_string())?;
    let after = profiles::count_all(store, ctx.scope)
        .await
        .map_err(|e| e.to_string())?;
    Ok(after.saturating_sub(before))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::ops::upsert_operations;

    #[test]
    fn synthetic_profiles_are_valid_and_stable() {
        for i in 0..2000 {
            let body = profile(i);
            upsert_operations(&body).unwrap_or_else(|e| panic!("profile {i}: {e}: {body}"));
            assert_eq!(body, profile(i));
        }
        let pro = (0..10_000).filter(|i| profile(*i)["plan"] == "pro").count();
        assert!((2200..2800).contains(&pro), "about 25 % pro: {pro}");
    }
}
