//! What the tests and benchmarks share with the library (the `testsuite` feature, off in
//! release builds): a generator of MISP events of any size, shaped like a real feed's, and the
//! TLS side of the test feed servers (the unit tests' and the integration tests' alike).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::convert::ConvertOptions;

/// The conversion profile the benchmarks and the conversion tests run, default mode: every
/// `create_*` option, author and markings from tags, `import_to_ids_no_score` 40,
/// unsupported types as text, attachments.
pub fn full_profile() -> ConvertOptions {
    ConvertOptions {
        create_indicators: true,
        create_observables: true,
        create_object_observables: true,
        author_from_tags: true,
        markings_from_tags: true,
        import_to_ids_no_score: Some(40),
        import_unsupported_observables_as_text: true,
        import_with_attachments: true,
        ..ConvertOptions::default()
    }
}

fn hex(rng: &mut StdRng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
        .collect()
}

fn uuid(rng: &mut StdRng) -> String {
    format!(
        "{}-{}-4{}-8{}-{}",
        hex(rng, 8),
        hex(rng, 4),
        hex(rng, 3),
        hex(rng, 3),
        hex(rng, 12)
    )
}

fn word(rng: &mut StdRng) -> String {
    let len = rng.gen_range(4..12);
    (0..len)
        .map(|_| char::from(rng.gen_range(b'a'..=b'z')))
        .collect()
}

/// One attribute shaped like the CIRCL OSINT feed's: a realistic type mix, MISP's usual
/// fields, a comment on some, a tag on a few.
fn attribute(rng: &mut StdRng, timestamp: i64) -> Value {
    let (kind, category, value) = match rng.gen_range(0..100) {
        0..=17 => (
            "ip-dst",
            "Network activity",
            format!(
                "{}.{}.{}.{}",
                rng.gen_range(1..224),
                rng.gen_range(0..256),
                rng.gen_range(0..256),
                rng.gen_range(1..255)
            ),
        ),
        18..=33 => (
            "domain",
            "Network activity",
            format!("{}.{}.com", word(rng), word(rng)),
        ),
        34..=45 => (
            "url",
            "Network activity",
            format!("http://{}.net/{}/{}.php", word(rng), word(rng), word(rng)),
        ),
        46..=57 => ("md5", "Payload delivery", hex(rng, 32)),
        58..=67 => ("sha256", "Payload delivery", hex(rng, 64)),
        68..=75 => (
            "filename|md5",
            "Payload delivery",
            format!("{}.exe|{}", word(rng), hex(rng, 32)),
        ),
        76..=81 => (
            "hostname",
            "Network activity",
            format!("{}.{}.org", word(rng), word(rng)),
        ),
        82..=87 => ("sha1", "Payload delivery", hex(rng, 40)),
        88..=92 => (
            "email-src",
            "Payload delivery",
            format!("{}@{}.com", word(rng), word(rng)),
        ),
        93..=96 => (
            "text",
            "Other",
            format!("{} {} {}", word(rng), word(rng), word(rng)),
        ),
        _ => (
            "link",
            "External analysis",
            format!("https://{}.example/{}", word(rng), word(rng)),
        ),
    };
    let comment = if rng.gen_bool(0.3) {
        format!("{} {}", word(rng), word(rng))
    } else {
        String::new()
    };
    let mut attribute = json!({
        "id": rng.gen_range(1..10_000_000).to_string(),
        "type": kind,
        "category": category,
        "to_ids": rng.gen_bool(0.7),
        "uuid": uuid(rng),
        "event_id": "1234",
        "distribution": "5",
        "timestamp": (timestamp - rng.gen_range(0..86_400)).to_string(),
        "comment": comment,
        "sharing_group_id": "0",
        "deleted": false,
        "disable_correlation": false,
        "object_id": "0",
        "object_relation": null,
        "first_seen": null,
        "last_seen": null,
        "value": value,
    });
    if rng.gen_bool(0.05) {
        attribute["Tag"] = json!([{"name": "tlp:green", "colour": "#33FF00"}]);
    }
    attribute
}

/// A seeded event: `attributes` attributes, a tenth of them grouped in MISP objects.
pub fn generated_event(attributes: usize, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let timestamp = 1_600_000_000;
    let in_objects = attributes / 10;
    let plain: Vec<Value> = (0..attributes - in_objects)
        .map(|_| attribute(&mut rng, timestamp))
        .collect();
    let mut objects = Vec::new();
    let mut remaining = in_objects;
    while remaining > 0 {
        let size = remaining.min(rng.gen_range(2..6));
        remaining -= size;
        let object_uuid = uuid(&mut rng);
        let object_attributes: Vec<Value> =
            (0..size).map(|_| attribute(&mut rng, timestamp)).collect();
        objects.push(json!({
            "name": "file", "meta-category": "file", "description": "File object", "uuid": object_uuid,
            "template_uuid": "688c46fb-5edb-40a3-8273-1af7923e2215", "timestamp": timestamp.to_string(),
            "Attribute": object_attributes,
            "ObjectReference": [{"source_uuid": object_uuid, "referenced_uuid": uuid(&mut rng),
                "relationship_type": "related-to", "comment": ""}],
        }));
    }
    let event = json!({"Event": {
        "uuid": uuid(&mut rng), "info": format!("Generated event with {attributes} attributes"),
        "date": "2020-09-13", "timestamp": timestamp.to_string(), "threat_level_id": "2",
        "analysis": "2", "published": true, "Orgc": {"name": "CIRCL", "uuid": uuid(&mut rng)},
        "Tag": [{"name": "tlp:white"}, {"name": "type:OSINT"}, {"name": "misp-galaxy:threat-actor=\"APT 28\""},
                {"name": "misp-galaxy:mitre-malware=\"X-Agent - S0161\""}],
        "Attribute": plain, "Object": objects,
    }});
    serde_json::to_vec(&event).unwrap_or_default()
}

/// A file of the throwaway test certificates (`tests/support/tls/`, see its README).
pub fn tls_test_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support/tls")
        .join(name)
}

/// The TLS side of a test feed server: `server.pem` for 127.0.0.1 and localhost, and with
/// `require_client_certificate` a verifier that trusts the client certificates
/// `client-ca.pem` signed and no others.
pub fn tls_server_config(require_client_certificate: bool) -> std::sync::Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::sync::Arc;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let builder = if require_client_certificate {
        let mut roots = rustls::RootCertStore::empty();
        for certificate in CertificateDer::pem_file_iter(tls_test_file("client-ca.pem"))
            .expect("the test client CA is readable")
        {
            roots
                .add(certificate.expect("the test client CA is PEM"))
                .expect("the test client CA is a CA certificate");
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("a verifier of the test client CA");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let chain = CertificateDer::pem_file_iter(tls_test_file("server.pem"))
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .expect("the test server certificate is readable PEM");
    let key = PrivateKeyDer::from_pem_file(tls_test_file("server.key"))
        .expect("the test server key is readable PEM");
    Arc::new(
        builder
            .with_single_cert(chain, key)
            .expect("the test server key belongs to its certificate"),
    )
}
