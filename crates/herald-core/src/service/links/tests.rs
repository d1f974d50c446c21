use super::*;
use crate::credentials::Credentials;
use crate::store::CredentialStore;
use async_trait::async_trait;
use std::collections::HashMap;
use std::future::Future;

/// The server secrets of a database, and nothing else: all the key handling needs.
#[derive(Default)]
struct Secrets(Mutex<HashMap<String, String>>);

#[async_trait]
impl CredentialStore for Secrets {
    async fn insert_credentials(&self, _: &Credentials) -> Result<(), StoreError> {
        Ok(())
    }
    async fn list_credentials(&self) -> Result<Vec<Credentials>, StoreError> {
        Ok(Vec::new())
    }
    async fn delete_credentials(&self, _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn credentials_by_workspace_key(
        &self,
        _: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        Ok(None)
    }
    async fn credentials_by_api_key_hash(
        &self,
        _: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        Ok(None)
    }
    async fn server_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        let mut all = self.0.lock().unwrap();
        Ok(all.entry(name.into()).or_insert(candidate.into()).clone())
    }
    async fn replace_server_secret(
        &self,
        name: &str,
        expected: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let mut all = self.0.lock().unwrap();
        if all.get(name).map(String::as_str) != Some(expected) {
            return Ok(false);
        }
        all.insert(name.into(), new.into());
        Ok(true)
    }
}

/// Runs a future that never waits (everything here is in memory).
fn now_or_never<T>(f: impl Future<Output = T>) -> T {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(f).poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("an in-memory store never waits"),
    }
}

fn ada() -> Profile {
    Profile::new(
        DistinctId::parse("ada").unwrap(),
        DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
    )
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

/// The id of the key that signed `token`.
fn kid(token: &str) -> String {
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    let v: Value = serde_json::from_slice(&payload).unwrap();
    v["k"].as_str().unwrap().to_owned()
}

fn refused(r: Result<LinkSubject, OpenError>) -> Option<LinkError> {
    match r {
        Err(OpenError::Refused(e)) => Some(e),
        _ => None,
    }
}

#[test]
fn a_minted_link_opens_until_it_expires() {
    let (store, keys) = (Secrets::default(), LinkKeys::default());
    let links = Links::new(&store, &keys, "https://herald.example");
    let link =
        now_or_never(links.mint(Env::Live, &ada(), LinkDays::new("d", 2).unwrap(), at(0))).unwrap();
    assert_eq!(
        link.url,
        format!("https://herald.example/preferences/{}", link.token)
    );
    assert_eq!(link.expires_at, at(2 * 86_400));
    let subject = now_or_never(links.open(&link.token, at(86_400))).unwrap();
    assert_eq!(subject, LinkSubject::of(Env::Live, &ada()));
    assert_eq!(
        refused(now_or_never(links.open(&link.token, at(2 * 86_400)))),
        Some(LinkError::Expired)
    );
    // Another node shares the stored keyring, so it opens the link too.
    let elsewhere = LinkKeys::default();
    let other = Links::new(&store, &elsewhere, "https://other.example");
    assert!(now_or_never(other.open(&link.token, at(1))).is_ok());
    // Another database has another keyring.
    let (stranger, stranger_keys) = (Secrets::default(), LinkKeys::default());
    let stranger = Links::new(&stranger, &stranger_keys, "");
    assert_eq!(
        refused(now_or_never(stranger.open(&link.token, at(1)))),
        Some(LinkError::Invalid)
    );
}

#[test]
fn link_lifetimes_are_one_day_to_a_year() {
    assert_eq!(LinkDays::new("d", 365).unwrap().days(), 365);
    for bad in [0, -1, 366] {
        assert_eq!(
            LinkDays::new("expires_in_days", bad)
                .unwrap_err()
                .to_string(),
            "expires_in_days: must be a whole number of days from 1 to 365"
        );
    }
}

#[test]
fn rotation_keeps_old_links_opening_until_the_old_key_is_retired() {
    let (store, keys) = (Secrets::default(), LinkKeys::default());
    let links = Links::new(&store, &keys, "");
    let mint = |now| now_or_never(links.mint(Env::Test, &ada(), LinkDays::DEFAULT, now)).unwrap();
    let open = |token: &str, now| now_or_never(links.open(token, now));
    let old = mint(at(0)).token;
    assert_eq!(
        now_or_never(rotate(&store, false)).unwrap(),
        ("2".into(), 0)
    );
    // This node keeps the keyring it read for a while: it still signs with key 1.
    let cached = mint(at(1)).token;
    assert_eq!((kid(&old), kid(&cached)), ("1".into(), "1".into()));
    // Once it reads again, key 2 signs, and links signed with key 1 still open.
    let later = at(KEYS_REFRESH.num_seconds());
    let new = mint(later).token;
    assert_eq!(kid(&new), "2");
    assert!(open(&old, later).is_ok(), "kept through a rotation");
    assert!(open(&new, later).is_ok());

    assert_eq!(now_or_never(retire_old(&store)).unwrap(), 1);
    assert!(
        open(&old, later).is_ok(),
        "until this node reads the keys again"
    );
    let after = at(2 * KEYS_REFRESH.num_seconds());
    assert_eq!(refused(open(&old, after)), Some(LinkError::Invalid));
    assert!(open(&new, after).is_ok());

    // Rotating with retire_old closes every link at once (once nodes read the keys again).
    assert_eq!(now_or_never(rotate(&store, true)).unwrap(), ("3".into(), 1));
    let after = at(3 * KEYS_REFRESH.num_seconds());
    assert_eq!(refused(open(&new, after)), Some(LinkError::Invalid));
}

#[test]
fn a_copied_keyring_opens_links_sent_before_the_move() {
    let (from, to, keys) = (Secrets::default(), Secrets::default(), LinkKeys::default());
    let token = now_or_never(Links::new(&from, &keys, "").mint(
        Env::Test,
        &ada(),
        LinkDays::DEFAULT,
        at(0),
    ))
    .unwrap()
    .token;
    assert!(now_or_never(copy_keyring(&from, &to)).unwrap());
    let fresh = LinkKeys::default();
    assert!(now_or_never(Links::new(&to, &fresh, "").open(&token, at(1))).is_ok());
    // A target with a keyring of its own keeps it.
    let (mine, theirs) = (Secrets::default(), Secrets::default());
    now_or_never(rotate(&theirs, false)).unwrap();
    assert!(!now_or_never(copy_keyring(&mine, &theirs)).unwrap());
}
