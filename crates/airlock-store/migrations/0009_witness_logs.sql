-- A witness's record of each log it cosigns (C2SP tlog-witness): per origin, the size and root
-- hash (base64) of the latest checkpoint it cosigned, and that checkpoint as signed by the log.
-- The service changes a row only by compare-and-swap on the size and root it checked against,
-- so two requests checked against one state never both land (one gets the spec's 409), also
-- between servers sharing a PostgreSQL database. No zone-bound data and no PHI: no row-level
-- security.
CREATE TABLE witness_logs (
    origin TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    root TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
