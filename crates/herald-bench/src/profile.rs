//! The synthetic profiles `herald seed` loads (crates/herald-server/src/seed.rs), rebuilt here so
//! the baselines hold the same rows without a server: profile `i` is `user-{i:07}` with the same
//! name, country, email, plan, age, tags, phone and status on every run. `get` checks that a
//! served profile still matches [`get_json`], so a change to the seed shows up in the bench.

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

/// A stable pseudo-random number for profile `i`, stream `k` (splitmix64, as the seed).
pub fn rand(i: u64, k: u64) -> u64 {
    let mut z = i
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(k.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seeded distinct_id of profile `i`.
pub fn seeded_id(i: u64) -> String {
    format!("user-{i:07}")
}

struct Synthetic {
    name: String,
    country: &'static str,
    email: String,
    plan: &'static str,
    age: u64,
    tags: Vec<&'static str>,
    sms: Option<String>,
    disabled: bool,
}

fn synthetic(i: u64) -> Synthetic {
    let first = FIRST[(rand(i, 1) % 16) as usize];
    let last = LAST[(rand(i, 2) % 16) as usize];
    let plan = match rand(i, 3) % 100 {
        0..=59 => "free",
        60..=84 => "pro",
        85..=94 => "team",
        _ => "enterprise",
    };
    Synthetic {
        name: format!("{first} {last}"),
        country: COUNTRIES[(rand(i, 4) % 8) as usize],
        email: format!(
            "{}.{}.{i}@example.com",
            first.to_lowercase(),
            last.to_lowercase()
        ),
        plan,
        age: 18 + rand(i, 5) % 62,
        tags: TAGS
            .iter()
            .enumerate()
            .filter(|(t, _)| rand(i, 10 + *t as u64).is_multiple_of(3))
            .map(|(_, t)| *t)
            .collect(),
        sms: (rand(i, 6) % 10 < 3).then(|| format!("+1415{:07}", rand(i, 7) % 10_000_000)),
        disabled: rand(i, 8) % 100 < 5,
    }
}

/// The upsert body of profile `i` (what `herald seed` writes), with `distinct_id` beside its keys:
/// one NDJSON line of `herald user import` and `POST /v1/bulk/user/import/`.
pub fn ndjson_line(id: &str, i: u64) -> String {
    let p = synthetic(i);
    let mut body = json!({
        "distinct_id": id,
        "name": p.name,
        "country": p.country,
        "$email": [p.email],
        "plan": p.plan,
        "age": p.age,
        "tags": p.tags,
    });
    if let Some(sms) = p.sms {
        body["$sms"] = json!([sms]);
    }
    if p.disabled {
        body["$status"] = json!("disabled");
    }
    body.to_string()
}

/// The body `GET /v1/user/{id}/` answers for seeded profile `i` (timestamps of the same length).
pub fn get_json(id: &str, i: u64) -> String {
    get_value(id, i).to_string()
}

fn get_value(id: &str, i: u64) -> Value {
    let p = synthetic(i);
    let at = "2026-11-30T21:33:49.341798+00:00";
    let identity = |v: &str| json!([{"value": v, "status": "active", "perma_status": "active"}]);
    let mut body = json!({
        "distinct_id": id,
        "properties": {"name": p.name, "country": p.country, "plan": p.plan, "age": p.age, "tags": p.tags},
        "status": if p.disabled { "disabled" } else { "enabled" },
        "created_at": at,
        "updated_at": at,
        "version": 1,
        "$email": identity(&p.email),
    });
    if let Some(sms) = p.sms {
        body["$sms"] = identity(&sms);
    }
    body
}

/// Whether a served profile holds the data [`get_json`] builds for it (timestamps aside).
pub fn matches_served(served: &Value, id: &str, i: u64) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("created_at");
            o.remove("updated_at");
        }
        v
    };
    strip(served) == strip(&get_value(id, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_get_body_matches_what_a_seeded_profile_serves() {
        // Captured from `GET /v1/user/user-0000011/` after `herald seed`.
        let served: Value = serde_json::from_str(
            r#"{"distinct_id":"user-0000011","properties":{"name":"Frances Knuth","country":"BR","plan":"team","age":44,"tags":["beta","web"]},"status":"enabled","created_at":"2026-11-30T21:33:18.341798+00:00","updated_at":"2026-11-30T21:33:18.341798+00:00","version":1,"$email":[{"value":"frances.knuth.11@example.com","status":"active","perma_status":"active"}],"$sms":[{"value":"+14155925893","status":"active","perma_status":"active"}]}"#,
        )
        .expect("json");
        assert!(matches_served(&served, "user-0000011", 11));
        assert!(!matches_served(&served, "user-0000011", 12));
        assert_eq!(get_json("user-0000011", 11).len(), served.to_string().len());
    }
}
