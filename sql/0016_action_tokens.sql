-- The credential behind each action (issue 19): `actor` is who the request says acted, `token`
-- the API token's name (or slack/pagerduty for a signed callback) that vouched for it, so an
-- audit can tell a claim from the credential. Empty for actions recorded before.
ALTER TABLE actions ADD COLUMN IF NOT EXISTS token String DEFAULT '' AFTER actor;
