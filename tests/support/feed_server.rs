//! The feed server of the tests: HTTP/1.1 (or HTTPS) on 127.0.0.1, written on raw tokio
//! sockets so that it can misbehave at the byte level: cut a body short, hang, answer with
//! any status, write any bytes.
//!
//! It serves a copy of a feed folder (so tests can change it) under `/feed/`, gives every
//! file an ETag and a Last-Modified date and answers a matching conditional GET with 304.
//! Every request is recorded (target and headers) so tests can check what the client sent.
//! It runs on a runtime of its own: tests that drive the `misp-feed` binary from a plain
//! thread and async tests that call the library use it alike. Dropping it stops it.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The Last-Modified date the server gives every file.
pub const LAST_MODIFIED: &str = "Wed, 01 Jan 2025 00:00:00 GMT";

/// A way to answer a request for one path, instead of serving the file.
#[derive(Debug, Clone)]
pub enum Fault {
    /// An empty response with this status.
    Status(u16),
    /// This status with a `Retry-After` header.
    StatusRetryAfter(u16, String),
    /// Never answers (until the client gives up).
    Hang,
    /// Answers normally, after this long.
    Delay(Duration),
    /// Announces the whole file's length, sends the first half of it, then closes.
    Truncate,
    /// Serves these bytes instead of the file (status 200).
    Body(Vec<u8>),
    /// Writes these bytes verbatim (status line, headers and body), then closes; nothing at
    /// all for an empty vector.
    Raw(Vec<u8>),
    /// Serves the file gzip-compressed with `Content-Encoding: gzip`.
    Gzip,
    /// Serves the file without a Content-Length (chunked transfer encoding).
    Chunked,
    /// A 200 body with no length that goes on for up to this many bytes, or until the
    /// client hangs up.
    Endless(u64),
    /// Announces the file, then sends its body one byte per interval: each read is quick,
    /// the whole takes forever.
    Trickle(Duration),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request target as sent: a path, or an absolute URL when sent to a proxy.
    pub target: String,
    /// The path below `/feed/` (e.g. `manifest.json`), or the full path if outside it.
    pub name: String,
    /// Header names are lower-case.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Behaviour {
    /// Faults used once each, in order, before falling back to `always` or the file.
    next: HashMap<String, VecDeque<Fault>>,
    always: HashMap<String, Fault>,
    /// Waited before answering for any file but the manifest, to make runs last.
    event_delay: Option<Duration>,
}

struct State {
    dir: PathBuf,
    behaviour: Mutex<Behaviour>,
    log: Mutex<Vec<Request>>,
    /// TLS handshakes that failed: refused by the server (an alert sent) or by the client.
    refused_handshakes: AtomicUsize,
}

pub struct FeedServer {
    pub addr: SocketAddr,
    /// The folder served: a copy of the one given to `start`, which tests may change.
    pub dir: PathBuf,
    _root: tempfile::TempDir,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
    scheme: &'static str,
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Not `drop`: that would block, which an async test's thread may not do.
            runtime.shutdown_background();
        }
    }
}

impl FeedServer {
    /// Serves a copy of the files of `feed` at `http://127.0.0.1:<port>/feed/`.
    pub fn start(feed: impl AsRef<Path>) -> FeedServer {
        FeedServer::start_with(feed.as_ref(), None)
    }

    /// Serves a copy of the files of `feed` at `https://127.0.0.1:<port>/feed/`, with the
    /// test certificate of `tests/support/tls/` (signed by the test CA in `ca.pem`).
    pub fn start_tls(feed: impl AsRef<Path>) -> FeedServer {
        FeedServer::start_with(feed.as_ref(), Some(tls_acceptor(false)))
    }

    /// As [`FeedServer::start_tls`], and the handshake requires a client certificate signed
    /// by the test client CA (`client-ca.pem`): a client without one, or with another, is
    /// refused with a TLS alert and never gets to send a request.
    pub fn start_mutual_tls(feed: impl AsRef<Path>) -> FeedServer {
        FeedServer::start_with(feed.as_ref(), Some(tls_acceptor(true)))
    }

    /// The test CA that signed the TLS server's certificate (a PEM file).
    pub fn tls_ca_bundle() -> PathBuf {
        misp_feed::testsuite::tls_test_file("ca.pem")
    }

    /// A file of `tests/support/tls/` (see its README): `client.pem`, `client.key` ...
    pub fn tls_file(name: &str) -> PathBuf {
        misp_feed::testsuite::tls_test_file(name)
    }

    fn start_with(feed: &Path, tls: Option<tokio_rustls::TlsAcceptor>) -> FeedServer {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("feed");
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(feed).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("feed-server")
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            dir: dir.clone(),
            behaviour: Mutex::default(),
            log: Mutex::default(),
            refused_handshakes: AtomicUsize::new(0),
        });
        let serving = state.clone();
        let secure = tls.is_some();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((stream, _)) = listener.accept().await {
                let state = serving.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _ = match tls {
                        Some(acceptor) => match acceptor.accept(stream).into_fallible().await {
                            Ok(stream) => serve(stream, state).await,
                            Err((_, stream)) => {
                                state.refused_handshakes.fetch_add(1, Ordering::SeqCst);
                                linger(stream).await
                            }
                        },
                        None => serve(stream, state).await,
                    };
                });
            }
        });
        FeedServer {
            addr,
            dir,
            _root: root,
            state,
            runtime: Some(runtime),
            scheme: if secure { "https" } else { "http" },
        }
    }

    /// The feed's base URL (no trailing slash).
    pub fn url(&self) -> String {
        format!("{}://{}/feed", self.scheme, self.addr)
    }

    /// Answers the next request for `name` with `fault` (queued after earlier ones).
    pub fn fail_next(&self, name: &str, fault: Fault) {
        let mut behaviour = self.state.behaviour.lock().unwrap();
        behaviour
            .next
            .entry(name.to_owned())
            .or_default()
            .push_back(fault);
    }

    /// Answers every request for `name` with `fault` (after any queued one-shot faults).
    pub fn fail_always(&self, name: &str, fault: Fault) {
        let mut behaviour = self.state.behaviour.lock().unwrap();
        behaviour.always.insert(name.to_owned(), fault);
    }

    /// Serves `name` normally again.
    pub fn heal(&self, name: &str) {
        let mut behaviour = self.state.behaviour.lock().unwrap();
        behaviour.always.remove(name);
        behaviour.next.remove(name);
    }

    /// Serves every file normally again (the event delay stays).
    pub fn clear_faults(&self) {
        let mut behaviour = self.state.behaviour.lock().unwrap();
        behaviour.always.clear();
        behaviour.next.clear();
    }

    /// Waits `delay` before answering any request but the manifest's.
    pub fn delay_events(&self, delay: Duration) {
        self.state.behaviour.lock().unwrap().event_delay = Some(delay);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.log.lock().unwrap().clone()
    }

    /// How many TLS handshakes failed (see `State::refused_handshakes`).
    pub fn refused_handshakes(&self) -> usize {
        self.state.refused_handshakes.load(Ordering::SeqCst)
    }

    pub fn requests_for(&self, name: &str) -> usize {
        self.requests().iter().filter(|r| r.name == name).count()
    }

    /// The ETag the server gives a file's current content.
    pub fn etag_of(bytes: &[u8]) -> String {
        let digest = Sha256::digest(bytes);
        format!("\"{}\"", hex::encode(&digest[..8]))
    }

    pub fn manifest(&self) -> serde_json::Map<String, Value> {
        let text = std::fs::read_to_string(self.dir.join("manifest.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    pub fn write_manifest(&self, manifest: &serde_json::Map<String, Value>) {
        std::fs::write(
            self.dir.join("manifest.json"),
            serde_json::to_vec(manifest).unwrap(),
        )
        .unwrap();
    }

    /// Writes (or replaces) a file of the served feed.
    pub fn write_file(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.dir.join(name), bytes).unwrap();
    }

    /// A file of the served feed, as served.
    pub fn read_file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap()
    }

    pub fn remove_file(&self, name: &str) {
        std::fs::remove_file(self.dir.join(name)).unwrap();
    }

    /// Moves one event's manifest timestamp forward.
    pub fn bump_timestamp(&self, uuid: &str, by: i64) {
        let mut manifest = self.manifest();
        let entry = manifest.get_mut(uuid).unwrap();
        let ts = match &entry["timestamp"] {
            Value::String(s) => s.parse::<i64>().unwrap(),
            Value::Number(n) => n.as_i64().unwrap(),
            other => panic!("timestamp {other}"),
        };
        entry["timestamp"] = Value::String((ts + by).to_string());
        self.write_manifest(&manifest);
    }

    pub fn event_uuids(&self) -> Vec<String> {
        let mut uuids: Vec<String> = self.manifest().keys().cloned().collect();
        uuids.sort();
        uuids
    }
}

/// The server's TLS side (see `misp_feed::testsuite::tls_server_config`).
fn tls_acceptor(require_client_certificate: bool) -> tokio_rustls::TlsAcceptor {
    tokio_rustls::TlsAcceptor::from(misp_feed::testsuite::tls_server_config(
        require_client_certificate,
    ))
}

/// After a refused handshake (the alert is sent): close the sending side and read what the
/// client still sends before closing, so that the alert is not lost to a reset.
async fn linger(mut stream: tokio::net::TcpStream) -> std::io::Result<()> {
    stream.shutdown().await?;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while stream.read(&mut sink).await.is_ok_and(|read| read > 0) {}
    })
    .await;
    Ok(())
}

async fn serve<S>(mut stream: S, state: Arc<State>) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(request) = read_request(&mut stream).await? else {
        return Ok(());
    };
    state.log.lock().unwrap().push(request.clone());

    let (fault, event_delay) = {
        let mut behaviour = state.behaviour.lock().unwrap();
        let queued = behaviour
            .next
            .get_mut(&request.name)
            .and_then(VecDeque::pop_front);
        let fault = queued.or_else(|| behaviour.always.get(&request.name).cloned());
        (fault, behaviour.event_delay)
    };
    if request.name != "manifest.json"
        && let Some(delay) = event_delay
    {
        tokio::time::sleep(delay).await;
    }

    let file = if request.name.contains('/') || request.name.contains("..") {
        None
    } else {
        std::fs::read(state.dir.join(&request.name)).ok()
    };

    match fault {
        Some(Fault::Status(code)) => respond(&mut stream, code, &[], b"").await,
        Some(Fault::StatusRetryAfter(code, after)) => {
            respond(&mut stream, code, &[("Retry-After", after)], b"").await
        }
        Some(Fault::Hang) => std::future::pending::<std::io::Result<()>>().await,
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            serve_file(&mut stream, &request, file).await
        }
        Some(Fault::Body(body)) => respond(&mut stream, 200, &[], &body).await,
        Some(Fault::Raw(bytes)) => {
            stream.write_all(&bytes).await?;
            stream.flush().await?;
            stream.shutdown().await
        }
        Some(Fault::Truncate) => {
            let body = file.unwrap_or_default();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body[..body.len() / 2]).await?;
            stream.flush().await?;
            stream.shutdown().await
        }
        Some(Fault::Gzip) => match file {
            Some(body) => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(&body)?;
                let compressed = encoder.finish()?;
                let headers = [("Content-Encoding", "gzip".to_string())];
                respond(&mut stream, 200, &headers, &compressed).await
            }
            None => respond(&mut stream, 404, &[], b"").await,
        },
        Some(Fault::Chunked) => match file {
            Some(body) => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
                stream.write_all(head.as_bytes()).await?;
                for part in body.chunks(4096) {
                    stream
                        .write_all(format!("{:x}\r\n", part.len()).as_bytes())
                        .await?;
                    stream.write_all(part).await?;
                    stream.write_all(b"\r\n").await?;
                }
                stream.write_all(b"0\r\n\r\n").await?;
                stream.shutdown().await
            }
            None => respond(&mut stream, 404, &[], b"").await,
        },
        Some(Fault::Endless(limit)) => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[")
                .await?;
            let chunk = vec![b' '; 64 * 1024];
            let mut sent = 0u64;
            while sent < limit {
                stream.write_all(&chunk).await?;
                sent += chunk.len() as u64;
            }
            stream.shutdown().await
        }
        Some(Fault::Trickle(interval)) => {
            let body = file.unwrap_or_default();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            for byte in body {
                stream.write_all(&[byte]).await?;
                stream.flush().await?;
                tokio::time::sleep(interval).await;
            }
            stream.shutdown().await
        }
        None => serve_file(&mut stream, &request, file).await,
    }
}

/// The file with its validators, 304 to a conditional GET that matches them, or 404.
async fn serve_file<S: AsyncWrite + Unpin>(
    stream: &mut S,
    request: &Request,
    file: Option<Vec<u8>>,
) -> std::io::Result<()> {
    let Some(body) = file else {
        return respond(stream, 404, &[], b"").await;
    };
    let etag = FeedServer::etag_of(&body);
    let unchanged = match request.header("if-none-match") {
        Some(sent) => sent == etag,
        None => request.header("if-modified-since") == Some(LAST_MODIFIED),
    };
    let headers = [("ETag", etag), ("Last-Modified", LAST_MODIFIED.to_string())];
    if unchanged {
        respond(stream, 304, &headers, b"").await
    } else {
        respond(stream, 200, &headers, &body).await
    }
}

async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Option<Request>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 || buffer.len() > 64 * 1024 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let target = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    // A client talking to a proxy sends the absolute URL; serve its path all the same.
    let path = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |at| &rest[at..]),
        None => target.as_str(),
    };
    let name = path.strip_prefix("/feed/").unwrap_or(path).to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Some(Request {
        target,
        name,
        headers,
    }))
}

async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    code: u16,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(code),
        body.len()
    );
    if code == 304 {
        // A 304 has no body, whatever Content-Length says.
        head = "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n".to_string();
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    stream.shutdown().await
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        304 => "Not Modified",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
