//! What the core's unit tests share.

use std::collections::BTreeMap;

use quench_schemas::Alert;

/// A firing alert `name` on `instance`, started and received at `at` (ms).
pub fn alert(name: &str, instance: &str, at: i64) -> Alert {
    Alert::firing("test", BTreeMap::from([("alertname".into(), name.into()), ("instance".into(), instance.into())]), at)
}
