//! Deterministic STIX ids: pycti's `generate_id` (uuid5 over RFC 8785 canonical JSON in
//! OpenCTI's namespace) and the stix2 library's cyber-observable ids.
