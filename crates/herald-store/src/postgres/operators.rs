//! PostgreSQL: dashboard operators, their sessions and the login throttle's counters. Counting an
//! attempt locks its row (`FOR UPDATE`), so attempts arriving at several nodes at once are all
//! counted.

use super::{db, pg, PostgresStore};
use crate::{rows, sql};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_core::admin::{LoginAttempts, Operator, Session, ThrottleKey, ThrottlePolicy, Username};
use herald_core::profile::micros;
use herald_core::store::{OperatorStore, StoreError};

#[async_trait]
impl OperatorStore for PostgresStore {
    #[tracing::instrument(skip_all)]
    async fn insert_operator(&self, operator: &Operator) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                pg(sql::INSERT_OPERATOR).as_ref(),
                &[
                    &operator.username.as_str(),
                    &operator.password_hash,
                    &micros(operator.created_at),
                ],
            )
            .await
            .map_err(db)?;
        Ok(n == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn list_operators(&self) -> Result<Vec<Operator>, StoreError> {
        let client = self.client().await?;
        let found = client
            .query(pg(sql::LIST_OPERATORS).as_ref(), &[])
            .await
            .map_err(db)?;
        found.iter().map(rows::operator).collect()
    }

    #[tracing::instrument(skip_all)]
    async fn get_operator(&self, username: &Username) -> Result<Option<Operator>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(pg(sql::GET_OPERATOR).as_ref(), &[&username.as_str()])
            .await
            .map_err(db)?;
        row.as_ref().map(rows::operator).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn set_operator_password(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let name = username.as_str().to_owned();
        let hash = password_hash.to_owned();
        self.in_transaction(|tx| {
            let (name, hash) = (name.clone(), hash.clone());
            Box::pin(async move {
                let n = tx
                    .execute(pg(sql::SET_OPERATOR_PASSWORD).as_ref(), &[&name, &hash])
                    .await?;
                if n == 0 {
                    return Ok(false);
                }
                tx.execute(pg(sql::DELETE_OPERATOR_SESSIONS).as_ref(), &[&name])
                    .await?;
                tx.execute(
                    pg(sql::DELETE_LOGIN_ATTEMPTS).as_ref(),
                    &[&"account", &name],
                )
                .await?;
                Ok(true)
            })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_operator(&self, username: &Username) -> Result<bool, StoreError> {
        let name = username.as_str().to_owned();
        self.in_transaction(|tx| {
            let name = name.clone();
            Box::pin(async move {
                // The account row first: a concurrent login's session insert then waits for
                // this transaction and finds no account.
                let n = tx
                    .execute(pg(sql::DELETE_OPERATOR).as_ref(), &[&name])
                    .await?;
                tx.execute(pg(sql::DELETE_OPERATOR_SESSIONS).as_ref(), &[&name])
                    .await?;
                Ok(n == 1)
            })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn insert_session(&self, s: &Session) -> Result<(), StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                pg(sql::INSERT_SESSION).as_ref(),
                &[
                    &s.id_hash,
                    &s.username.as_str(),
                    &s.csrf_token,
                    &micros(s.created_at),
                    &micros(s.expires_at),
                ],
            )
            .await
            .map_err(db)?;
        if n == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict("the operator account is gone".into()))
        }
    }

    #[tracing::instrument(skip_all)]
    async fn get_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(pg(sql::GET_SESSION).as_ref(), &[&id_hash, &micros(now)])
            .await
            .map_err(db)?;
        row.as_ref().map(rows::session).transpose()
    }

    #[tracing::instrument(skip_all)]
    async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(pg(sql::DELETE_SESSION).as_ref(), &[&id_hash])
            .await
            .map_err(db)?;
        Ok(n == 1)
    }

    #[tracing::instrument(skip_all)]
    async fn purge_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(pg(sql::PURGE_SESSIONS).as_ref(), &[&micros(now)])
            .await
            .map_err(db)
    }

    #[tracing::instrument(skip_all, fields(kind = key.kind()))]
    async fn count_login_attempt(
        &self,
        key: &ThrottleKey,
        policy: ThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<LoginAttempts, StoreError> {
        let (kind, key) = (key.kind(), key.key().to_owned());
        self.in_transaction(|tx| {
            let key = key.clone();
            Box::pin(async move {
                tx.execute(
                    pg(sql::ENSURE_LOGIN_ATTEMPTS).as_ref(),
                    &[&kind, &key, &micros(now)],
                )
                .await?;
                let row = tx
                    .query_one(pg(sql::LOCK_LOGIN_ATTEMPTS).as_ref(), &[&kind, &key])
                    .await?;
                let current = rows::login_attempts(&row)?;
                let next = policy.count(Some(&current), now);
                tx.execute(
                    pg(sql::PUT_LOGIN_ATTEMPTS).as_ref(),
                    &[
                        &kind,
                        &key,
                        &i64::from(next.count),
                        &micros(next.window_start),
                    ],
                )
                .await?;
                Ok(next)
            })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(kind = key.kind()))]
    async fn clear_login_attempts(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                pg(sql::DELETE_LOGIN_ATTEMPTS).as_ref(),
                &[&key.kind(), &key.key()],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn purge_login_attempts(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(pg(sql::PURGE_LOGIN_ATTEMPTS).as_ref(), &[&micros(before)])
            .await
            .map_err(db)
    }
}
