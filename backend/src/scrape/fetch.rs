//! One HTTP GET of a profile, defensively: an overall timeout, a streamed body that stops at
//! the size limit, a bounded number of redirects, link-local addresses refused (literal,
//! resolved, or redirected to), and an error message precise enough to act on.

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

use crate::config::file::HttpConfig;

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

/// 169.254.0.0/16 and fe80::/10 (also as IPv4-mapped IPv6).
pub fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_link_local(),
            None => v6.segments()[0] & 0xffc0 == 0xfe80,
        },
    }
}

/// The literal IP of a URL host, if it is one.
fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

fn link_local_refusal(what: &str) -> String {
    format!(
        "{what} is a link-local address (such as a cloud metadata service); \
         start cinder with --allow-link-local-targets to scrape it"
    )
}

/// Resolves names with the system resolver and drops link-local answers.
#[derive(Debug)]
struct GuardedResolver;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| !is_link_local(a.ip()))
                .collect();
            if allowed.is_empty() && !all.is_empty() {
                let err: Box<dyn StdError + Send + Sync> = Box::new(Refused(link_local_refusal(
                    &format!("{host} resolves to {}", all[0].ip()),
                )));
                return Err(err);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Builds the client for targets sharing `http` settings.
pub(crate) fn client(http: &HttpConfig, allow_link_local: bool) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    let follow = http.follow_redirects;
    let policy = redirect::Policy::custom(move |attempt| {
        if !follow {
            return attempt.stop();
        }
        if attempt.previous().len() > MAX_REDIRECTS {
            let to = attempt.url().to_string();
            return attempt.error(TooManyRedirects(to));
        }
        if !allow_link_local && literal_ip(attempt.url()).is_some_and(is_link_local) {
            let to = attempt.url().to_string();
            return attempt.error(Refused(link_local_refusal(&format!("a redirect to {to}"))));
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
    if !allow_link_local {
        builder = builder.dns_resolver(Arc::new(GuardedResolver));
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
    pub(crate) allow_link_local: bool,
}

/// Fetches one body.
pub(crate) async fn fetch(client: &reqwest::Client, req: &Request) -> Result<Fetched, ScrapeError> {
    if !req.allow_link_local && literal_ip(&req.url).is_some_and(is_link_local) {
        let host = req.url.host_str().unwrap_or_default().to_owned();
        return Err(ScrapeError::Refused(link_local_refusal(&host)));
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

    #[test]
    fn link_local_addresses_are_recognized() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "febf::1",
            "::ffff:169.254.1.1",
        ] {
            assert!(is_link_local(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "::1",
            "fec0::1",
            "8.8.8.8",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_link_local(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn a_literal_link_local_target_is_refused_without_a_connection() {
        let client = client(&HttpConfig::default(), false).unwrap();
        let req = Request {
            url: "http://169.254.169.254/latest/meta-data".parse().unwrap(),
            authorization: None,
            basic_auth: None,
            timeout: Duration::from_secs(1),
            body_limit: 1024,
            allow_link_local: false,
        };
        let err = fetch(&client, &req).await.unwrap_err();
        assert!(matches!(err, ScrapeError::Refused(_)), "{err}");
        assert!(
            err.to_string().contains("--allow-link-local-targets"),
            "{err}"
        );
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
