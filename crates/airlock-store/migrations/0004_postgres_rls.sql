-- PostgreSQL only: row-level security on every table that describes zone-bound data, as defence
-- in depth behind the application's checks. Each transaction declares the zones its caller may
-- see with `set_config('airlock.zones', 'a,b', true)`, and unset or empty means no rows. FORCE makes
-- the policies bind the table owner too; the application refuses to run as a superuser or a
-- role with BYPASSRLS, the only roles they would not bind.
ALTER TABLE objects ENABLE ROW LEVEL SECURITY;
ALTER TABLE objects FORCE ROW LEVEL SECURITY;
CREATE POLICY objects_by_zone ON objects
    USING (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')))
    WITH CHECK (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')));

ALTER TABLE datasets ENABLE ROW LEVEL SECURITY;
ALTER TABLE datasets FORCE ROW LEVEL SECURITY;
CREATE POLICY datasets_by_zone ON datasets
    USING (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')))
    WITH CHECK (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')));

-- A version is visible when its dataset is (the subquery is itself filtered by the policy above).
ALTER TABLE dataset_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE dataset_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY versions_by_dataset ON dataset_versions
    USING (EXISTS (SELECT 1 FROM datasets d WHERE d.name = dataset_versions.dataset))
    WITH CHECK (EXISTS (SELECT 1 FROM datasets d WHERE d.name = dataset_versions.dataset));

ALTER TABLE version_parents ENABLE ROW LEVEL SECURITY;
ALTER TABLE version_parents FORCE ROW LEVEL SECURITY;
CREATE POLICY parents_by_dataset ON version_parents
    USING (EXISTS (SELECT 1 FROM datasets d WHERE d.name = version_parents.dataset))
    WITH CHECK (EXISTS (SELECT 1 FROM datasets d WHERE d.name = version_parents.dataset));

ALTER TABLE blobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE blobs FORCE ROW LEVEL SECURITY;
CREATE POLICY blobs_by_zone ON blobs
    USING (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')))
    WITH CHECK (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')));

ALTER TABLE break_glass ENABLE ROW LEVEL SECURITY;
ALTER TABLE break_glass FORCE ROW LEVEL SECURITY;
CREATE POLICY break_glass_by_zone ON break_glass
    USING (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')))
    WITH CHECK (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')));

ALTER TABLE deid_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE deid_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY deid_runs_by_zone ON deid_runs
    USING (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')))
    WITH CHECK (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')))
