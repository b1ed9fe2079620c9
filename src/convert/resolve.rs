//! The connector's `_resolve_type`: what a MISP attribute type resolves to (its resolver,
//! OpenCTI observable type, STIX pattern path and hash name), part by part for composite
//! types such as `filename|md5`.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// How the connector resolves a MISP type: its resolver name and OpenCTI observable type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolver {
    Yara,
    Sigma,
    FileMd5,
    FileSha1,
    FileSha256,
    FileName,
    PdbPath,
    Ipv4,
    Ipv6,
    Text,
    Hostname,
    Domain,
    EmailSubject,
    EmailAddress,
    Url,
    WindowsScheduledTask,
    RegistryKey,
    UserAgent,
    PhoneNumber,
    UserAccountGithub,
    IdentityIndividual,
}

impl Resolver {
    /// The OpenCTI observable type the connector attaches (None for yara and sigma).
    pub(crate) fn observable_type(self) -> Option<&'static str> {
        Some(match self {
            Resolver::Yara | Resolver::Sigma => return None,
            Resolver::FileMd5
            | Resolver::FileSha1
            | Resolver::FileSha256
            | Resolver::FileName
            | Resolver::PdbPath => "File",
            Resolver::Ipv4 => "IPv4-Addr",
            Resolver::Ipv6 => "IPv6-Addr",
            Resolver::Text | Resolver::WindowsScheduledTask => "Text",
            Resolver::Hostname => "Hostname",
            Resolver::Domain => "Domain-Name",
            Resolver::EmailSubject => "Email-Message",
            Resolver::EmailAddress => "Email-Addr",
            Resolver::Url => "Url",
            Resolver::RegistryKey => "Windows-Registry-Key",
            Resolver::UserAgent => "User-Agent",
            Resolver::PhoneNumber => "Phone-Number",
            Resolver::UserAccountGithub => "User-Account",
            Resolver::IdentityIndividual => "Identity",
        })
    }

    /// The STIX object path of the connector's pattern (`OPENCTISTIX2`), when it has one.
    pub(crate) fn pattern_path(self) -> Option<(&'static str, &'static str)> {
        Some(match self {
            Resolver::FileMd5 => ("file", "hashes.MD5"),
            Resolver::FileSha1 => ("file", "hashes.'SHA-1'"),
            Resolver::FileSha256 => ("file", "hashes.'SHA-256'"),
            Resolver::FileName | Resolver::PdbPath => ("file", "name"),
            Resolver::Ipv4 => ("ipv4-addr", "value"),
            Resolver::Ipv6 => ("ipv6-addr", "value"),
            Resolver::Text => ("text", "value"),
            Resolver::Hostname => ("hostname", "value"),
            Resolver::Domain => ("domain-name", "value"),
            Resolver::EmailSubject => ("email-message", "subject"),
            Resolver::EmailAddress => ("email-addr", "value"),
            Resolver::Url => ("url", "value"),
            Resolver::RegistryKey => ("windows-registry-key", "key"),
            Resolver::UserAgent => ("user-agent", "value"),
            Resolver::PhoneNumber => ("phone-number", "value"),
            Resolver::UserAccountGithub => ("user-account", "account_login"),
            _ => return None,
        })
    }

    pub(crate) fn hash_name(self) -> Option<&'static str> {
        match self {
            Resolver::FileMd5 => Some("MD5"),
            Resolver::FileSha1 => Some("SHA-1"),
            Resolver::FileSha256 => Some("SHA-256"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Resolved<'a> {
    pub(crate) resolver: Resolver,
    pub(crate) value: Cow<'a, str>,
}

static IPV4: LazyLock<Option<Regex>> = LazyLock::new(|| {
    // The connector's IPv4 test; `\n?$` stands for Python's `$` (which also matches before
    // a final newline).
    Regex::new(r"^((25[0-5]|(2[0-4]|1\d|[1-9]|)\d)\.?\b){4}(/([1-9]|[1-2]\d|3[0-2]))?\n?$").ok()
});

fn ip_resolver(value: &str) -> Resolver {
    if IPV4.as_ref().is_some_and(|re| re.is_match(value)) {
        Resolver::Ipv4
    } else {
        Resolver::Ipv6
    }
}

/// The connector's `_resolve_type`: the parts of an attribute value and how each resolves.
pub(crate) fn resolve_type<'a>(
    kind: &'a str,
    value: &'a str,
    unsupported_as_text: bool,
) -> Option<Vec<Resolved<'a>>> {
    use Resolver as R;
    // `None` marks the IP resolver, which depends on the value.
    let table: &[Option<Resolver>] = match kind {
        "yara" => &[Some(R::Yara)],
        "sigma" => &[Some(R::Sigma)],
        "md5" => &[Some(R::FileMd5)],
        "sha1" => &[Some(R::FileSha1)],
        "sha256" => &[Some(R::FileSha256)],
        "filename" => &[Some(R::FileName)],
        "pdb" => &[Some(R::PdbPath)],
        "filename|md5" => &[Some(R::FileName), Some(R::FileMd5)],
        "filename|sha1" => &[Some(R::FileName), Some(R::FileSha1)],
        "filename|sha256" => &[Some(R::FileName), Some(R::FileSha256)],
        "ip-src" | "ip-dst" => &[None],
        "ip-src|port" | "ip-dst|port" => &[None, Some(R::Text)],
        "hostname" => &[Some(R::Hostname)],
        "hostname|port" => &[Some(R::Hostname), Some(R::Text)],
        "domain" => &[Some(R::Domain)],
        "domain|ip" => &[Some(R::Domain), None],
        "email-subject" => &[Some(R::EmailSubject)],
        "email" | "email-src" | "email-dst" | "whois-registrant-email" => &[Some(R::EmailAddress)],
        "url" => &[Some(R::Url)],
        "windows-scheduled-task" => &[Some(R::WindowsScheduledTask)],
        "regkey" => &[Some(R::RegistryKey)],
        "user-agent" => &[Some(R::UserAgent)],
        "phone-number" => &[Some(R::PhoneNumber)],
        "text" => &[Some(R::Text)],
        "github-username" => &[Some(R::UserAccountGithub)],
        "full-name" => &[Some(R::IdentityIndividual)],
        _ => {
            if unsupported_as_text {
                return Some(vec![Resolved {
                    resolver: R::Text,
                    value: Cow::Owned(format!("{value} (type={kind})")),
                }]);
            }
            return None;
        }
    };
    if table.len() == 2 {
        let parts: Vec<&str> = value.split('|').collect();
        if parts.len() != 2 {
            return None;
        }
        Some(
            table
                .iter()
                .zip(parts)
                .map(|(resolver, part)| Resolved {
                    resolver: resolver.unwrap_or_else(|| ip_resolver(part)),
                    value: Cow::Borrowed(part),
                })
                .collect(),
        )
    } else {
        let resolver = table[0].unwrap_or_else(|| ip_resolver(value));
        Some(vec![Resolved {
            resolver,
            value: Cow::Borrowed(value),
        }])
    }
}

/// stix2's sanity check of a hash value (and the pattern validator's): hex of the
/// algorithm's length. Python's `$` also accepts one trailing newline.
pub(crate) fn valid_hash(resolver: Resolver, value: &str) -> bool {
    let expected = match resolver {
        Resolver::FileMd5 => 32,
        Resolver::FileSha1 => 40,
        Resolver::FileSha256 => 64,
        _ => return true,
    };
    let body = value.strip_suffix('\n').unwrap_or(value);
    body.len() == expected && body.bytes().all(|b| b.is_ascii_hexdigit())
}
