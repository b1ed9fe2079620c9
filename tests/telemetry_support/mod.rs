//! Reading the Prometheus text exposition back, strictly: a malformed line fails the test.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::HashMap;

/// `name{labels}` -> value, and the `# TYPE` of each family.
pub fn parse(text: &str) -> (HashMap<String, f64>, HashMap<String, String>) {
    let mut samples = HashMap::new();
    let mut types = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "family {name} declared twice"
            );
        } else if line.starts_with("# HELP ") {
            assert!(line.split(' ').count() >= 4, "HELP without text: {line}");
        } else {
            assert!(!line.starts_with('#'), "unexpected comment: {line}");
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line}"));
            let family = series.split('{').next().unwrap();
            assert!(
                family
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name in {line}"
            );
            assert!(
                samples.insert(series.to_string(), value).is_none(),
                "duplicate {series}"
            );
        }
    }
    (samples, types)
}

/// The cumulative count of the `name` histogram's bucket whose bound is `le` (compared as
/// numbers: `1`, `1.0` and `1e0` are the same bound).
pub fn bucket(samples: &HashMap<String, f64>, name: &str, le: f64) -> f64 {
    let prefix = format!("{name}_bucket{{le=\"");
    let found: Vec<f64> = samples
        .iter()
        .filter_map(|(series, value)| {
            let bound = series.strip_prefix(&prefix)?.strip_suffix("\"}")?;
            let bound: f64 = if bound == "+Inf" {
                f64::INFINITY
            } else {
                bound.parse().unwrap()
            };
            (bound == le).then_some(*value)
        })
        .collect();
    assert_eq!(found.len(), 1, "bucket le={le} of {name}: {samples:?}");
    found[0]
}
