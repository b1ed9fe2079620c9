//! An in-memory log destination for tests: compiled only for the crate's own tests and with the
//! `testsuite` feature (which the integration tests turn on), never into a release build.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;

/// Pass [`LogCapture::writer`] to [`super::logging_subscriber`], then read what was logged.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

/// The writer half of a [`LogCapture`].
pub struct LogCaptureWriter(Arc<Mutex<Vec<u8>>>);

fn lock(buffer: &Mutex<Vec<u8>>) -> MutexGuard<'_, Vec<u8>> {
    // A test that panicked mid-write leaves plain bytes behind, still readable.
    buffer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl io::Write for LogCaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        lock(&self.0).extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    pub fn new() -> Self {
        LogCapture::default()
    }

    /// A `MakeWriter` appending to this capture.
    pub fn writer(&self) -> impl for<'writer> MakeWriter<'writer> + Send + Sync + 'static {
        let buffer = Arc::clone(&self.0);
        move || LogCaptureWriter(Arc::clone(&buffer))
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).into_owned()
    }

    /// Each JSON line parsed (lines that are not JSON are skipped).
    pub fn json_lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}
