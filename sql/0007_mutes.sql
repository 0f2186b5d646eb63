-- Whether an alert's sender reports its resolution (Alertmanager, PagerDuty): without an end, it
-- fires until the sender says otherwise, not only for resolve_timeout after it was last seen. The
-- Alertmanager API reads it to list the alerts that fire.
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS stateful Bool DEFAULT false;

-- What muted an incident's alerts (silences, Alertmanager's inhibit_rules): how many of its
-- firing alerts were not announced at this version, the silences and the inhibiting incidents.
-- How many incidents one source inhibited: count the incidents with its id in inhibited_by.
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS muted_alerts UInt64 DEFAULT 0;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS silenced_by Array(String) DEFAULT [];
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS inhibited_by Array(String) DEFAULT [];
