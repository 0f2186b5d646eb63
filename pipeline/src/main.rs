//! The `quench` command.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use quench_classify::LocalClassifier;
use quench_core::rules::RouteTree;
use quench_pipeline::{
    ask::{self, eval::EvalAskArgs, AskArgs},
    clickhouse,
    config::{Config, WorkerConfig},
    demo::{self, DemoArgs},
    eval::{self, EvalClassifyArgs},
    http, ingest, init, logging,
    predict::eval::PredictEvalArgs,
    preflight::{self, Needs},
    reload::RulesSource,
    repartition,
    replay::ReplayArgs,
    rules, signals, sink, worker,
};

/// Quench turns a firehose of alerts into a few classified, routed incidents, on Kafka and ClickHouse.
///
/// Configuration comes from defaults that match `infra/local/stack`, then the --config TOML file,
/// then QUENCH_<SECTION>__<KEY> environment variables (for example QUENCH_KAFKA__BROKERS).
/// Unknown keys and unreachable servers fail at start-up with the key and address named.
#[derive(Debug, Parser)]
#[command(name = "quench", version, about, long_about)]
struct Cli {
    /// TOML configuration file (see README.md, "Configuration").
    #[arg(long, short, global = true, env = "QUENCH_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create Kafka topics, register Avro schemas and apply ClickHouse migrations (idempotent)
    Init,
    /// Apply pending ClickHouse migrations from sql/ and record them in quench_migrations
    Migrate,
    /// Check that Kafka, the schema registry and ClickHouse answer, and print what answered
    Check,
    /// Print the effective configuration (defaults, file, QUENCH_* overrides) as TOML, secrets masked
    Config,
    /// Run a stream worker: window and deduplicate alerts into incidents, exactly once (with
    /// the routes' flap and transient holds, and [correlate] linking incidents across groups)
    Run,
    /// Add partitions to `alerts` under workers that read it keyed by group (the default): grows
    /// alerts, incident-actions and quench-state together and moves every open group's state to
    /// the partition its alerts will land in. Offline: stop ingest, notify and api, let the
    /// workers drain (consumer lag 0), stop them, repartition, then start everything again
    Repartition {
        /// The partition count to grow to (Kafka cannot remove partitions)
        #[arg(long)]
        partitions: usize,
    },
    /// Write alerts, incidents, routing events, notification attempts and predictions from Kafka to ClickHouse, idempotently
    Sink {
        /// Rebuild ClickHouse from Kafka: set the sink's consumer group back to the start of
        /// every topic it reads, then run as usual (into a new database, or after `quench
        /// migrate` recreated dropped tables; no other sink of the group may be running)
        #[arg(long)]
        from_beginning: bool,
    },
    /// Accept webhooks (Alertmanager, Grafana, PagerDuty Events v2, Prometheus, JSON) and produce
    /// them to Kafka as Avro alerts; answers 2xx only once Kafka acknowledged every alert. Also
    /// serves Alertmanager's API v2 (silences, alerts) for amtool on ingest.listen
    Ingest,
    /// Deliver routing events to Slack, PagerDuty, Teams, email and webhooks (an alertmanager.yml's
    /// receivers too), run escalation policies, and serve the acknowledgement API (ack, resolve,
    /// comment) on notify.listen
    Notify,
    /// Serve incidents over HTTP from ClickHouse on api.listen: /api/v1/incidents (filters, cursor
    /// pagination), /api/v1/incidents/{id} (alerts, timeline, notifications, linked and similar
    /// past incidents), POST /api/v1/incidents/{id}/acknowledge|resolve|comment (to
    /// incident-actions), /api/v1/silences, /api/v1/ask, the live stream /api/v1/stream
    /// (server-sent events, resumable), the console at / and the OpenAPI document
    /// /api/v1/openapi.json; bearer tokens of api.tokens, scoped to tenants
    Api,
    /// Answer a question about incidents in plain language from ClickHouse ("how many database
    /// incidents this week?"): the configured LLM writes SQL over the analytics views, checked and
    /// run read-only; without one (or when its SQL is refused) the local parser answers
    Ask(AskArgs),
    /// Run the pipeline on a generated alert storm and summarise the incidents it made
    Demo(DemoArgs),
    /// Embed the local classifier's catalog, taxonomy and examples once and keep the vectors in
    /// the model directory, so that no worker's first start spends half a minute on it (the
    /// README's two commands run it while setting up; later runs find the vectors and return at once)
    Prepare,
    /// Measure Quench's parts on labelled data
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Predict alerts before they fire, from precursors and recurrences learned on ClickHouse history; `predict
    /// run` serves, `predict eval` measures on an alarm recording
    #[command(subcommand)]
    Predict(PredictCommand),
    /// Check a rules file, or show where a label set goes, offline (no Kafka, registry or ClickHouse)
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Erase a tenant's alerts and incidents (all, with a label, or before a date) from ClickHouse
    /// (lightweight deletes) and the compacted incidents topic (tombstones); the erasure is
    /// recorded in the erasures table and the audit view
    Erase(quench_pipeline::erase::EraseArgs),
    /// Replay stored alerts (ClickHouse, or a file) through candidate rules and the current ones
    /// in virtual time; print incidents, notifications, pages, reduction and what the change splits
    /// or merges (--correlate: with correlation across groups, to tune [correlate] and the holds)
    Replay(ReplayArgs),
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Check a rules file (Alertmanager YAML or Quench TOML); exit non-zero naming the line or key
    Check(rules::CheckArgs),
    /// Print the receivers an alert with these labels is routed to, as `amtool config routes test` does
    Test(rules::TestArgs),
}

#[derive(Debug, Subcommand)]
enum PredictCommand {
    /// Learn from ClickHouse's alert history, read the alerts topic, and write what is expected
    /// (then whether it came) to the predictions topic
    Run,
    /// Evaluate prediction and the learned causal graph on an alarm recording: learn on the first
    /// 60% by time, predict the rest online, against two baselines; the last line is JSON
    Eval(PredictEvalArgs),
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Classify labelled alerts (the corpus format) and print category and severity accuracy,
    /// macro-F1, confusion matrices and throughput; without `expected`, print predictions
    Classify(EvalClassifyArgs),
    /// Load a fixed data set into its own database, ask each question of a JSON-lines file and
    /// score result-set accuracy against its reference SQL; the last line is JSON
    Ask(EvalAskArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli = Cli::parse();
    // `quench rules test --config alertmanager.yml ...`, after amtool's --config.file:
    // Quench's own configuration is TOML, so a YAML file given there is the rules file.
    if let Command::Rules(RulesCommand::Test(args)) = &mut cli.command {
        if args.rules.is_none() && cli.config.as_deref().is_some_and(RouteTree::is_alertmanager_file) {
            args.rules = cli.config.take();
        }
    }
    let config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Kept until the end of main: dropping it sends the spans still buffered.
    let _exporter = match logging::init(&config.log, &config.trace, cli.command.service()) {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(cli.command, &config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

impl Command {
    /// The process's name in traces (OpenTelemetry's `service.name`).
    fn service(&self) -> &'static str {
        match self {
            Command::Run => "quench-worker",
            Command::Sink { .. } => "quench-sink",
            Command::Ingest => "quench-ingest",
            Command::Notify => "quench-notify",
            Command::Api => "quench-api",
            Command::Predict(_) => "quench-predict",
            Command::Demo(_) => "quench-demo",
            _ => "quench",
        }
    }
}

async fn run(command: Command, config: &Config) -> anyhow::Result<()> {
    match command {
        // Secrets serialise masked: printing the configuration shows none of them.
        Command::Config => print!("{}", toml::to_string_pretty(config)?),
        Command::Check => {
            let reachable = preflight::check(config, Needs::ALL).await?;
            println!(
                "kafka       {} ({} broker(s))",
                config.kafka.brokers,
                reachable.kafka_brokers.unwrap_or_default()
            );
            println!("registry    {}", reachable.registry.unwrap_or_default());
            println!(
                "clickhouse  {} (version {})",
                quench_secret::mask_url_password(&config.clickhouse.url),
                reachable.clickhouse_version.unwrap_or_default()
            );
        }
        Command::Migrate => {
            preflight::check(config, Needs::CLICKHOUSE).await?;
            let report = clickhouse::migrate(&config.clickhouse, clickhouse::MIGRATIONS).await?;
            report.lines().iter().for_each(|line| println!("{line}"));
        }
        Command::Init => {
            preflight::check(config, Needs::ALL).await?;
            init::init(config).await?.lines().iter().for_each(|line| println!("{line}"));
        }
        Command::Run => {
            // Rules first: a broken file is named before any server is needed.
            let rules = load_rules(&config.worker)?;
            preflight::check(config, Needs::KAFKA_AND_REGISTRY).await?;
            signals::on_hangup(rules.0.reload_flag());
            let readiness = http::serve(&config.http).await?;
            worker::run(config.clone(), rules, signals::shutdown_flag(), readiness).await?;
        }
        Command::Repartition { partitions } => {
            let rules = load_rules(&config.worker)?;
            preflight::check(config, Needs::KAFKA_AND_REGISTRY).await?;
            let rekeyed = worker::rekeyed(config, &rules.1);
            let report = tokio::task::block_in_place(|| repartition::run(config, rekeyed, partitions))?;
            report.lines().iter().for_each(|line| println!("{line}"));
        }
        Command::Sink { from_beginning } => {
            preflight::check(config, Needs::ALL).await?;
            if from_beginning {
                tokio::task::block_in_place(|| sink::rewind(config))?;
            }
            let readiness = http::serve(&config.http).await?;
            sink::run(config, signals::shutdown_flag(), readiness).await?;
        }
        Command::Ingest => {
            let rules = load_rules(&config.worker)?;
            preflight::check(config, Needs::KAFKA_AND_REGISTRY).await?;
            ingest::run(config, rules, signals::shutdown_flag()).await?;
        }
        Command::Notify => {
            preflight::check(config, Needs::KAFKA_AND_REGISTRY).await?;
            quench_pipeline::notify::run(config, signals::shutdown_flag()).await?;
        }
        Command::Api => {
            preflight::check(config, Needs::ALL).await?;
            quench_pipeline::api::run(config, signals::shutdown_flag()).await?;
        }
        Command::Prepare => {
            let started = std::time::Instant::now();
            let local = &config.classify.local;
            tokio::task::block_in_place(|| LocalClassifier::load(local, config.classify.taxonomy.clone()))?;
            println!(
                "local classifier ready in {:.1?}: embeddings kept in {}",
                started.elapsed(),
                local.model_dir.display()
            );
        }
        Command::Eval(EvalCommand::Classify(args)) => eval::classify(&config.classify, &args).await?,
        Command::Ask(args) => {
            preflight::check(config, Needs::CLICKHOUSE).await?;
            ask::run(config, &args).await?;
        }
        Command::Eval(EvalCommand::Ask(args)) => {
            preflight::check(config, Needs::CLICKHOUSE).await?;
            ask::eval::run(config, &args).await?;
        }
        Command::Predict(PredictCommand::Eval(args)) => quench_pipeline::predict::eval::run(&args)?,
        Command::Predict(PredictCommand::Run) => {
            preflight::check(config, Needs::ALL).await?;
            let readiness = http::serve(&config.http).await?;
            quench_pipeline::predict::service::run(config, signals::shutdown_flag(), readiness).await?;
        }
        Command::Rules(RulesCommand::Check(args)) => rules::check(&args)?,
        Command::Erase(args) => {
            preflight::check(config, Needs::ALL).await?;
            let erased = quench_pipeline::erase::run(config, &args).await?;
            let verb = if args.dry_run { "would erase" } else { "erased" };
            println!("{verb} {} alerts and {} incidents of tenant {}", erased.alerts, erased.incidents, args.tenant);
        }
        Command::Replay(args) => {
            if args.input.is_none() {
                preflight::check(config, Needs::CLICKHOUSE).await?;
            }
            quench_pipeline::replay::run(config, &args).await?;
        }
        Command::Rules(RulesCommand::Test(args)) => {
            if !rules::test(&args, config.worker.rules.as_ref())? {
                std::process::exit(1);
            }
        }
        Command::Demo(args) => {
            preflight::check(config, Needs::ALL).await?;
            demo::run(config, load_rules(&config.worker)?, &args).await?;
        }
    }
    Ok(())
}

fn load_rules(worker: &WorkerConfig) -> anyhow::Result<(RulesSource, RouteTree)> {
    let loaded = RulesSource::load(worker.rules.clone())
        .map_err(|e| anyhow::anyhow!("invalid configuration: key `worker.rules`: {e}"))?;
    for note in &loaded.1.notes {
        tracing::warn!(rules = ?worker.rules, "{note}");
    }
    Ok(loaded)
}
