//! Dashboard operators, sessions and login throttling: the same on both backends, and seen by
//! every node on one database.

use super::*;
use herald_core::admin::{
    hash_session_id, LoginAttempts, Operator, Session, ThrottleKey, ThrottlePolicy, Username,
};

fn name(s: &str) -> Username {
    Username::parse(s).unwrap()
}

fn operator(username: &str) -> Operator {
    Operator {
        username: name(username),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$fake${username}"),
        created_at: chrono::DateTime::from_timestamp(1_790_000_000, 123_456_000).unwrap(),
    }
}

#[tokio::test]
async fn operator_accounts_are_created_once_listed_changed_and_deleted() {
    for b in backends().await {
        let s = b.store.as_ref();
        let n = b.name;
        assert!(s.list_operators().await.unwrap().is_empty(), "{n}");
        assert!(s.insert_operator(&operator("zoe")).await.unwrap(), "{n}");
        assert!(s.insert_operator(&operator("ada")).await.unwrap(), "{n}");
        let mut again = operator("ada");
        again.password_hash = "other".into();
        assert!(
            !s.insert_operator(&again).await.unwrap(),
            "{n}: an existing username is kept"
        );
        let listed = s.list_operators().await.unwrap();
        assert_eq!(
            listed,
            [operator("ada"), operator("zoe")],
            "{n}: by username, kept whole"
        );
        assert_eq!(
            s.get_operator(&name("ada")).await.unwrap(),
            Some(operator("ada")),
            "{n}"
        );
        assert_eq!(s.get_operator(&name("bob")).await.unwrap(), None, "{n}");

        let now = Utc::now();
        let session = Session::open("id-1", name("ada"), "csrf-1".into(), now);
        s.insert_session(&session).await.unwrap();
        assert!(s
            .set_operator_password(&name("ada"), "new-hash")
            .await
            .unwrap());
        assert_eq!(
            s.get_operator(&name("ada"))
                .await
                .unwrap()
                .unwrap()
                .password_hash,
            "new-hash",
            "{n}"
        );
        assert_eq!(
            s.get_session(&session.id_hash, now).await.unwrap(),
            None,
            "{n}: a new password ends the account's sessions"
        );
        assert!(
            !s.set_operator_password(&name("bob"), "x").await.unwrap(),
            "{n}"
        );

        let zoes = Session::open("id-2", name("zoe"), "csrf-2".into(), now);
        s.insert_session(&zoes).await.unwrap();
        assert!(s.delete_operator(&name("zoe")).await.unwrap(), "{n}");
        assert!(!s.delete_operator(&name("zoe")).await.unwrap(), "{n}");
        assert_eq!(
            s.get_session(&zoes.id_hash, now).await.unwrap(),
            None,
            "{n}: deleting an account ends its sessions"
        );
        assert!(
            s.insert_session(&Session::open("id-3", name("zoe"), "c".into(), now))
                .await
                .is_err(),
            "{n}: no session for an account that is gone"
        );
        assert_eq!(s.list_operators().await.unwrap().len(), 1, "{n}");
    }
}

#[tokio::test]
async fn sessions_are_found_by_hash_on_every_node_until_they_expire() {
    for b in backends().await {
        let s = b.store.as_ref();
        let n = b.name;
        s.insert_operator(&operator("ada")).await.unwrap();
        let now = Utc::now();
        let session = Session::open("the-cookie", name("ada"), "csrf".into(), now);
        s.insert_session(&session).await.unwrap();
        let other = b.another_node().await;
        let found = other
            .get_session(&hash_session_id("the-cookie"), now)
            .await
            .unwrap();
        assert_eq!(found, Some(session.clone()), "{n}: another node sees it");
        assert_eq!(
            s.get_session("the-cookie", now).await.unwrap(),
            None,
            "{n}: found by the hash only"
        );
        assert_eq!(
            s.get_session(&session.id_hash, session.expires_at)
                .await
                .unwrap(),
            None,
            "{n}: expired at expires_at"
        );
        let old = Session::open("old", name("ada"), "c".into(), now - Duration::days(2));
        s.insert_session(&old).await.unwrap();
        assert_eq!(
            s.purge_sessions(now).await.unwrap(),
            1,
            "{n}: only the expired one"
        );
        assert!(s.delete_session(&session.id_hash).await.unwrap(), "{n}");
        assert!(!s.delete_session(&session.id_hash).await.unwrap(), "{n}");
        assert_eq!(
            s.get_session(&session.id_hash, now).await.unwrap(),
            None,
            "{n}"
        );
    }
}

#[tokio::test]
async fn login_attempts_are_counted_per_key_across_nodes_and_cleared() {
    let policy = ThrottlePolicy {
        max_attempts: 3,
        window: chrono::TimeDelta::minutes(15),
    };
    for b in backends().await {
        let s = b.store.clone();
        let n = b.name;
        let account = ThrottleKey::Account(name("ada"));
        let address = ThrottleKey::Address("192.0.2.7".into());
        let t0 = herald_core::profile::truncate(Utc::now());
        // 20 concurrent attempts on two nodes: every one is counted.
        let other = b.another_node().await;
        let attempts = (0..20).map(|i| {
            let store = if i % 2 == 0 { s.clone() } else { other.clone() };
            let key = account.clone();
            tokio::spawn(async move { store.count_login_attempt(&key, policy, t0).await })
        });
        let mut counts: Vec<u32> = Vec::new();
        for a in attempts {
            counts.push(a.await.unwrap().unwrap().count);
        }
        counts.sort_unstable();
        assert_eq!(counts, (1..=20).collect::<Vec<_>>(), "{n}: none lost");
        // Keys are apart.
        let first = s.count_login_attempt(&address, policy, t0).await.unwrap();
        assert_eq!(
            first,
            LoginAttempts {
                count: 1,
                window_start: t0
            },
            "{n}"
        );
        // After the window, a new one starts.
        let later = t0 + Duration::minutes(16);
        let fresh = s
            .count_login_attempt(&account, policy, later)
            .await
            .unwrap();
        assert_eq!(
            fresh,
            LoginAttempts {
                count: 1,
                window_start: later
            },
            "{n}"
        );
        s.clear_login_attempts(&account).await.unwrap();
        let cleared = s
            .count_login_attempt(&account, policy, later)
            .await
            .unwrap();
        assert_eq!(cleared.count, 1, "{n}: cleared");
        // A new password clears the account's count too.
        s.insert_operator(&operator("ada")).await.unwrap();
        s.count_login_attempt(&account, policy, later)
            .await
            .unwrap();
        s.set_operator_password(&name("ada"), "h").await.unwrap();
        assert_eq!(
            s.count_login_attempt(&account, policy, later)
                .await
                .unwrap()
                .count,
            1,
            "{n}"
        );
        // Windows started before a time are purged (the address's, at t0).
        assert_eq!(
            s.purge_login_attempts(t0 + Duration::minutes(1))
                .await
                .unwrap(),
            1,
            "{n}"
        );
        assert_eq!(
            s.count_login_attempt(&address, policy, later)
                .await
                .unwrap()
                .count,
            1,
            "{n}"
        );
    }
}
