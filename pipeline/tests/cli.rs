//! The `quench` binary as a user meets it: help, configuration errors and unreachable servers.

use std::process::{Command, Output};

fn quench(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quench"));
    command.args(args);
    // Start from the caller's QUENCH_* settings (the test stack), then apply the test's own.
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("quench runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_lists_every_subcommand_with_a_description() {
    let output = quench(&["--help"], &[]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for (command, words) in [
        ("init", "Create Kafka topics"),
        ("migrate", "ClickHouse migrations"),
        ("check", "answer"),
        ("config", "effective configuration"),
        ("run", "stream worker"),
        ("sink", "ClickHouse"),
        ("repartition", "partitions"),
        ("demo", "alert storm"),
        ("prepare", "local classifier"),
        ("eval", "labelled data"),
        ("predict", "precursors"),
    ] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{command} ")))
            .unwrap_or_else(|| panic!("{command} missing:\n{help}"));
        assert!(line.contains(words), "{command}: {line}");
    }
}

#[test]
fn an_unknown_key_in_the_environment_fails_naming_it() {
    let output = quench(&["check"], &[("QUENCH_KAFKA__BROKER", "127.0.0.1:9092")]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("kafka.broker") && err.contains("QUENCH_KAFKA__BROKER"), "{err}");
}

#[test]
fn an_unknown_key_in_the_file_fails_naming_it_and_the_file() {
    let path = std::env::temp_dir().join(format!("quench-cli-{}.toml", std::process::id()));
    std::fs::write(&path, "[clickhouse]\ncompresion = \"none\"\n").unwrap();
    let output = quench(&["--config", path.to_str().unwrap(), "config"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("clickhouse.compresion") && err.contains(path.to_str().unwrap()), "{err}");
}

#[test]
fn unreachable_broker_and_registry_fail_at_start_naming_key_and_address() {
    let output = quench(
        &["check"],
        &[
            ("QUENCH_KAFKA__BROKERS", "127.0.0.1:1"),
            ("QUENCH_KAFKA__CONNECT_TIMEOUT_MS", "1500"),
            ("QUENCH_REGISTRY__URL", "http://127.0.0.1:2/apis/ccompat/v7"),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("kafka.brokers = 127.0.0.1:1"), "{err}");
    assert!(err.contains("registry.url = http://127.0.0.1:2/apis/ccompat/v7"), "{err}");
}

#[test]
fn check_reports_the_running_stack() {
    let output = quench(&["check"], &[]);
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "stack not reachable: {}", stderr(&output));
    assert!(out.contains("kafka") && out.contains("registry") && out.contains("clickhouse"), "{out}");
}

#[test]
fn a_broken_alertmanager_file_fails_at_start_naming_the_key_and_line_before_any_server_is_needed() {
    let path = std::env::temp_dir().join(format!("quench-bad-am-{}.yml", std::process::id()));
    std::fs::write(&path, "route:\n  receiver: r\n  group_wiat: 30s\nreceivers: [{name: r}]\n").unwrap();
    // No broker listens there: the rules are read first.
    let env = [("QUENCH_WORKER__RULES", path.to_str().unwrap()), ("QUENCH_KAFKA__BROKERS", "127.0.0.1:1")];
    for command in ["run", "ingest"] {
        let output = quench(&[command], &env);
        assert!(!output.status.success());
        let err = stderr(&output);
        assert!(
            err.contains("worker.rules") && err.contains("group_wiat") && err.contains("line 3"),
            "{command}: {err}"
        );
    }
}

#[test]
fn a_broken_routing_file_fails_at_start_naming_the_key() {
    let path = std::env::temp_dir().join(format!("quench-bad-routing-{}.yaml", std::process::id()));
    std::fs::write(&path, "routes:\n  - match: { colour: red }\n").unwrap();
    let output = quench(&["run"], &[("QUENCH_WORKER__ROUTING", path.to_str().unwrap()), ("QUENCH_HTTP__LISTEN", "")]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("worker.routing") && err.contains("colour"), "{err}");
}
