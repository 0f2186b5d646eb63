//! Quench's notifiers: routing events delivered to Slack, PagerDuty, Microsoft Teams, email and
//! webhooks, with escalation. The crate is a placeholder in the workspace until the routing and
//! notifiers issue lands; it holds no code yet on purpose.
