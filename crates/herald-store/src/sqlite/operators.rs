//! SQLite: dashboard operators, their sessions and the login throttle's counters. Each write is
//! one job of the writer thread, so a read-modify-write (counting an attempt) is never
//! interleaved with another.

use super::{execute, query, query_opt, SqliteStore};
use crate::{rows, sql};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::admin::{LoginAttempts, Operator, Session, ThrottleKey, ThrottlePolicy, Username};
use herald_core::profile::micros;
use herald_core::store::{OperatorStore, StoreError};
use rusqlite::params;

#[async_trait]
impl OperatorStore for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn insert_operator(&self, operator: &Operator) -> Result<bool, StoreError> {
        let o = operator.clone();
        self.writer
            .write(move |conn| {
                execute(
                    conn,
                    sql::INSERT_OPERATOR,
                    params![o.username.as_str(), o.password_hash, micros(o.created_at)],
                )
                .map(|n| n == 1)
            })
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_operators(&self) -> Result<Vec<Operator>, StoreError> {
        self.readers
            .read(|conn| query(conn, sql::LIST_OPERATORS, [], |r| rows::operator(r)))
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_operator(&self, username: &Username) -> Result<Option<Operator>, StoreError> {
        let name = username.as_str().to_owned();
        self.readers
            .read(move |conn| query_opt(conn, sql::GET_OPERATOR, [name], |r| rows::operator(r)))
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn set_operator_password(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let (name, hash) = (username.as_str().to_owned(), password_hash.to_owned());
        self.writer
            .write(move |conn| {
                if execute(conn, sql::SET_OPERATOR_PASSWORD, params![name, hash])? == 0 {
                    return Ok(false);
                }
                execute(conn, sql::DELETE_OPERATOR_SESSIONS, [&name])?;
                execute(conn, sql::DELETE_LOGIN_ATTEMPTS, params!["account", name])?;
                Ok(true)
            })
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_operator(&self, username: &Username) -> Result<bool, StoreError> {
        let name = username.as_str().to_owned();
        self.writer
            .write(move |conn| {
                execute(conn, sql::DELETE_OPERATOR_SESSIONS, [&name])?;
                execute(conn, sql::DELETE_OPERATOR, [&name]).map(|n| n == 1)
            })
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn insert_session(&self, session: &Session) -> Result<(), StoreError> {
        let s = session.clone();
        self.writer
            .write(move |conn| {
                let n = execute(
                    conn,
                    sql::INSERT_SESSION,
                    params![
                        s.id_hash,
                        s.username.as_str(),
                        s.csrf_token,
                        micros(s.created_at),
                        micros(s.expires_at)
                    ],
                )?;
                if n == 1 {
                    Ok(())
                } else {
                    Err(StoreError::Conflict("the operator account is gone".into()))
                }
            })
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let id = id_hash.to_owned();
        self.readers
            .read(move |conn| {
                query_opt(conn, sql::GET_SESSION, params![id, micros(now)], |r| {
                    rows::session(r)
                })
            })
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let id = id_hash.to_owned();
        self.writer
            .write(move |conn| execute(conn, sql::DELETE_SESSION, [id]).map(|n| n == 1))
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn purge_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.writer
            .write(move |conn| execute(conn, sql::PURGE_SESSIONS, [micros(now)]).map(|n| n as u64))
            .await
    }

    #[tracing::instrument(skip_all, fields(kind = key.kind()))]
    async fn count_login_attempt(
        &self,
        key: &ThrottleKey,
        policy: ThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<LoginAttempts, StoreError> {
        let (kind, key) = (key.kind(), key.key().to_owned());
        self.writer
            .write(move |conn| {
                let current = query_opt(conn, sql::GET_LOGIN_ATTEMPTS, params![kind, key], |r| {
                    rows::login_attempts(r)
                })?;
                let next = policy.count(current.as_ref(), now);
                execute(
                    conn,
                    sql::PUT_LOGIN_ATTEMPTS,
                    params![kind, key, next.count, micros(next.window_start)],
                )?;
                Ok(next)
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(kind = key.kind()))]
    async fn clear_login_attempts(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        let (kind, key) = (key.kind(), key.key().to_owned());
        self.writer
            .write(move |conn| {
                execute(conn, sql::DELETE_LOGIN_ATTEMPTS, params![kind, key]).map(drop)
            })
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn purge_login_attempts(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.writer
            .write(move |conn| {
                execute(conn, sql::PURGE_LOGIN_ATTEMPTS, [micros(before)]).map(|n| n as u64)
            })
            .await
    }
}
