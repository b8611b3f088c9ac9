//! prov-scim's integration tests: one binary, a module per concern.

mod filter;
