//! JSON Web Tokens as the push services want them, signed with ring from PKCS#8 keys in PEM:
//! RS256 for Google's OAuth service-account grant (FCM), ES256 for APNs provider tokens.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use herald_core::error::Invalid;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use serde_json::Value;
use std::fmt;

/// The DER inside the first PEM block labelled `label` (`PRIVATE KEY`, `RSA PRIVATE KEY`), or
/// `None` when there is no such block. A key pasted with its line breaks escaped (`\n` as two
/// characters, as in a JSON string copied by hand) is read too.
fn pem_block(pem: &str, label: &str) -> Option<Result<Vec<u8>, String>> {
    let pem = pem.replace("\\n", "\n");
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let Some(len) = pem[start..].find(&end) else {
        return Some(Err(format!("has no {end} line")));
    };
    let body: String = pem[start..start + len]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    Some(
        STANDARD
            .decode(body)
            .map_err(|e| format!("is not base64 inside its PEM block: {e}")),
    )
}

/// A message for a key that is not what was asked for.
fn rejected(what: &str, why: impl fmt::Display) -> String {
    format!("is not {what}: {why}")
}

/// An RSA private key signing RS256 (RSASSA-PKCS1-v1_5 with SHA-256).
pub struct Rs256(RsaKeyPair);

impl Rs256 {
    /// From a PEM `PRIVATE KEY` (PKCS#8, as Google's service-account files hold) or `RSA
    /// PRIVATE KEY` (PKCS#1) block; the error names `field`.
    pub fn from_pem(field: &str, pem: &str) -> Result<Rs256, Invalid> {
        const WHAT: &str = "an RSA private key in PEM (-----BEGIN PRIVATE KEY-----)";
        let key = if let Some(der) = pem_block(pem, "PRIVATE KEY") {
            let der = der.map_err(|r| Invalid::new(field, r))?;
            RsaKeyPair::from_pkcs8(&der)
        } else if let Some(der) = pem_block(pem, "RSA PRIVATE KEY") {
            let der = der.map_err(|r| Invalid::new(field, r))?;
            RsaKeyPair::from_der(&der)
        } else {
            return Err(Invalid::new(field, rejected(WHAT, "no PEM block found")));
        };
        key.map(Rs256)
            .map_err(|e| Invalid::new(field, rejected(WHAT, e)))
    }

    /// `header.claims.signature`, `alg: RS256` put first in `header`.
    pub fn sign(&self, header: Value, claims: &Value) -> Result<String, String> {
        let input = signing_input("RS256", header, claims);
        let mut signature = vec![0; self.0.public().modulus_len()];
        self.0
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "the RS256 signature could not be made".to_owned())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// A P-256 private key signing ES256 (ECDSA with SHA-256, `r || s` as JWS wants it).
pub struct Es256(EcdsaKeyPair);

impl Es256 {
    /// From a PEM `PRIVATE KEY` block (PKCS#8, as Apple's `.p8` files hold, with the public key
    /// inside); the error names `field`.
    pub fn from_pem(field: &str, pem: &str) -> Result<Es256, Invalid> {
        const WHAT: &str = "a P-256 private key in PKCS#8 PEM (an APNs .p8 file)";
        let der = pem_block(pem, "PRIVATE KEY")
            .ok_or_else(|| {
                Invalid::new(
                    field,
                    rejected(WHAT, "no -----BEGIN PRIVATE KEY----- block found"),
                )
            })?
            .map_err(|r| Invalid::new(field, r))?;
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
            .map(Es256)
            .map_err(|e| Invalid::new(field, rejected(WHAT, e)))
    }

    /// `header.claims.signature`, `alg: ES256` put first in `header`.
    pub fn sign(&self, header: Value, claims: &Value) -> Result<String, String> {
        let input = signing_input("ES256", header, claims);
        let signature = self
            .0
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| "the ES256 signature could not be made".to_owned())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

impl fmt::Debug for Rs256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Rs256(***)")
    }
}

impl fmt::Debug for Es256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Es256(***)")
    }
}

/// `base64url(header).base64url(claims)`, the header `alg` first and then `header`'s fields.
fn signing_input(alg: &str, header: Value, claims: &Value) -> String {
    let mut full = serde_json::Map::new();
    full.insert("alg".into(), Value::String(alg.into()));
    if let Value::Object(fields) = header {
        full.extend(fields);
    }
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(Value::Object(full).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// Seconds since the Unix epoch, for `iat` and `exp`.
pub fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_that_are_not_keys_are_named() {
        let err = Rs256::from_pem("service_account.private_key", "hello").unwrap_err();
        assert_eq!(err.field, "service_account.private_key");
        assert!(err.rule.contains("no PEM block"), "{err}");
        let err = Rs256::from_pem(
            "k",
            "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----",
        )
        .unwrap_err();
        assert!(err.rule.contains("base64"), "{err}");
        let err = Es256::from_pem(
            "private_key",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        )
        .unwrap_err();
        assert_eq!(err.field, "private_key");
        assert!(err.rule.contains("P-256"), "{err}");
    }

    #[test]
    fn es256_tokens_verify_with_the_public_key() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\\n{}\\n-----END PRIVATE KEY-----\\n",
            STANDARD.encode(pkcs8.as_ref())
        );
        let key = Es256::from_pem("private_key", &pem).unwrap();
        let public = {
            use ring::signature::KeyPair;
            key.0.public_key().as_ref().to_vec()
        };
        let token = key
            .sign(json!({"kid": "K"}), &json!({"iss": "T", "iat": 1}))
            .unwrap();
        let (input, signature) = token.rsplit_once('.').unwrap();
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(input.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header, json!({"kid": "K", "alg": "ES256"}));
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, public)
            .verify(
                input.as_bytes(),
                &URL_SAFE_NO_PAD.decode(signature).unwrap(),
            )
            .expect("the signature verifies");
    }
}
