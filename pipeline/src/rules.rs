//! `quench rules check` and `quench rules test`: a rules file checked, and the routes a label set
//! takes, offline (no Kafka, registry or ClickHouse). `test` prints what Alertmanager's
//! `amtool config routes test` prints for the same file and labels: the receivers of the matched
//! routes, comma-separated, in order; with `--tree`, each matched route with its group_by,
//! timers and the group key in Alertmanager's form.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use anyhow::{bail, Context};
use quench_core::rules::{is_label_name, GroupBy, Route, RouteTree};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The rules file: an Alertmanager configuration (.yml, .yaml) or Quench's TOML route tree
    file: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The rules file (default: worker.rules, else the built-in tree); amtool's --config.file
    /// too, and --config when it names a .yml file
    #[arg(long, visible_alias = "config.file")]
    pub rules: Option<PathBuf>,
    /// Also print each matched route: receiver, group_by, timers and the alert's group key
    #[arg(long)]
    tree: bool,
    /// The receivers expected, comma-separated: when they differ, print amtool's warning and exit 1
    #[arg(long = "verify.receivers")]
    verify_receivers: Option<String>,
    /// The alert's labels, as name=value (a value may be double-quoted)
    labels: Vec<String>,
}

pub fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let tree = RouteTree::load(&args.file).map_err(anyhow::Error::msg)?;
    // What `quench notify` would refuse at start-up: missing settings, unreadable secret files;
    // kinds it cannot deliver are a note, since notify.skip_unsupported_receivers may be set.
    let mut notify = quench_notify::NotifyConfig { skip_unsupported_receivers: true, ..Default::default() };
    crate::notify::receivers::add(&mut notify, &tree).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let mut routes = Vec::new();
    collect(&tree.root, &mut routes);
    let mut receivers: Vec<&str> = routes.iter().filter_map(|r| r.receiver.as_deref()).collect();
    receivers.sort_unstable();
    receivers.dedup();
    println!("{}: valid, {} route(s), receivers: {}", args.file.display(), routes.len(), receivers.join(", "));
    for note in &tree.notes {
        println!("note: {note}");
    }
    for receiver in tree.receivers.values().filter(|r| !r.unsupported.is_empty()) {
        println!(
            "note: receiver `{}`: Quench cannot deliver {}; quench notify refuses to start unless \
             notify.skip_unsupported_receivers = true",
            receiver.name,
            receiver.unsupported.join(", ")
        );
    }
    Ok(())
}

pub fn test(args: &TestArgs, configured: Option<&PathBuf>) -> anyhow::Result<bool> {
    let tree = match args.rules.as_ref().or(configured) {
        Some(path) => RouteTree::load(path).map_err(anyhow::Error::msg)?,
        None => RouteTree::default(),
    };
    let labels = parse_labels(&args.labels)?;
    let routes = tree.routes_for(&labels);
    let receivers: Vec<&str> = routes.iter().map(|r| r.receiver.as_deref().unwrap_or(&r.id)).collect();
    if args.tree {
        println!("Matching routes:");
        for route in &routes {
            print_route(route, &labels);
        }
        println!();
    }
    println!("{}", receivers.join(","));
    // amtool compares the joined names as written, and skips an empty expectation.
    if let Some(expected) = args.verify_receivers.as_deref().filter(|e| !e.is_empty()) {
        if expected != receivers.join(",") {
            println!("WARNING: Expected receivers did not match resolved receivers.");
            return Ok(false);
        }
    }
    Ok(true)
}

fn collect<'a>(route: &'a Route, out: &mut Vec<&'a Route>) {
    out.push(route);
    route.children().iter().for_each(|child| collect(child, out));
}

/// `name=value` pairs, as amtool takes them: the value may be double-quoted.
fn parse_labels(args: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    args.iter()
        .map(|arg| {
            let Some((name, value)) = arg.split_once('=') else {
                bail!("label `{arg}` is not name=value");
            };
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            if !is_label_name(name) {
                bail!("label `{arg}`: `{name}` is not a label name");
            }
            Ok((name.to_string(), value.to_string()))
        })
        .collect::<anyhow::Result<_>>()
        .context("quench rules test")
}

fn print_route(route: &Route, labels: &BTreeMap<String, String>) {
    let group_by = match &route.group_by {
        GroupBy::All => "[...]".to_string(),
        GroupBy::Labels(names) => format!("[{}]", names.join(", ")),
    };
    let t = &route.timing;
    println!("  {}", route.id);
    println!("    receiver: {}", route.receiver.as_deref().unwrap_or("(none)"));
    println!("    group_by: {group_by}");
    for (kind, names) in [("mute", &route.mute_time_intervals), ("active", &route.active_time_intervals)] {
        if !names.is_empty() {
            println!("    {kind}_time_intervals: [{}]", names.join(", "));
        }
    }
    println!(
        "    group_wait: {}  group_interval: {}  repeat_interval: {}  resolve_timeout: {}",
        human(t.group_wait),
        human(t.group_interval),
        human(t.repeat_interval),
        human(t.resolve_timeout)
    );
    println!("    group key: {}", route.alertmanager_group_key(labels));
}

/// A duration as Alertmanager writes one: `30s`, `5m`, `1h30m`.
fn human(duration: Duration) -> String {
    let mut ms = duration.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_alertmanager_writes_them() {
        assert_eq!(human(Duration::from_secs(5_400)), "1h30m");
        assert_eq!(human(Duration::from_millis(1_500)), "1s500ms");
        assert_eq!(human(Duration::ZERO), "0s");
    }

    #[test]
    fn labels_take_quoted_values_and_refuse_what_is_not_a_pair() {
        let labels = parse_labels(&["a=1".into(), "b=\"x=y\"".into()]).unwrap();
        assert_eq!((labels["a"].as_str(), labels["b"].as_str()), ("1", "x=y"));
        assert!(parse_labels(&["nonsense".into()]).is_err());
        assert!(parse_labels(&["a!=b".into()]).is_err(), "amtool refuses it too");
    }
}
