//! A MISP feed served over HTTP(S): `<url>/manifest.json`, then `<url>/<uuid>.json`.
//!
//! Each download is retried on faults that may pass (timeouts, connection errors, bodies cut
//! short, 408, 429 and 5xx) with exponential backoff and jitter, never on a verdict about the
//! file (404 and other 4xx, too large). Bodies are read as a stream and stopped as soon as
//! they pass the size limit, after decompression, so a compressed bomb cannot exhaust memory.
//! Proxies come from the standard environment variables (`HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY`, `NO_PROXY`), which reqwest reads unless told not to; this client never does.
//!
//! Access: the `Authorization` header and the extra headers go with every request, retries
//! included, marked sensitive so that no debug output of hyper or reqwest shows them; with
//! extra headers, a redirect to another origin is refused rather than followed, as their
//! values are meant for the feed server only. A client certificate (see `identity.rs`) is
//! shown to servers that ask for one; a server that refuses the handshake is reported as
//! such, without retries.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{
    AUTHORIZATION, ETAG, HeaderMap, HeaderName, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    LAST_MODIFIED, RETRY_AFTER,
};
use url::Url;

pub use super::identity::ClientIdentityFiles;
use super::manifest::{MANIFEST_FILE, event_file_for_key, parse_manifest};
use super::retry::RetryPolicy;
use super::tls_refusal::{HandshakeProbe, has_tls_error, proxy_configured, received_alert};
use super::{FeedSource, FetchedFile, Listing, ManifestValidators, SourceError};
use crate::config::MispFeedSettings;
use crate::secret::Secret;

/// Everything an HTTP feed client needs besides the URL.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Verify the server's certificate (`MISP_FEED_SSL_VERIFY`); `false` accepts any.
    pub ssl_verify: bool,
    /// Extra trusted CA certificates, a PEM file (`MISP_FEED_CA_BUNDLE`).
    pub ca_bundle: Option<PathBuf>,
    /// Sent as the `Authorization` header of every feed request.
    pub authorization: Option<Secret>,
    /// Sent with every feed request (`MISP_FEED_HTTP_HEADERS`).
    pub headers: Vec<(String, Secret)>,
    /// Shown to a server that asks for a client certificate (mutual TLS).
    pub client_identity: Option<ClientIdentityFiles>,
    pub connect_timeout: Duration,
    /// Longest wait for any read (the response head or the next part of a body).
    pub read_timeout: Duration,
    /// Longest a whole request may take, from connecting to the last byte of the body.
    pub deadline: Duration,
    pub max_file_size: u64,
    pub retry: RetryPolicy,
}

impl HttpOptions {
    pub(crate) fn from_settings(feed: &MispFeedSettings) -> Result<HttpOptions, SourceError> {
        let client_identity = match (&feed.client_cert, &feed.client_key) {
            (Some(cert), Some(key)) => Some(ClientIdentityFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid_setting(
                    "MISP_FEED_CLIENT_KEY",
                    "is not set, but MISP_FEED_CLIENT_CERT is",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid_setting(
                    "MISP_FEED_CLIENT_CERT",
                    "is not set, but MISP_FEED_CLIENT_KEY is",
                ));
            }
        };
        Ok(HttpOptions {
            ssl_verify: feed.ssl_verify,
            ca_bundle: feed.ca_bundle.clone(),
            authorization: feed
                .http_authorization_header
                .clone()
                .filter(|header| !header.is_empty()),
            headers: feed.http_headers.clone(),
            client_identity,
            connect_timeout: feed.connect_timeout,
            read_timeout: feed.read_timeout,
            deadline: feed.fetch_deadline,
            max_file_size: feed.max_file_size,
            retry: RetryPolicy {
                retries: feed.http_retries,
                ..RetryPolicy::default()
            },
        })
    }
}

pub struct HttpSource {
    /// The feed's base URL; file names are appended as one more path segment.
    base: Url,
    /// `base` with any credentials masked, for messages.
    shown: String,
    client: reqwest::Client,
    /// Sent with every request: the extra headers, then `Authorization`; all sensitive.
    headers: HeaderMap,
    /// `" (client certificate …; headers …)"` or empty: how `describe` shows the access.
    access: String,
    has_identity: bool,
    /// Asks the server why a connection ended before the request (HTTPS without a proxy).
    probe: Option<HandshakeProbe>,
    max_file_size: u64,
    retry: RetryPolicy,
}

impl std::fmt::Debug for HttpSource {
    // Written by hand: the derived form would print the URL with its credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSource")
            .field("url", &self.shown)
            .field("access", &self.access)
            .field("max_file_size", &self.max_file_size)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// A downloaded file and the validators the server gave with it.
struct Download {
    bytes: Vec<u8>,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// The result of one try.
enum Attempt {
    Done(Option<Download>),
    /// A fault that may pass; `wait` is the server's `Retry-After`, if any.
    Transient {
        message: String,
        wait: Option<Duration>,
    },
    Failed(SourceError),
}

impl HttpSource {
    pub fn new(url: &str, options: HttpOptions) -> Result<HttpSource, SourceError> {
        let invalid = |message: String| SourceError::Invalid {
            what: "MISP_FEED_URL".into(),
            message,
        };
        let mut base = Url::parse(url.trim_end_matches('/'))
            .map_err(|err| invalid(format!("not a valid URL: {err}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "scheme {:?} is not http or https",
                base.scheme()
            )));
        }
        if base.cannot_be_a_base() {
            return Err(invalid("cannot hold file names below it".into()));
        }
        base.set_fragment(None);
        let shown = mask_credentials(&base);

        let headers = request_headers(&options)?;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("misp-feed/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .timeout(options.deadline)
            .gzip(true)
            .brotli(true)
            .danger_accept_invalid_certs(!options.ssl_verify);
        if let Some(path) = &options.ca_bundle {
            let what = format!("CA bundle {}", path.display());
            let pem = std::fs::read(path).map_err(|err| SourceError::Invalid {
                what: what.clone(),
                message: err.to_string(),
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| {
                SourceError::Invalid {
                    what: what.clone(),
                    message: format!("not a PEM certificate bundle: {err}"),
                }
            })?;
            if certificates.is_empty() {
                return Err(SourceError::Invalid {
                    what,
                    message: "holds no PEM certificate".into(),
                });
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let identity = match &options.client_identity {
            Some(files) => {
                let (chain, key) = files.chain_and_key()?;
                builder = builder.identity(files.for_reqwest(&chain, &key)?);
                Some((chain, key))
            }
            None => None,
        };
        // Through a proxy the server is not the probe's to reach directly.
        let probe = if base.scheme() == "https" && !proxy_configured() {
            HandshakeProbe::new(identity, options.connect_timeout)
        } else {
            None
        };
        if !options.headers.is_empty() {
            builder = builder.redirect(same_origin_redirects());
        }
        let client = builder.build().map_err(|err| SourceError::Invalid {
            what: "HTTP client".into(),
            message: error_chain(&err.without_url()),
        })?;

        Ok(HttpSource {
            base,
            shown,
            client,
            headers,
            access: describe_access(&options),
            has_identity: options.client_identity.is_some(),
            probe,
            max_file_size: options.max_file_size,
            retry: options.retry,
        })
    }

    fn file_url(&self, name: &str) -> Result<Url, SourceError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| invalid_setting("MISP_FEED_URL", "cannot hold file names below it"))?
            .pop_if_empty()
            .push(name);
        Ok(url)
    }

    /// Downloads `name` with retries. `None` means 304 Not Modified (only asked for when
    /// `conditional` is given).
    async fn download(
        &self,
        name: &str,
        conditional: Option<&ManifestValidators>,
    ) -> Result<Option<Download>, SourceError> {
        let url = self.file_url(name)?;
        let what = format!("{name} from {}", self.shown);
        let mut retry_index = 0;
        loop {
            match self.attempt(url.clone(), &what, conditional).await {
                Attempt::Done(download) => return Ok(download),
                Attempt::Failed(err) => return Err(err),
                Attempt::Transient { message, wait } => {
                    let tries = retry_index + 1;
                    if retry_index >= self.retry.retries {
                        return Err(SourceError::Transport {
                            what,
                            message: format!(
                                "{message} (gave up after {tries} tr{})",
                                if tries == 1 { "y" } else { "ies" }
                            ),
                        });
                    }
                    let wait = wait.unwrap_or_else(|| self.retry.backoff(retry_index));
                    tracing::warn!(
                        file = %what,
                        error = %message,
                        attempt = tries,
                        wait_ms = wait.as_millis() as u64,
                        "feed download failed, retrying"
                    );
                    tokio::time::sleep(wait).await;
                    retry_index += 1;
                }
            }
        }
    }

    async fn attempt(
        &self,
        url: Url,
        what: &str,
        conditional: Option<&ManifestValidators>,
    ) -> Attempt {
        let mut headers = self.headers.clone();
        if let Some(validators) = conditional {
            let pairs = [
                (IF_NONE_MATCH, &validators.etag),
                (IF_MODIFIED_SINCE, &validators.last_modified),
            ];
            for (name, value) in pairs {
                // A validator that is not a valid header value cannot have come from a
                // server; dropping it only costs a full download.
                if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                    headers.insert(name, value);
                }
            }
        }

        let mut response = match self.client.get(url).headers(headers).send().await {
            Ok(response) => response,
            Err(err) => return self.request_failed(err, what).await,
        };
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED && conditional.is_some() {
            return Attempt::Done(None);
        }
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Attempt::Failed(SourceError::NotFound { what: what.into() });
        }
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            let wait = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| self.retry.retry_after(value, chrono::Utc::now()));
            return Attempt::Transient {
                message: format!("server answered HTTP {status}"),
                wait,
            };
        }
        if !status.is_success() {
            return Attempt::Failed(SourceError::Transport {
                what: what.into(),
                message: format!("server answered HTTP {status}"),
            });
        }

        let limit = self.max_file_size;
        // With decompression on, reqwest reports no length for an encoded body, so a length
        // here is the exact size of the bytes that will arrive.
        let announced = response.content_length();
        if let Some(size) = announced
            && size > limit
        {
            return Attempt::Failed(SourceError::TooLarge {
                what: what.into(),
                size,
                limit,
            });
        }
        let header_text = |name| {
            response
                .headers()
                .get(name)
                .and_then(|value: &HeaderValue| value.to_str().ok())
                .map(str::to_owned)
        };
        let etag = header_text(ETAG);
        let last_modified = header_text(LAST_MODIFIED);

        let initial = announced.unwrap_or(0).min(8 * 1024 * 1024);
        let mut bytes = Vec::with_capacity(usize::try_from(initial).unwrap_or(0));
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let size = (bytes.len() + chunk.len()) as u64;
                    if size > limit {
                        return Attempt::Failed(SourceError::TooLarge {
                            what: what.into(),
                            size,
                            limit,
                        });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(err) => {
                    let context = format!("body cut short after {} bytes", bytes.len());
                    return classify(err, what, &context);
                }
            }
        }
        if let Some(size) = announced
            && size != bytes.len() as u64
        {
            return Attempt::Transient {
                message: format!(
                    "body truncated: {} of the {size} announced bytes arrived",
                    bytes.len()
                ),
                wait: None,
            };
        }
        Attempt::Done(Some(Download {
            bytes,
            etag,
            last_modified,
        }))
    }
}

#[async_trait]
impl FeedSource for HttpSource {
    fn describe(&self) -> String {
        format!("HTTP feed {}{}", self.shown, self.access)
    }

    async fn list(&self, previous: Option<&ManifestValidators>) -> Result<Listing, SourceError> {
        let conditional = previous.filter(|v| v.etag.is_some() || v.last_modified.is_some());
        let Some(download) = self.download(MANIFEST_FILE, conditional).await? else {
            return Ok(Listing::NotModified);
        };
        let validators = ManifestValidators {
            etag: download.etag,
            last_modified: download.last_modified,
        };
        parse_manifest(&download.bytes, validators)
    }

    async fn fetch(&self, key: &str) -> Result<FetchedFile, SourceError> {
        let name = event_file_for_key(key)?;
        let download = self
            .download(&name, None)
            .await?
            .ok_or_else(|| SourceError::Transport {
                what: name.clone(),
                message: "unexpected 304 Not Modified".into(),
            })?;
        Ok(FetchedFile {
            name,
            bytes: download.bytes,
            etag: download.etag,
        })
    }
}

impl HttpSource {
    /// A request that got no response: a handshake the server refused is final (its verdict,
    /// which another try would only hear again), anything else is sorted by [`classify`].
    /// When the connection ended with no TLS error to say why, the probe asks the server.
    async fn request_failed(&self, err: reqwest::Error, what: &str) -> Attempt {
        let alert = match received_alert(&err) {
            Some(alert) => Some(alert),
            None if !err.is_timeout() && !has_tls_error(&err) => self.probe_refusal(&err).await,
            None => None,
        };
        if let Some(alert) = alert {
            let hint = if self.has_identity {
                "it does not accept the client certificate of MISP_FEED_CLIENT_CERT"
            } else {
                "it may require a client certificate (MISP_FEED_CLIENT_CERT and MISP_FEED_CLIENT_KEY)"
            };
            return Attempt::Failed(SourceError::Transport {
                what: what.into(),
                message: format!("the server refused the TLS handshake (alert {alert:?}): {hint}"),
            });
        }
        classify(err, what, "request failed")
    }

    /// The alert with which the server refuses a handshake of the probe's, if it does.
    async fn probe_refusal(&self, err: &reqwest::Error) -> Option<rustls::AlertDescription> {
        let probe = self.probe.clone()?;
        let url = err.url().cloned().unwrap_or_else(|| self.base.clone());
        tokio::task::spawn_blocking(move || probe.refusal(&url))
            .await
            .ok()
            .flatten()
    }
}

/// Redirects within the feed's origin (scheme, host and port) only: the extra headers would
/// follow a redirect anywhere, and their values are for the feed server alone.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let leaves = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() != attempt.url().origin());
        if leaves {
            attempt.error("redirected to another origin, where MISP_FEED_HTTP_HEADERS are not sent")
        } else if attempt.previous().len() >= 10 {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

/// The extra headers, then `Authorization`, each marked sensitive: hyper's and reqwest's own
/// debug output then never shows them.
fn request_headers(options: &HttpOptions) -> Result<HeaderMap, SourceError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &options.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            invalid_setting("MISP_FEED_HTTP_HEADERS", "holds an invalid header name")
        })?;
        let mut value =
            HeaderValue::from_str(value.expose()).map_err(|_| SourceError::Invalid {
                what: "MISP_FEED_HTTP_HEADERS".into(),
                message: format!("the value of {name} is not a valid header value"),
            })?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    if let Some(secret) = &options.authorization {
        let mut value = HeaderValue::from_str(secret.expose()).map_err(|_| {
            invalid_setting(
                "MISP_FEED_HTTP_AUTHORIZATION_HEADER",
                "is not a valid header value",
            )
        })?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    Ok(headers)
}

/// `" (client certificate <path>; headers <names>)"`: what `describe` adds, never a value.
fn describe_access(options: &HttpOptions) -> String {
    let mut parts = Vec::new();
    if let Some(files) = &options.client_identity {
        parts.push(format!("client certificate {}", files.cert.display()));
    }
    if !options.headers.is_empty() {
        let names: Vec<&str> = options
            .headers
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        parts.push(format!("headers {}", names.join(", ")));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

/// Sorts a reqwest error into transient (worth another try) or final.
fn classify(err: reqwest::Error, what: &str, context: &str) -> Attempt {
    let transient = err.is_timeout()
        || err.is_connect()
        || err.is_request()
        || err.is_body()
        || err.is_decode();
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        context
    };
    let message = format!("{kind}: {}", error_chain(&err.without_url()));
    if transient {
        Attempt::Transient {
            message,
            wait: None,
        }
    } else {
        Attempt::Failed(SourceError::Transport {
            what: what.into(),
            message,
        })
    }
}

/// An error and its causes on one line. reqwest's own text carries the URL, which may hold
/// credentials; callers strip it first and name the file themselves.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn invalid_setting(what: &str, message: &str) -> SourceError {
    SourceError::Invalid {
        what: what.into(),
        message: message.into(),
    }
}

/// The URL with a user name or password replaced by `***`.
fn mask_credentials(url: &Url) -> String {
    let mut shown = url.clone();
    if !shown.username().is_empty() {
        let _ = shown.set_username("***");
    }
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> HttpOptions {
        HttpOptions {
            ssl_verify: true,
            ca_bundle: None,
            authorization: None,
            headers: Vec::new(),
            client_identity: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            deadline: Duration::from_secs(5),
            max_file_size: 1024,
            retry: RetryPolicy::default(),
        }
    }

    #[test]
    fn file_urls_append_one_segment_and_hide_credentials() {
        let source = HttpSource::new("https://user:pw@feeds.example/misp/", options()).unwrap();
        assert_eq!(
            source.file_url("manifest.json").unwrap().as_str(),
            "https://user:pw@feeds.example/misp/manifest.json"
        );
        assert_eq!(
            source.describe(),
            "HTTP feed https://***:***@feeds.example/misp"
        );
        let root = HttpSource::new("http://feeds.example", options()).unwrap();
        assert_eq!(
            root.file_url("a.json").unwrap().as_str(),
            "http://feeds.example/a.json"
        );
    }

    #[test]
    fn extra_headers_are_sensitive_and_only_their_names_described() {
        let source = HttpSource::new(
            "https://feeds.example/misp",
            HttpOptions {
                headers: vec![
                    ("X-Tenant".into(), Secret::new("tenant-value-51")),
                    ("X-Api-Key".into(), Secret::new("key-value-52")),
                ],
                authorization: Some(Secret::new("Bearer token-value-53")),
                ..options()
            },
        )
        .unwrap();
        assert_eq!(source.headers.len(), 3);
        assert!(source.headers.values().all(HeaderValue::is_sensitive));
        assert_eq!(source.headers["x-api-key"], "key-value-52");
        let shown = format!("{} {source:?} {:?}", source.describe(), source.headers);
        assert!(shown.contains("headers X-Tenant, X-Api-Key"), "{shown}");
        assert!(!shown.contains("-value-5"), "{shown}");
    }

    #[test]
    fn refuses_non_http_urls_and_bad_ca_bundles() {
        assert!(HttpSource::new("ftp://feeds.example", options()).is_err());
        let bundle = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(bundle.path(), "not pem").unwrap();
        let err = HttpSource::new(
            "https://feeds.example",
            HttpOptions {
                ca_bundle: Some(bundle.path().to_path_buf()),
                ..options()
            },
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("CA bundle "), "{err}");
    }
}
