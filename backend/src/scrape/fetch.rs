//! One HTTP GET of a profile, defensively: an overall timeout, a streamed body that stops at
//! the size limit, a bounded number of redirects, addresses the [`AddressPolicy`] denies
//! refused (literal, resolved at every connection, or redirected to), no proxy unless the
//! job configures one, and an error message precise enough to act on.

use std::{
    error::Error as StdError,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Once,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
    redirect,
};

use super::policy::AddressPolicy;
use crate::config::file::{HttpConfig, ProxyConfig};

/// Redirects followed before a scrape fails.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// The User-Agent of every scrape.
pub(crate) fn user_agent() -> String {
    format!("cinder/{}", env!("CARGO_PKG_VERSION"))
}

/// Why one scrape failed. The messages end up in the targets API's `last_error`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ScrapeError {
    #[error("refused: {0}")]
    Refused(String),
    #[error("timed out after {}: no response", fmt_duration(*.0))]
    TimeoutNoResponse(Duration),
    #[error("timed out after {} while reading the body ({received} bytes received)", fmt_duration(*timeout))]
    TimeoutBody { timeout: Duration, received: u64 },
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("too many redirects (more than {MAX_REDIRECTS}): last to {0}")]
    TooManyRedirects(String),
    #[error("HTTP {status}{hint}")]
    Status { status: String, hint: String },
    #[error("body exceeds the size limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("not a pprof profile: the target answered with HTML (content-type {0:?})")]
    Html(String),
    #[error("invalid profile: {0}")]
    Profile(String),
    #[error("request failed: {0}")]
    Request(String),
    #[error("storing the profile failed: {0}")]
    Store(String),
}

fn fmt_duration(d: Duration) -> String {
    shared::duration::format_duration(d)
}

/// A fetched body.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) body: Vec<u8>,
    pub(crate) content_type: String,
}

/// rustls needs a process-wide crypto provider before the first client is built.
pub(crate) fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The literal IP of a URL host, if it is one.
fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// Resolves names with the system resolver and drops the answers the policy denies. The
/// proxy's own name (set by the operator in the config file) is not checked.
#[derive(Debug)]
struct GuardedResolver {
    policy: Arc<AddressPolicy>,
    proxy_host: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let policy = self.policy.clone();
        let exempt = self.proxy_host.as_deref() == Some(host.as_str());
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if exempt {
                return Ok(Box::new(all.into_iter()) as Addrs);
            }
            let allowed: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| policy.check(a.ip()).is_ok())
                .collect();
            if allowed.is_empty()
                && let Some(first) = all.first()
                && let Err(denied) = policy.check(first.ip())
            {
                let err: Box<dyn StdError + Send + Sync> =
                    Box::new(Refused(format!("{host} resolves to {denied}")));
                return Err(err);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The policy a client applies: none for Cinder's own endpoint (self-profiling is never
/// blocked by the deny list).
pub(crate) fn guard_for(
    http: &HttpConfig,
    policy: &Arc<AddressPolicy>,
) -> Option<Arc<AddressPolicy>> {
    (!http.self_scrape).then(|| policy.clone())
}

/// Builds the client for targets sharing `http` settings; `guard` is the address policy
/// (`None` for Cinder's own endpoint).
pub(crate) fn client(
    http: &HttpConfig,
    guard: Option<Arc<AddressPolicy>>,
) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    let follow = http.follow_redirects;
    let redirect_guard = guard.clone();
    let policy = redirect::Policy::custom(move |attempt| {
        if !follow {
            return attempt.stop();
        }
        if attempt.previous().len() > MAX_REDIRECTS {
            let to = attempt.url().to_string();
            return attempt.error(TooManyRedirects(to));
        }
        if let Some(guard) = &redirect_guard
            && let Some(Err(denied)) = literal_ip(attempt.url()).map(|ip| guard.check(ip))
        {
            let to = attempt.url().to_string();
            return attempt.error(Refused(format!("a redirect to {to}: {denied}")));
        }
        attempt.follow()
    });
    let mut builder = reqwest::Client::builder()
        .user_agent(user_agent())
        .redirect(policy)
        .http1_only()
        .pool_max_idle_per_host(2)
        .pool_idle_timeout(Duration::from_secs(90))
        .tls_danger_accept_invalid_certs(http.insecure_skip_verify);
    let mut proxy_host = None;
    builder = match &http.proxy {
        ProxyConfig::None => builder.no_proxy(),
        ProxyConfig::Environment => builder,
        ProxyConfig::Url { url, no_proxy } => {
            let mut proxy = reqwest::Proxy::all(url.as_str())
                .map_err(|e| format!("proxy_url {url}: {}", chain(&e)))?;
            if let Some(list) = no_proxy {
                proxy = proxy.no_proxy(reqwest::NoProxy::from_string(list));
            }
            proxy_host = Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned));
            builder.proxy(proxy)
        }
    };
    if let Some(policy) = guard {
        builder = builder.dns_resolver(Arc::new(GuardedResolver { policy, proxy_host }));
    }
    if let Some(path) = &http.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("tls_config.ca_file {}: {e}", path.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("tls_config.ca_file {}: {e}", path.display()))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| chain(&e))
}

#[derive(Debug, thiserror::Error)]
#[error("too many redirects")]
struct TooManyRedirects(String);

/// The request of one scrape.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) url: Url,
    /// `Authorization` header value (`Bearer …`).
    pub(crate) authorization: Option<String>,
    /// User and password for basic auth.
    pub(crate) basic_auth: Option<(String, String)>,
    pub(crate) timeout: Duration,
    pub(crate) body_limit: usize,
    /// The address policy (`None`: Cinder's own endpoint).
    pub(crate) guard: Option<Arc<AddressPolicy>>,
    /// A proxy may be used: the target's name is resolved and checked here first, since
    /// the proxy, not Cinder, connects to it.
    pub(crate) proxied: bool,
}

/// Fetches one body.
pub(crate) async fn fetch(client: &reqwest::Client, req: &Request) -> Result<Fetched, ScrapeError> {
    if let Some(guard) = &req.guard {
        check_target(guard, &req.url, req.proxied).await?;
    }
    let responded = AtomicBool::new(false);
    let received = AtomicU64::new(0);
    let work = async {
        let mut request = client.get(req.url.clone());
        if let Some(auth) = &req.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        if let Some((user, password)) = &req.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        let mut resp = request.send().await.map_err(|e| classify(&e))?;
        responded.store(true, Ordering::Relaxed);
        let status = resp.status();
        if !status.is_success() {
            let hint = if status.is_redirection() {
                " (redirects are not followed: follow_redirects is false)".to_owned()
            } else {
                String::new()
            };
            return Err(ScrapeError::Status {
                status: status.to_string(),
                hint,
            });
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if resp
            .content_length()
            .is_some_and(|n| n > req.body_limit as u64)
        {
            return Err(ScrapeError::TooLarge {
                limit: req.body_limit,
            });
        }
        let capacity = resp.content_length().unwrap_or(64 << 10) as usize;
        let mut body = Vec::with_capacity(capacity.min(req.body_limit));
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&e))? {
            if body.len() + chunk.len() > req.body_limit {
                return Err(ScrapeError::TooLarge {
                    limit: req.body_limit,
                });
            }
            body.extend_from_slice(&chunk);
            received.store(body.len() as u64, Ordering::Relaxed);
        }
        Ok(Fetched { body, content_type })
    };
    match tokio::time::timeout(req.timeout, work).await {
        Ok(result) => result,
        Err(_) if responded.load(Ordering::Relaxed) => Err(ScrapeError::TimeoutBody {
            timeout: req.timeout,
            received: received.load(Ordering::Relaxed),
        }),
        Err(_) => Err(ScrapeError::TimeoutNoResponse(req.timeout)),
    }
}

/// Refuses a literal address the policy denies; behind a proxy, also a name that resolves
/// (here) to one. Names only the proxy can resolve are left to the proxy.
async fn check_target(guard: &AddressPolicy, url: &Url, proxied: bool) -> Result<(), ScrapeError> {
    if let Some(ip) = literal_ip(url) {
        return guard
            .check(ip)
            .map_err(|denied| ScrapeError::Refused(denied.to_string()));
    }
    let Some(host) = url.host_str().filter(|_| proxied) else {
        return Ok(());
    };
    let Ok(addrs) = tokio::net::lookup_host((host, 0)).await else {
        return Ok(());
    };
    for addr in addrs {
        guard
            .check(addr.ip())
            .map_err(|denied| ScrapeError::Refused(format!("{host} resolves to {denied}")))?;
    }
    Ok(())
}

/// Turns a reqwest error into the most specific [`ScrapeError`].
fn classify(err: &reqwest::Error) -> ScrapeError {
    let mut source: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return ScrapeError::Refused(refused.0.clone());
        }
        if let Some(redirects) = e.downcast_ref::<TooManyRedirects>() {
            return ScrapeError::TooManyRedirects(redirects.0.clone());
        }
        source = e.source();
    }
    if err.is_connect() {
        ScrapeError::Connect(chain(err))
    } else {
        ScrapeError::Request(chain(err))
    }
}

/// An error and its sources, `a: b: c`, without repeats.
pub(crate) fn chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_literal_link_local_target_is_refused_without_a_connection() {
        let guard = Some(Arc::new(AddressPolicy::default()));
        let client = client(&HttpConfig::default(), guard.clone()).unwrap();
        let req = Request {
            url: "http://169.254.169.254/latest/meta-data".parse().unwrap(),
            authorization: None,
            basic_auth: None,
            timeout: Duration::from_secs(1),
            body_limit: 1024,
            guard,
            proxied: false,
        };
        let err = fetch(&client, &req).await.unwrap_err();
        assert!(matches!(err, ScrapeError::Refused(_)), "{err}");
        assert!(
            err.to_string().contains("--allow-link-local-targets"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn names_resolving_to_denied_addresses_are_refused_at_connection() {
        let deny = ["127.0.0.0/8", "::1/128"].map(|n| n.parse().unwrap());
        let guard = Some(Arc::new(AddressPolicy::new(&deny, &[])));
        let client = client(&HttpConfig::default(), guard.clone()).unwrap();
        let req = Request {
            url: "http://localhost:9/debug/pprof/profile".parse().unwrap(),
            authorization: None,
            basic_auth: None,
            timeout: Duration::from_secs(5),
            body_limit: 1024,
            guard,
            proxied: false,
        };
        let err = fetch(&client, &req).await.unwrap_err();
        assert!(matches!(err, ScrapeError::Refused(_)), "{err}");
        assert!(err.to_string().contains("localhost resolves to"), "{err}");
        // Cinder's own endpoint has no guard: the same URL is merely unreachable.
        let own = client_for_self();
        let err = fetch(&own, &Request { guard: None, ..req })
            .await
            .unwrap_err();
        assert!(!matches!(err, ScrapeError::Refused(_)), "{err}");
    }

    fn client_for_self() -> reqwest::Client {
        let http = HttpConfig {
            self_scrape: true,
            ..HttpConfig::default()
        };
        let policy = Arc::new(AddressPolicy::new(&["127.0.0.0/8".parse().unwrap()], &[]));
        client(&http, guard_for(&http, &policy)).unwrap()
    }

    #[test]
    fn messages_are_precise() {
        assert_eq!(
            ScrapeError::TimeoutBody {
                timeout: Duration::from_secs(3),
                received: 2
            }
            .to_string(),
            "timed out after 3s while reading the body (2 bytes received)"
        );
        assert_eq!(
            ScrapeError::TimeoutNoResponse(Duration::from_millis(2500)).to_string(),
            "timed out after 2s500ms: no response"
        );
    }
}
