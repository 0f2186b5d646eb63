//! The local stack's own guarantees that Quench relies on.

mod support;

use quench_schemas::{Alert, Decoder, Encoder, Record, Registry};
use support::{alert, PrivateServer};

/// Kafka keeps records that carry schema ids; the registry once kept its schemas in memory, so
/// after a restart `/subjects` answered `[]` and ids handed out again could name other schemas.
#[tokio::test(flavor = "multi_thread")]
async fn the_registry_keeps_its_schemas_and_ids_across_a_restart() {
    let (server, url) = PrivateServer::registry("registry-restart", 18_900 + (std::process::id() % 50) as u16);
    let registry = Registry::new(&url, std::time::Duration::from_secs(10)).unwrap();
    let encoder = Encoder::<Alert>::register(&registry, "restart-alerts").await.unwrap();
    let written = encoder.encode(&alert("BeforeRestart", 1, 1_764_000_000_000)).unwrap();

    server.stack("down");
    server.stack("up");
    let decoded = Decoder::<Alert>::new(registry.clone()).decode(&written).await.unwrap();
    assert_eq!(decoded.labels["alertname"], "BeforeRestart", "a record written before the restart decodes");
    let mut evolved: serde_json::Value = serde_json::from_str(Alert::SCHEMA_JSON).unwrap();
    evolved["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "zone", "type": "string", "default": "a"}));
    let subject = Registry::value_subject("restart-alerts");
    let new_id = registry.register_schema(&subject, &evolved.to_string()).await.unwrap();
    let old_id = u32::from_be_bytes(written[1..5].try_into().unwrap());
    assert_ne!(new_id, old_id, "a new registration gets a new id");
    let old = registry.schema_by_id(old_id).await.unwrap();
    assert!(!old.contains("\"zone\""), "the old id still names the schema it was given to: {old}");
}

/// The script takes ports and instance names from the environment: a value that is not a port or
/// a plain name is refused, naming the variable, before it reaches a command line or a file (a
/// `;` once reached `sed`, whose `e` flag runs commands).
#[test]
fn the_stack_refuses_variables_that_are_not_ports_or_names() {
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/local/stack");
    let marker = std::env::temp_dir().join(format!("quench-stack-injected-{}", std::process::id()));
    let injected = format!("1;touch {}", marker.display());
    for (name, value) in [
        ("KAFKA_PORT", injected.as_str()),
        ("CLICKHOUSE_PORT", "a[$(id)]"),
        ("REGISTRY_PORT", "70000"),
        ("QUENCH_STACK_INSTANCE", "../elsewhere"),
    ] {
        let output = std::process::Command::new(&script).arg("env").env(name, value).output().unwrap();
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}={value} was taken");
        assert!(said.contains(name), "the refusal names {name}: {said}");
    }
    assert!(!marker.exists(), "no command ran");
}
