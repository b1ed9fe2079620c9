//! A MISP feed in a local folder (`file://` URLs and plain paths).
