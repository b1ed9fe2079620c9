#!/usr/bin/env python3
"""Regenerate tests/fixtures/opencti/splitter_vectors.json with pycti's real splitter.

Usage (from the repository root):  python3 scripts/gen_splitter_vectors.py
(see scripts/pycti_env.py for how the pinned pycti is provided).

Each case is a small bundle built to reach one corner of
`OpenCTIStix2Splitter.split_bundle_with_expectations` (cycles, self and duplicate refs,
unsupported or missing targets, internal ids, de-duplication of external references and
kill chain phases, incompatible objects, non-ASCII text, numbers, event version, cleanup).
The file records the input text and pycti's exact output.
"""

import copy
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pycti_env import ROOT, ensure_environment  # noqa: E402

OUTPUT = os.path.join(ROOT, "tests", "fixtures", "opencti", "splitter_vectors.json")

ensure_environment(__file__)

from pycti.utils.opencti_stix2_splitter import OpenCTIStix2Splitter  # noqa: E402

EXT = "extension-definition--ea279b3e-5c71-4632-ac08-831c66a786ba"
AUTHOR = "identity--00000000-0000-4000-8000-000000000001"
MARKING = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"


def ident(n):
    return {"type": "identity", "id": "identity--%08d-0000-4000-8000-000000000000" % n,
            "name": "Org %d" % n, "identity_class": "organization"}


def note(n, refs):
    return {"type": "note", "id": "note--%08d-0000-4000-8000-000000000000" % n,
            "content": "note %d" % n, "object_refs": refs}


def nid(n):
    return "note--%08d-0000-4000-8000-000000000000" % n


def rel(n, source, target, **extra):
    obj = {"type": "relationship", "id": "relationship--%08d-0000-4000-8000-000000000000" % n,
           "relationship_type": "related-to", "source_ref": source, "target_ref": target}
    obj.update(extra)
    return obj


def author():
    return {"type": "identity", "spec_version": "2.1", "id": AUTHOR, "name": "Author",
            "identity_class": "organization"}


def marking():
    return {"type": "marking-definition", "id": MARKING, "definition_type": "tlp",
            "definition": {"tlp": "white"}}


def cases():
    out = []

    def add(name, objects, bundle_id="bundle--11111111-2222-4333-8444-555555555555",
            event_version=None, cleanup=False, extra_bundle=None):
        bundle = {"type": "bundle", "id": bundle_id, "objects": objects}
        if extra_bundle:
            bundle.update(extra_bundle)
        out.append({"name": name, "bundle": json.dumps(bundle, indent=1, ensure_ascii=False),
                    "event_version": event_version, "cleanup_inconsistent_bundle": cleanup})

    add("two_cycle", [note(1, [nid(2)]), note(2, [nid(1)])])
    add("three_cycle", [note(1, [nid(2)]), note(2, [nid(3)]), note(3, [nid(1)])])
    add("three_cycle_entered_late", [author(), note(3, [nid(1), AUTHOR]), note(1, [nid(2)]),
                                     note(2, [nid(3), AUTHOR])])
    add("self_and_duplicate_refs", [author(), marking(),
                                    dict(note(1, [nid(1), AUTHOR, AUTHOR, MARKING, AUTHOR]),
                                         created_by_ref=AUTHOR, object_marking_refs=[MARKING, MARKING])])
    add("unsupported_and_missing_refs", [author(), dict(
        note(1, ["x-misp-object--00000000-0000-4000-8000-000000000009", "identity--missing",
                 "no-dashes-ref", AUTHOR]),
        created_by_ref="x-custom--00000000-0000-4000-8000-000000000001",
        sample_ref="identity--missing")])
    add("unsupported_and_missing_refs_cleanup", [author(), dict(
        note(1, ["x-misp-object--00000000-0000-4000-8000-000000000009", "identity--missing",
                 "no-dashes-ref", AUTHOR]),
        created_by_ref="identity--missing")], cleanup=True)
    add("relationships", [
        ident(1), ident(2),
        rel(1, ident(1)["id"], ident(2)["id"]),
        rel(2, ident(1)["id"], "x-custom--00000000-0000-4000-8000-000000000001"),
        rel(3, "identity--missing", ident(2)["id"]),
        rel(4, ident(1)["id"], ident(1)["id"]),
        rel(5, None, ident(2)["id"]),
        rel(6, "relationship--00000001-0000-4000-8000-000000000000", ident(2)["id"]),
    ])
    add("relationships_cleanup", [ident(1), rel(3, "identity--missing", ident(1)["id"])],
        cleanup=True)
    add("sightings", [
        ident(1), {"type": "indicator", "id": "indicator--00000000-0000-4000-8000-000000000001",
                   "pattern": "[ipv4-addr:value = '192.0.2.1']"},
        {"type": "sighting", "id": "sighting--00000000-0000-4000-8000-000000000001",
         "sighting_of_ref": "indicator--00000000-0000-4000-8000-000000000001",
         "where_sighted_refs": [ident(1)["id"]]},
        {"type": "sighting", "id": "sighting--00000000-0000-4000-8000-000000000002",
         "sighting_of_ref": "indicator--00000000-0000-4000-8000-000000000001"},
        {"type": "sighting", "id": "sighting--00000000-0000-4000-8000-000000000003",
         "sighting_of_ref": "indicator--00000000-0000-4000-8000-000000000001",
         "where_sighted_refs": ["x-custom--00000000-0000-4000-8000-000000000001"]},
    ])
    add("unsupported_object_types", [
        {"type": "x-misp-object", "id": "x-misp-object--00000000-0000-4000-8000-000000000001",
         "name": "custom"},
        ident(1),
    ])
    add("external_references_and_kill_chains", [{
        "type": "attack-pattern", "id": "attack-pattern--00000000-0000-4000-8000-000000000001",
        "name": "AP",
        "external_references": [
            {"source_name": "mitre-attack", "external_id": "T1059", "url": "https://a/T1059"},
            {"source_name": "other", "url": "https://a/T1059"},
            {"source_name": "mitre-attack", "external_id": "T1059"},
            {"source_name": "mitre-attack", "external_id": "T1059", "description": "dup"},
            {"source_name": "only source"},
            {"description": "nothing"},
            {"source_name": "s", "external_id": "e", "url": None},
        ],
        "kill_chain_phases": [
            {"kill_chain_name": "mitre-attack", "phase_name": "execution"},
            {"phase_name": "execution", "kill_chain_name": "mitre-attack"},
            {"kill_chain_name": "mitre-attack", "phase_name": "persistence"},
            {"kill_chain_name": "mitre-attack"},
            {"kill_chain_name": "mitre-attack"},
        ],
    }, {"type": "malware", "id": "malware--00000000-0000-4000-8000-000000000001", "name": "M",
        "external_references": [], "kill_chain_phases": None, "is_family": False}])
    add("internal_ids", [
        note(1, ["internal-id-of-2", "internal-ext-id-of-3"]),
        dict(ident(2), x_opencti_id="internal-id-of-2"),
        dict(ident(3), extensions={EXT: {"id": "internal-ext-id-of-3", "extension_type": "property-extension"}}),
        note(4, [ident(2)["id"]]),
    ])
    add("duplicate_object_ids", [
        dict(ident(1), name="first"), author(), dict(ident(1), name="second", created_by_ref=AUTHOR),
    ])
    add("diamond", [author(), marking(),
                    dict(ident(1), created_by_ref=AUTHOR, object_marking_refs=[MARKING]),
                    dict(ident(2), created_by_ref=AUTHOR, object_marking_refs=[MARKING]),
                    rel(1, ident(1)["id"], ident(2)["id"], created_by_ref=AUTHOR,
                        object_marking_refs=[MARKING]),
                    note(1, [rel(1, "", "")["id"], ident(1)["id"], ident(2)["id"]])])
    chain = [note(i, [nid(i + 1)]) for i in range(1, 60)] + [note(60, [])]
    add("long_chain", chain)
    add("text_and_numbers", [dict(
        ident(1),
        name="Ünïcödé \"quoted\" \\ back\tslash\n 日本 🐻 \x7f",
        x_opencti_score=50, x_float=1.5, x_float_whole=100.0, x_small=1e-05, x_big=1e16,
        x_neg=-0.0, x_huge_int=12345678901234567, x_bool=True, x_null=None,
        x_nested={"b": [1, {"c": "d"}], "a": {}}, x_empty_list=[],
        nb_deps=99,
    )])
    add("event_version", [author()], event_version="1700000000")
    add("ref_members_of_odd_shapes", [author(), dict(
        note(1, None), created_by_ref=None, x_any_refs=[], granular_markings=[{"marking_ref": MARKING}])])
    return out


def main():
    result = []
    for case in cases():
        splitter = OpenCTIStix2Splitter()
        expectations, incompatible, bundles = splitter.split_bundle_with_expectations(
            bundle=case["bundle"], use_json=True, event_version=case["event_version"],
            cleanup_inconsistent_bundle=case["cleanup_inconsistent_bundle"],
        )
        case = copy.deepcopy(case)
        case["expectations"] = expectations
        case["incompatible_ids"] = [item["id"] for item in incompatible]
        case["bundles"] = bundles
        result.append(case)
    with open(OUTPUT, "w", encoding="utf-8") as handle:
        json.dump({"generator": "scripts/gen_splitter_vectors.py", "cases": result}, handle,
                  ensure_ascii=False, indent=1)
        handle.write("\n")
    print("wrote %d cases" % len(result))


if __name__ == "__main__":
    main()
