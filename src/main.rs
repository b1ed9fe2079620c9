//! `misp-feed`: the command line. Parses arguments, loads the configuration, and hands off
//! to `misp_feed::app`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};

use misp_feed::app;
use misp_feed::config::Settings;
use misp_feed::connector::Connector;
use misp_feed::ledger::EventFilter;
use misp_feed::opencti::OpenCti;

/// jemalloc instead of glibc's malloc: the converter and splitter free many short-lived
/// maps and strings from several threads, and with glibc the pipeline benchmark's peak
/// memory grew with the length of the run (arena fragmentation: +49 % when the feed doubled)
/// and cost more CPU per message; with jemalloc the peak stays flat.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    #[command(after_help = "Example: misp-feed once --config examples/local.yml")]
    Once {
        /// Print the run's figures as JSON on standard output.
        #[arg(long)]
        json: bool,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = &cli.command {
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "misp-feed",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    let loaded = match Settings::load_with_warnings(cli.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("misp-feed: configuration: {e}");
            return ExitCode::from(1);
        }
    };
    let settings = loaded.settings;
    if let Err(e) = misp_feed::telemetry::init_logging_for(&settings) {
        eprintln!("misp-feed: logging: {e}");
        return ExitCode::from(1);
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
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli.command, settings)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("misp-feed: {e}");
            ExitCode::from(1)
        }
    }
}

async fn dispatch(command: Command, settings: Settings) -> Result<ExitCode, String> {
    match command {
        Command::Once { json } => once(settings, json).await,
        Command::Run => run_forever(settings).await,
        Command::Convert { event } => convert(&settings, &event),
        Command::Status { json } => {
            let ledger = app::open_ledger_read_only(&settings)?;
            print!("{}", app::status(&ledger, json)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Events {
            status,
            since,
            limit,
            json,
        } => {
            let filter = EventFilter {
                status: status.as_deref().map(app::parse_status).transpose()?,
                updated_since: since.as_deref().map(app::parse_since).transpose()?,
                limit,
            };
            let ledger = app::open_ledger_read_only(&settings)?;
            print!("{}", app::events(&ledger, &filter, json)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { uuid, json } => {
            let ledger = app::open_ledger_read_only(&settings)?;
            print!("{}", app::show(&ledger, &uuid, json)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Reset {
            all,
            yes,
            event,
            since,
        } => {
            let mut ledger = app::open_ledger(&settings)?;
            if all {
                if !yes {
                    return Err("reset --all forgets every event: add --yes to confirm".into());
                }
                let n = ledger
                    .reset_all("reset --all by operator")
                    .map_err(|e| e.to_string())?;
                println!(
                    "ledger reset: {n} event record(s) forgotten, checkpoint cleared (history kept)"
                );
            } else if let Some(uuid) = event {
                let uuid = uuid.to_lowercase();
                if ledger.reset_event(&uuid).map_err(|e| e.to_string())? {
                    println!("event {uuid} will be imported again by the next run");
                } else {
                    return Err(format!("event {uuid} is not in the ledger"));
                }
            } else if let Some(since) = since {
                let since = app::parse_since(&since)?;
                let n = ledger.reset_since(since).map_err(|e| e.to_string())?;
                println!(
                    "{n} event(s) since {} will be imported again; checkpoint moved back",
                    since.to_rfc3339()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Retry { event } => {
            let mut ledger = app::open_ledger(&settings)?;
            let event = event.map(|e| e.to_lowercase());
            let n = ledger.retry(event.as_deref()).map_err(|e| e.to_string())?;
            println!("{n} event(s) will be retried by the next run");
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => check(settings).await,
        Command::Verify { json } => {
            let ledger = app::open_ledger_read_only(&settings)?;
            let files_may_expire = settings.connector.send_to_directory_retention_days > 0;
            let report = ledger.verify(files_may_expire).map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
                );
            } else {
                println!(
                    "integrity: {}; {} pushed event(s) checked; {} problem(s)",
                    report.integrity,
                    report.pushed_events,
                    report.problems.len()
                );
                for problem in &report.problems {
                    println!("  {problem}");
                }
            }
            Ok(if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Completions { .. } => Ok(ExitCode::SUCCESS),
    }
}

fn convert(settings: &Settings, path: &Path) -> Result<ExitCode, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.display().to_string();
    let events = misp_feed::convert::parse_event_file(&bytes, &name).map_err(|e| e.to_string())?;
    let event = events
        .into_iter()
        .next()
        .ok_or_else(|| format!("{name}: no event in the file"))?;
    let bundle = misp_feed::convert::convert_event(
        &event,
        &settings.misp_feed.convert,
        &misp_feed::convert::ResolvedThreats::default(),
    )
    .map_err(|e| e.to_string())?;
    println!("{}", bundle.to_json());
    Ok(ExitCode::SUCCESS)
}

async fn once(settings: Settings, json: bool) -> Result<ExitCode, String> {
    let _metrics = misp_feed::telemetry::start_metrics(&settings)
        .await
        .map_err(|e| format!("metrics on port {}: {e}", settings.connector.metrics_port))?;
    let mut connector = Connector::start(Arc::new(settings)).await?;
    connector.set_progress(std::io::stderr().is_terminal());
    let report = connector.once().await.map_err(|e| e.to_string())?;
    if json {
        println!("{}", app::report_json(&report));
    } else {
        println!("{}", report.message());
    }
    Ok(if report.failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

async fn run_forever(settings: Settings) -> Result<ExitCode, String> {
    if settings.connector.run_and_terminate {
        // pycti's run_and_terminate (or a zero duration period): one run, then exit.
        return once(settings, false).await;
    }
    let _metrics = misp_feed::telemetry::start_metrics(&settings)
        .await
        .map_err(|e| format!("metrics on port {}: {e}", settings.connector.metrics_port))?;
    let mut connector = Connector::start(Arc::new(settings)).await?;
    connector.run_forever().await?;
    Ok(ExitCode::SUCCESS)
}

/// One line per dependency; exit code 1 when any is unreachable.
async fn check(settings: Settings) -> Result<ExitCode, String> {
    let mut healthy = true;
    println!("configuration: ok");
    match misp_feed::source::build_source(&settings).await {
        Ok(source) => match source.list(None).await {
            Ok(_) => println!("feed: ok ({})", source.describe()),
            Err(e) => {
                healthy = false;
                println!("feed: FAILED ({}): {e}", source.describe());
            }
        },
        Err(e) => {
            healthy = false;
            println!("feed: FAILED: {e}");
        }
    }
    if app::runs_offline(&settings) {
        println!("opencti: not used (offline: bundles go to the bundle folder)");
    } else {
        match OpenCti::connect(&settings).await {
            Ok(opencti) => {
                println!("opencti: ok ({})", opencti.client().endpoint());
                if settings.connector.queue_protocol == misp_feed::config::QueueProtocol::Amqp {
                    match opencti.check_broker().await {
                        Ok(line) => println!("rabbitmq: ok ({line})"),
                        Err(e) => {
                            healthy = false;
                            println!("rabbitmq: FAILED: {e}");
                        }
                    }
                } else {
                    println!("rabbitmq: not used (CONNECTOR_QUEUE_PROTOCOL=api)");
                }
            }
            Err(e) => {
                healthy = false;
                println!("opencti: FAILED: {e}");
                println!("rabbitmq: not checked (needs the OpenCTI registration)");
            }
        }
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
