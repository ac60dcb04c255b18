-- Seals on the identity rows that carry authority: an HMAC, under a key derived from the
-- identity seal key (in the key hierarchy, not the database), over a principal's kind, roles,
-- state and certificate, a session's holder and expiry, and a token's holder, scopes and expiry.
-- A row that someone with only database access inserts or edits fails its seal and grants
-- nothing. Rows from before this migration are sealed once at the next start (a marker file in
-- the home records that it happened).
ALTER TABLE principals ADD COLUMN mac TEXT;
-- The actions a service's client certificate may be used for, as a token's scopes (issue 28,
-- finding 16); a certificate registered before this has none, and is registered again.
ALTER TABLE principals ADD COLUMN client_cert_scopes TEXT;
ALTER TABLE sessions ADD COLUMN mac TEXT;
ALTER TABLE api_tokens ADD COLUMN mac TEXT;
