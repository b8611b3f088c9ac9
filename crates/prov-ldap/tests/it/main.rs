//! prov-ldap against a real OpenLDAP slapd (started per test on a free port).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod ad;
mod common;
mod directory;
mod groups;
mod samba;
pub(crate) mod suite;
