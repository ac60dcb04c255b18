-- A clinician's practitioner identity in the clinical data (an NPI, or the hospital's own
-- practitioner identifier): the treatment relationship that opens a patient's record is found
-- through it (an encounter, a care team or a general practitioner naming that practitioner in
-- the patient's record; issue 28, finding 8). Linked by the person who grants the clinician
-- role, in effect only once a second person confirms that role; sealed like a principal's row,
-- so a link written by someone with database access alone grants nothing.
CREATE TABLE practitioner_links (
    principal TEXT PRIMARY KEY REFERENCES principals (id),
    system TEXT NOT NULL,
    value TEXT NOT NULL,
    linked_by TEXT NOT NULL,
    linked_at TEXT NOT NULL,
    confirmed_by TEXT,
    mac TEXT
);
