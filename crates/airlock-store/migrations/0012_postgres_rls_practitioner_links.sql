-- PostgreSQL only: practitioner links are identity rows (0008's rule): visible only to an
-- identity transaction.
ALTER TABLE practitioner_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE practitioner_links FORCE ROW LEVEL SECURITY;
CREATE POLICY practitioner_links_identity ON practitioner_links
    USING (current_setting('airlock.identity', true) = 'on')
    WITH CHECK (current_setting('airlock.identity', true) = 'on');
