//! Where rules files come from, and hot reload: a new file is picked up when its modification time
//! changes or on SIGHUP, without a restart. A file that does not parse is reported and the rules in
//! force stay, so a typo never takes the pipeline down. Reload swaps the whole set at once between
//! two records; open groups take their routes' new timings, as Alertmanager's do. The windowing rules
//! (TOML) and the routing rules (YAML) both reload this way.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::SystemTime,
};

use quench_core::rules::RouteTree;

use crate::events::RulesReloaded;

/// A rules file of type `T` and how to read it.
pub struct FileSource<T> {
    path: Option<PathBuf>,
    modified: Option<SystemTime>,
    requested: Arc<AtomicBool>,
    read: fn(&Path) -> Result<T, String>,
    audit: Option<ReloadAudit>,
}

/// Where reloads are recorded for the audit trail (ClickHouse `rules_reloads`), in the
/// background: a ClickHouse outage is logged and never holds up the worker.
pub struct ReloadAudit {
    clickhouse: clickhouse::Client,
    instance: String,
    handle: tokio::runtime::Handle,
}

#[derive(clickhouse::Row, serde::Serialize)]
struct Reload {
    at: i64,
    instance: String,
    rules: &'static str,
    file: String,
    outcome: &'static str,
    error: String,
}

impl ReloadAudit {
    pub fn new(clickhouse: clickhouse::Client, instance: &str, handle: tokio::runtime::Handle) -> Self {
        Self { clickhouse, instance: instance.to_string(), handle }
    }

    fn record(&self, rules: &'static str, file: &Path, rejected: Option<&str>) {
        let row = Reload {
            at: quench_schemas::now_ms(),
            instance: self.instance.clone(),
            rules,
            file: file.display().to_string(),
            outcome: if rejected.is_some() { "rejected" } else { "reloaded" },
            error: rejected.unwrap_or_default().to_string(),
        };
        let client = self.clickhouse.clone();
        crate::clickhouse::insert_in_background(&self.handle, client, "rules_reloads", vec![row], "a rules reload");
    }
}

/// The windowing rules' source.
pub type RulesSource = FileSource<RouteTree>;

impl RulesSource {
    /// Loads the file (or the built-in default when there is none).
    pub fn load(path: Option<PathBuf>) -> Result<(Self, RouteTree), String> {
        FileSource::open(path, RouteTree::load, RouteTree::default)
    }
}

impl<T> FileSource<T> {
    /// Reads `path` with `read`, or takes `default()` when there is no file.
    pub fn open(
        path: Option<PathBuf>,
        read: fn(&Path) -> Result<T, String>,
        default: impl FnOnce() -> T,
    ) -> Result<(Self, T), String> {
        let rules = match &path {
            Some(p) => read(p)?,
            None => default(),
        };
        let source =
            Self { modified: path.as_deref().and_then(modified), path, requested: Arc::default(), read, audit: None };
        Ok((source, rules))
    }

    /// Records every reload from now on in `audit`.
    pub fn with_audit(mut self, audit: ReloadAudit) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Setting this flag (the SIGHUP handler does) forces a reload at the next poll.
    pub fn reload_flag(&self) -> Arc<AtomicBool> {
        self.requested.clone()
    }

    /// New rules if the file changed or a reload was requested since the last poll.
    pub fn poll(&mut self) -> Option<Result<T, String>> {
        let path = self.path.as_ref()?;
        let now = modified(path);
        let requested = self.requested.swap(false, Ordering::SeqCst);
        if !requested && now == self.modified {
            return None;
        }
        self.modified = now;
        Some((self.read)(path))
    }
}

impl<T> FileSource<T> {
    fn audit_reload(&self, what: &'static str, rejected: Option<&str>) {
        if let (Some(audit), Some(path)) = (&self.audit, &self.path) {
            audit.record(what, path, rejected);
        }
    }

    /// Replaces `current` with the new rules if the file changed and parses; a broken file is
    /// reported (`quench_rules_reloads_total{rules=what, outcome="rejected"}`) and `current` stays.
    pub fn reload(&mut self, current: &mut T, what: &'static str) {
        self.reload_checked(current, what, |_| Ok(()));
    }

    /// Like [`FileSource::reload`], and new rules that `check` refuses are reported and not used.
    /// Returns whether new rules are in force.
    pub fn reload_checked(
        &mut self,
        current: &mut T,
        what: &'static str,
        check: impl Fn(&T) -> Result<(), String>,
    ) -> bool {
        match self.poll().map(|rules| rules.and_then(|r| check(&r).map(|()| r))) {
            None => false,
            Some(Ok(rules)) => {
                *current = rules;
                RulesReloaded { rules: what, rejected: None }.emit();
                self.audit_reload(what, None);
                true
            }
            Some(Err(e)) => {
                RulesReloaded { rules: what, rejected: Some(&e) }.emit();
                self.audit_reload(what, Some(&e));
                false
            }
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_reloaded_and_a_broken_one_reported() {
        let path = std::env::temp_dir().join(format!("quench-rules-{}.toml", std::process::id()));
        std::fs::write(&path, "[route]\ngroup_wait = \"10s\"\n").unwrap();
        let (mut source, tree) = RulesSource::load(Some(path.clone())).unwrap();
        assert_eq!(tree.root.timing.group_wait.as_secs(), 10);
        assert!(source.poll().is_none(), "unchanged");

        // Modification times can be coarse: move the clock of the file forward explicitly.
        std::fs::write(&path, "[route]\ngroup_wait = \"20s\"\n").unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(later).unwrap();
        assert_eq!(source.poll().unwrap().unwrap().root.timing.group_wait.as_secs(), 20);
        assert!(source.poll().is_none());

        std::fs::write(&path, "[route]\ngroup_wait = \"later\"\n").unwrap();
        source.reload_flag().store(true, Ordering::SeqCst);
        assert!(source.poll().unwrap().unwrap_err().contains("later"));

        // Through reload, as the worker calls it: the broken file leaves the rules in force.
        let mut current = tree;
        source.reload_flag().store(true, Ordering::SeqCst);
        source.reload(&mut current, "windowing");
        assert_eq!(current.root.timing.group_wait.as_secs(), 10, "the old rules stay");
        std::fs::write(&path, "[route]\ngroup_wait = \"30s\"\n").unwrap();
        source.reload_flag().store(true, Ordering::SeqCst);
        source.reload(&mut current, "windowing");
        assert_eq!(current.root.timing.group_wait.as_secs(), 30, "a good file is taken");
    }

    #[test]
    fn without_a_file_there_is_nothing_to_reload() {
        let (mut source, tree) = RulesSource::load(None).unwrap();
        assert_eq!(tree.root.id, "{}");
        source.reload_flag().store(true, Ordering::SeqCst);
        assert!(source.poll().is_none());
    }
}
