//! `quench predict eval`: the precursor learner, the recurrence hazard and the two baselines on
//! an alarm recording (the layout of the telecom sets: `alarm_id,device_id,start_timestamp,
//! end_timestamp`), with the causal graph scored against the experts' when given.

use std::{path::PathBuf, time::Instant};

use anyhow::Context;
use quench_core::predict::{
    evaluate::{evaluate, Outcome, Recording},
    topology::Topology,
};
use serde_json::json;

#[derive(Debug, Clone, clap::Args)]
pub struct PredictEvalArgs {
    /// The alarms: `alarm_id,device_id,start_timestamp[,end_timestamp]`, seconds.
    #[arg(long)]
    pub alarms: PathBuf,
    /// Links between devices: `device_a,device_b` per line; alarms on linked devices count as
    /// related.
    #[arg(long)]
    pub topology: Option<PathBuf>,
    /// The experts' causal graph, `cause_alarm_id,effect_alarm_id` per line: only read to score
    /// the learned one.
    #[arg(long)]
    pub causal: Option<PathBuf>,
    /// Print one JSON object with everything instead of the report (the last line is always the
    /// summary JSON).
    #[arg(long)]
    pub json: bool,
}

fn read(path: &PathBuf, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read the {what} file {}", path.display()))
}

pub fn run(args: &PredictEvalArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut recording = Recording::parse(&read(&args.alarms, "alarms")?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.alarms.display()))?;
    let topology = match &args.topology {
        Some(path) => Topology::parse(&read(path, "topology")?, &mut recording.entities)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        None => Topology::default(),
    };
    let causal = args.causal.as_ref().map(|path| read(path, "causal edges")).transpose()?;
    let evaluation = evaluate(&recording, topology, causal.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
    let elapsed = started.elapsed();

    let best_baseline = evaluation.baselines.iter().map(|b| b.score.f1).fold(0.0, f64::max);
    if args.json {
        println!("{}", serde_json::to_string(&evaluation)?);
    } else {
        println!(
            "{} alarms, {} onsets to learn from (first 60% of the time), {} to predict",
            evaluation.alarms, evaluation.training_onsets, evaluation.test_onsets
        );
        println!(
            "{:<26} {:>9} {:>7} {:>7} {:>7} {:>22}",
            "", "predicted", "prec.", "recall", "F1", "lead p10/p50/p90 (s)"
        );
        let line = |o: &Outcome| {
            let lead = |v: Option<i64>| v.map_or("-".into(), |v| v.to_string());
            println!(
                "{:<26} {:>9} {:>7.3} {:>7.3} {:>7.3} {:>22}",
                o.name,
                o.score.predictions,
                o.score.precision,
                o.score.recall,
                o.score.f1,
                format!("{}/{}/{}", lead(o.score.lead_p10_s), lead(o.score.lead_p50_s), lead(o.score.lead_p90_s))
            )
        };
        line(&evaluation.ours);
        evaluation.parts.iter().for_each(line);
        evaluation.baselines.iter().for_each(line);
        if best_baseline > 0.0 {
            println!("ours / best baseline F1: {:.2}x", evaluation.ours.score.f1 / best_baseline);
        }
        if let Some(dag) = &evaluation.dag {
            println!(
                "causal graph: {} edges learned, {} of the experts' {} found: precision {:.3}, recall {:.3}, F1 {:.3}",
                dag.learned, dag.correct, dag.expected, dag.precision, dag.recall, dag.f1
            );
        }
        println!("evaluated in {:.1?}", elapsed);
    }
    println!(
        "{}",
        json!({
            "precision": evaluation.ours.score.precision,
            "recall": evaluation.ours.score.recall,
            "f1": evaluation.ours.score.f1,
            "lead_p50_s": evaluation.ours.score.lead_p50_s,
            "baseline_f1": best_baseline,
            "dag_f1": evaluation.dag.as_ref().map(|d| d.f1),
        })
    );
    Ok(())
}
