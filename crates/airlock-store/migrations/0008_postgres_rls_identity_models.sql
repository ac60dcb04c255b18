-- PostgreSQL only: row-level security on the identity and model tables, which 0004 left open.
-- Migrations now run as an owner role and the application serves as another role that owns
-- nothing (`Db::migrate_postgres`, `Db::connect`), so the serving role cannot turn these
-- policies off (`ALTER TABLE ... DISABLE ROW LEVEL SECURITY`, `DROP POLICY` need ownership).
--
-- Identity tables (credential hashes, TOTP secrets, session, token and enrolment digests, role
-- grants) are visible only to a transaction that declared itself an identity transaction with
-- `set_config('airlock.identity', 'on', true)` (`Scope::identity`), which declares no zone. It
-- stops a data or model code path (any zone scope, every zone included) from reading
-- credentials or writing roles through a missing filter or an injected statement, and an
-- identity transaction from seeing zone data. It does not stop code that can send arbitrary
-- statements as the serving role: that code can call set_config itself (as with airlock.zones).
--
-- Model tables are bound by zone like 0004's: a transaction scoped to some zones sees and
-- writes only the models, transitions, approvals and outcomes of those zones. The registry
-- opens its transactions with every zone today, so this binds the other paths (caller-scoped
-- and identity transactions); it narrows the registry too once it passes the caller's scope.
--
-- schema_migrations holds no zone-bound or identity data and the serving role may only read
-- it: a policy there would protect nothing.
ALTER TABLE principals ENABLE ROW LEVEL SECURITY;
ALTER TABLE principals FORCE ROW LEVEL SECURITY;
CREATE POLICY principals_identity ON principals
    USING (current_setting('airlock.identity', true) = 'on')
    WITH CHECK (current_setting('airlock.identity', true) = 'on');

ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY sessions_identity ON sessions
    USING (current_setting('airlock.identity', true) = 'on')
    WITH CHECK (current_setting('airlock.identity', true) = 'on');

ALTER TABLE api_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY api_tokens_identity ON api_tokens
    USING (current_setting('airlock.identity', true) = 'on')
    WITH CHECK (current_setting('airlock.identity', true) = 'on');

ALTER TABLE enrolments ENABLE ROW LEVEL SECURITY;
ALTER TABLE enrolments FORCE ROW LEVEL SECURITY;
CREATE POLICY enrolments_identity ON enrolments
    USING (current_setting('airlock.identity', true) = 'on')
    WITH CHECK (current_setting('airlock.identity', true) = 'on');

ALTER TABLE role_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE role_grants FORCE ROW LEVEL SECURITY;
CREATE POLICY role_grants_identity ON role_grants
    USING (current_setting('airlock.identity', true) = 'on')
    WITH CHECK (current_setting('airlock.identity', true) = 'on');

ALTER TABLE model_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE model_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY model_versions_by_zone ON model_versions
    USING (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')))
    WITH CHECK (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')));

ALTER TABLE model_transitions ENABLE ROW LEVEL SECURITY;
ALTER TABLE model_transitions FORCE ROW LEVEL SECURITY;
CREATE POLICY model_transitions_by_zone ON model_transitions
    USING (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')))
    WITH CHECK (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')));

ALTER TABLE model_approvals ENABLE ROW LEVEL SECURITY;
ALTER TABLE model_approvals FORCE ROW LEVEL SECURITY;
CREATE POLICY model_approvals_by_zone ON model_approvals
    USING (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')))
    WITH CHECK (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')));

ALTER TABLE prediction_outcomes ENABLE ROW LEVEL SECURITY;
ALTER TABLE prediction_outcomes FORCE ROW LEVEL SECURITY;
CREATE POLICY prediction_outcomes_by_zone ON prediction_outcomes
    USING (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')))
    WITH CHECK (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')))
