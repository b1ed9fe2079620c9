//! `check` and `load` over small lists written in MISP's format.

use serde_json::{Value, json};

use super::*;

struct Folder {
    dir: tempfile::TempDir,
}

impl Folder {
    fn new() -> Folder {
        Folder {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `lists/<folder>/list.json`.
    fn list(&self, folder: &str, body: Value) -> &Folder {
        let path = self.dir.path().join("lists").join(folder);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("list.json"), body.to_string()).unwrap();
        self
    }

    fn load(&self) -> Warninglists {
        Warninglists::load(self.dir.path()).unwrap_or_else(|error| panic!("{error}"))
    }

    fn error(&self) -> WarninglistError {
        Warninglists::load(self.dir.path()).expect_err("the load fails")
    }
}

fn list(name: &str, kind: &str, types: &[&str], entries: &[&str]) -> Value {
    json!({
        "name": name,
        "version": 1,
        "description": format!("{name}, written for the tests"),
        "type": kind,
        "matching_attributes": types,
        "list": entries,
    })
}

/// The name of the list that `value` hits as `attribute_type`.
fn hit(lists: &Warninglists, attribute_type: &str, value: &str) -> Option<String> {
    lists
        .check(attribute_type, value)
        .map(|hit| hit.list.name.clone())
}

const IP_TYPES: &[&str] = &[
    "ip-src",
    "ip-dst",
    "domain|ip",
    "ip-src|port",
    "ip-dst|port",
];

#[test]
fn a_string_list_matches_exact_values_of_its_types_only() {
    let folder = Folder::new();
    folder.list(
        "hashes",
        list(
            "hashes",
            "string",
            &["md5", "filename|md5"],
            &["d41d8cd98f00b204e9800998ecf8427e"],
        ),
    );
    let lists = folder.load();
    assert_eq!(
        hit(&lists, "md5", "d41d8cd98f00b204e9800998ecf8427e").as_deref(),
        Some("hashes")
    );
    assert_eq!(hit(&lists, "md5", "d41d8cd98f00b204e9800998ecf8427f"), None);
    assert_eq!(
        hit(&lists, "sha1", "d41d8cd98f00b204e9800998ecf8427e"),
        None,
        "not its type"
    );
    assert_eq!(
        hit(&lists, "md5", "D41D8CD98F00B204E9800998ECF8427E ").as_deref(),
        Some("hashes"),
        "MISP stores hashes trimmed and lower-cased"
    );
    assert_eq!(
        hit(
            &lists,
            "filename|md5",
            "empty.txt|d41d8cd98f00b204e9800998ecf8427e"
        )
        .as_deref(),
        Some("hashes"),
        "the hash part of a composite value"
    );
    assert_eq!(
        hit(&lists, "text", "d41d8cd98f00b204e9800998ecf8427e"),
        None
    );
}

#[test]
fn composite_values_are_split_at_the_first_bar_and_each_part_checked() {
    let folder = Folder::new();
    folder
        .list(
            "private",
            list("private", "cidr", IP_TYPES, &["10.0.0.0/8", "fc00::/7"]),
        )
        .list(
            "local",
            list(
                "local",
                "hostname",
                &["domain|ip", "domain"],
                &["example.test"],
            ),
        );
    let lists = folder.load();
    assert_eq!(
        hit(&lists, "ip-src|port", "10.1.1.1|443").as_deref(),
        Some("private")
    );
    assert_eq!(
        hit(&lists, "ip-dst|port", "fd00::1|53").as_deref(),
        Some("private")
    );
    assert_eq!(
        hit(&lists, "ip-src|port", "8.8.8.8|10"),
        None,
        "the port is no address"
    );
    assert_eq!(
        hit(&lists, "domain|ip", "evil.example|10.0.0.5").as_deref(),
        Some("private")
    );
    assert_eq!(
        hit(&lists, "domain|ip", "a.example.test|8.8.8.8").as_deref(),
        Some("local")
    );
    assert_eq!(hit(&lists, "domain|ip", "evil.example|8.8.8.8"), None);
    assert_eq!(
        hit(&lists, "ip-src", "10.1.1.1|443"),
        None,
        "a plain type is not split"
    );
}

#[test]
fn the_first_list_in_load_order_wins_and_its_first_matching_part() {
    let folder = Folder::new();
    folder
        .list(
            "b-private",
            list("Private", "cidr", IP_TYPES, &["10.0.0.0/8"]),
        )
        .list(
            "a-names",
            list("Names", "hostname", &["domain|ip"], &["example.test"]),
        )
        .list("c-all", list("Everything", "substring", &[], &["example"]));
    let lists = folder.load();
    let names: Vec<&str> = lists
        .lists()
        .iter()
        .map(|list| list.name.as_str())
        .collect();
    assert_eq!(names, ["Names", "Private", "Everything"], "file name order");
    let found = lists.check("domain|ip", "x.example.test|10.0.0.1").unwrap();
    assert_eq!(
        (found.list.name.as_str(), found.entry),
        ("Names", "example.test")
    );
    let found = lists.check("domain|ip", "other.example|10.0.0.1").unwrap();
    assert_eq!(
        (found.list.name.as_str(), found.entry),
        ("Private", "10.0.0.0/8")
    );
    assert!(found.list.file.ends_with("lists/b-private/list.json"));
}

#[test]
fn within_one_list_the_first_part_is_the_match() {
    let folder = Folder::new();
    folder.list("both", list("Both", "string", &[], &["second", "first"]));
    let lists = folder.load();
    let found = lists.check("x|y", "first|second").unwrap();
    assert_eq!(found.entry, "first");
    let found = lists.check("malware-sample", "second|first").unwrap();
    assert_eq!(found.entry, "second", "malware-sample is composite too");
    assert_eq!(hit(&lists, "text", "first|second"), None);
}

#[test]
fn a_list_without_matching_attributes_or_with_all_applies_to_every_type() {
    let folder = Folder::new();
    folder
        .list(
            "none",
            json!({"name": "None given", "description": "d", "list": ["x"]}),
        )
        .list("all", list("All", "string", &["ALL"], &["y"]));
    let lists = folder.load();
    assert_eq!(hit(&lists, "comment", "x").as_deref(), Some("None given"));
    assert_eq!(hit(&lists, "anything-at-all", "y").as_deref(), Some("All"));
    assert_eq!(
        lists.lists()[1].kind,
        ListKind::String,
        "a missing type is string"
    );
}

#[test]
fn hostname_lists_match_subdomains_and_urls() {
    let folder = Folder::new();
    folder.list(
        "bio",
        list(
            "Bio",
            "hostname",
            &["domain", "hostname", "url"],
            &[".Bio.FM", "linktr.ee."],
        ),
    );
    let lists = folder.load();
    for (kind, value) in [
        ("domain", "bio.fm"),
        ("domain", "Shop.Bio.fm"),
        ("hostname", "a.b.linktr.ee"),
        ("url", "https://linktr.ee/someone"),
        ("url", "linktr.ee/someone"),
    ] {
        assert_eq!(
            hit(&lists, kind, value).as_deref(),
            Some("Bio"),
            "{kind} {value}"
        );
    }
    for (kind, value) in [
        ("domain", "notbio.fm"),
        ("url", "https://evil.example/linktr.ee"),
        ("url", "https://linktr.ee:8443/x"),
    ] {
        assert_eq!(hit(&lists, kind, value), None, "{kind} {value}");
    }
}

#[test]
fn substring_lists_match_anywhere_case_included() {
    let folder = Folder::new();
    folder.list(
        "sandboxes",
        list(
            "Sandboxes",
            "substring",
            &["url", "domain"],
            &["any.run", "0", ""],
        ),
    );
    let lists = folder.load();
    assert_eq!(lists.lists()[0].entries, 1, "MISP drops \"\" and \"0\"");
    assert_eq!(
        hit(&lists, "url", "https://app.any.run/tasks").as_deref(),
        Some("Sandboxes")
    );
    assert_eq!(hit(&lists, "url", "https://APP.ANY.RUN/"), None);
    assert_eq!(hit(&lists, "url", "https://example.com/0"), None);
}

#[test]
fn regex_lists_match_with_php_delimiters_and_refuse_what_php_refuses() {
    let folder = Folder::new();
    folder.list(
        "contacts",
        list(
            "Contacts",
            "regex",
            &["email-src", "email-dst"],
            &[r"/^(security|abuse)\@.*\..*$/i", "#^noc@#", "/^555/g"],
        ),
    );
    let lists = folder.load();
    assert_eq!(
        hit(&lists, "email-dst", "Security@Example.org").as_deref(),
        Some("Contacts")
    );
    assert_eq!(
        hit(&lists, "email-src", "noc@example.org").as_deref(),
        Some("Contacts")
    );
    assert_eq!(hit(&lists, "email-src", "ceo@example.org"), None);
    assert_eq!(lists.lists()[0].entries, 2);
    assert_eq!(lists.warnings().len(), 1, "{:?}", lists.warnings());
    assert!(lists.warnings()[0].contains("list[2]") && lists.warnings()[0].contains("'g'"));
}

#[test]
fn a_regex_php_takes_but_the_engine_cannot_stops_the_load_naming_the_entry() {
    let folder = Folder::new();
    folder.list("bad", list("Bad", "regex", &[], &["/ok/", r"/(a)\1/"]));
    match folder.error() {
        WarninglistError::Field {
            file,
            field,
            problem,
        } => {
            assert!(file.ends_with("lists/bad/list.json"));
            assert_eq!(field, "list[1]");
            assert!(problem.contains(r"(a)\\1"), "{problem}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn cidr_lists_warn_of_entries_misp_never_matches_and_refuse_bad_ones() {
    let folder = Folder::new();
    folder.list(
        "odd",
        list("Odd", "cidr", IP_TYPES, &["10.0.0.1/8", "192.168.0.0/16"]),
    );
    let lists = folder.load();
    assert_eq!(hit(&lists, "ip-dst", "10.0.0.1"), None);
    assert_eq!(hit(&lists, "ip-dst", "192.168.1.1").as_deref(), Some("Odd"));
    assert!(
        lists.warnings()[0].contains("10.0.0.1/8"),
        "{:?}",
        lists.warnings()
    );

    let folder = Folder::new();
    folder.list(
        "bad",
        list("Bad", "cidr", IP_TYPES, &["10.0.0.0/8", "10.0.0.0/40"]),
    );
    let error = folder.error().to_string();
    assert!(
        error.contains("list[1]") && error.contains("10.0.0.0/40"),
        "{error}"
    );
}

#[test]
fn an_unknown_type_is_skipped_with_a_warning_naming_the_list() {
    let folder = Folder::new();
    folder
        .list("asn", list("Some ASNs", "asn", &["AS"], &["AS13335"]))
        .list("ok", list("Fine", "string", &["AS"], &["AS64496"]));
    let lists = folder.load();
    assert_eq!(lists.lists().len(), 1);
    assert_eq!(hit(&lists, "AS", "AS13335"), None);
    assert_eq!(hit(&lists, "AS", "AS64496").as_deref(), Some("Fine"));
    let warning = &lists.warnings()[0];
    assert!(
        warning.contains("lists/asn/list.json") && warning.contains("\"asn\""),
        "{warning}"
    );
}

#[test]
fn an_empty_list_loads_with_a_warning_and_matches_nothing() {
    let folder = Folder::new();
    folder.list("empty", list("Empty", "substring", &[], &["", "0"]));
    let lists = folder.load();
    assert_eq!(hit(&lists, "text", "anything 0"), None);
    assert_eq!(lists.warnings().len(), 1);
    assert!(
        lists.warnings()[0].contains("has no entries"),
        "{:?}",
        lists.warnings()
    );
}

#[test]
fn a_bad_list_stops_the_load_naming_file_and_field() {
    let folder = Folder::new();
    folder
        .list("good", list("Good", "string", &[], &["a"]))
        .list(
            "bad",
            json!({"name": "Bad", "description": "d", "list": ["a", {"x": 1}]}),
        );
    let error = folder.error();
    let text = error.to_string();
    assert!(
        text.contains("lists/bad/list.json") && text.contains("list[1]"),
        "{text}"
    );
    assert!(!text.contains('\n'));
}

#[test]
fn two_lists_of_one_name_stop_the_load_naming_both_files() {
    let folder = Folder::new();
    folder
        .list("one", list("Same", "string", &[], &["a"]))
        .list("two", list("Same", "string", &[], &["b"]));
    let text = folder.error().to_string();
    assert!(
        text.contains("lists/one/list.json") && text.contains("lists/two/list.json"),
        "{text}"
    );
}

#[test]
fn no_list_applies_to_a_type_nothing_names() {
    let folder = Folder::new();
    folder.list("ips", list("IPs", "cidr", IP_TYPES, &["0.0.0.0/0"]));
    let lists = folder.load();
    assert_eq!(hit(&lists, "text", "10.0.0.1"), None);
    assert_eq!(hit(&lists, "ip-dst", "203.0.113.1").as_deref(), Some("IPs"));
}

#[test]
fn list_information_is_kept_for_the_operator() {
    let folder = Folder::new();
    folder.list(
        "ips",
        list(
            "IPs",
            "cidr",
            &["ip-dst"],
            &["10.0.0.0/8", "10.0.0.0/8", ""],
        ),
    );
    let lists = folder.load();
    let info = &lists.lists()[0];
    assert_eq!(info.kind, ListKind::Cidr);
    assert_eq!(info.version, "1");
    assert_eq!(info.description, "IPs, written for the tests");
    assert_eq!(info.matching_attributes, ["ip-dst"]);
    assert_eq!(info.entries, 2);
    assert!(format!("{lists:?}").contains("IPs"));
}

#[test]
fn the_lists_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Warninglists>();
}

#[test]
fn a_list_saved_with_a_byte_order_mark_loads() {
    let folder = Folder::new();
    let path = folder.dir.path().join("lists").join("marked");
    std::fs::create_dir_all(&path).unwrap();
    let body = list("Marked", "string", &["domain"], &["example.org"]).to_string();
    std::fs::write(path.join("list.json"), format!("\u{feff}{body}")).unwrap();
    let lists = folder.load();
    assert_eq!(
        hit(&lists, "domain", "example.org").as_deref(),
        Some("Marked")
    );
}
