//! `quench eval classify`: how well a classifier does on labelled alerts, and how fast.
//!
//! Each line of the input becomes a one-alert incident, classified against the corpus taxonomy
//! (its 12 categories; severities critical, warning, info). Leave-services-out folds keep every
//! alert's own service out of the neighbours it is compared with, which is how accuracy on
//! services never seen before is measured honestly.

use std::{collections::BTreeSet, path::PathBuf, time::Instant};

use anyhow::bail;
use quench_classify::{
    corpus::{self, CorpusAlert},
    eval::Scores,
    local::Example,
    Classifier, ClassifyConfig, LocalClassifier, ProviderKind, Subject, Taxonomy,
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
    let subjects: Vec<Subject> = alerts.iter().map(|a| Subject::from_alert(&a.id, &a.labels, &a.annotations)).collect();

    let loading = Instant::now();
    let local = LocalClassifier::load(&config.local, config.taxonomy.clone())?;
    let loaded_in = loading.elapsed();
    let catalog_share = subjects.iter().filter(|s| local.catalog_decides(s)).count() as f64 / subjects.len() as f64;
    let started = Instant::now();
    let (predictions, calls) = match provider {
        ProviderKind::Local => (classify_locally(&local, &alerts, &subjects, args)?, 0),
        _ => {
            let stage = Classifier::with_local(&config, local)?;
            (stage.classify(&subjects).await?, stage.llm_calls())
        }
    };
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
    for (alert, p) in alerts.iter().zip(&predictions) {
        if let Some(expected) = &alert.expected {
            category.add(&expected.category, &p.category);
            severity.add(&expected.severity, &p.severity);
        }
    }
    let (category, severity) = (category.summary(), severity.summary());
    let setup = match (args.folds, args.exclude_services.is_empty()) {
        (Some(folds), _) => format!("leave-services-out, {folds} folds"),
        (None, false) => format!("without the examples of {}", args.exclude_services.join(", ")),
        (None, true) => "all examples".to_string(),
    };
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
        "category accuracy {:.3} ({}/{}), macro-F1 {:.3}; the catalog recognised a technology in {:.1}%",
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
    println!("\ncategory confusion matrix:\n{}", category.matrix());
    println!("severity confusion matrix:\n{}", severity.matrix());
    Ok(())
}

/// Classifies with the neighbours each alert may use: all examples but the excluded services
/// and, with folds, the services of the alert's own fold.
fn classify_locally(
    local: &LocalClassifier,
    alerts: &[CorpusAlert],
    subjects: &[Subject],
    args: &EvalClassifyArgs,
) -> anyhow::Result<Vec<quench_classify::Classification>> {
    let excluded: BTreeSet<&str> = args.exclude_services.iter().map(String::as_str).collect();
    let folds = args.folds.unwrap_or(1).max(1);
    let services: Vec<&str> = alerts.iter().map(|a| a.service.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
    // Services are dealt round-robin in name order, so every fold mixes families.
    let fold_of = |service: &str| services.iter().position(|s| *s == service).unwrap_or(0) % folds;
    let mut predictions = vec![None; subjects.len()];
    for fold in 0..folds {
        let members: Vec<usize> = (0..alerts.len()).filter(|i| fold_of(&alerts[*i].service) == fold).collect();
        let held_out: BTreeSet<&str> = if args.folds.is_some() {
            members.iter().map(|i| alerts[*i].service.as_str()).collect()
        } else {
            BTreeSet::new()
        };
        let keep = |e: &Example| !excluded.contains(e.service.as_str()) && !held_out.contains(e.service.as_str());
        let batch: Vec<Subject> = members.iter().map(|i| subjects[*i].clone()).collect();
        for (i, c) in members.iter().zip(local.classify_with(&batch, keep)?) {
            predictions[*i] = Some(c);
        }
    }
    Ok(predictions.into_iter().map(|p| p.expect("every alert is in one fold")).collect())
}
