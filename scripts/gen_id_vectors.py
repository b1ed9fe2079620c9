#!/usr/bin/env python3
"""Regenerate tests/fixtures/id_vectors.json with the real pycti and stix2.

Usage (from the repository root):  python3 scripts/gen_id_vectors.py

When pycti==7.261026.0 and stix2==3.0.2 are not importable, scripts/pycti_env.py
creates `.venv/` at the repository root (git-ignored), installs them there and runs
this script again with that interpreter.
"""

import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pycti_env import ROOT, ensure_environment  # noqa: E402

OUTPUT = os.path.join(ROOT, "tests", "fixtures", "id_vectors.json")

ensure_environment(__file__)

import stix2  # noqa: E402
from pycti import (  # noqa: E402
    AttackPattern,
    Identity,
    Indicator,
    IntrusionSet,
    Location,
    Malware,
    MarkingDefinition,
    Note,
    Report,
    StixCoreRelationship,
    StixSightingRelationship,
    Tool,
)
from stix2.canonicalization.Canonicalize import canonicalize  # noqa: E402
from stix2.registry import STIX2_OBJ_MAPS  # noqa: E402

UTC = datetime.timezone.utc

NAMES = [
    "APT28",
    "  Fancy Bear  ",
    "MiXeD CaSe Name",
    'quote " and backslash \\ inside',
    "tab\there\nnewline\r\x01ctrl\x1f\x7f",
    "\x1c\x1dseparators\x1e\x1f",
    "\u00a0nbsp\u3000ideographic\u2028",
    "\u200bzero width",
    "Ünïcödé Ärger ÉTÉ",
    "ΟΔΥΣΣΕΥΣ final sigma",
    "İstanbul ǅungla ß ẞ",
    "emoji 🐻 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "日本語の名前",
    "",
    "   ",
    "a/b<c>&d'e",
]

DATETIMES = [
    datetime.datetime(2023, 1, 2, 0, 0, 0, tzinfo=UTC),
    datetime.datetime(1999, 12, 31, 23, 59, 59, 123456, tzinfo=UTC),
    datetime.datetime(2024, 2, 29, 12, 30, 0, 500000, tzinfo=UTC),
    datetime.datetime(
        2021, 6, 1, 8, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=-5, minutes=-30))
    ),
    datetime.datetime(
        2021, 6, 1, 8, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    ),
]

TIME_STRINGS = ["2023-01-02T03:04:05Z", "2023-01-02T03:04:05.000Z", "", "not a date"]


def encode_time(value):
    """How a time argument is written in the vectors: a string stays a string, a datetime
    becomes {"datetime": RFC 3339 text} so the Rust side can rebuild it."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return {"datetime": value.isoformat()}
    return value


def canonical_cases():
    values = [
        {"b": 1, "a": 2, "A": 3, "_": 4, "aa": 5, "é": 6, "\U0001f600": 7, "\uffff": 8},
        {"ints": [0, -1, 1, 9007199254740993, -9007199254740993, 123456789012345678901234567890]},
        {"floats": [0.0, -0.0, 1.0, 0.5, 1e21, 1e20, 1e-7, 1.5e-7, 0.000001, 1e-6, 123.456,
                    -2.5e300, 5e-324, 1.7976931348623157e308, 0.1 + 0.2, 1e16, 12345678901234567.0,
                    4.35, 100.0, 1e-5, 2.5e-5, 333333333.33333329, 1e15]},
        {"strings": NAMES},
        {"nested": {"z": [True, False, None, {"y": [], "x": {}}], "list": [[], [[]]]}},
        [],
        {},
        "plain string",
        42,
        3.14,
        True,
        None,
    ]
    return [{"input": v, "expected": canonicalize(v, utf8=False)} for v in values]


def pycti_cases():
    cases = []

    def add(function, args, expected):
        cases.append({"function": function, "args": args, "expected": expected})

    for name in NAMES:
        for published in DATETIMES + TIME_STRINGS:
            add("report", [name, encode_time(published)], Report.generate_id(name, published))
        add("indicator", [name], Indicator.generate_id(name))
        for identity_class in ["organization", "class", "Individual", "SYSTEM"]:
            add("identity", [name, identity_class], Identity.generate_id(name, identity_class))
        add("malware", [name], Malware.generate_id(name))
        add("intrusion_set", [name], IntrusionSet.generate_id(name))
        add("tool", [name], Tool.generate_id(name))
        for mitre in [None, "T1059.001", "  t1059 ", "", "   "]:
            add("attack_pattern", [name, mitre], AttackPattern.generate_id(name, mitre))
        for location_type in ["Country", "City", "Region", "Position"]:
            add("location", [name, location_type], Location.generate_id(name, location_type))
        for created in [None] + DATETIMES[:2] + TIME_STRINGS[:2]:
            add("note", [name, encode_time(created)], Note.generate_id(created, name))
        add("marking_definition", ["PAP", name], MarkingDefinition.generate_id("PAP", name))
    for definition_type, definition in [
        ("TLP", "TLP:CLEAR"),
        ("TLP", "TLP:WHITE"),
        ("TLP", "TLP:GREEN"),
        ("TLP", "TLP:AMBER"),
        ("TLP", "TLP:AMBER+STRICT"),
        ("TLP", "TLP:RED"),
        ("TLP", "TLP:PURPLE"),
        ("tlp", "TLP:RED"),
        ("PAP", "PAP:GREEN"),
        ("statement", "custom"),
    ]:
        add(
            "marking_definition",
            [definition_type, definition],
            MarkingDefinition.generate_id(definition_type, definition),
        )
    source = "indicator--0b1a4bd0-5b8e-5b8d-9d5c-0e7ab0c1f6a3"
    target = "ipv4-addr--8b7e1f2c-1f2e-5c8a-9a55-3d5e4f0a9b11"
    for relationship_type in ["based-on", "related-to", "uses", "Indicates"]:
        for start, stop in [
            (None, None),
            (DATETIMES[0], None),
            (DATETIMES[1], DATETIMES[2]),
            (None, DATETIMES[2]),
            (TIME_STRINGS[0], TIME_STRINGS[1]),
        ]:
            add(
                "relationship",
                [relationship_type, source, target, encode_time(start), encode_time(stop)],
                StixCoreRelationship.generate_id(relationship_type, source, target, start, stop),
            )
    where = "identity--d6a9a4b5-2f1c-5b6e-8f0a-1c2d3e4f5a6b"
    for where_sighted in [where, [where], [where, source]]:
        for first, last in [
            (None, None),
            ("2023-01-02T03:04:05Z", "2023-01-02T04:04:05Z"),
            ("2023-01-02T03:04:05Z", None),
            (None, "2023-01-02T04:04:05Z"),
            (DATETIMES[1], DATETIMES[0]),
        ]:
            add(
                "sighting",
                [source, where_sighted, encode_time(first), encode_time(last)],
                StixSightingRelationship.generate_id(source, where_sighted, first, last),
            )
    data_cases = [
        ("vulnerability", {"name": "cve-2021-44228"}),
        ("x-custom", {"b": [1, 2.5, "x"], "a": {"nested": True}}),
        ("channel", {"name": NAMES[4]}),
    ]
    for stix_type, data in data_cases:
        import uuid

        add(
            "pycti_id",
            [stix_type, data],
            stix_type
            + "--"
            + str(
                uuid.uuid5(
                    uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7"),
                    canonicalize(data, utf8=False),
                )
            ),
        )
    return cases


MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
SHA512 = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"


def sco_cases():
    observables = STIX2_OBJ_MAPS["2.1"]["observables"]
    specs = [
        ("domain-name", {"value": "example.com"}),
        ("domain-name", {"value": "ÜNICODE.example"}),
        ("ipv4-addr", {"value": "192.0.2.1"}),
        ("ipv4-addr", {"value": "192.0.2.0/24", "x_opencti_score": 50}),
        ("ipv6-addr", {"value": "2001:db8::1"}),
        ("url", {"value": 'http://example.com/a?b="c"&d=\\e'}),
        ("email-addr", {"value": "Foo@Example.com"}),
        ("email-message", {"subject": "Hello\tworld", "is_multipart": True}),
        ("mutex", {"name": "Global\\Mutex"}),
        ("mac-addr", {"value": "00:11:22:33:44:55"}),
        ("autonomous-system", {"number": 64500}),
        ("autonomous-system", {"number": 4294967295}),
        ("directory", {"path": "C:\\Windows\\System32"}),
        ("windows-registry-key", {"key": "HKEY_LOCAL_MACHINE\\Software\\X"}),
        ("user-account", {"account_login": "alice"}),
        ("user-account", {"account_login": "alice", "account_type": "github"}),
        ("file", {"name": "evil.exe"}),
        ("file", {"hashes": {"MD5": MD5}}),
        ("file", {"hashes": {"SHA-256": SHA256, "SHA-1": SHA1}}),
        ("file", {"hashes": {"SHA-512": SHA512, "SHA-256": SHA256}}),
        ("file", {"hashes": {"sha256": SHA256}}),
        ("file", {"hashes": {"md5": MD5, "SHA-256": SHA256}}),
        ("file", {"hashes": {"SSDEEP": "3:a+JraNvsgzsVqSwHq9:tJuOgzsko", "TLSH": "a" * 70}}),
        ("file", {"hashes": {"SHA3-256": SHA256}}),
        ("file", {"name": "a.exe", "hashes": {"SHA-1": SHA1}}),
        ("software", {"name": "Word", "vendor": "Microsoft", "version": "16.0"}),
        ("network-traffic", {"src_ref": "ipv4-addr--8b7e1f2c-1f2e-5c8a-9a55-3d5e4f0a9b11", "src_port": 443, "dst_port": 51000, "protocols": ["tcp", "tls"]}),
        ("x509-certificate", {"serial_number": "01:02:03"}),
        ("x509-certificate", {"hashes": {"SHA-1": SHA1}, "serial_number": "0a"}),
        ("hostname", {"value": "host.example"}),
        ("text", {"value": "some free text \"quoted\"\n"}),
        ("text", {"value": ""}),
        ("phone-number", {"value": "+33 1 23 45 67 89"}),
        ("user-agent", {"value": "Mozilla/5.0 (X11; Linux)"}),
        ("cryptocurrency-wallet", {"value": "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"}),
        ("bank-account", {"value": "FR76 bank", "iban": "FR7630006000011234567890189"}),
        ("payment-card", {"value": "card", "card_number": "4111111111111111"}),
        ("media-content", {"url": "https://example.com/post"}),
        ("persona", {"persona_name": "Bob", "persona_type": "twitter"}),
        ("credential", {"value": "p@ss"}),
        ("tracking-number", {"value": "1Z999"}),
        ("cryptographic-key", {"value": "ABCDEF"}),
        ("ssh-key", {"value": "ssh-ed25519 AAAA"}),
        ("artifact", {"payload_bin": "aGVsbG8="}),
    ]
    cases = []
    for stix_type, properties in specs:
        obj = observables[stix_type](allow_custom=True, **properties)
        cases.append({"type": stix_type, "properties": properties, "expected": obj.id})
    return cases


def tlp_cases():
    return {
        "white": stix2.TLP_WHITE.id,
        "green": stix2.TLP_GREEN.id,
        "amber": stix2.TLP_AMBER.id,
        "red": stix2.TLP_RED.id,
    }


def main():
    import pycti

    vectors = {
        "generator": "scripts/gen_id_vectors.py",
        "pycti_version": pycti.__version__,
        "stix2_version": stix2.__version__,
        "canonical": canonical_cases(),
        "pycti": pycti_cases(),
        "sco": sco_cases(),
        "tlp": tlp_cases(),
    }
    with open(OUTPUT, "w", encoding="utf-8") as handle:
        json.dump(vectors, handle, ensure_ascii=False, indent=1)
        handle.write("\n")
    print(
        "wrote %s: %d canonical, %d pycti, %d sco"
        % (OUTPUT, len(vectors["canonical"]), len(vectors["pycti"]), len(vectors["sco"]))
    )


if __name__ == "__main__":
    main()
