-- Named encrypted blobs kept in one zone (e.g. a safe-harbor surrogate crosswalk, which
-- re-identifies and so never leaves the clinical zone). The bytes are an encrypted object.
CREATE TABLE blobs (
    name TEXT PRIMARY KEY,
    zone TEXT NOT NULL,
    classification TEXT NOT NULL,
    hash TEXT NOT NULL,
    size BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
