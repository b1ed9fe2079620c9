//! Warninglists: the real lists of MISP's repository in `fixtures/warninglists`, loaded as a
//! checkout is, and values checked against them as MISP checks them.

use std::path::PathBuf;

use misp_feed::warninglists::{ListKind, Warninglists};

fn real_lists() -> Warninglists {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/warninglists");
    Warninglists::load(&folder).unwrap_or_else(|error| panic!("{error}"))
}

/// The list `value` hits as `attribute_type`, by its folder (`lists/<folder>/list.json`).
fn hit_folder(lists: &Warninglists, attribute_type: &str, value: &str) -> Option<String> {
    let hit = lists.check(attribute_type, value)?;
    let folder = hit.list.file.parent()?.file_name()?;
    Some(folder.to_string_lossy().into_owned())
}

#[test]
fn the_real_lists_load_in_the_repository_layout_with_their_types() {
    let lists = real_lists();
    assert!(lists.warnings().is_empty(), "{:?}", lists.warnings());
    let loaded: Vec<(String, ListKind)> = lists
        .lists()
        .iter()
        .map(|list| {
            let folder = list.file.parent().unwrap().file_name().unwrap();
            (folder.to_string_lossy().into_owned(), list.kind)
        })
        .collect();
    let expected = [
        ("automated-malware-analysis", ListKind::Substring),
        ("common-contact-emails", ListKind::Regex),
        ("eicar.com", ListKind::String),
        ("empty-hashes", ListKind::String),
        ("link-in-bio", ListKind::Hostname),
        ("multicast", ListKind::Cidr),
        ("rfc1918", ListKind::Cidr),
        ("rfc6761", ListKind::String),
    ];
    let expected: Vec<(String, ListKind)> = expected
        .iter()
        .map(|(folder, kind)| (folder.to_string(), *kind))
        .collect();
    assert_eq!(loaded, expected);
    let rfc1918 = &lists.lists()[6];
    assert_eq!(rfc1918.name, "List of RFC 1918 CIDR blocks");
    assert_eq!(rfc1918.entries, 3);
}

#[test]
fn values_on_the_real_lists_are_found_on_the_right_list() {
    let lists = real_lists();
    for (attribute_type, value, folder) in [
        ("ip-dst", "10.20.30.40", "rfc1918"),
        ("ip-src", "172.31.255.254", "rfc1918"),
        ("ip-src|port", "192.168.1.10|8080", "rfc1918"),
        ("domain|ip", "intranet.example.net|192.168.0.1", "rfc1918"),
        ("ip-dst", "10.0.0.0/16", "rfc1918"),
        ("ip-dst", "224.0.0.251", "multicast"),
        ("ip-dst|port", "239.255.255.250|1900", "multicast"),
        ("md5", "d41d8cd98f00b204e9800998ecf8427e", "empty-hashes"),
        (
            "sha256",
            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "empty-hashes",
        ),
        (
            "filename|sha1",
            "empty.bin|da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "empty-hashes",
        ),
        ("ssdeep", "3::", "empty-hashes"),
        ("md5", "44d88612fea8a8f36de82e1278abb02f", "eicar.com"),
        (
            "filename|sha1",
            "eicar.com|3395856ce81f2b7382dee72602f798b642f14140",
            "eicar.com",
        ),
        ("email-dst", "abuse@example.org", "common-contact-emails"),
        ("email-src", "SOC@Corp.Example.com", "common-contact-emails"),
        (
            "target-email",
            "security@mail.example.net",
            "common-contact-emails",
        ),
        (
            "url",
            "https://app.any.run/tasks/0f1e2d3c",
            "automated-malware-analysis",
        ),
        ("domain", "www.virustotal.com", "automated-malware-analysis"),
        ("domain", "someone.linktr.ee", "link-in-bio"),
        ("url", "https://bio.site/artist", "link-in-bio"),
        ("hostname", "bit.ly", "link-in-bio"),
        ("domain", "example.com", "rfc6761"),
        ("hostname", "10.in-addr.arpa", "rfc6761"),
    ] {
        assert_eq!(
            hit_folder(&lists, attribute_type, value).as_deref(),
            Some(folder),
            "{attribute_type} {value}"
        );
    }
}

#[test]
fn values_off_the_lists_or_of_other_types_are_not_found() {
    let lists = real_lists();
    for (attribute_type, value) in [
        ("ip-dst", "8.8.8.8"),
        ("ip-dst", "172.32.0.1"),
        ("ip-dst", "10.0.0.0/7"),
        ("ip-dst", "::ffff:10.0.0.1"),
        ("md5", "0cc175b9c0f1b6a831c399e269772661"),
        ("text", "d41d8cd98f00b204e9800998ecf8427e"),
        ("filename", "10.0.0.1"),
        ("email-dst", "john.doe@example.org"),
        ("email-dst", "abuse@localhost"),
        ("url", "https://APP.ANY.RUN/tasks"),
        ("domain", "notbio.fm"),
        ("domain", "www.example.com"),
        ("url", "https://example.com/"),
        ("ip-src|port", "8.8.8.8|10"),
    ] {
        assert_eq!(
            hit_folder(&lists, attribute_type, value),
            None,
            "{attribute_type} {value}"
        );
    }
}

#[test]
fn a_value_on_two_lists_hits_the_first_in_file_order() {
    let lists = real_lists();
    let hit = lists.check("domain|ip", "bio.fm|10.0.0.1").unwrap();
    assert_eq!(hit.list.name, "List of known link in Bio domains");
    assert_eq!(hit.entry, "bio.fm");
    let hit = lists.check("domain|ip", "intranet.test|10.0.0.1").unwrap();
    assert_eq!(hit.list.name, "List of RFC 1918 CIDR blocks");
    assert_eq!(hit.entry, "10.0.0.0/8");
}

#[test]
fn the_lists_folder_itself_loads_as_well_as_the_checkout() {
    let folder =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/warninglists/lists");
    let lists = Warninglists::load(&folder).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(lists.lists().len(), real_lists().lists().len());
    assert!(lists.check("ip-dst", "192.168.7.7").is_some());
}
