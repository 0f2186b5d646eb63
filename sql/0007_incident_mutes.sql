-- What muted an incident's alerts (silences, Alertmanager's inhibit_rules): how many of its
-- firing alerts were not announced at this version, the silences and the inhibiting incidents.
-- How many incidents one source inhibited: count the incidents with its id in inhibited_by.
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS muted_alerts UInt64 DEFAULT 0;
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS silenced_by Array(String) DEFAULT [];
ALTER TABLE incidents ADD COLUMN IF NOT EXISTS inhibited_by Array(String) DEFAULT [];
