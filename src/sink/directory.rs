//! Bundle folder sink (pycti's send_to_directory).
