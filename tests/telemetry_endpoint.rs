//! The metrics endpoint over real HTTP on a loopback socket: GET and HEAD, any path (as pycti's
//! `prometheus_client` server), bad requests, keep-alive, concurrent scrapes, shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::telemetry_support::parse;
use misp_feed::telemetry::{
    CONTENT_TYPE, ConnectorState, Metrics, MetricsServer, serve_metrics, serve_metrics_on,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn serve(metrics: &Arc<Metrics>) -> MetricsServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_metrics_on(listener, Arc::clone(metrics)).unwrap()
}

/// Sends `request` as is and reads until the server closes the connection.
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("the server closes the connection")
    .unwrap();
    response
}

#[tokio::test]
async fn get_and_head_answer_with_the_prometheus_text_content_type() {
    let metrics = Arc::new(Metrics::new());
    let server = serve(&metrics).await;
    let url = format!("http://{}/metrics", server.local_addr());
    let client = reqwest::Client::new();

    let first = client.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(
        first.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    let body = first.text().await.unwrap();
    let (samples, _) = parse(&body);
    assert_eq!(samples["runs_total"], 0.0);

    // HEAD: the same head, the body's length, no body.
    let head = client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], CONTENT_TYPE);
    assert_eq!(
        head.headers()["content-length"],
        body.len().to_string().as_str()
    );
    assert!(head.bytes().await.unwrap().is_empty());
    let head = raw(
        server.local_addr(),
        "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");

    // Each scrape renders the values of the moment.
    metrics.inc_runs();
    metrics.set_state(ConnectorState::Stopped);
    let body = client.get(&url).send().await.unwrap().text().await.unwrap();
    let (samples, _) = parse(&body);
    assert_eq!(samples["runs_total"], 1.0);
    assert_eq!(samples["state{state=\"stopped\"}"], 1.0);
    server.shutdown().await;
}

#[tokio::test]
async fn any_path_is_answered_and_bad_requests_are_refused_without_stopping_the_server() {
    let metrics = Arc::new(Metrics::new());
    let server = serve(&metrics).await;
    let base = format!("http://{}", server.local_addr());
    let client = reqwest::Client::new();

    // pycti's prometheus_client server answers every path with the metrics.
    for path in ["/", "/metrics", "/no/such/path?name[]=x", "/%2e%2e/etc"] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let (samples, _) = parse(&response.text().await.unwrap());
        assert!(samples.contains_key("bundles_sent_total"), "{path}");
    }

    let post = client
        .post(format!("{base}/metrics"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    assert!(post.bytes().await.unwrap().is_empty());

    // Not HTTP at all, then a request line with a space in the path: hyper answers 400.
    for request in [
        "HELLO\r\n\r\n",
        "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nHost x\r\n\r\n",
    ] {
        let response = raw(server.local_addr(), request).await;
        assert!(
            response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{request:?} -> {response}"
        );
    }

    // A client that connects and leaves at once does not stop the server either.
    drop(TcpStream::connect(server.local_addr()).await.unwrap());
    let response = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    server.shutdown().await;
}

#[tokio::test]
async fn one_connection_serves_several_scrapes() {
    let metrics = Arc::new(Metrics::new());
    let server = serve(&metrics).await;
    // Two requests pipelined on one connection; the second closes it.
    let response = raw(
        server.local_addr(),
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        response.matches("HTTP/1.1 200 OK\r\n").count(),
        2,
        "{response}"
    );
    assert_eq!(response.matches("\nruns_total 0\n").count(), 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scrapes_each_get_a_whole_text_while_metrics_move() {
    const SCRAPES: usize = 32;
    const UPDATES: u64 = 2_000;
    let metrics = Arc::new(Metrics::new());
    let server = serve(&metrics).await;
    let addr = server.local_addr();

    // Idle clients (one silent, one stuck mid-head) do not hold up the others.
    let _silent = TcpStream::connect(addr).await.unwrap();
    let mut stuck = TcpStream::connect(addr).await.unwrap();
    stuck
        .write_all(b"GET /metrics HTTP/1.1\r\nHo")
        .await
        .unwrap();

    let writer = {
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            for _ in 0..UPDATES {
                metrics.inc_bundles_sent();
                metrics.add_records_sent(3);
                tokio::task::yield_now().await;
            }
        })
    };
    let scrapes: Vec<_> = (0..SCRAPES)
        .map(|_| {
            tokio::spawn(async move {
                // A client each: one connection per scrape.
                let client = reqwest::Client::new();
                let response = client
                    .get(format!("http://{addr}/metrics"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                response.text().await.unwrap()
            })
        })
        .collect();
    for scrape in scrapes {
        let body = scrape.await.unwrap();
        // `parse` fails on any torn or duplicated line.
        let (samples, types) = parse(&body);
        assert_eq!(types.len(), 16, "a whole exposition: {types:?}");
        let bundles = samples["bundles_sent_total"];
        assert!((0.0..=UPDATES as f64).contains(&bundles), "{bundles}");
        // Records are added after bundles and rendered after them: never fewer than those of
        // the bundles seen but the last.
        let records = samples["records_sent_total"];
        assert!(
            records >= 3.0 * (bundles - 1.0) && records <= 3.0 * UPDATES as f64,
            "{bundles} bundles, {records} records"
        );
    }
    writer.await.unwrap();
    let body = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (samples, _) = parse(&body);
    assert_eq!(samples["bundles_sent_total"], UPDATES as f64);
    assert_eq!(samples["records_sent_total"], 3.0 * UPDATES as f64);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_the_open_connections() {
    let metrics = Arc::new(Metrics::new());
    let server = serve(&metrics).await;
    let mut idle = TcpStream::connect(server.local_addr()).await.unwrap();
    // The connection is accepted and served: a first request on it is answered.
    idle.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 17];
    idle.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200 OK\r\n");

    server.shutdown().await;
    // Kept alive, the connection would answer this second request.
    let _ = idle
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let mut rest = Vec::new();
    let _closed = tokio::time::timeout(Duration::from_secs(30), idle.read_to_end(&mut rest))
        .await
        .expect("the connection is closed");
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        !rest.contains("HTTP/1.1"),
        "answered after shutdown: {rest}"
    );
}

#[tokio::test]
async fn serve_metrics_binds_the_configured_port_on_every_interface() {
    // Port 0 lets the system choose; the server reports what it bound.
    let server = serve_metrics(0, Arc::new(Metrics::new())).await.unwrap();
    assert!(server.local_addr().ip().is_unspecified());
    let port = server.local_addr().port();
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (samples, _) = parse(&body);
    assert_eq!(samples["bundles_sent_total"], 0.0);
    // A second server on the same port fails with an error, not a panic.
    assert!(serve_metrics(port, Arc::new(Metrics::new())).await.is_err());
    server.shutdown().await;
}
