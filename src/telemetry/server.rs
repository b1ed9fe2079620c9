//! The scrape endpoint: hyper's HTTP/1.1 server answering `GET`/`HEAD` with the registry's text.
//!
//! Like pycti's `prometheus_client.start_http_server`, it listens on every interface on
//! `CONNECTOR_METRICS_PORT` and answers on any path (`/metrics` is what scrapers ask for).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::metrics::{self, Metrics};

/// A client that has not sent its request head by then is dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A running metrics endpoint.
pub struct MetricsServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting scrapes and closes the open connections: once this returns, no request
    /// is answered any more.
    pub async fn shutdown(self) {
        self.task.abort();
        // Cancelled, the accept loop drops its connection set, which cancels every connection.
        let _ = self.task.await;
    }
}

/// Serves `metrics` on `0.0.0.0:port` (`CONNECTOR_METRICS_PORT`), as pycti's
/// `start_http_server` does.
pub async fn serve_metrics(port: u16, metrics: Arc<Metrics>) -> io::Result<MetricsServer> {
    let listener = TcpListener::bind(("0.0.0.0", port)).await?;
    serve_metrics_on(listener, metrics)
}

/// Start-up in one call: the global registry with the configured prefixes, served on
/// `CONNECTOR_METRICS_PORT` when `CONNECTOR_EXPOSE_METRICS` is true (`None` otherwise). A prefix
/// that cannot make a Prometheus name is refused before anything is registered.
pub async fn start_metrics(
    settings: &crate::config::Settings,
) -> io::Result<Option<MetricsServer>> {
    let connector = &settings.connector;
    if connector.expose_metrics {
        metrics::check_prefix(&connector.metrics_namespace, &connector.metrics_subsystem)
            .map_err(|message| io::Error::new(io::ErrorKind::InvalidInput, message))?;
    }
    let registry =
        metrics::init_metrics(&connector.metrics_namespace, &connector.metrics_subsystem);
    if !connector.expose_metrics {
        return Ok(None);
    }
    let server = serve_metrics(connector.metrics_port, registry).await?;
    tracing::info!(
        port = server.local_addr().port(),
        "Exposing metrics on port"
    );
    Ok(Some(server))
}

/// Serves `metrics` on an already bound listener.
pub fn serve_metrics_on(listener: TcpListener, metrics: Arc<Metrics>) -> io::Result<MetricsServer> {
    let local_addr = listener.local_addr()?;
    let task = tokio::spawn(accept_loop(listener, metrics));
    Ok(MetricsServer { local_addr, task })
}

async fn accept_loop(listener: TcpListener, metrics: Arc<Metrics>) {
    // Connections live in this set so that aborting the server closes them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&metrics)));
                }
                Err(error) => {
                    tracing::warn!(error = %error, "metrics endpoint cannot accept a connection");
                    // Out of file descriptors, typically: give the system a moment.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, metrics: Arc<Metrics>) {
    let service = service_fn(move |request| {
        let metrics = Arc::clone(&metrics);
        async move { Ok::<_, Infallible>(answer(&request, &metrics)) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(error) = served {
        tracing::debug!(error = %error, "metrics request failed");
    }
}

/// `GET` and `HEAD` (hyper leaves the body out) get the exposition; other methods a 405.
fn answer(request: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = Response::new(Full::new(Bytes::from(metrics.render())));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static(metrics::CONTENT_TYPE),
        );
        response
    } else {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        response
    }
}
