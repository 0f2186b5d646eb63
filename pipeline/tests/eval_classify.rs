//! `quench eval classify` on alerts of products the labelled examples never mention
//! (`pipeline/classify/tests/data/unseen.jsonl`), with the catalog whole and with those products'
//! entries masked (`--catalog-without`): what it reports, and that the ablation changes it.

use std::{path::Path, process::Command};

use serde_json::Value;

fn eval(extra: &[&str]) -> Value {
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("classify/tests/data/unseen.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["eval", "classify", "--json", "--input"])
        .arg(&input)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// The products of `unseen.jsonl`, as a user would name them.
const PRODUCTS: &str = "mongodb,cockroachdb,scylladb,scylla,influxdb,nats,activemq,haproxy,nginx,kong,nodejs,php,\
celery,airflow,trino,consul,etcd,jenkins,harbor,vault,bind,minio,velero,thanos,fluentd,victoriametrics,windows,\
nvidia,dcgm,aws,lambda,cloudwatch,gcp,stackdriver,redpanda";

#[test]
fn masking_the_products_catalog_entries_lowers_what_the_catalog_recognises_but_not_to_chance() {
    let whole = eval(&[]);
    let masked = eval(&["--catalog-without", PRODUCTS]);
    let share = |v: &Value| v["catalog_matched"].as_f64().unwrap();
    let accuracy = |v: &Value, of: &str| v[of]["accuracy"].as_f64().unwrap();
    assert!(share(&whole) > 0.8, "the catalog lists these products: {whole}");
    assert!(share(&masked) < share(&whole) - 0.5, "masked entries still matched: {masked}");
    assert!(masked["setup"].as_str().unwrap().contains("catalog without mongodb"), "{masked}");
    assert!(accuracy(&whole, "category") >= 0.9, "{whole}");
    // Measured when this test was written; always answering the most frequent category scores 0.13 here.
    assert!(accuracy(&masked, "category") >= 0.6, "{masked}");
    for report in [&whole, &masked] {
        let auroc = report["confidence"]["auroc"].as_f64().unwrap();
        let ece = report["confidence"]["ece"].as_f64().unwrap();
        assert!(auroc > 0.5 && (0.0..=1.0).contains(&ece), "{report}");
    }
    assert!(
        masked["confidence"]["mean"].as_f64().unwrap() < whole["confidence"]["mean"].as_f64().unwrap(),
        "without the catalog the classifier must be less sure: {masked}"
    );
}
