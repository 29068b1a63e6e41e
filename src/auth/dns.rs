//! Live DKIM key lookups (`--dns ADDR[:PORT]`): TXT queries sent to exactly one DNS server.
//!
//! Keys normally come from the offline store; this module only fetches the ones that are
//! missing there. It is called from synchronous (Rayon) code: [`fetch_txt`] builds a
//! current-thread Tokio runtime and a hickory resolver for the one call and drops both
//! before it returns, so nothing (sockets, tasks, cache) outlives the call.
//!
//! Resolver set-up, and why:
//! - the only name server is the one given (UDP first, TCP for truncated answers); no system
//!   configuration is read (`/etc/resolv.conf`, `/etc/hosts`), no search domains, no domain;
//! - `attempts = 0`: hickory's retry layer would otherwise resend the whole query (and retries
//!   after a `Busy` connection are not even counted); within one attempt the UDP layer still
//!   retransmits a lost datagram (about every 333 ms, at most 3 sends) until `timeout`;
//! - `timeout` is both hickory's own (UDP exchange, TCP connect, pool deadline) and a hard
//!   Tokio timeout around each whole lookup, so a black-holed server costs `timeout` per name;
//! - `cache_size = 0` and duplicates are looked up once per call: no negative (or positive)
//!   answer survives into a later call;
//! - EDNS on with hickory's default 1232-byte payload; recursion desired (the server may be a
//!   recursive resolver or the authoritative server of the zone: both work);
//! - no DNSSEC validation, no opportunistic encryption.
//!
//! Outcome mapping: TXT answers → [`Fetched::Records`]; NXDOMAIN, or NOERROR without TXT data
//! (NODATA) → [`Fetched::NxDomain`]; SERVFAIL, REFUSED, any other error rcode, timeouts and
//! network errors → [`Fetched::Failed`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

/// What one TXT lookup gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// One entry per TXT record: its character-strings concatenated without separator
    /// (RFC 6376 §3.6.2.2). Bytes that are not UTF-8 become U+FFFD.
    Records(Vec<String>),
    /// NXDOMAIN, or NOERROR with no TXT data: the key does not exist. Also given for a name
    /// that cannot be a DNS name at all (bad label length, empty label...), since no key can
    /// be published there, and for special-use names that hickory answers itself without
    /// asking (`localhost.`, `*.invalid.`, `*.onion.`).
    NxDomain,
    /// Timeout, SERVFAIL, REFUSED, network error: transient.
    Failed(String),
}

/// How to reach the one server.
#[derive(Debug, Clone)]
pub struct DnsOptions {
    pub server: SocketAddr,
    /// Per query, whole (including retransmissions and a TCP retry after truncation).
    pub timeout: Duration,
    /// At most this many queries in flight (0 is taken as 1).
    pub concurrency: usize,
}

#[derive(thiserror::Error, Debug)]
pub enum DnsError {
    #[error("DNS set-up failed: {0}")]
    Setup(String),
}

/// Look up the TXT records of every name at the one server in `opts`.
///
/// Names are FQDNs (a missing trailing dot is added; search domains are never used).
/// Results come back in the order of `names`, one per entry (duplicates are queried once).
/// The call takes at most about `timeout × ceil(unique names / concurrency)`.
///
/// Must not be called from inside a Tokio runtime (it blocks on its own runtime).
pub fn fetch_txt(names: &[String], opts: &DnsOptions) -> Result<Vec<(String, Fetched)>, DnsError> {
    if opts.timeout.is_zero() {
        return Err(DnsError::Setup("timeout must be greater than zero".into()));
    }
    if names.is_empty() {
        return Ok(Vec::new());
    }

    // Query each distinct name once.
    let mut slot_of: HashMap<&str, usize> = HashMap::with_capacity(names.len());
    let mut unique: Vec<String> = Vec::new();
    let slots: Vec<usize> = names
        .iter()
        .map(|n| {
            *slot_of.entry(n.as_str()).or_insert_with(|| {
                unique.push(n.clone());
                unique.len() - 1
            })
        })
        .collect();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| DnsError::Setup(format!("cannot start the Tokio runtime: {e}")))?;

    let workers = opts.concurrency.max(1).min(unique.len());
    let unique = Arc::new(unique);
    let timeout = opts.timeout;
    let server = opts.server;

    let results: Vec<Fetched> = runtime.block_on(async move {
        let resolver = build_resolver(server, timeout, workers)?;
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let (resolver, next, unique) = (resolver.clone(), next.clone(), unique.clone());
            tasks.spawn(async move {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(name) = unique.get(i) else { break };
                    done.push((i, lookup_one(&resolver, name, timeout).await));
                }
                done
            });
        }
        let mut results: Vec<Option<Fetched>> = vec![None; unique.len()];
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(done) => {
                    for (i, fetched) in done {
                        results[i] = Some(fetched);
                    }
                }
                // A panic is a bug: pass it on. (A cancelled worker cannot happen here; its
                // names would stay None and be reported as Failed.)
                Err(e) => {
                    if e.is_panic() {
                        std::panic::resume_unwind(e.into_panic());
                    }
                }
            }
        }
        drop(resolver); // its background tasks end with the runtime
        Ok::<_, DnsError>(
            results
                .into_iter()
                .map(|r| r.unwrap_or_else(|| Fetched::Failed("lookup task did not finish".into())))
                .collect(),
        )
    })?;
    drop(runtime);

    Ok(names
        .iter()
        .zip(slots)
        .map(|(name, slot)| (name.clone(), results[slot].clone()))
        .collect())
}

/// A resolver that talks to `server` only, over UDP then TCP (on truncation).
fn build_resolver(
    server: SocketAddr,
    timeout: Duration,
    concurrency: usize,
) -> Result<TokioResolver, DnsError> {
    let mut udp = ConnectionConfig::udp();
    udp.port = server.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = server.port();
    // One server: its NXDOMAIN is final (there is nobody else to ask).
    let ns = NameServerConfig::new(server.ip(), true, vec![udp, tcp]);
    let config = ResolverConfig::from_parts(None, Vec::new(), vec![ns]);

    let mut o = ResolverOpts::default();
    o.timeout = timeout;
    o.attempts = 0;
    o.cache_size = 0;
    o.use_hosts_file = ResolveHosts::Never;
    o.ndots = 0;
    o.edns0 = true;
    o.num_concurrent_reqs = 1;
    o.try_tcp_on_error = false;
    o.case_randomization = false;
    o.recursion_desired = true;
    o.preserve_intermediates = true;
    // TCP connections are multiplexed; past this many in flight hickory answers "busy".
    o.max_active_requests = o.max_active_requests.max(concurrency);

    Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(o)
        .with_tls_config(no_roots_tls().map_err(DnsError::Setup)?)
        .build()
        .map_err(|e| DnsError::Setup(format!("cannot set up the DNS resolver: {e}")))
}

/// A TLS set-up with no trusted roots. hickory's TLS support is compiled in (mail-auth enables
/// it) and, left to itself, building a resolver loads the system's CA store — and fails on a
/// machine that has none — although plain DNS never uses TLS. mailcensus never speaks DNS over
/// TLS, so an empty root store is the honest configuration.
pub fn no_roots_tls() -> Result<rustls::ClientConfig, String> {
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        hickory_resolver::net::tls::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS set-up: {e}"))?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth())
}

/// A resolver that answers nothing by itself: mail-auth needs one to exist, but every lookup of
/// an offline verification is answered from the key store before it is reached.
pub fn idle_resolver() -> Result<TokioResolver, String> {
    Resolver::builder_with_config(
        ResolverConfig::from_parts(None, Vec::new(), Vec::<NameServerConfig>::new()),
        TokioRuntimeProvider::default(),
    )
    .with_tls_config(no_roots_tls()?)
    .build()
    .map_err(|e| format!("cannot set up the resolver: {e}"))
}

async fn lookup_one(resolver: &TokioResolver, name: &str, timeout: Duration) -> Fetched {
    let Some(qname) = to_fqdn(name) else {
        return Fetched::NxDomain;
    };
    match tokio::time::timeout(timeout, resolver.lookup(qname, RecordType::TXT)).await {
        Err(_) => Fetched::Failed(format!("timed out after {} ms", timeout.as_millis())),
        Ok(Ok(lookup)) => {
            let records: Vec<String> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|s| String::from_utf8_lossy(s))
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect();
            if records.is_empty() {
                Fetched::NxDomain // e.g. only a CNAME whose target has no TXT
            } else {
                Fetched::Records(records)
            }
        }
        Ok(Err(e)) => classify_error(&e, timeout),
    }
}

fn classify_error(e: &NetError, timeout: Duration) -> Fetched {
    match e {
        NetError::Dns(HickoryDnsError::NoRecordsFound(NoRecords { response_code, .. })) => {
            match *response_code {
                ResponseCode::NXDomain | ResponseCode::NoError => Fetched::NxDomain,
                code => Fetched::Failed(format!("server answered {}", code_name(code))),
            }
        }
        NetError::Dns(HickoryDnsError::ResponseCode(code)) => {
            Fetched::Failed(format!("server answered {}", code_name(*code)))
        }
        NetError::Timeout => Fetched::Failed(format!("timed out after {} ms", timeout.as_millis())),
        other => Fetched::Failed(other.to_string()),
    }
}

fn code_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        other => format!("rcode {}", u16::from(other)),
    }
}

/// The name as an absolute DNS name, or None when it cannot be one.
fn to_fqdn(name: &str) -> Option<Name> {
    let parsed = if name.is_ascii() {
        Name::from_ascii(name)
    } else {
        Name::from_utf8(name)
    };
    let mut n = parsed.ok()?;
    if n.is_root() {
        return None;
    }
    n.set_fqdn(true);
    Some(n)
}

/// Parse `ADDR[:PORT]`: `192.0.2.1`, `192.0.2.1:5353`, `[2001:db8::1]:5353`, `2001:db8::1`,
/// `[2001:db8::1]`. The port defaults to 53. Host names are refused (they would need a resolver).
pub fn parse_server(s: &str) -> Result<SocketAddr, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty DNS server address".into());
    }
    let addr = if let Ok(sa) = t.parse::<SocketAddr>() {
        sa
    } else if let Ok(ip) = t.parse::<IpAddr>() {
        SocketAddr::new(ip, 53)
    } else if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let ip = inner
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("bad IPv6 address in DNS server {s:?}"))?;
        SocketAddr::new(IpAddr::V6(ip), 53)
    } else {
        return Err(format!(
            "bad DNS server {s:?}: expected IPv4[:PORT], [IPv6]:PORT or IPv6 (an IP address, not a host name)"
        ));
    };
    if addr.port() == 0 {
        return Err(format!("bad DNS server {s:?}: port 0"));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::{Message, OpCode};
    use hickory_resolver::proto::rr::Record;
    use hickory_resolver::proto::rr::rdata::TXT;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    fn opts(server: SocketAddr, timeout_ms: u64, concurrency: usize) -> DnsOptions {
        DnsOptions {
            server,
            timeout: Duration::from_millis(timeout_ms),
            concurrency,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    // ---------------------------------------------------------------- parse_server

    #[test]
    fn parse_server_forms() {
        assert_eq!(
            parse_server("127.0.0.1").unwrap(),
            "127.0.0.1:53".parse().unwrap()
        );
        assert_eq!(
            parse_server("127.0.0.1:15353").unwrap(),
            "127.0.0.1:15353".parse().unwrap()
        );
        assert_eq!(
            parse_server("[::1]:5353").unwrap(),
            "[::1]:5353".parse().unwrap()
        );
        assert_eq!(parse_server("::1").unwrap(), "[::1]:53".parse().unwrap());
        assert_eq!(
            parse_server("2001:db8::1").unwrap(),
            "[2001:db8::1]:53".parse().unwrap()
        );
        assert_eq!(
            parse_server("[2001:db8::1]").unwrap(),
            "[2001:db8::1]:53".parse().unwrap()
        );
        assert_eq!(
            parse_server(" 10.0.0.1:53 ").unwrap(),
            "10.0.0.1:53".parse().unwrap()
        );
        for bad in [
            "",
            "dns.example",
            "dns.example:53",
            "1.2.3.4:",
            "1.2.3.4:99999",
            "1.2.3.4:0",
            "[::1",
            "::1]:53",
            "[1.2.3.4]:53",
            "1.2.3",
        ] {
            assert!(parse_server(bad).is_err(), "{bad:?} should be refused");
        }
    }

    // ---------------------------------------------------------------- a fake server on loopback

    /// name → TXT records → character-strings
    type Table = HashMap<String, Vec<Vec<Vec<u8>>>>;

    #[derive(Clone)]
    enum Mode {
        /// Answer from the table; names not in it get NXDOMAIN, `nodata.test.` gets NODATA.
        Zone,
        /// Every answer over UDP is empty with TC set; TCP answers from the table.
        TruncateUdp,
        /// Every query gets this rcode.
        Rcode(ResponseCode),
        /// Never answer (UDP bound, TCP listening but never accepting).
        Silent,
    }

    struct FakeServer {
        addr: SocketAddr,
        mode: Arc<Mutex<Mode>>,
        table: Arc<Mutex<Table>>,
        udp_queries: Arc<AtomicUsize>,
        tcp_queries: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        threads: Vec<std::thread::JoinHandle<()>>,
    }

    impl FakeServer {
        fn start(mode: Mode) -> FakeServer {
            // UDP and TCP on one loopback port.
            let (udp, tcp) = loop {
                let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
                if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()) {
                    break (udp, tcp);
                }
            };
            let addr = udp.local_addr().unwrap();
            let mut s = FakeServer {
                addr,
                mode: Arc::new(Mutex::new(mode)),
                table: Arc::new(Mutex::new(HashMap::new())),
                udp_queries: Arc::new(AtomicUsize::new(0)),
                tcp_queries: Arc::new(AtomicUsize::new(0)),
                stop: Arc::new(AtomicBool::new(false)),
                threads: Vec::new(),
            };
            udp.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            tcp.set_nonblocking(true).unwrap();
            let (mode, table, count, stop) = (
                s.mode.clone(),
                s.table.clone(),
                s.udp_queries.clone(),
                s.stop.clone(),
            );
            let t1 = std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((len, from)) = udp.recv_from(&mut buf) else {
                        continue;
                    };
                    count.fetch_add(1, Ordering::Relaxed);
                    let mode = mode.lock().unwrap().clone();
                    if let Some(reply) = answer(&buf[..len], &mode, &table.lock().unwrap(), true) {
                        let _ = udp.send_to(&reply, from);
                    }
                }
            });
            let (mode, table, count, stop) = (
                s.mode.clone(),
                s.table.clone(),
                s.tcp_queries.clone(),
                s.stop.clone(),
            );
            let t2 = std::thread::spawn(move || {
                let mut held = Vec::new(); // silent mode: accepted and never answered
                while !stop.load(Ordering::Relaxed) {
                    if matches!(*mode.lock().unwrap(), Mode::Silent) {
                        std::thread::sleep(Duration::from_millis(10));
                        continue; // never accept: connections wait in the backlog
                    }
                    match tcp.accept() {
                        Ok((stream, _)) => {
                            let (mode, table, count) = (mode.clone(), table.clone(), count.clone());
                            held.push(std::thread::spawn(move || {
                                serve_tcp(stream, &mode, &table, &count)
                            }));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                drop(held);
            });
            s.threads = vec![t1, t2];
            s
        }

        fn set(&self, name: &str, records: &[&[&str]]) {
            let recs = records
                .iter()
                .map(|strings| strings.iter().map(|s| s.as_bytes().to_vec()).collect())
                .collect();
            self.table.lock().unwrap().insert(name.to_string(), recs);
        }
    }

    impl Drop for FakeServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
        }
    }

    fn serve_tcp(
        mut stream: TcpStream,
        mode: &Mutex<Mode>,
        table: &Mutex<Table>,
        count: &AtomicUsize,
    ) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        loop {
            let mut len = [0u8; 2];
            if stream.read_exact(&mut len).is_err() {
                return;
            }
            let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
            if stream.read_exact(&mut msg).is_err() {
                return;
            }
            count.fetch_add(1, Ordering::Relaxed);
            let mode = mode.lock().unwrap().clone();
            let Some(reply) = answer(&msg, &mode, &table.lock().unwrap(), false) else {
                continue;
            };
            let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&reply);
            if stream.write_all(&framed).is_err() {
                return;
            }
        }
    }

    fn answer(query: &[u8], mode: &Mode, table: &Table, udp: bool) -> Option<Vec<u8>> {
        let q = Message::from_vec(query).ok()?;
        let mut r = Message::response(q.metadata.id, OpCode::Query);
        r.metadata.recursion_desired = q.metadata.recursion_desired;
        r.metadata.authoritative = true;
        r.add_queries(q.queries.clone());
        let qname = q.queries.first()?.name().clone();
        let key = qname.to_string().to_ascii_lowercase();
        match mode {
            Mode::Silent => return None,
            Mode::Rcode(code) => r.metadata.response_code = *code,
            Mode::TruncateUdp if udp => r.metadata.truncation = true,
            Mode::Zone | Mode::TruncateUdp => match table.get(&key) {
                Some(recs) => {
                    for strings in recs {
                        let parts: Vec<&[u8]> = strings.iter().map(|s| s.as_slice()).collect();
                        let rd = RData::TXT(TXT::from_bytes(parts));
                        r.add_answer(Record::from_rdata(qname.clone(), 60, rd));
                    }
                }
                None if key == "nodata.test." => {}
                None => r.metadata.response_code = ResponseCode::NXDomain,
            },
        }
        r.to_vec().ok()
    }

    // ---------------------------------------------------------------- tests with the fake server

    #[test]
    fn fake_records_nxdomain_nodata_order_and_duplicates() {
        let srv = FakeServer::start(Mode::Zone);
        srv.set("a._domainkey.one.test.", &[&["v=DKIM1; k=rsa; p=AB", "CD"]]);
        srv.set(
            "b._domainkey.two.test.",
            &[&["v=DKIM1; p="], &["second record"]],
        );
        let q = names(&[
            "b._domainkey.two.test.",
            "missing._domainkey.one.test.",
            "a._domainkey.one.test.",
            "nodata.test.",
            "A._DOMAINKEY.ONE.TEST", // no trailing dot, other case: same name
            "a._domainkey.one.test.",
            "bad..name.test.",
        ]);
        let got = fetch_txt(&q, &opts(srv.addr, 2000, 4)).unwrap();
        assert_eq!(got.len(), q.len());
        for (i, (n, _)) in got.iter().enumerate() {
            assert_eq!(n, &q[i]);
        }
        let mut two = match &got[0].1 {
            Fetched::Records(r) => r.clone(),
            other => panic!("{other:?}"),
        };
        two.sort();
        assert_eq!(
            two,
            vec!["second record".to_string(), "v=DKIM1; p=".to_string()]
        );
        assert_eq!(got[1].1, Fetched::NxDomain);
        assert_eq!(
            got[2].1,
            Fetched::Records(vec!["v=DKIM1; k=rsa; p=ABCD".into()])
        );
        assert_eq!(
            got[3].1,
            Fetched::NxDomain,
            "NOERROR/NODATA is an absent key"
        );
        assert_eq!(got[4].1, got[2].1);
        assert_eq!(got[5].1, got[2].1);
        assert_eq!(
            got[6].1,
            Fetched::NxDomain,
            "an impossible name is an absent key"
        );
        assert_eq!(srv.tcp_queries.load(Ordering::Relaxed), 0, "UDP first");
    }

    #[test]
    fn fake_truncated_udp_retried_over_tcp() {
        let srv = FakeServer::start(Mode::TruncateUdp);
        let long: String = "x".repeat(250);
        let strings: Vec<&str> = (0..12).map(|_| long.as_str()).collect(); // 3000 bytes
        srv.set("big._domainkey.tc.test.", &[&strings]);
        let got = fetch_txt(
            &names(&["big._domainkey.tc.test."]),
            &opts(srv.addr, 2000, 1),
        )
        .unwrap();
        assert_eq!(got[0].1, Fetched::Records(vec![long.repeat(12)]));
        assert!(srv.udp_queries.load(Ordering::Relaxed) >= 1);
        assert!(srv.tcp_queries.load(Ordering::Relaxed) >= 1);

        // Many at once over the multiplexed TCP connection (more than hickory's default of
        // 32 in flight per connection).
        let q: Vec<String> = (0..150)
            .map(|i| format!("k{i}._domainkey.tc.test."))
            .collect();
        for n in &q {
            srv.set(n, &[&[n.as_str(), "-", "tail"]]);
        }
        let t = Instant::now();
        let got = fetch_txt(&q, &opts(srv.addr, 2000, 64)).unwrap();
        eprintln!(
            "truncated: 150 names over TCP, concurrency 64: {:?}",
            t.elapsed()
        );
        for (n, f) in &got {
            assert_eq!(f, &Fetched::Records(vec![format!("{n}-tail")]), "{n}");
        }
    }

    #[test]
    fn fake_servfail_and_refused_are_failed_and_not_remembered() {
        let srv = FakeServer::start(Mode::Rcode(ResponseCode::ServFail));
        srv.set("k._domainkey.x.test.", &[&["v=DKIM1; p=QQ"]]);
        let q = names(&["k._domainkey.x.test.", "absent._domainkey.x.test."]);
        let t = Instant::now();
        let got = fetch_txt(&q, &opts(srv.addr, 2000, 2)).unwrap();
        for (_, f) in &got {
            assert!(
                matches!(f, Fetched::Failed(m) if m.contains("SERVFAIL")),
                "{f:?}"
            );
        }
        assert!(
            t.elapsed() < Duration::from_millis(1000),
            "SERVFAIL must not be retried until timeout"
        );
        assert_eq!(
            srv.udp_queries.load(Ordering::Relaxed),
            2,
            "one query per name, no retries"
        );

        *srv.mode.lock().unwrap() = Mode::Rcode(ResponseCode::Refused);
        let got = fetch_txt(&q, &opts(srv.addr, 2000, 2)).unwrap();
        for (_, f) in &got {
            assert!(
                matches!(f, Fetched::Failed(m) if m.contains("REFUSED")),
                "{f:?}"
            );
        }

        // Same names, server healthy again: nothing from the earlier calls sticks.
        *srv.mode.lock().unwrap() = Mode::Zone;
        let got = fetch_txt(&q, &opts(srv.addr, 2000, 2)).unwrap();
        assert_eq!(got[0].1, Fetched::Records(vec!["v=DKIM1; p=QQ".into()]));
        assert_eq!(got[1].1, Fetched::NxDomain);

        // A key published after an NXDOMAIN is seen by the next call.
        srv.set("absent._domainkey.x.test.", &[&["v=DKIM1; p=NEW"]]);
        let got = fetch_txt(&q, &opts(srv.addr, 2000, 2)).unwrap();
        assert_eq!(got[1].1, Fetched::Records(vec!["v=DKIM1; p=NEW".into()]));
    }

    /// A server that never answers (the lab equivalent of a black-hole address: nothing
    /// but loopback may be sent to here): every name Failed, in timeout × ceil(n / concurrency).
    #[test]
    fn fake_black_hole_fails_within_bound() {
        let srv = FakeServer::start(Mode::Silent);
        let q: Vec<String> = (0..10)
            .map(|i| format!("s{i}._domainkey.hole.test."))
            .collect();
        let t = Instant::now();
        let got = fetch_txt(&q, &opts(srv.addr, 300, 4)).unwrap();
        let took = t.elapsed();
        eprintln!("black hole: 10 names, timeout 300 ms, concurrency 4: {took:?} (bound 900 ms)");
        assert!(
            got.iter().all(|(_, f)| matches!(f, Fetched::Failed(_))),
            "{got:?}"
        );
        assert!(
            took >= Duration::from_millis(550),
            "{took:?}: answered without waiting?"
        );
        assert!(took < Duration::from_millis(900 + 400), "{took:?}");
        // UDP was retransmitted within the timeout, never re-queried beyond it.
        let sent = srv.udp_queries.load(Ordering::Relaxed);
        assert!((10..=30).contains(&sent), "{sent} UDP queries");
    }

    /// Nothing listens on the port (a stopped server): every name Failed within the bound.
    #[test]
    fn closed_port_fails_within_bound() {
        let addr = {
            let u = UdpSocket::bind("127.0.0.1:0").unwrap();
            u.local_addr().unwrap()
        }; // freed: nothing listens there now
        for server in [addr, "127.0.0.1:9".parse().unwrap()] {
            let q: Vec<String> = (0..20)
                .map(|i| format!("c{i}._domainkey.closed.test."))
                .collect();
            let t = Instant::now();
            let got = fetch_txt(&q, &opts(server, 300, 8)).unwrap();
            let took = t.elapsed();
            eprintln!(
                "closed port {server}: 20 names, timeout 300 ms, concurrency 8: {took:?} (bound 900 ms)"
            );
            assert!(
                got.iter().all(|(_, f)| matches!(f, Fetched::Failed(_))),
                "{got:?}"
            );
            assert!(took < Duration::from_millis(900 + 400), "{took:?}");
        }
    }

    #[test]
    fn empty_and_bad_options() {
        let o = opts("127.0.0.1:9".parse().unwrap(), 100, 0);
        assert!(fetch_txt(&[], &o).unwrap().is_empty());
        let zero = DnsOptions {
            timeout: Duration::ZERO,
            ..o
        };
        assert!(matches!(
            fetch_txt(&names(&["a.test."]), &zero),
            Err(DnsError::Setup(_))
        ));
    }

    // ---------------------------------------------------------------- tests against Knot DNS

    /// The server from MAILCENSUS_TEST_DNS (e.g. 127.0.0.1:15353, serving
    /// shared/corpora/dkimpy-signed-trap/keys.zone as the root zone); None = skip, except in CI.
    fn knot_server() -> Option<SocketAddr> {
        match std::env::var("MAILCENSUS_TEST_DNS") {
            Ok(s) if !s.trim().is_empty() => Some(parse_server(&s).expect("MAILCENSUS_TEST_DNS")),
            _ => {
                if std::env::var_os("CI").is_some() {
                    panic!(
                        "CI is set but MAILCENSUS_TEST_DNS is not: the live DNS tests must run in CI"
                    );
                }
                eprintln!(
                    "\n*** SKIPPED: live DNS test (set MAILCENSUS_TEST_DNS=127.0.0.1:PORT, see .ci/dns-server.sh) ***\n"
                );
                None
            }
        }
    }

    /// (name, concatenated value) of every record in the zone file.
    fn zone_records() -> Vec<(String, String)> {
        let path = std::env::var("MAILCENSUS_TEST_ZONE").unwrap_or_else(|_| {
            let corpora = std::env::var("MAILCENSUS_CORPORA").unwrap_or_else(|_| {
                concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpora").to_string()
            });
            format!("{corpora}/dkimpy-signed-trap/keys.zone")
        });
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("zone file {path} (set MAILCENSUS_TEST_ZONE): {e}"));
        let mut out = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with(';') || line.starts_with('$') {
                continue;
            }
            let name = line.split_whitespace().next().unwrap().to_ascii_lowercase();
            let value: String = line.split('"').skip(1).step_by(2).collect();
            out.push((name, value));
        }
        out
    }

    #[test]
    fn knot_known_keys_exact() {
        let Some(server) = knot_server() else { return };
        let q = names(&[
            // two character-strings
            "201903._domainkey.beststore83.test.",
            // revoked
            "em-2019._domainkey.bulkmail-relay.example.",
            // one string
            "202107._domainkey.silvergift.example.",
        ]);
        let t = Instant::now();
        let got = fetch_txt(&q, &opts(server, 2000, 4)).unwrap();
        eprintln!("knot: 3 known keys in {:?}", t.elapsed());
        assert_eq!(got[0].1, Fetched::Records(vec![concat!(
            "v=DKIM1; h=sha256; k=rsa; s=email; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvlwEHjexDPOT1UtYWsyiAlHduHEz+8YPCPWS0uBiFFSafjhWXiMW6F/lTrzZSIytETWkIcYkUeCYc0SEqi5jhddjDqbqA9XFLpPijg4ygMMQgb6pU0XroTnlyDUdA7ztmQI1s0Y/zJgYK24eT2dOznMgU/f16qh2Txy717Gv7YracY",
            "XylK+Ot4jUKw3hVSAGQLfmyDOadaD/iWPgyl+BBFcAFAnHnT+wPeLv+SV89qicw7XR/3i8c1wwjMcFqRBHOgFalgvxNCwCwHfBPHxZSWKsemS8A7pWrJr295wchs71azzDxzKwrbgnP0rmdo7Ppzs/u6gCDNJ7Jx8SUhGk2QIDAQAB"
        ).to_string()]));
        assert_eq!(
            got[1].1,
            Fetched::Records(vec!["v=DKIM1; k=rsa; p=".to_string()])
        );
        assert_eq!(got[2].1, Fetched::Records(vec![
            "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDaqkQyYdQQFsM56ZMYqr34bZSFLONLUSbyNGnOkbMRQNbR3s6UvJw5G4YGyAzVe3eecyh9tv8EnqA51q0naKdoV8qJi7eYtVJkOsNPoaJYP/NDKvawo8UJoqKHxMwY562fi0yoq29kw8TVaCmv1L3i4wwPcSbfW9it7HNyUW112QIDAQAB".to_string()
        ]));
    }

    #[test]
    fn knot_absent_names() {
        let Some(server) = knot_server() else { return };
        let q = names(&[
            "nosuchselector._domainkey.beststore83.test.", // NXDOMAIN
            "201903._domainkey.no-such-domain.test.",      // NXDOMAIN
            "_domainkey.beststore83.test.",                // empty non-terminal: NOERROR/NODATA
        ]);
        let got = fetch_txt(&q, &opts(server, 2000, 4)).unwrap();
        for (n, f) in &got {
            assert_eq!(f, &Fetched::NxDomain, "{n}");
        }
    }

    #[test]
    fn knot_300_names_one_call() {
        let Some(server) = knot_server() else { return };
        let zone = zone_records();
        assert!(zone.len() >= 300, "{} records in the zone", zone.len());
        let q: Vec<String> = zone[..300].iter().map(|(n, _)| n.clone()).collect();
        for (concurrency, limit_ms) in [(32, 3000), (1, 10000)] {
            let t = Instant::now();
            let got = fetch_txt(&q, &opts(server, 2000, concurrency)).unwrap();
            let took = t.elapsed();
            eprintln!("knot: 300 names, concurrency {concurrency}: {took:?}");
            for ((name, want), (got_name, f)) in zone[..300].iter().zip(&got) {
                assert_eq!(name, got_name);
                assert_eq!(f, &Fetched::Records(vec![want.clone()]), "{name}");
            }
            assert!(took < Duration::from_millis(limit_ms), "{took:?}");
        }
    }
}
