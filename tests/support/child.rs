//! A test body in a process of its own, for a test that changes or reads what the whole
//! test process shares (environment variables, the global logger or metrics registry, the
//! resource usage of child processes): the parent test runs this test binary again with
//! `--exact --ignored <the body's test>`, its environment set on the command.

use std::process::{Command, Output};

/// Set in the child's environment to the path of the test it runs.
const CHILD_TEST: &str = "MISP_FEED_CHILD_TEST";

/// Runs the ignored test `name` of `module` (the caller's `module_path!()`) alone in a child
/// process, with `configure` applied to its command first; panics with the child's output
/// unless it ran that one test and the test passed.
pub fn run(module: &str, name: &str, configure: impl FnOnce(&mut Command)) -> Output {
    // `module_path!()` starts with the crate's name, which test paths leave out.
    let module = module.split_once("::").map_or("", |(_, rest)| rest);
    let path = format!("{module}::{name}");
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "--ignored",
            &path,
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD_TEST, &path);
    configure(&mut command);
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "the child test {path} failed or did not run: {:?}\n{stdout}\n{stderr}",
        output.status
    );
    output
}

/// True in the child process [`run`] started for the test `name`. False when the harness
/// runs that ignored test by itself (`--ignored`, `--include-ignored`): its body must not run
/// in a process that other tests share, so it returns at once.
pub fn is_child(name: &str) -> bool {
    let inside = std::env::var(CHILD_TEST).is_ok_and(|path| path.ends_with(&format!("::{name}")));
    if !inside {
        eprintln!("{name} runs only in the child process that its parent test starts");
    }
    inside
}
