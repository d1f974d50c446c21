//! The synthetic profiles `herald seed` loads (`herald_server::seed`), as the baselines hold them
//! without a server: profile `i` is `user-{i:07}` with the same name, country, email, plan, age,
//! tags, phone and status on every run. `get` checks that a
//! served profile still matches [`get_json`], so a change to the seed shows up in the bench.

use herald_server::seed;
use serde_json::{json, Value};

/// A stable pseudo-random number for profile `i`, stream `k` (the seed's own).
pub fn rand(i: u64, k: u64) -> u64 {
    seed::rand(i, k)
}

/// The seeded distinct_id of profile `i`.
pub fn seeded_id(i: u64) -> String {
    format!("user-{i:07}")
}

/// The upsert body of profile `i` (what `herald seed` writes), with `distinct_id` beside its keys:
/// one NDJSON line of `herald user import` and `POST /v1/bulk/user/import/`.
pub fn ndjson_line(id: &str, i: u64) -> String {
    let mut line = serde_json::Map::new();
    line.insert("distinct_id".into(), json!(id));
    if let Value::Object(body) = seed::profile(i) {
        line.extend(body);
    }
    Value::Object(line).to_string()
}

/// The body `GET /v1/user/{id}/` answers for seeded profile `i` (timestamps of the same length).
pub fn get_json(id: &str, i: u64) -> String {
    get_value(id, i).to_string()
}

fn get_value(id: &str, i: u64) -> Value {
    let body = seed::profile(i);
    let at = "2026-11-30T21:33:49.341798+00:00";
    let identities = |channel: &str| {
        body[channel].as_array().map(|values| {
            values
                .iter()
                .map(|v| json!({"value": v, "status": "active", "perma_status": "active"}))
                .collect::<Vec<_>>()
        })
    };
    let properties: serde_json::Map<String, Value> = body
        .as_object()
        .expect("an upsert body is an object")
        .iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut wire = json!({
        "distinct_id": id,
        "properties": properties,
        "status": body.get("$status").cloned().unwrap_or(json!("enabled")),
        "created_at": at,
        "updated_at": at,
        "version": 1,
    });
    for channel in ["$email", "$sms"] {
        if let Some(list) = identities(channel) {
            wire[channel] = json!(list);
        }
    }
    wire
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
