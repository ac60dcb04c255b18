-- The prediction log's index is clinical: readable and writable only by a session in that zone.
ALTER TABLE prediction_log_batches ENABLE ROW LEVEL SECURITY;
ALTER TABLE prediction_log_batches FORCE ROW LEVEL SECURITY;
CREATE POLICY prediction_log_batches_by_zone ON prediction_log_batches
    USING (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')))
    WITH CHECK (zone = ANY (string_to_array(current_setting('airlock.zones', true), ',')));
