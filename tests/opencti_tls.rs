//! `OPENCTI_SSL_VERIFY` and `OPENCTI_CA_FILE` against a real HTTPS endpoint whose certificate
//! is signed by a throw-away CA. The certificates are made with the `openssl` command and
//! the endpoint is a few lines of Python's standard library (both through the gate for
//! outside tools: skipped with a notice when missing, a failure under
//! `MISP_FEED_REQUIRE_BROKER`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::support::opencti::*;
use crate::support::services;
use misp_feed::config::QueueProtocol;
use misp_feed::opencti::OpenCti;

const SERVER: &str = r#"
import http.server, json, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps({"data": {"about": {"version": "tls-ok"}}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

fn run(program: &str, args: &[&str], directory: &Path) -> bool {
    Command::new(program)
        .args(args)
        .current_dir(directory)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// CA + server certificate for 127.0.0.1, made with the openssl command.
fn make_certificates(directory: &Path) -> bool {
    std::fs::write(directory.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=misp-feed test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
        directory,
    ) && run(
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        directory,
    ) && run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
        directory,
    )
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(directory: &Path) -> Option<(Server, u16)> {
    let mut child = Command::new("python3")
        .args(["-c", SERVER, "server.pem", "server.key"])
        .current_dir(directory)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).ok()?;
    let port = line.trim().parse().ok()?;
    Some((server, port))
}

#[tokio::test]
async fn ssl_verify_and_ca_file_are_honoured() {
    let test = "ssl_verify_and_ca_file_are_honoured";
    if services::tool(test, "openssl", &["version"]).is_none()
        || services::tool(test, "python3", &["--version"]).is_none()
    {
        return;
    }
    let directory = tempfile::tempdir().unwrap();
    assert!(
        make_certificates(directory.path()),
        "openssl could not make the test certificates"
    );
    let endpoint = start_server(directory.path())
        .ok_or_else(|| "python3 cannot run the HTTPS endpoint".to_string());
    let Some((_server, port)) = services::require(test, endpoint) else {
        return;
    };
    let url = format!("https://127.0.0.1:{port}");
    let mut settings = settings(&url, &unique_connector_id(), QueueProtocol::Amqp);
    settings.opencti.ssl_verify = true;

    // Verification on, certificate from an unknown CA: refused, and the reason says so.
    let error = OpenCti::check_api(&settings).await.unwrap_err().to_string();
    assert!(
        error.contains("invalid peer certificate: UnknownIssuer"),
        "{error}"
    );
    assert!(!error.contains(TOKEN));

    // The CA file makes the same endpoint trusted.
    settings.opencti.ca_file = Some(directory.path().join("ca.pem"));
    assert_eq!(OpenCti::check_api(&settings).await.unwrap(), "tls-ok");

    // OPENCTI_SSL_VERIFY=false accepts it without the CA.
    settings.opencti.ca_file = None;
    settings.opencti.ssl_verify = false;
    assert_eq!(OpenCti::check_api(&settings).await.unwrap(), "tls-ok");
}
