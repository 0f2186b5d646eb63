//! Quench's ingest connectors: webhooks from Alertmanager, Grafana, PagerDuty Events v2 and plain
//! JSON, turned into Avro `quench.Alert` records on Kafka. The crate is a placeholder in the
//! workspace until the ingest issue lands; it holds no code yet on purpose.
