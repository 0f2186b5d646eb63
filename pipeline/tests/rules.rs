//! `quench rules test` against Debian's `amtool config routes test` (Alertmanager 0.25, the
//! reference): the same receivers, in the same order, for over a thousand generated label sets
//! over the Alertmanager configurations in `tests/data/alertmanager/` (two of them from
//! Alertmanager's own test data, see its NOTICE). Both tools run offline.
//! Also: `quench rules check` on good and bad files.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use quench_pipeline::config::quench_command;

const NAMES: [(&str, &[&str]); 8] = [
    ("alertname", &["PgDown", "HighLatency", "DiskFull", "Watchdog", "InfoInhibitor"]),
    ("team", &["dba", "frontend", "backend", "ops"]),
    ("severity", &["critical", "warning", "info", "page"]),
    ("service", &["api", "pg-main", "postgres", "mysql", "web", "userdb-replica", "foo1", "baz", "files", "database"]),
    ("env", &["prod", "staging", "dev"]),
    ("cluster", &["eu-1", "us-2"]),
    ("owner", &["team-X", "team-Y"]),
    ("owner2", &["team-X", "team-Y"]),
];
const CASES_PER_FILE: usize = 200;

fn configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/alertmanager");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

fn quench(args: &[&str]) -> Output {
    let mut command = quench_command(Path::new(env!("CARGO_BIN_EXE_quench")), "rules", &[]);
    command.args(args).output().unwrap()
}

fn amtool(file: &Path, labels: &[String]) -> Output {
    Command::new("amtool")
        .args(["config", "routes", "test", &format!("--config.file={}", file.display())])
        .args(labels)
        .output()
        .unwrap_or_else(|e| panic!("cannot run amtool ({e}); `infra/local/stack install` installs Debian's"))
}

/// Label sets from a fixed seed: each label present with probability 3/4.
fn label_sets(seed: u64, count: usize) -> Vec<Vec<String>> {
    let mut state = seed;
    let mut next = move |n: usize| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) % n as u64) as usize
    };
    (0..count)
        .map(|_| {
            let mut labels = Vec::new();
            for (name, values) in NAMES {
                if next(4) > 0 {
                    labels.push(format!("{name}={}", values[next(values.len())]));
                }
            }
            labels
        })
        .collect()
}

#[test]
fn quench_rules_test_agrees_with_amtool_on_a_thousand_label_sets() {
    let files = configs();
    assert!(files.len() >= 6, "{files:?}");
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let sets = label_sets(i as u64 + 1, CASES_PER_FILE);
        // Two threads, one per core: each runs both tools on half of the label sets.
        let halves: Vec<Vec<String>> = std::thread::scope(|scope| {
            let workers: Vec<_> = sets
                .chunks(CASES_PER_FILE / 2)
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .filter_map(|labels| {
                                let reference = amtool(file, labels);
                                assert!(
                                    reference.status.success(),
                                    "amtool: {}",
                                    String::from_utf8_lossy(&reference.stderr)
                                );
                                let mut args = vec!["test", "--config.file"];
                                let path = file.to_str().unwrap();
                                args.push(path);
                                args.extend(labels.iter().map(String::as_str));
                                let ours = quench(&args);
                                assert!(ours.status.success(), "quench: {}", String::from_utf8_lossy(&ours.stderr));
                                let (expected, got) = (
                                    String::from_utf8_lossy(&reference.stdout).trim().to_string(),
                                    String::from_utf8_lossy(&ours.stdout).trim().to_string(),
                                );
                                (expected != got).then(|| {
                                    format!(
                                        "{}: {}: amtool `{expected}`, quench `{got}`",
                                        file.display(),
                                        labels.join(" ")
                                    )
                                })
                            })
                            .collect::<Vec<String>>()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        mismatches.extend(halves.into_iter().flatten());
        compared += sets.len();
    }
    assert!(compared >= 1_000, "{compared} cases");
    assert!(mismatches.is_empty(), "{} of {compared} differ:\n{}", mismatches.len(), mismatches.join("\n"));
    eprintln!("{compared} label sets over {} configurations: quench and amtool agree", files.len());
}

#[test]
fn verify_receivers_fails_as_amtool_does() {
    let file = configs().into_iter().find(|f| f.ends_with("teams.yml")).unwrap();
    let file = file.to_str().unwrap();
    let ok = quench(&[
        "test",
        "--config.file",
        file,
        "--verify.receivers",
        "all-critical,dba",
        "team=dba",
        "severity=critical",
    ]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    let as_config =
        quench(&["test", "--config", file, "--verify.receivers", "all-critical,dba", "team=dba", "severity=critical"]);
    assert!(as_config.status.success(), "--config with a .yml file is the rules file: {as_config:?}");
    let wrong = quench(&["test", "--config.file", file, "--verify.receivers", "dba", "team=dba", "severity=critical"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stdout)
        .contains("WARNING: Expected receivers did not match resolved receivers."));
    let tree = quench(&[
        "test",
        "--config.file",
        file,
        "--tree",
        "team=dba",
        "service=postgres",
        "alertname=PgDown",
        "cluster=eu-1",
    ]);
    let printed = String::from_utf8_lossy(&tree.stdout);
    assert!(
        printed
            .contains(r#"group key: {}/{team="dba"}/{service=~"pg.*|postgres"}:{alertname="PgDown", cluster="eu-1"}"#),
        "{printed}"
    );
}

#[test]
fn rules_check_accepts_good_files_and_names_the_line_or_key_of_bad_ones() {
    for file in configs() {
        let out = quench(&["check", file.to_str().unwrap()]);
        assert!(out.status.success(), "{}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    }
    let dir = std::env::temp_dir().join(format!("quench-rules-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("route:\n  receiver: r\n  group_wiat: 1m\nreceivers: [{name: r}]\n", "line 3"),
        ("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{send_resolved: true}]}]\n", "`url` (or `url_file`) is required"),
        ("global: {smtp_frm: a@b}\nroute: {receiver: r}\nreceivers: [{name: r}]\n", "global: unknown key `smtp_frm`"),
        ("route:\n  receiver: nobody\nreceivers: [{name: r}]\n", "receiver `nobody` is not defined"),
        ("route:\n  receiver: r\n  routes:\n    - matchers: ['a=\"b']\nreceivers: [{name: r}]\n", "route 0.0"),
        ("route:\n  receiver: r\n  repeat_interval: 0s\nreceivers: [{name: r}]\n", "repeat_interval"),
        ("route: [\n", "line"),
        // Alertmanager refuses a legacy matcher without a value ("invalid regexp value").
        ("route:\n  receiver: r\n  routes:\n    - match_re: {service: }\n      receiver: r\nreceivers: [{name: r}]\n", "label `service` needs a value"),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let file = dir.join(format!("bad-{i}.yml"));
        std::fs::write(&file, text).unwrap();
        let out = quench(&["check", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "{text}: {stderr}");
    }
}
