//! The HTTP feed source honours the standard proxy environment variables. The client runs in
//! a child process whose environment the test sets: in this process the variables would
//! reach every other test's HTTP clients.

use misp_feed::config::{Settings, SourceType};
use misp_feed::secret::Secret;
use misp_feed::source::{Listing, build_source};

use crate::support::FIXTURE_FEED;
use crate::support::child;
use crate::support::feed_server::FeedServer;

#[test]
fn requests_go_through_the_proxy_named_in_the_environment() {
    // The "proxy" is the feed server itself: it serves absolute-form requests by their path.
    let proxy = FeedServer::start(FIXTURE_FEED);
    let proxy_url = format!("http://{}", proxy.addr);
    child::run(
        module_path!(),
        "lists_a_feed_through_the_proxy",
        |command| {
            for name in ["NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"] {
                command.env_remove(name);
            }
            command
                .env("HTTP_PROXY", &proxy_url)
                .env("http_proxy", &proxy_url);
        },
    );

    let requests = proxy.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].target,
        "http://misp-feed.proxied.invalid/feed/manifest.json"
    );
    assert_eq!(requests[0].header("authorization"), Some("Token abc"));
}

/// The client side of the test above, in the child process that has the proxy variables.
#[tokio::test]
#[ignore = "run in a child process by requests_go_through_the_proxy_named_in_the_environment"]
async fn lists_a_feed_through_the_proxy() {
    if !child::is_child("lists_a_feed_through_the_proxy") {
        return;
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
}
