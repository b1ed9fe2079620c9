#!/usr/bin/env python3
"""Builds the events of tests/fixtures/shapes/: real MISP events (tests/fixtures/misp/events)
carrying real galaxy clusters (a checkout of MISP/misp-galaxy), laid out as MISP writes them.

Usage:
    scripts/gen_shape_fixtures.py --galaxy MISP_GALAXY_CHECKOUT --oracle-inputs DIR

Writes tests/fixtures/shapes/events/<name>.json, and DIR/<name>.json: what the Python
connector is run on (scripts/convert_oracle.py) to make tests/fixtures/shapes/bundles/. That
is the event itself, except where the connector cannot read the shape at all (it iterates a
tag list written as an object over its keys and fails): there it is the same event with lists.
"""
import argparse
import copy
import json
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests/fixtures/shapes/events")
parser = argparse.ArgumentParser()
parser.add_argument("--galaxy", required=True, help="a checkout of MISP/misp-galaxy")
parser.add_argument("--oracle-inputs", required=True)
args = parser.parse_args()
GALAXY = args.galaxy
ORACLE_IN = args.oracle_inputs
os.makedirs(OUT, exist_ok=True)
os.makedirs(ORACLE_IN, exist_ok=True)

def load(name):
    return json.load(open(os.path.join(REPO, "tests/fixtures/misp/events", name)))

def galaxy_file(kind):
    return json.load(open(os.path.join(GALAXY, "galaxies", kind + ".json")))

def cluster_file(kind):
    return json.load(open(os.path.join(GALAXY, "clusters", kind + ".json")))

next_id = [900]
def new_id():
    next_id[0] += 1
    return str(next_id[0])

def export_meta(meta):
    """MISP's GalaxyCluster::postprocess: every meta value becomes a list of its elements."""
    out = {}
    for key, value in meta.items():
        out[key] = list(value) if isinstance(value, list) else [value]
    return out

def galaxy_json_meta(meta):
    """MISP's galaxy export (Galaxy.php): one element is a text, several a list."""
    out = {}
    for key, value in meta.items():
        if isinstance(value, list) and len(value) == 1:
            out[key] = value[0]
        else:
            out[key] = value
    return out

def cluster(kind, value, layout):
    clusters = cluster_file(kind)
    found = [v for v in clusters["values"] if v["value"] == value][0]
    tag = 'misp-galaxy:%s="%s"' % (clusters["type"], value)
    meta = found.get("meta", {})
    if layout == "export":
        meta = export_meta(meta) if meta else []
    else:
        meta = galaxy_json_meta(meta)
    return {
        "id": new_id(),
        "collection_uuid": clusters["uuid"],
        "type": clusters["type"],
        "value": value,
        "tag_name": tag,
        "description": found.get("description", ""),
        "galaxy_id": "0",
        "source": clusters.get("source", ""),
        "authors": clusters.get("authors", []),
        "version": str(clusters.get("version", "")),
        "uuid": found.get("uuid", ""),
        "tag_id": new_id(),
        "meta": meta,
    }

def galaxy(kind, values, layout):
    g = galaxy_file(kind)
    return {
        "id": new_id(),
        "uuid": g["uuid"],
        "name": g["name"],
        "type": g["type"],
        "description": g["description"],
        "version": str(g["version"]),
        "icon": g.get("icon", ""),
        "namespace": g.get("namespace", "misp"),
        "GalaxyCluster": [cluster(kind, v, layout) for v in values],
    }

def galaxies(layout):
    event_level = [
        galaxy("threat-actor", ["APT1"], layout),
        galaxy("country", ["france", "germany"], layout),
        galaxy("sector", ["Finance", "Energy"], layout),
        galaxy("mitre-attack-pattern", ["Command and Scripting Interpreter - T1059"], layout),
        galaxy("mitre-malware", ["Emotet - S0367"], layout),
        galaxy("mitre-tool", ["Mimikatz - S0002"], layout),
        galaxy("ransomware", ["WannaCry"], layout),
        galaxy("tool", ["Elise Backdoor", "Winexe"], layout),
    ]
    attribute_level = [
        galaxy("mitre-intrusion-set", ["APT28 - G0007"], layout),
        galaxy("country", ["germany"], layout),
        galaxy("tool", ["Winexe"], layout),
    ]
    return event_level, attribute_level

def with_galaxies(layout, uuid):
    event = load("5b646415-7b48-40d5-86b4-c0070acd0835.json")
    e = event["Event"]
    e["uuid"] = uuid
    e["info"] = e["info"] + " (galaxies as %s)" % layout
    event_level, attribute_level = galaxies(layout)
    e["Galaxy"] = e["Galaxy"] + event_level
    e["Tag"] = e["Tag"] + [{"id": c["tag_id"], "name": c["tag_name"], "colour": "#0088cc",
                            "exportable": True, "user_id": "0", "hide_tag": False,
                            "numerical_value": None}
                           for g in event_level for c in g["GalaxyCluster"]]
    e["Attribute"][0]["Galaxy"] = attribute_level
    e["Attribute"][0]["Tag"] = [{"id": c["tag_id"], "name": c["tag_name"], "colour": "#0088cc",
                                 "exportable": True, "user_id": "0", "hide_tag": False,
                                 "numerical_value": None}
                                for g in attribute_level for c in g["GalaxyCluster"]]
    return event

def php_arrays():
    """The same event after MISP's removeGalaxyClusterTags: tags that are galaxy clusters are
    unset without renumbering, so Tag is written as an object keyed by index."""
    event = with_galaxies("export", "5b646415-0000-4000-8000-00000000c0de")
    e = event["Event"]
    e["info"] = "Ursnif, MALWAREMESSIAGH (galaxy tags removed)"
    def drop_cluster_tags(tags):
        return {str(i): t for i, t in enumerate(tags) if not t["name"].startswith("misp-galaxy:")
                or i % 2 == 0}
    e["Tag"] = drop_cluster_tags(e["Tag"])
    e["Attribute"][0]["Tag"] = drop_cluster_tags(e["Attribute"][0]["Tag"])
    lists = copy.deepcopy(event)
    lists["Event"]["Tag"] = list(e["Tag"].values())
    lists["Event"]["Attribute"][0]["Tag"] = list(e["Attribute"][0]["Tag"].values())
    return event, lists

def other_writers():
    """Numbers where MISP writes texts (threat level, to_ids, timestamps), as PyMISP-less
    generators write them, and soft-deleted attributes and objects as MISP exports them."""
    event = load("5acc88e9-265c-4f22-9d2b-b702950d210f.json")
    e = event["Event"]
    e["uuid"] = "5acc88e9-0000-4000-8000-00000000c0de"
    e["info"] = e["info"] + " (numbers)"
    e["threat_level_id"] = 1
    e["timestamp"] = int(e["timestamp"])
    for i, a in enumerate(e["Attribute"]):
        a["timestamp"] = int(a["timestamp"])
        a["to_ids"] = ["1", "0", 1, 0][i % 4]
    e["Attribute"][1]["deleted"] = True
    e["Object"][0]["deleted"] = True
    e["Object"][1]["Attribute"][0]["deleted"] = True
    for a in e["Attribute"]:
        if "data" in a:
            a["data"] = "UEsDBAoAAAAAAAAAIQAAAAAAAAAAAAAAAAAA"  # the sample itself is no matter here
    return event

def write(name, event, oracle_input=None):
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(event, f, indent=1, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(ORACLE_IN, name + ".json"), "w") as f:
        json.dump(oracle_input if oracle_input is not None else event, f)

write("galaxies-as-exported", with_galaxies("export", "5b646415-0000-4000-8000-0000000e4407"))
write("galaxies-as-galaxy-json", with_galaxies("galaxy-json", "5b646415-0000-4000-8000-000000016a1a"))
shaped, as_lists = php_arrays()
write("php-arrays", shaped, as_lists)
write("other-writers", other_writers())
