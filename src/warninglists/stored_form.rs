//! The value in the form MISP stores it, which is the form MISP's warninglist check sees.
//!
//! MISP trims every attribute value and folds the case of some types before saving
//! (`Attribute::beforeValidateMassage`, `AttributeValidationTool::modifyBeforeValidation`), so
//! a feed's `ABUSE@Example.org` is checked as `abuse@example.org` on a MISP instance that pulled
//! the feed. This applies the trimming and those case and separator rewrites; it leaves out
//! refanging, punycode and IPv6 compression, which change no match of a `cidr` list (addresses
//! are parsed) and of no list in MISP's repository.

use std::borrow::Cow;

/// Types MISP stores lower-cased (`modifyBeforeValidation`).
const LOWER_CASED: &[&str] = &[
    "md5",
    "sha1",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "sha512/224",
    "sha512/256",
    "sha3-224",
    "sha3-256",
    "sha3-384",
    "sha3-512",
    "ja3-fingerprint-md5",
    "jarm-fingerprint",
    "hassh-md5",
    "hasshserver-md5",
    "hostname",
    "pehash",
    "authentihash",
    "vhash",
    "imphash",
    "telfhash",
    "tlsh",
    "anonymised",
    "cdhash",
    "email",
    "email-src",
    "email-dst",
    "target-email",
    "whois-registrant-email",
    "dom-hash",
    "onion-address",
];

/// `filename|<hash>` types: MISP lower-cases what follows the file name.
const FILENAME_AND_HASH: &[&str] = &[
    "filename|md5",
    "filename|sha1",
    "filename|imphash",
    "filename|sha224",
    "filename|sha256",
    "filename|sha384",
    "filename|sha512",
    "filename|sha512/224",
    "filename|sha512/256",
    "filename|sha3-224",
    "filename|sha3-256",
    "filename|sha3-384",
    "filename|sha3-512",
    "filename|authentihash",
    "filename|vhash",
    "filename|pehash",
    "filename|tlsh",
];

/// PHP's `trim()` characters.
const PHP_BLANKS: [char; 6] = [' ', '\t', '\n', '\r', '\0', '\x0B'];

pub(super) fn stored_form<'v>(attribute_type: &str, value: &'v str) -> Cow<'v, str> {
    let value = value.trim_matches(PHP_BLANKS);
    match attribute_type {
        "domain" => match lower(value) {
            Cow::Borrowed(value) => Cow::Borrowed(value.trim_matches('.')),
            Cow::Owned(value) => Cow::Owned(value.trim_matches('.').to_string()),
        },
        "domain|ip" => {
            let lowered = lower(value);
            match lowered.split_once('|') {
                Some((domain, ip)) if domain.starts_with('.') || domain.ends_with('.') => {
                    Cow::Owned(format!("{}|{ip}", domain.trim_matches('.')))
                }
                _ => lowered,
            }
        }
        "x509-fingerprint-md5" | "x509-fingerprint-sha1" | "x509-fingerprint-sha256"
            if value.contains(':') =>
        {
            Cow::Owned(value.replace(':', "").to_ascii_lowercase())
        }
        "x509-fingerprint-md5" | "x509-fingerprint-sha1" | "x509-fingerprint-sha256" => {
            lower(value)
        }
        "hostname|port" if value.contains(':') => {
            Cow::Owned(value.to_ascii_lowercase().replace(':', "|"))
        }
        "hostname|port" => lower(value),
        kind if LOWER_CASED.contains(&kind) => lower(value),
        kind if FILENAME_AND_HASH.contains(&kind) => match value.find('|') {
            Some(bar) => match lower(&value[bar..]) {
                Cow::Borrowed(_) => Cow::Borrowed(value),
                Cow::Owned(hash) => Cow::Owned(format!("{}{hash}", &value[..bar])),
            },
            None => lower(value),
        },
        _ => Cow::Borrowed(value),
    }
}

/// PHP 8's `strtolower`: ASCII only. Borrowed when nothing changes, as most values are.
fn lower(value: &str) -> Cow<'_, str> {
    if value.bytes().any(|byte| byte.is_ascii_uppercase()) {
        Cow::Owned(value.to_ascii_lowercase())
    } else {
        Cow::Borrowed(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_trimmed_and_folded_as_misp_stores_them() {
        for (kind, value, stored) in [
            (
                "md5",
                " D41D8CD98F00B204E9800998ECF8427E\n",
                "d41d8cd98f00b204e9800998ecf8427e",
            ),
            ("email-dst", "Abuse@Example.ORG", "abuse@example.org"),
            ("domain", "Www.Example.COM.", "www.example.com"),
            (
                "domain|ip",
                ".Example.com.|10.0.0.1",
                "example.com|10.0.0.1",
            ),
            (
                "filename|md5",
                "EICAR.COM|44D88612FEA8A8F36DE82E1278ABB02F",
                "EICAR.COM|44d88612fea8a8f36de82e1278abb02f",
            ),
            ("x509-fingerprint-sha1", "AB:CD:EF", "abcdef"),
            ("hostname|port", "Example.com:443", "example.com|443"),
            ("hostname|port", "Example.com|443", "example.com|443"),
            ("x509-fingerprint-md5", "ABCDEF", "abcdef"),
            ("domain|ip", "Example.com|10.0.0.1", "example.com|10.0.0.1"),
            ("url", " HTTPS://Example.com/A ", "HTTPS://Example.com/A"),
            ("ip-dst", "\t10.0.0.1 ", "10.0.0.1"),
            ("filename", "Café.EXE", "Café.EXE"),
            ("hostname", "CAFÉ.example", "cafÉ.example"),
        ] {
            assert_eq!(stored_form(kind, value), stored, "{kind} {value:?}");
        }
    }

    #[test]
    fn an_unchanged_value_is_not_copied() {
        assert!(matches!(stored_form("md5", "d41d8cd9"), Cow::Borrowed(_)));
        assert!(matches!(
            stored_form("filename|md5", "A.EXE|d41d8cd9"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(stored_form("text", "Any Thing"), Cow::Borrowed(_)));
        assert!(matches!(
            stored_form("domain", "example.com"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            stored_form("domain|ip", "example.com|10.0.0.1"),
            Cow::Borrowed(_)
        ));
    }
}
