//! Severity from the `severity` label, on Quench's default scale. Rule authors use many words for
//! the same level (page, error, warn...); mapping them to four ordered levels lets an incident's
//! severity be the highest of its alerts' and lets "severity went up" be a notification.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
pub enum Severity {
    #[default]
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn from_label(value: Option<&str>) -> Self {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            Some("critical" | "crit" | "page" | "emergency" | "fatal" | "disaster" | "p1") => Self::Critical,
            Some("high" | "error" | "err" | "major" | "severe" | "p2") => Self::High,
            Some("warning" | "warn" | "medium" | "minor" | "average" | "p3") => Self::Medium,
            Some("info" | "information" | "informational" | "low" | "notice" | "debug" | "none" | "p4" | "p5") => {
                Self::Low
            }
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}
