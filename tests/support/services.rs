//! The one gate for what a test needs from outside this repository: RabbitMQ, `rabbitmqctl`,
//! `openssl`, `python3`. Without it a test prints `SKIPPED <test>: <why>` and passes, so that
//! `cargo test` works on a bare machine; with `MISP_FEED_REQUIRE_BROKER` set (`.ci/run` sets
//! it after installing and starting everything) it fails instead, so nothing is skipped
//! unseen where everything should be there.

use std::process::{Command, Stdio};

/// The variable that turns a skip into a failure.
pub const REQUIRE: &str = "MISP_FEED_REQUIRE_BROKER";

/// The resource when `found` holds it; otherwise `None` after printing why `test` is skipped,
/// or a panic when [`REQUIRE`] is set.
pub fn require<T>(test: &str, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(resource) => Some(resource),
        Err(why) => {
            assert!(
                std::env::var_os(REQUIRE).is_none(),
                "{test}: {why}, and {REQUIRE} is set"
            );
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

/// `Some(())` when `program` is on PATH and `program <probe...>` succeeds; else as
/// [`require`] decides.
pub fn tool(test: &str, program: &str, probe: &[&str]) -> Option<()> {
    let found = match Command::new(program)
        .args(probe)
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "`{program} {}` failed: {}",
            probe.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(error) => Err(format!("the {program} command cannot be run: {error}")),
    };
    require(test, found)
}
