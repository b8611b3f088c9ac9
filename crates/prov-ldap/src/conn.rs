//! One multiplexed connection, shared by clones of its handle, with a bound
//! on operations in flight; reconnected (and bound again) on the next
//! operation after it drops. Paged searches run on connections of their
//! own (see [`Paging`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ldap3::asn1::{StructureTag, parse_tag, parse_uint};
use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope};
use prov_core::{Error, ErrorKind, Operation, Result};
use tokio::sync::{Mutex, Semaphore};

use crate::config::{ConnectionConfig, Tls};
use crate::error::{from_ldap, from_result, is_connection_loss};
use crate::kept::Kept;

/// The OID of the RFC 2696 paged results control.
const PAGED_RESULTS: &str = "1.2.840.113556.1.4.319";
/// The OID of Active Directory's show-deleted control (LDAP_SERVER_SHOW_DELETED_OID).
const SHOW_DELETED: &str = "1.2.840.113556.1.4.417";

/// A search result entry: its DN and attributes (a few per entry, so a
/// list searched without allocating beats a map).
#[derive(Debug, Clone, Default)]
pub(crate) struct Entry {
    pub(crate) dn: String,
    pub(crate) attrs: Vec<(String, Vec<Vec<u8>>)>,
}

impl Entry {
    /// Values of `attribute` (any case), empty when absent.
    pub(crate) fn values(&self, attribute: &str) -> &[Vec<u8>] {
        self.attrs
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default()
    }

    /// The first value as text.
    pub(crate) fn first(&self, attribute: &str) -> Option<String> {
        self.values(attribute)
            .first()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Decodes a SearchResultEntry ([APPLICATION 4]) without panicking on a
    /// malformed reply.
    fn decode(tag: StructureTag) -> Option<Entry> {
        let mut parts = tag.match_id(4)?.expect_constructed()?.into_iter();
        let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
        let mut attrs: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
        for attr in parts.next()?.expect_constructed()? {
            let mut av = attr.expect_constructed()?.into_iter();
            let name = String::from_utf8(av.next()?.expect_primitive()?).ok()?;
            let mut values = Vec::new();
            for v in av.next()?.expect_constructed()? {
                values.push(v.expect_primitive()?);
            }
            match attrs
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(&name))
            {
                Some((_, v)) => v.extend(values),
                None => attrs.push((name, values)),
            }
        }
        Some(Entry { dn, attrs })
    }
}

/// Where and what a search looks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Search<'a> {
    pub(crate) base: &'a str,
    pub(crate) scope: Scope,
    pub(crate) filter: &'a str,
    pub(crate) attrs: &'a [String],
    /// Ask for deleted objects too (AD's show-deleted control).
    pub(crate) show_deleted: bool,
}

/// Connections that paged searches run on.
///
/// A directory may keep one paged search per connection: OpenLDAP does, and
/// a second paged search started on the same connection voids the first
/// one's cookie ("paged results cookie is invalid"). So each paged search
/// (every page of one listing) runs on a connection of its own, found again
/// by the number the cookie we hand out starts with; a finished search
/// gives its connection back for the next one.
struct Paging {
    /// Bound connections with no paged search under way.
    idle: Vec<Ldap>,
    /// Searches with more pages to come (at most 64, each for at most 15
    /// minutes unused).
    open: Kept<Ldap>,
}

/// How many idle paging connections are kept.
const IDLE_PAGING: usize = 4;

impl Default for Paging {
    fn default() -> Self {
        Paging {
            idle: Vec::new(),
            open: Kept::new(64, Duration::from_secs(15 * 60)),
        }
    }
}

impl Paging {
    /// Gives back the connection of a finished search.
    fn release(&mut self, mut ldap: Ldap) {
        if self.idle.len() < IDLE_PAGING && !ldap.is_closed() {
            self.idle.push(ldap);
        }
    }
}

/// The connection and the bound on operations in flight.
pub(crate) struct Conn {
    cfg: ConnectionConfig,
    live: Mutex<Option<Ldap>>,
    paging: std::sync::Mutex<Paging>,
    permits: Semaphore,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("url", &self.cfg.url)
            .field("bind_dn", &self.cfg.bind_dn)
            .finish_non_exhaustive()
    }
}

/// The TLS configuration of every TLS connection (`ldaps://` or
/// StartTLS): always built here, with aws-lc-rs named as the provider.
/// Left to ldap3 (no `ca_file`), it asked for the process default
/// provider, which panics in a program that links both ring and aws-lc-rs
/// (reqwest with rustls does). The roots are `ca_file`'s, else the
/// system's.
fn tls_config(cfg: &ConnectionConfig) -> Result<Option<Arc<rustls::ClientConfig>>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let uses_tls = cfg.tls == Tls::StartTls
        || cfg
            .url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("ldaps://"));
    if !uses_tls {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = &cfg.ca_file {
        let bad = |m: String| Error::new(ErrorKind::Config, m).with_field("connection.ca_file");
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("{}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| bad(format!("{}: {e}", path.display())))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("{}: {e}", path.display())))?;
        }
        if roots.is_empty() {
            return Err(bad(format!("{}: no certificates in it", path.display())));
        }
    } else {
        let found = rustls_native_certs::load_native_certs();
        // A certificate of the system's that does not parse is skipped, as
        // every TLS client does; none at all is an error saying what to set.
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map_or_else(|| "none found".to_owned(), ToString::to_string);
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "no system CA certificates to check {} against ({why}): set ca_file",
                    cfg.url
                ),
            )
            .with_field("connection.ca_file"));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorKind::Config, e.to_string()).with_field("connection.tls"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

impl Conn {
    pub(crate) fn new(cfg: ConnectionConfig) -> Self {
        let permits = Semaphore::new(cfg.max_in_flight.max(1));
        Conn {
            cfg,
            live: Mutex::new(None),
            paging: std::sync::Mutex::new(Paging::default()),
            permits,
        }
    }

    async fn connect(&self, op: Operation) -> Result<Ldap> {
        let what = format!("connecting to {}", self.cfg.url);
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.cfg.connect_timeout)
            .set_starttls(self.cfg.tls == Tls::StartTls);
        if let Some(config) = tls_config(&self.cfg)? {
            settings = settings.set_config(config);
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.cfg.url)
            .await
            .map_err(|e| from_ldap(e, op, &what))?;
        tokio::spawn(async move {
            // The driver ends when the connection closes; the next operation
            // sees the closed handle and reconnects.
            let _ = conn.drive().await;
        });
        if let Some(dn) = &self.cfg.bind_dn {
            let password = self
                .cfg
                .password
                .as_ref()
                .map(|p| p.expose())
                .unwrap_or_default();
            let res = ldap
                .with_timeout(self.cfg.connect_timeout)
                .simple_bind(dn, password)
                .await
                .map_err(|e| from_ldap(e, op, &what))?;
            if res.rc != 0 {
                return Err(from_result(&res, op, &format!("binding as {dn}")));
            }
        }
        Ok(ldap)
    }

    /// A handle on the live connection, connecting first when there is none.
    async fn handle(&self, op: Operation) -> Result<Ldap> {
        let mut live = self.live.lock().await;
        if let Some(ldap) = live.as_mut()
            && !ldap.is_closed()
        {
            return Ok(ldap.clone());
        }
        *live = None;
        let ldap = self.connect(op).await?;
        *live = Some(ldap.clone());
        Ok(ldap)
    }

    /// Runs one operation on the shared connection, within the in-flight
    /// bound and the operation timeout. A lost connection is dropped so
    /// that the next operation reconnects; the error is `Unavailable`
    /// (retryable), since an operation cut off may or may not have happened.
    pub(crate) async fn run<T, F, Fut>(&self, op: Operation, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(Ldap) -> Fut,
        Fut: Future<Output = std::result::Result<T, LdapError>>,
    {
        let _permit = self.permit().await?;
        let mut ldap = self.handle(op).await?;
        ldap.with_timeout(self.cfg.operation_timeout);
        match f(ldap).await {
            Ok(t) => Ok(t),
            Err(e) => {
                if is_connection_loss(&e) {
                    self.live.lock().await.take();
                }
                Err(from_ldap(e, op, what))
            }
        }
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.permits
            .acquire()
            .await
            .map_err(|_| Error::new(ErrorKind::Unavailable, "the connector is shutting down"))
    }

    fn paging(&self) -> std::sync::MutexGuard<'_, Paging> {
        self.paging
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The connection a paged search goes on: the one its cookie names, or
    /// for a new search an idle one (connecting when there is none). The
    /// cookie we hand out is the sequence number (8 bytes) and then the
    /// directory's own cookie.
    /// Also says whether it is an idle connection used before (which the
    /// directory may have closed meanwhile).
    async fn paging_connection(
        &self,
        op: Operation,
        cookie: &[u8],
    ) -> Result<(Ldap, Vec<u8>, bool)> {
        if cookie.is_empty() {
            let idle = self.paging().idle.pop().filter(|l| !l.clone().is_closed());
            return Ok(match idle {
                Some(l) => (l, Vec::new(), true),
                None => (self.connect(op).await?, Vec::new(), false),
            });
        }
        let mut paging = self.paging();
        let taken = cookie
            .split_at_checked(8)
            .and_then(|(seq, server)| Some((u64::from_le_bytes(seq.try_into().ok()?), server)))
            .and_then(|(seq, server)| Some((paging.open.take(seq)?, server)));
        let Some((ldap, server)) = taken else {
            return Err(expired_cursor(op, "paged search", &paging.open));
        };
        drop(paging);
        Ok((ldap, server.to_vec(), false))
    }

    /// Checks that the directory answers (connects and binds) and, where
    /// it offers WhoAmI (RFC 4532), that it takes the bind's identity; a
    /// directory without it (Samba answers protocolError) is checked by
    /// the bind alone. Any other answer is the check's error.
    pub(crate) async fn check(&self) -> Result<()> {
        let what = "checking the directory (WhoAmI)";
        let res = self
            .run(Operation::Check, what, |mut l| async move {
                l.extended(ldap3::exop::WhoAmI).await
            })
            .await?;
        match res.1.rc {
            0 | 2 | 12 => Ok(()),
            _ => Err(crate::error::from_result(&res.1, Operation::Check, what)),
        }
    }

    /// One page of a search: entries and the cookie for the next page
    /// (`None` on the last). An empty cookie starts the search.
    pub(crate) async fn search_page(
        &self,
        op: Operation,
        s: Search<'_>,
        page_size: usize,
        cookie: Vec<u8>,
    ) -> Result<(Vec<Entry>, Option<Vec<u8>>)> {
        self.search_page_map(op, s, page_size, cookie, &Ok).await
    }

    /// One page of a search, each entry turned into a `T` by `f` as it
    /// arrives, while the directory sends the next.
    pub(crate) async fn search_page_map<T: Send>(
        &self,
        op: Operation,
        s: Search<'_>,
        page_size: usize,
        cookie: Vec<u8>,
        f: &(dyn Fn(Entry) -> Result<T> + Sync),
    ) -> Result<(Vec<T>, Option<Vec<u8>>)> {
        let what = format!("searching {} for {}", s.base, s.filter);
        let _permit = self.permit().await?;
        let (mut ldap, server_cookie, reused) = self.paging_connection(op, &cookie).await?;
        let control = RawControl {
            ctype: PAGED_RESULTS.to_owned(),
            crit: true,
            val: Some(encode_paged(
                i32::try_from(page_size).unwrap_or(i32::MAX),
                &server_cookie,
            )),
        };
        ldap.with_timeout(self.cfg.operation_timeout);
        let mut streamed = stream_page(ldap.clone(), control.clone(), s, page_size, f).await;
        if reused && streamed.as_ref().is_err_and(is_connection_loss) {
            // An idle connection the directory had closed: nothing was
            // read yet, so the search starts again on a new one.
            ldap = self.connect(op).await?;
            ldap.with_timeout(self.cfg.operation_timeout);
            streamed = stream_page(ldap.clone(), control, s, page_size, f).await;
        }
        // A connection that failed is not used again.
        let (out, undecodable, failed, res) = streamed.map_err(|e| from_ldap(e, op, &what))?;
        if let Some(error) = failed {
            return Err(error);
        }
        if res.rc != 0 {
            return Err(from_result(&res, op, &what));
        }
        if undecodable > 0 {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!("{what}: the directory sent {undecodable} entries that do not decode"),
            )
            .with_operation(op));
        }
        let next = res
            .ctrls
            .iter()
            .find(|c| c.1.ctype == PAGED_RESULTS)
            .and_then(|c| c.1.val.as_deref())
            .and_then(decode_paged_cookie)
            .filter(|c| !c.is_empty());
        let mut paging = self.paging();
        let next = match next {
            Some(server) => {
                let mut ours = paging.open.keep(ldap).to_le_bytes().to_vec();
                ours.extend_from_slice(&server);
                Some(ours)
            }
            None => {
                paging.release(ldap);
                None
            }
        };
        Ok((out, next))
    }

    /// Every entry a search finds, page after page.
    pub(crate) async fn search_all(
        &self,
        op: Operation,
        s: Search<'_>,
        page_size: usize,
    ) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        let mut cookie = Vec::new();
        let mut guard = prov_core::PageGuard::new();
        loop {
            let (entries, next) = self.search_page(op, s, page_size, cookie).await?;
            out.extend(entries);
            match next {
                Some(c) => {
                    guard
                        .next_bytes(&c, "an LDAP search")
                        .map_err(|e| e.with_operation(op))?;
                    cookie = c;
                }
                None => return Ok(out),
            }
        }
    }

    /// The entry at `dn`, or `None` when there is none.
    pub(crate) async fn read(
        &self,
        op: Operation,
        dn: &str,
        filter: &str,
        attrs: &[String],
    ) -> Result<Option<Entry>> {
        let what = format!("reading {dn}");
        let attrs = attrs.to_vec();
        let res = self
            .run(op, &what, |mut l| async move {
                l.search(dn, Scope::Base, filter, attrs).await
            })
            .await?;
        match res.1.rc {
            0 => {}
            32 => return Ok(None),
            _ => return Err(from_result(&res.1, op, &what)),
        }
        match res.0.into_iter().next() {
            None => Ok(None),
            Some(e) => Entry::decode(e.0).map(Some).ok_or_else(|| {
                Error::new(
                    ErrorKind::Unexpected,
                    format!("{what}: the directory sent an entry that does not decode"),
                )
                .with_operation(op)
            }),
        }
    }
}

/// What one page of a search streams back: the entries turned into `T`
/// as they arrive (while the directory sends the next), how many did not
/// decode, the first conversion error, and the final result.
type Streamed<T> = (Vec<T>, usize, Option<Error>, ldap3::LdapResult);

async fn stream_page<T>(
    mut ldap: Ldap,
    control: RawControl,
    s: Search<'_>,
    page_size: usize,
    f: &(dyn Fn(Entry) -> Result<T> + Sync),
) -> std::result::Result<Streamed<T>, LdapError> {
    let mut controls = vec![control];
    if s.show_deleted {
        controls.push(RawControl {
            ctype: SHOW_DELETED.to_owned(),
            crit: true,
            val: None,
        });
    }
    let mut stream = ldap
        .with_controls(controls)
        .streaming_search(s.base, s.scope, s.filter, s.attrs.to_vec())
        .await?;
    let mut out = Vec::with_capacity(page_size.min(4096));
    let mut undecodable = 0usize;
    let mut failed = None;
    while let Some(e) = stream.next().await? {
        if e.is_ref() || e.is_intermediate() || failed.is_some() {
            continue;
        }
        match Entry::decode(e.0).map(f) {
            Some(Ok(t)) => out.push(t),
            Some(Err(error)) => failed = Some(error),
            None => undecodable += 1,
        }
    }
    let res = stream.finish().await;
    Ok((out, undecodable, failed, res))
}

/// The error for a cursor whose kept `what` (in `kept`) is gone.
pub(crate) fn expired_cursor<T>(op: Operation, what: &str, kept: &Kept<T>) -> Error {
    Error::invalid_input(
        "cursor",
        format!(
            "the {what} this cursor continues has ended or was dropped (unused for {} minutes, \
             or more than {} left unfinished); list again from the first page",
            kept.idle_minutes(),
            kept.cap()
        ),
    )
    .with_operation(op)
}

/// A BER TLV with a definite length.
fn ber_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let rest = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | rest.len() as u8);
        out.extend_from_slice(rest);
    }
    out.extend_from_slice(content);
    out
}

/// `realSearchControlValue ::= SEQUENCE { size INTEGER, cookie OCTET STRING }`.
fn encode_paged(size: i32, cookie: &[u8]) -> Vec<u8> {
    let be = size.to_be_bytes();
    // Minimal two's complement: drop leading bytes that only repeat the sign.
    let mut int: &[u8] = &be;
    while let [first, second, ..] = int
        && ((*first == 0 && second & 0x80 == 0) || (*first == 0xff && second & 0x80 != 0))
    {
        int = int.get(1..).unwrap_or_default();
    }
    let mut body = ber_tlv(0x02, int);
    body.extend(ber_tlv(0x04, cookie));
    ber_tlv(0x30, &body)
}

fn decode_paged_cookie(val: &[u8]) -> Option<Vec<u8>> {
    let (_, tag) = parse_tag(val).ok()?;
    let mut parts = tag.expect_constructed()?.into_iter();
    let size = parts.next()?.expect_primitive()?;
    parse_uint(size.as_slice()).ok()?;
    parts.next()?.expect_primitive()
}

#[cfg(test)]
mod tls_tests {
    use super::*;

    /// Issue 17 item 3: without ca_file, ldap3 built the TLS config itself
    /// from the process default provider (a panic where ring and
    /// aws-lc-rs are both linked). Every TLS URL now gets our config,
    /// with aws-lc-rs; plain ldap:// none.
    #[test]
    fn every_tls_connection_gets_a_config_with_an_explicit_provider() {
        let aws = rustls::crypto::aws_lc_rs::default_provider();
        for (url, tls) in [
            ("ldaps://dc.example:636", Tls::FromUrl),
            ("LDAPS://dc.example", Tls::FromUrl),
            ("ldap://dc.example", Tls::StartTls),
        ] {
            let mut cfg = ConnectionConfig::new(url);
            cfg.tls = tls;
            if rustls_native_certs::load_native_certs().certs.is_empty() {
                // A machine without CA certificates: said, naming ca_file.
                let e = tls_config(&cfg).unwrap_err();
                assert_eq!(e.field(), Some("connection.ca_file"), "{e}");
                continue;
            }
            let config = tls_config(&cfg).unwrap().unwrap_or_else(|| panic!("{url}"));
            let suites: Vec<_> = config
                .crypto_provider()
                .cipher_suites
                .iter()
                .map(|s| s.suite())
                .collect();
            let want: Vec<_> = aws.cipher_suites.iter().map(|s| s.suite()).collect();
            assert_eq!(suites, want, "{url}");
        }
        assert!(
            tls_config(&ConnectionConfig::new("ldap://dc.example"))
                .unwrap()
                .is_none()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paged_control_round_trips_and_garbage_is_none() {
        let v = encode_paged(500, b"cookie\x00\xff");
        assert_eq!(decode_paged_cookie(&v), Some(b"cookie\x00\xff".to_vec()));
        assert_eq!(decode_paged_cookie(b"\x30\x03\x02"), None);
        assert_eq!(decode_paged_cookie(&[]), None);
    }
}
