#!/usr/bin/env python3
"""Runs the Python MISP Feed connector's own event conversion (`MispFeed._process_event`)
on one event file and prints the bundle it returns: the oracle the converter's probe
vectors (tests/fixtures/convert/bundles/) were generated with.

Setup (own venv):
    python3 -m venv .venv-oracle
    .venv-oracle/bin/pip install pycti==7.261026.0 stix2==3.0.2
    git clone --depth 1 https://github.com/OpenCTI-Platform/connectors
Usage:
    TZ=UTC .venv-oracle/bin/python scripts/convert_oracle.py \
        --connector connectors/external-import/misp-feed/src \
        --profiles tests/fixtures/convert/profiles.json --profile full EVENT.json > BUNDLE.json

A bare event (no {"Event": ...} wrapper, on which the connector raises KeyError) is wrapped
first. Errors the connector logs go to stderr.
"""
import argparse
import importlib.util
import json
import os
import sys
import time
import types


def load_connector(src):
    # Import connector.py without its settings module (which needs the connectors SDK).
    package = types.ModuleType("connector")
    package.__path__ = []
    sys.modules["connector"] = package
    settings = types.ModuleType("connector.settings")
    settings.ConnectorSettings = object
    sys.modules["connector.settings"] = settings
    spec = importlib.util.spec_from_file_location(
        "connector.connector", os.path.join(src, "connector", "connector.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--connector", required=True, help="misp-feed/src directory")
    parser.add_argument("--profiles", required=True)
    parser.add_argument("--profile", required=True)
    parser.add_argument("event")
    args = parser.parse_args()
    os.environ["TZ"] = "UTC"
    time.tzset()
    module = load_connector(args.connector)
    options = json.load(open(args.profiles))[args.profile]
    feed = module.MispFeed.__new__(module.MispFeed)
    feed.config = types.SimpleNamespace(
        misp_feed=types.SimpleNamespace(source_type="url", **options)
    )
    feed.helper = types.SimpleNamespace(
        log_info=lambda *a, **k: None,
        log_error=lambda *a, **k: print("connector error:", *a, file=sys.stderr),
    )
    event = json.load(open(args.event))
    if isinstance(event, dict) and "Event" not in event:
        event = {"Event": event}
    print(feed._process_event(event))


if __name__ == "__main__":
    main()
