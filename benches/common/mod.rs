//! What the benchmarks share: the full conversion profile, a child process measured as a
//! whole (wall time, CPU time, peak resident memory from `wait4`), the machine's load, and the
//! table row each benchmark prints for its target (met or missed).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The full conversion profile (the reference's `full` profile), as the binary reads it.
pub const FULL_PROFILE: [(&str, &str); 11] = [
    ("MISP_FEED_CREATE_REPORTS", "true"),
    ("MISP_FEED_CREATE_INDICATORS", "true"),
    ("MISP_FEED_CREATE_OBSERVABLES", "true"),
    ("MISP_FEED_CREATE_OBJECT_OBSERVABLES", "true"),
    ("MISP_FEED_CREATE_TAGS_AS_LABELS", "true"),
    ("MISP_FEED_AUTHOR_FROM_TAGS", "true"),
    ("MISP_FEED_MARKINGS_FROM_TAGS", "true"),
    ("MISP_FEED_IMPORT_TO_IDS_NO_SCORE", "40"),
    ("MISP_FEED_IMPORT_UNSUPPORTED_OBSERVABLES_AS_TEXT", "true"),
    (
        "MISP_FEED_IMPORT_UNSUPPORTED_OBSERVABLES_AS_TEXT_TRANSPARENT",
        "true",
    ),
    ("MISP_FEED_IMPORT_WITH_ATTACHMENTS", "true"),
];

pub fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// This process's CPU time so far (user + system, every thread).
pub fn own_cpu() -> Duration {
    // SAFETY: rusage is plain old data; getrusage fills it for this process.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// Waits for the child with `wait4`, which also returns the child's own resource usage.
pub fn wait_with_usage(pid: i32) -> (i32, libc::rusage) {
    let mut status = 0;
    // SAFETY: rusage is plain old data; wait4 fills it for the child we spawned.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    (status, usage)
}

/// One child process, measured as a whole.
pub struct ChildRun {
    pub stdout: String,
    /// The wait status (`libc::WIFEXITED` ...).
    pub status: i32,
    pub wall: Duration,
    /// User + system time of the child.
    pub cpu: Duration,
    pub peak_rss_kib: i64,
}

impl ChildRun {
    pub fn succeeded(&self) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0
    }

    pub fn peak_mib(&self) -> f64 {
        mib(self.peak_rss_kib)
    }
}

/// GNU time, which measures the peak of the process it starts.
const GNU_TIME: &str = "/usr/bin/time";

/// Runs `command` to its end; its standard output is kept (`keep_stdout`) or thrown away, its
/// standard error goes to `stderr`. Blocks: call it from a blocking thread inside a runtime.
///
/// The peak is the child's own. Linux carries a process's peak RSS across `exec` from the
/// memory it replaced, so a child spawned straight from this (large) benchmark process would
/// report this process's peak whenever its own is smaller. The child is therefore started by
/// GNU time, a small process, which reads the peak of its own child with `wait4`. Without GNU
/// time the child is spawned directly and its figure is an upper bound, as printed.
pub fn run_measured(command: Command, keep_stdout: bool, stderr: Stdio) -> ChildRun {
    let peak_file = tempfile::NamedTempFile::new().unwrap();
    let through_time = std::path::Path::new(GNU_TIME).is_file();
    let mut command = if through_time {
        let mut timed = Command::new(GNU_TIME);
        timed
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(peak_file.path())
            .arg(command.get_program())
            .args(command.get_args());
        // The benchmarks' commands come from `Workspace`, which clears the environment and
        // sets every variable the child gets.
        timed.env_clear();
        for (key, value) in command.get_envs() {
            if let Some(value) = value {
                timed.env(key, value);
            }
        }
        if let Some(dir) = command.get_current_dir() {
            timed.current_dir(dir);
        }
        timed
    } else {
        eprintln!("note: {GNU_TIME} not found: peaks include the benchmark's own");
        command
    };
    command.stderr(stderr);
    command.stdout(if keep_stdout {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let started = Instant::now();
    // Reaped by `wait_with_usage` (libc::wait4), which also yields the child's resource usage;
    // clippy cannot see that wait.
    #[allow(clippy::zombie_processes)]
    let mut child = command.spawn().unwrap();
    let pid = child.id() as i32;
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout).unwrap();
    }
    let (status, usage) = wait_with_usage(pid);
    // GNU time writes a line about a failed child before the figure: the figure is the last.
    let measured_peak = std::fs::read_to_string(peak_file.path())
        .ok()
        .and_then(|text| text.lines().last().and_then(|l| l.trim().parse().ok()));
    ChildRun {
        stdout,
        status,
        wall: started.elapsed(),
        // GNU time's usage includes its child's, which is nearly all of it.
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        peak_rss_kib: measured_peak.unwrap_or(usage.ru_maxrss),
    }
}

pub fn mib(kib: i64) -> f64 {
    kib as f64 / 1024.0
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`): the machines these run on are
/// shared, so every figure is printed with the load it was measured under.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "-".into())
}

/// `MISP_FEED_BENCH_RUNS`: how many times each measurement is repeated (`default` unless set).
pub fn runs(default: usize) -> usize {
    std::env::var("MISP_FEED_BENCH_RUNS")
        .ok()
        .and_then(|runs| runs.trim().parse().ok())
        .filter(|runs| *runs > 0)
        .unwrap_or(default)
}

/// The header of the target table.
pub fn target_header() {
    println!("| measurement | measured | target | met | load average (1, 5, 15 min) |");
    println!("|---|---:|---|---|---|");
}

/// One measurement against its target, with the load average read when it was taken.
pub fn target_row(measurement: &str, measured: &str, target: &str, met: bool, load: &str) {
    println!(
        "| {measurement} | {measured} | {target} | {} | {load} |",
        if met { "met" } else { "missed" },
    );
}
