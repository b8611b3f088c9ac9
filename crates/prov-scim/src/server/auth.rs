//! Tenants and their bearer tokens: kept as SHA-256 digests, never in
//! the clear, and compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The shortest token accepted: 16 bytes (a guessable token is a breach).
pub const MIN_TOKEN_LEN: usize = 16;

/// Which tenant each bearer token belongs to.
#[derive(Clone, Default)]
pub struct Tenants {
    tokens: Vec<([u8; 32], String)>,
}

impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.tokens.iter().map(|(_, t)| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        f.debug_struct("Tenants")
            .field("tenants", &names)
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

/// A token refused when it is added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenError(pub String);

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TokenError {}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tenants {
    /// No tenants yet.
    pub fn new() -> Self {
        Tenants::default()
    }

    /// Lets `token` act for `tenant` (a tenant may have several tokens,
    /// while one is rotated). Only the token's digest is kept.
    pub fn add_token(&mut self, tenant: impl Into<String>, token: &str) -> Result<(), TokenError> {
        if token.len() < MIN_TOKEN_LEN {
            return Err(TokenError(format!(
                "a token has at least {MIN_TOKEN_LEN} bytes"
            )));
        }
        self.tokens.push((digest(token), tenant.into()));
        Ok(())
    }

    /// Lets the token whose SHA-256 digest is `hex` act for `tenant`: for
    /// a host that keeps digests only.
    pub fn add_token_digest(
        &mut self,
        tenant: impl Into<String>,
        hex: &str,
    ) -> Result<(), TokenError> {
        let bad = || TokenError("a token digest is 64 hex digits (SHA-256)".to_owned());
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(i * 2..i * 2 + 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        self.tokens.push((out, tenant.into()));
        Ok(())
    }

    /// Takes `token` away from every tenant.
    pub fn revoke(&mut self, token: &str) {
        let d = digest(token);
        self.tokens.retain(|(t, _)| !bool::from(t.ct_eq(&d)));
    }

    /// The tenant `token` acts for. Every digest is compared, each in
    /// constant time, so the answer's timing says nothing of the tokens.
    pub fn tenant_of(&self, token: &str) -> Option<&str> {
        let d = digest(token);
        let mut found = None;
        for (t, tenant) in &self.tokens {
            if bool::from(t.ct_eq(&d)) && found.is_none() {
                found = Some(tenant.as_str());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::Tenants;

    #[test]
    fn tokens_map_to_their_tenant_and_are_never_kept() {
        let mut t = Tenants::new();
        t.add_token("acme", "acme-token-0123456789").unwrap();
        t.add_token("globex", "globex-token-0123456789").unwrap();
        assert!(t.add_token("x", "short").is_err());
        assert_eq!(t.tenant_of("acme-token-0123456789"), Some("acme"));
        assert_eq!(t.tenant_of("globex-token-0123456789"), Some("globex"));
        assert_eq!(t.tenant_of("acme-token-012345678"), None);
        assert!(!format!("{t:?}").contains("token-0123"));
        // A host that keeps digests only.
        use sha2::Digest as _;
        let hex: String = sha2::Sha256::digest(b"initech-token-0123456789")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        t.add_token_digest("initech", &hex).unwrap();
        assert_eq!(t.tenant_of("initech-token-0123456789"), Some("initech"));
        assert!(t.add_token_digest("x", "zz").is_err());
        t.revoke("acme-token-0123456789");
        assert_eq!(t.tenant_of("acme-token-0123456789"), None);
    }
}
