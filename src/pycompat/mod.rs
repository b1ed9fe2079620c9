//! Python behaviour the connector's output depends on, reproduced in one place: the Python
//! connector and pycti produce the ids, state strings and AMQP messages OpenCTI compares
//! with ours, so every byte of them follows CPython's rules, not Rust's.
//!
//! * [`json`]: `json.dumps` with its default arguments (separators, `ensure_ascii`, float
//!   `repr`), and the walker that stix2's canonical JSON shares with it.
//! * [`text`]: `str.strip()`, `str.isdigit()`, `len()`, `s[:-1]` and `int()`.
//! * [`time`]: `datetime.isoformat()`, `strptime("%Y-%m-%d")` and the UTC timestamps stix2
//!   prints.
//! * [`repr`]: `str()` and `repr()` of decoded JSON, which stix2 stores when a string property
//!   is given a list.

pub(crate) mod json;
pub(crate) mod repr;
pub(crate) mod text;
pub(crate) mod time;
