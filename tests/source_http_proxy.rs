//! The HTTP feed source honours the standard proxy environment variables. This test has its
//! own binary because it changes the process environment.

use std::path::Path;

use crate::support::feed_server::FeedServer;
use misp_feed::config::{Settings, SourceType};
use misp_feed::secret::Secret;
use misp_feed::source::{Listing, build_source};

#[tokio::test]
async fn requests_go_through_the_proxy_named_in_the_environment() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/misp/feed");
    // The "proxy" is the feed server itself: it serves absolute-form requests by their path.
    let proxy = FeedServer::start(fixture);
    let proxy_url = format!("http://{}", proxy.addr);
    // SAFETY: this binary holds this one test, and the variables are set before any client
    // (or other thread that reads the environment) exists.
    unsafe {
        for name in ["NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"] {
            std::env::remove_var(name);
        }
        std::env::set_var("HTTP_PROXY", &proxy_url);
        std::env::set_var("http_proxy", &proxy_url);
    }

    let mut settings = Settings::default();
    settings.misp_feed.source_type = SourceType::Url;
    // A name that cannot resolve: only the proxy can answer for it.
    settings.misp_feed.url = Some("http://misp-feed.proxied.invalid/feed".into());
    settings.misp_feed.http_retries = 0;
    settings.misp_feed.http_authorization_header = Some(Secret::new("Token abc"));
    let source = build_source(&settings).await.unwrap();

    let listing = source.list(None).await.unwrap();
    let Listing::Manifest { entries, .. } = listing else {
        panic!("expected a manifest listing, got {listing:?}");
    };
    assert!(!entries.is_empty());
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].target,
        "http://misp-feed.proxied.invalid/feed/manifest.json"
    );
    assert_eq!(requests[0].header("authorization"), Some("Token abc"));
}
