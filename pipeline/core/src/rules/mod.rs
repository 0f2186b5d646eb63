//! Windowing rules: the route tree that SREs tune, as in Alertmanager. Each alert goes down the
//! tree of label matchers; the routes it lands on decide its group (and so its incident) and the
//! timings of that group. The rules file is an Alertmanager configuration (`.yml`) or Quench's
//! TOML, one route model for both (the shell reloads it without a restart).

mod alertmanager;
pub mod duration;
mod holds;
mod interval;
mod linking;
mod matcher;
mod receiver;
mod route;

pub use holds::Holds;
pub use interval::TimeInterval;
pub use interval::MONTHS;
pub use linking::Linking;
pub use matcher::{is_label_name, Labels, Matcher};
pub use receiver::{Integration, Receiver};
pub use route::{alertmanager_group_key, GroupBy, GroupKey, Placement, Route, RouteTree, Timing};
