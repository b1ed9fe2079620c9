//! A MISP feed served over HTTP(S): `<url>/manifest.json`, then `<url>/<uuid>.json`.
