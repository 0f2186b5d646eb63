//! Local classification throughput, cold and from the cache, with latency percentiles.
//!
//! - cold: every alert has a template never seen (a unique word added to its summary), so each
//!   costs one MiniLM forward pass; compared with the compute bound measured on this machine
//!   (a matrix product of the model's shape, in GFLOP/s, over the FLOPs of one text);
//! - cache: the same alerts through the classification stage again, answered by signature.
//!
//! `cargo run --release -p quench-benches --bin classify -- --help`

use std::{path::PathBuf, time::Instant};

use candle_core::{Device, Tensor};
use clap::Parser;
use quench_classify::{Classifier, ClassifyConfig, Subject};
use quench_pipeline::corpus;

#[derive(Parser)]
struct Args {
    /// JSON-lines alert corpus to generate alerts from (default: the built-in one).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Alerts classified cold (each a new template).
    #[arg(long, default_value_t = 256)]
    cold: usize,
    /// Alerts classified from the cache.
    #[arg(long, default_value_t = 500_000)]
    hot: usize,
    /// Alerts per call of the stage, as the worker batches them per commit.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new()?;
    let alerts = corpus::load_or_built_in(args.corpus.as_deref())?;
    let config = ClassifyConfig::default();
    let started = Instant::now();
    let classifier = Classifier::new(&config)?;
    println!("loaded the local classifier in {:.1?}", started.elapsed());

    // A word per index, made of letters so that masking keeps it: cold templates are all new.
    let word = |mut i: usize| {
        let mut w = String::from("x");
        loop {
            w.push((b'a' + (i % 26) as u8) as char);
            i /= 26;
            if i == 0 {
                return w;
            }
        }
    };
    let cold: Vec<Subject> = (0..args.cold)
        .map(|i| {
            let a = &alerts[i % alerts.len()];
            let mut s = Subject::from_alert(format!("cold-{i}"), &a.labels, &a.annotations);
            s.summary = format!("{} {}", s.summary, word(i));
            s
        })
        .collect();
    let tokens = cold.iter().map(|s| quench_classify::subject::template(s).split_whitespace().count()).sum::<usize>()
        as f64
        / cold.len() as f64;
    let started = Instant::now();
    for chunk in cold.chunks(64) {
        rt.block_on(classifier.classify(chunk))?;
    }
    let cold_rate = cold.len() as f64 / started.elapsed().as_secs_f64();
    let gflops = matmul_gflops()?;
    // Per token, the encoder's six layers cost 2 x 10.6 M multiply-adds (attention projections
    // and feed-forward); attention scores add little at these lengths. Word pieces run about 1.3
    // per whitespace word.
    let flop_per_text = 2.0 * 10.6e6 * tokens * 1.3;
    let bound = gflops * 1e9 / flop_per_text;
    println!(
        "cold: {} alerts in {:.2?}: {cold_rate:.1} alerts/s; about {:.0} word pieces a text, {:.2} GFLOP a text; \
         this machine multiplies at {gflops:.1} GFLOP/s (all cores), so the bound is about {bound:.0} texts/s \
         ({:.0}% reached)",
        cold.len(),
        started.elapsed(),
        tokens * 1.3,
        flop_per_text / 1e9,
        100.0 * cold_rate / bound
    );

    // Warm the cache with every corpus alert, then classify a storm of them by batches.
    let warm: Vec<Subject> =
        alerts.iter().map(|a| Subject::from_alert(a.id.clone(), &a.labels, &a.annotations)).collect();
    rt.block_on(classifier.classify(&warm))?;
    let mut latencies = Vec::new();
    let started = Instant::now();
    let mut done = 0;
    while done < args.hot {
        let batch: Vec<Subject> =
            (done..(done + args.batch).min(args.hot)).map(|i| warm[i % warm.len()].clone()).collect();
        let t = Instant::now();
        rt.block_on(classifier.classify(&batch))?;
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
        done += batch.len();
    }
    let hot_rate = done as f64 / started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "cache: {done} alerts in {:.2?}: {hot_rate:.0} alerts/s; per batch of {}: p50 {:.2} ms, p99 {:.2} ms",
        started.elapsed(),
        args.batch,
        pct(0.5),
        pct(0.99)
    );
    quench_benches::print_figures(serde_json::json!({
        "classify_cold_per_s": cold_rate,
        "classify_bound_per_s": bound,
        "classify_cached_per_s": hot_rate,
    }));
    Ok(())
}

/// GFLOP/s of candle's f32 matrix product on a feed-forward layer's shape (54 x 384 by 384 x 1536).
fn matmul_gflops() -> anyhow::Result<f64> {
    let a = Tensor::randn(0f32, 1.0, (32, 54, 384), &Device::Cpu)?;
    let b = Tensor::randn(0f32, 1.0, (384, 1536), &Device::Cpu)?;
    let _ = a.broadcast_matmul(&b)?;
    let rounds = 50;
    let started = Instant::now();
    for _ in 0..rounds {
        let _ = a.broadcast_matmul(&b)?;
    }
    let flop = 2.0 * 32.0 * 54.0 * 384.0 * 1536.0 * rounds as f64;
    Ok(flop / started.elapsed().as_secs_f64() / 1e9)
}
