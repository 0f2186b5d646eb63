//! `quench eval classify`: how well a classifier does on labelled alerts, and how fast.
//!
//! Each line of the input becomes a one-alert incident, classified against the corpus taxonomy
//! (its 12 categories; severities critical, warning, info). Leave-services-out folds fit the
//! classifier without every alert's own service (neighbours, words and calibration), which is
//! how accuracy on services never seen before is measured honestly; `--hold-out-catalog` also
//! masks the catalog entries that name them, and `--catalog-without` masks entries by word: the
//! case of software no catalog lists.

use std::{collections::BTreeSet, path::PathBuf, time::Instant};

use anyhow::bail;
use quench_classify::{
    catalog,
    corpus::{self, CorpusAlert, Folds},
    eval::{Calibration, Scores},
    Classification, Classifier, ClassifyConfig, LocalClassifier, ProviderKind, Subject, Taxonomy,
};
use serde_json::json;

#[derive(Debug, Clone, clap::Args)]
pub struct EvalClassifyArgs {
    /// Alerts in the corpus format (JSON lines with `labels`, `annotations` and, to be scored,
    /// `expected`).
    #[arg(long)]
    pub input: PathBuf,
    /// Which classifier to evaluate; defaults to `classify.provider`.
    #[arg(long, value_enum)]
    pub provider: Option<ProviderKind>,
    /// Labelled examples for the local classifier's neighbours (default: `classify.local.examples`,
    /// else the built-in ones).
    #[arg(long)]
    pub examples: Option<PathBuf>,
    /// Services (the `service` field) whose examples are not used, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub exclude_services: Vec<String>,
    /// Leave-services-out cross-validation: the input's services are dealt into this many folds,
    /// and each alert is classified without the examples of its fold's services.
    #[arg(long)]
    pub folds: Option<usize>,
    /// With `--folds`: also mask the catalog entries and hints that name a fold's services
    /// (their words, as `--catalog-without` takes them) while classifying its alerts.
    #[arg(long, requires = "folds")]
    pub hold_out_catalog: bool,
    /// Mask every catalog entry (technology or hint) whose name or keywords hold one of these
    /// words (case-insensitive, whole words), comma-separated: how the classifier does on
    /// products the catalog does not list.
    #[arg(long, value_delimiter = ',')]
    pub catalog_without: Vec<String>,
    /// Print one JSON object (predictions: one per alert) instead of a report.
    #[arg(long)]
    pub json: bool,
}

pub async fn classify(config: &ClassifyConfig, args: &EvalClassifyArgs) -> anyhow::Result<()> {
    let alerts = corpus::load(&args.input)?;
    if alerts.is_empty() {
        bail!("{} holds no alerts", args.input.display());
    }
    let mut config = config.clone();
    config.taxonomy = Taxonomy::corpus();
    if let Some(examples) = &args.examples {
        config.local.examples = Some(examples.clone());
    }
    let provider = args.provider.unwrap_or(config.provider);
    config.provider = provider;
    // The LLM path is measured on every alert, not only those the local classifier is unsure of.
    config.llm.ask_below_confidence = 1.0;
    let subjects: Vec<Subject> = alerts.iter().map(CorpusAlert::subject).collect();

    let loading = Instant::now();
    let local = LocalClassifier::load(&config.local, config.taxonomy.clone())?;
    let loaded_in = loading.elapsed();
    let started = Instant::now();
    let (predictions, calls, matched) = match provider {
        ProviderKind::Local => {
            let (predictions, matched) = classify_locally(&local, &alerts, &subjects, args)?;
            (predictions, 0, matched)
        }
        _ => {
            if !args.catalog_without.is_empty() {
                bail!("--catalog-without masks the local classifier's catalog: use it with --provider local");
            }
            let matched = subjects.iter().filter(|s| local.catalog_decides(s, local.model())).count();
            let stage = Classifier::with_local(&config, local)?;
            (stage.classify(&subjects).await?, stage.llm_calls(), matched)
        }
    };
    let catalog_share = matched as f64 / subjects.len() as f64;
    let elapsed = started.elapsed().as_secs_f64();
    let throughput = subjects.len() as f64 / elapsed.max(1e-9);

    if alerts.iter().all(|a| a.expected.is_none()) {
        for (alert, p) in alerts.iter().zip(&predictions) {
            if args.json {
                println!("{}", json!({ "id": alert.id, "prediction": p }));
            } else {
                println!(
                    "{}\t{}\t{}\t{}\t{:.2}\t{}",
                    alert.id, p.category, p.severity, p.priority, p.confidence, p.summary
                );
            }
        }
        return Ok(());
    }
    let mut category = Scores::default();
    let mut severity = Scores::default();
    let mut confidence = Calibration::default();
    for (alert, p) in alerts.iter().zip(&predictions) {
        if let Some(expected) = &alert.expected {
            category.add(&expected.category, &p.category);
            severity.add(&expected.severity, &p.severity);
            confidence.add(p.confidence, expected.category == p.category);
        }
    }
    let (category, severity, confidence) = (category.summary(), severity.summary(), confidence.summary());
    let mut setup = match (args.folds, args.exclude_services.is_empty()) {
        (Some(folds), _) => format!("leave-services-out, {folds} folds"),
        (None, false) => format!("without the examples of {}", args.exclude_services.join(", ")),
        (None, true) => "all examples".to_string(),
    };
    if args.hold_out_catalog {
        setup.push_str(", the held-out services' catalog entries masked");
    }
    if !args.catalog_without.is_empty() {
        setup.push_str(&format!(", catalog without {}", args.catalog_without.join(", ")));
    }
    if args.json {
        println!(
            "{}",
            json!({
                "provider": provider,
                "alerts": subjects.len(),
                "setup": setup,
                "category": category,
                "severity": severity,
                "seconds": elapsed,
                "alerts_per_second": throughput,
                "llm_calls": calls,
                "catalog_matched": catalog_share,
                "confidence": confidence,
            })
        );
        return Ok(());
    }
    println!(
        "classified {} alerts with {provider:?} ({setup}) in {elapsed:.2} s: {throughput:.1} alerts/s \
         (model and examples loaded in {:.1} s)",
        subjects.len(),
        loaded_in.as_secs_f64()
    );
    if calls > 0 {
        println!("LLM requests: {calls}");
    }
    println!(
        "category accuracy {:.3} ({}/{}), macro-F1 {:.3}; the catalog recognised a product in {:.1}%",
        category.accuracy,
        category.correct,
        category.total,
        category.macro_f1,
        100.0 * catalog_share
    );
    println!(
        "severity accuracy {:.3} ({}/{}), macro-F1 {:.3}",
        severity.accuracy, severity.correct, severity.total, severity.macro_f1
    );
    println!(
        "confidence (of the category): expected calibration error {:.3}, AUROC right vs wrong {:.3}, mean {:.3}",
        confidence.ece, confidence.auroc, confidence.mean
    );
    println!("\ncategory confusion matrix:\n{}", category.matrix());
    println!("severity confusion matrix:\n{}", severity.matrix());
    Ok(())
}

/// Classifies each alert with a model fitted without the excluded services and, with folds,
/// without its own fold's services (and, with `--hold-out-catalog`, their catalog entries).
/// Returns the answers and how many alerts the catalog recognised a product in.
fn classify_locally(
    local: &LocalClassifier,
    alerts: &[CorpusAlert],
    subjects: &[Subject],
    args: &EvalClassifyArgs,
) -> anyhow::Result<(Vec<Classification>, usize)> {
    let excluded: BTreeSet<&str> = args.exclude_services.iter().map(String::as_str).collect();
    let folds = args.folds.unwrap_or(1).max(1);
    let dealt = Folds::deal(alerts.iter().map(|a| a.service.as_str()), folds);
    let mut predictions = vec![None; subjects.len()];
    let mut matched = 0;
    for fold in 0..folds {
        let members: Vec<usize> = (0..alerts.len()).filter(|i| dealt.of(&alerts[*i].service) == fold).collect();
        let held_out: BTreeSet<&str> = if args.folds.is_some() {
            members.iter().map(|i| alerts[*i].service.as_str()).collect()
        } else {
            BTreeSet::new()
        };
        let mut without = args.catalog_without.clone();
        if args.hold_out_catalog {
            without.extend(held_out.iter().flat_map(|s| catalog::naming(s)));
        }
        let model =
            local.fit(|e| !excluded.contains(e.service.as_str()) && !held_out.contains(e.service.as_str()), &without);
        let batch: Vec<Subject> = members.iter().map(|i| subjects[*i].clone()).collect();
        matched += batch.iter().filter(|s| local.catalog_decides(s, &model)).count();
        for (i, c) in members.iter().zip(local.classify_with(&batch, &model)?) {
            predictions[*i] = Some(c);
        }
    }
    Ok((predictions.into_iter().map(|p| p.expect("every alert is in one fold")).collect(), matched))
}
