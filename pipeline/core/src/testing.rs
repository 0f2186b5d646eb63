//! What the core's unit tests share.

use std::collections::BTreeMap;

use quench_schemas::{Alert, AlertStatus};

/// A firing alert `name` on `instance`, started and received at `at` (ms).
pub fn alert(name: &str, instance: &str, at: i64) -> Alert {
    Alert {
        source: "test".into(),
        status: AlertStatus::Firing,
        labels: BTreeMap::from([("alertname".into(), name.into()), ("instance".into(), instance.into())]),
        annotations: BTreeMap::new(),
        starts_at: at,
        ends_at: None,
        received_at: at,
        generator_url: None,
        fingerprint: None,
        tenant: "default".into(),
        stateful: false,
    }
}
