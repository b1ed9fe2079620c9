//! `misp-feed`: the command line. Parses arguments, loads the configuration, and hands off
//! to `misp_feed::commands`; prints what a command answers and exits with its code.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use misp_feed::commands::{self, Answer, CommandError, Completion, ResetScope};
use misp_feed::config::{Scope, Settings};
use misp_feed::ledger::{EventFilter, Ledger};

/// jemalloc instead of glibc's malloc: the converter and splitter free many short-lived
/// maps and strings from several threads, and with glibc the pipeline benchmark's peak
/// memory grew with the length of the run (arena fragmentation: +49 % when the feed doubled)
/// and cost more CPU per message; with jemalloc the peak stays flat.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`. Freed pages go back to the system after 200 ms
/// instead of 10 s: converting a large event frees the input and the maps outgrown while
/// building objects, and with the default nothing of that was returned within a run (a
/// 100,000-attribute event peaked at 1.7 GB instead of 1.25 GB, for the same CPU time).
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_OPTIONS: &[u8; 36] = b"dirty_decay_ms:200,muzzy_decay_ms:0\0";

#[derive(Parser)]
#[command(
    name = "misp-feed",
    version,
    about = "Bring MISP feeds into OpenCTI: a drop-in, ledger-backed replacement for the Python MISP Feed connector",
    after_help = "Configuration: environment variables (the Python connector's names) over config.yml over defaults.\n\
                  Example: misp-feed once --config examples/local.yml"
)]
struct Cli {
    /// Configuration file (default: ./config.yml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sync forever, one run every CONNECTOR_DURATION_PERIOD.
    #[command(
        after_help = "Example: MISP_FEED_URL=https://www.circl.lu/doc/misp/feed-osint misp-feed run"
    )]
    Run,
    /// Sync once and exit (exit code 2 when some events failed).
    #[command(
        after_help = "Examples:\n  misp-feed once --config examples/local.yml\n  misp-feed once --dry-run --json   # try a filter: what would be pushed, filtered, refused"
    )]
    Once {
        /// Print the run's figures as JSON on standard output.
        #[arg(long)]
        json: bool,
        /// Decide, fetch and convert as a run would, print what it would push, filter, refuse
        /// or skip, and push and record nothing (the ledger is not written).
        #[arg(long)]
        dry_run: bool,
    },
    /// Convert one MISP event file to a STIX 2.1 bundle on standard output.
    #[command(
        after_help = "Example: misp-feed convert tests/fixtures/misp/events/5a3c2fcd-8328-42bb-a95e-4f4402de0b81.json"
    )]
    Convert {
        /// The MISP event file (`{\"Event\": ...}`, a bare event, or a one-element list).
        event: PathBuf,
    },
    /// Counts per status, the checkpoint and the last runs.
    #[command(after_help = "Example: misp-feed status --json")]
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The audit list: which events were sent, when, where.
    #[command(after_help = "Example: misp-feed events --status failed --since 2024-05-01")]
    Events {
        /// pending, in_flight, pushed, failed or gave_up.
        #[arg(long)]
        status: Option<String>,
        /// Only events updated at or after this date or datetime.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// One event's record and full history.
    #[command(after_help = "Example: misp-feed show 5a3c2fcd-8328-42bb-a95e-4f4402de0b81")]
    Show {
        uuid: String,
        #[arg(long)]
        json: bool,
    },
    /// Forget state so that events are imported again.
    #[command(
        after_help = "Examples:\n  misp-feed reset --all --yes\n  misp-feed reset --event 5a3c2fcd-8328-42bb-a95e-4f4402de0b81\n  misp-feed reset --since 2024-05-01",
        group(clap::ArgGroup::new("what").required(true).args(["all", "event", "since"]))
    )]
    Reset {
        /// Everything (the audit history is kept). Needs --yes.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        yes: bool,
        /// One event.
        #[arg(long, value_name = "UUID")]
        event: Option<String>,
        /// Every event whose manifest timestamp is at or after this date.
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
    },
    /// Give failed and given-up events a fresh set of attempts.
    #[command(after_help = "Example: misp-feed retry --event 5a3c2fcd-8328-42bb-a95e-4f4402de0b81")]
    Retry {
        #[arg(long, value_name = "UUID")]
        event: Option<String>,
    },
    /// Check the ledger: SQLite integrity, and every pushed event has its confirmation.
    #[command(after_help = "Example: misp-feed verify --json")]
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Validate the configuration and reach the feed (and OpenCTI, RabbitMQ when configured).
    #[command(after_help = "Example: misp-feed check --config config.yml")]
    Check,
    /// Print shell completions.
    #[command(
        after_help = "Example: misp-feed completions bash > /etc/bash_completion.d/misp-feed"
    )]
    Completions { shell: clap_complete::Shell },
}

impl Command {
    /// The options a command reads: `convert` only the conversion's, the ledger commands only
    /// the ledger's path, so neither needs a feed or a platform configured.
    fn config_scope(&self) -> Scope {
        match self {
            Command::Convert { .. } => Scope::Convert,
            Command::Status { .. }
            | Command::Events { .. }
            | Command::Show { .. }
            | Command::Reset { .. }
            | Command::Retry { .. }
            | Command::Verify { .. } => Scope::Ledger,
            Command::Run | Command::Once { .. } | Command::Check | Command::Completions { .. } => {
                Scope::Sync
            }
        }
    }
}

/// Exit codes (README, "Exit codes"): 0 done, 1 an error or problems found, 2 a run whose
/// events partly failed, 64 a command line that cannot be (sysexits' EX_USAGE).
const EXIT_ERROR: u8 = 1;
const EXIT_EVENTS_FAILED: u8 = 2;
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { EXIT_USAGE } else { 0 };
            // Help and version go to stdout; a closed pipe there is not an error.
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    if let Command::Completions { shell } = &cli.command {
        let mut script = Vec::new();
        clap_complete::generate(*shell, &mut Cli::command(), "misp-feed", &mut script);
        return print_stdout(&String::from_utf8_lossy(&script), ExitCode::SUCCESS);
    }
    let loaded = match Settings::load_for(cli.command.config_scope(), cli.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("misp-feed: configuration: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let settings = loaded.settings;
    if let Err(e) = misp_feed::telemetry::init_logging_for(&settings) {
        eprintln!("misp-feed: logging: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("misp-feed: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(dispatch(cli.command, settings)) {
        Ok(answer) => {
            let code = match answer.completion {
                Completion::Done => ExitCode::SUCCESS,
                Completion::EventsFailed => ExitCode::from(EXIT_EVENTS_FAILED),
                Completion::ProblemsFound => ExitCode::from(EXIT_ERROR),
            };
            print_stdout(&answer.output, code)
        }
        Err(CommandError::Usage(message)) => {
            eprintln!("misp-feed: {message}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("misp-feed: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Prints a command's output; a reader that went away (`misp-feed events | head -1`) ends
/// the command quietly with `code`, as other Unix tools do.
fn print_stdout(text: &str, code: ExitCode) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Err(e) => {
            eprintln!("misp-feed: cannot write the output: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

async fn open_reader(settings: &Settings) -> Result<Ledger, CommandError> {
    Ok(Ledger::open_read_only(&settings.misp_feed.ledger_path).await?)
}

async fn open_writer(settings: &Settings) -> Result<Ledger, CommandError> {
    Ok(Ledger::open(&settings.misp_feed.ledger_path).await?)
}

async fn dispatch(command: Command, settings: Settings) -> Result<Answer, CommandError> {
    match command {
        Command::Once {
            json,
            dry_run: true,
        } => commands::dry_run(settings, json).await,
        Command::Once { json, .. } => {
            commands::once(settings, json, std::io::stderr().is_terminal()).await
        }
        Command::Run => commands::run_forever(settings).await,
        Command::Convert { event } => commands::convert(&settings, &event),
        Command::Status { json } => commands::status(&open_reader(&settings).await?, json).await,
        Command::Events {
            status,
            since,
            limit,
            json,
        } => {
            let filter = EventFilter {
                status: status.as_deref().map(commands::parse_status).transpose()?,
                updated_since: since.as_deref().map(commands::parse_since).transpose()?,
                limit,
            };
            commands::events(&open_reader(&settings).await?, filter, json).await
        }
        Command::Show { uuid, json } => {
            commands::show(&open_reader(&settings).await?, &uuid, json).await
        }
        Command::Reset {
            all,
            yes,
            event,
            since,
        } => {
            let scope = match (all, event, since) {
                (true, _, _) if !yes => {
                    return Err(CommandError::Usage(
                        "reset --all forgets every event: add --yes to confirm".into(),
                    ));
                }
                (true, _, _) => ResetScope::All,
                (false, Some(uuid), _) => ResetScope::Event(uuid),
                (false, None, Some(since)) => ResetScope::Since(commands::parse_since(&since)?),
                (false, None, None) => {
                    return Err(CommandError::Usage(
                        "reset needs --all, --event UUID or --since DATE".into(),
                    ));
                }
            };
            commands::reset(&open_writer(&settings).await?, scope).await
        }
        Command::Retry { event } => commands::retry(&open_writer(&settings).await?, event).await,
        Command::Check => commands::check(settings).await,
        Command::Verify { json } => {
            let files_may_expire = settings.connector.send_to_directory_retention_days > 0;
            commands::verify(&open_reader(&settings).await?, files_may_expire, json).await
        }
        Command::Completions { .. } => Ok(Answer {
            output: String::new(),
            completion: Completion::Done,
        }),
    }
}
