#!/usr/bin/env bash
# Runs the OASIS STIX 2.1 validator (stix2-validator, in its own venv) over the converter's
# full-profile output of every MISP fixture event, in the default and the compat mode.
# Fails on any error except the two value-format kinds the Python connector's output also
# has on the same objects: `url` values that are not URIs (MISP url attributes holding bare
# hosts or file names) and registry keys with abbreviated hives (HKLM\...).
#
# Usage: scripts/validate_stix.sh [EVENT.json...]   (default: tests/fixtures/misp/events/*.json)
# The venv lives in ${STIX_VALIDATOR_VENV:-~/.cache/misp-feed/stix2-validator-venv}.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${STIX_VALIDATOR_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/misp-feed/stix2-validator-venv}
if [ ! -x "$venv/bin/stix2_validator" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "stix2-validator==3.3.2"
fi

if [ "$#" -gt 0 ]; then
    events=("$@")
else
    events=("$root"/tests/fixtures/misp/events/*.json)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Lines the validator prints for the two tolerated kinds, on url and registry-key objects.
tolerated="^\[X\] (url--[0-9a-f-]{36}: value: .* is not a 'uri'|windows-registry-key--[0-9a-f-]{36}: key: .* should not be valid under \{'pattern': '\^HKLM\|HKCC\|HKCR\|HKCU\|HKU\|hklm\|hkcc\|hkcr\|hkcu\|hku'\})$"

failed=0
checked=0
for mode in default compat; do
    mkdir -p "$work/$mode"
    flags=(--profile full --out "$work/$mode")
    [ "$mode" = compat ] && flags+=(--compat)
    (cd "$root" && cargo run --quiet --example convert -- "${flags[@]}" "${events[@]}")
    for bundle in "$work/$mode"/*.json; do
        checked=$((checked + 1))
        report="$work/$mode/$(basename "$bundle" .json).log"
        "$venv/bin/stix2_validator" --version 2.1 "$bundle" >"$report" 2>&1 || true
        errors=$(sed 's/^ *//' "$report" | grep '^\[X\]' | grep -v '^\[X\] STIX JSON: Invalid$' | grep -Ev "$tolerated" || true)
        tolerated_count=$(sed 's/^ *//' "$report" | grep -Ec "$tolerated" || true)
        if [ -n "$errors" ]; then
            echo "FAIL $mode $(basename "$bundle"):"
            echo "$errors" | sed 's/^/    /'
            failed=$((failed + 1))
        else
            echo "ok   $mode $(basename "$bundle") (tolerated value-format errors: $tolerated_count)"
        fi
    done
done

echo "$checked bundles checked, $failed with errors"
[ "$failed" -eq 0 ]
