//! Minting keys, and the first start that creates one key set per environment.

use chrono::Utc;
use herald_core::credentials::NewCredentials;
use herald_core::store::Store;
use herald_core::Env;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::json;
use std::path::{Path, PathBuf};

/// `len` random letters and digits from the OS's generator, for keys and secrets.
pub fn random(len: usize) -> String {
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Creates and stores a new key set for `env`. The bearer key is returned in clear, once.
pub async fn create(store: &dyn Store, env: Env) -> Result<NewCredentials, String> {
    let new = NewCredentials::from_random(env, [&random(24), &random(40), &random(40)], Utc::now());
    store
        .insert_credentials(&new.credentials)
        .await
        .map_err(|e| e.to_string())?;
    Ok(new)
}

/// A revoked key set: its environment, and whether it was that environment's last one.
pub struct Revoked {
    pub env: Env,
    pub was_last: bool,
}

/// Revokes the key set with this workspace key in the store: refused by every node within its
/// `auth.credential_cache_ms` (a server node revokes with [`revoke_on`], refused there at once).
pub async fn revoke(store: &dyn Store, workspace_key: &str) -> Result<Revoked, String> {
    let all = store.list_credentials().await.map_err(|e| e.to_string())?;
    let Some(env) = all
        .iter()
        .find(|c| c.workspace_key == workspace_key)
        .map(|c| c.env)
    else {
        return Err(format!(
            "no key set has the workspace key '{workspace_key}'"
        ));
    };
    store
        .delete_credentials(workspace_key)
        .await
        .map_err(|e| e.to_string())?;
    let was_last = !all
        .iter()
        .any(|c| c.env == env && c.workspace_key != workspace_key);
    Ok(Revoked { env, was_last })
}

/// Revokes the key set through this node: after the store commits the revocation, this node's
/// credential cache is emptied, so the key is refused here from the next request on (other nodes
/// refuse it within their `auth.credential_cache_ms`).
pub async fn revoke_on(app: &crate::App, workspace_key: &str) -> Result<Revoked, String> {
    let revoked = revoke(app.store.as_ref(), workspace_key).await?;
    app.credentials.forget_all();
    Ok(revoked)
}

/// The JSON `herald keys create --json` prints.
pub fn to_json(new: &NewCredentials) -> serde_json::Value {
    json!({
        "env": new.credentials.env,
        "workspace_key": new.credentials.workspace_key,
        "workspace_secret": new.credentials.workspace_secret,
        "api_key": new.api_key,
    })
}

/// On the very first start (no keys at all) mints a key set per environment and writes them to
/// `<data_dir>/initial-keys.json`, readable by the owner only. Returns that path when it did.
pub async fn ensure_initial(store: &dyn Store, data_dir: &Path) -> Result<Option<PathBuf>, String> {
    if !store
        .list_credentials()
        .await
        .map_err(|e| e.to_string())?
        .is_empty()
    {
        return Ok(None);
    }
    let mut sets = Vec::new();
    for env in Env::ALL {
        sets.push(to_json(&create(store, env).await?));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let path = data_dir.join("initial-keys.json");
    let text = serde_json::to_string_pretty(&json!({ "keys": sets })).expect("keys serialise");
    write_private(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some(path))
}

/// Writes `text` to `path` readable by the owner only (0600 on Unix), whatever the permissions
/// of a file already there: it is written to a fresh 0600 file beside it and renamed over it.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn the_keys_file_is_private_even_when_one_was_there() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initial-keys.json");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::write_private(&path, "{\"keys\": []}").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"keys\": []}");
        let fresh = dir.path().join("fresh.json");
        super::write_private(&fresh, "x").unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }
}
