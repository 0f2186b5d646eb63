-- Quench's holds (flap suppression, the transient pause): how many times an incident's alerts
-- changed between firing and resolved, and whether it was held as transient and resolved
-- within its pause (recorded, never announced). `analytics_daily` counts flapping incidents;
-- transient ones are found with `WHERE transient`.
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS state_changes UInt64 DEFAULT 0;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS transient Bool DEFAULT false;
