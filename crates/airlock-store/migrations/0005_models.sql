-- The model registry: versions (content-addressed, signed), their lifecycle history, approvals,
-- rollouts and the outcomes posted back for predictions. No PHI: artifacts are encrypted blobs
-- (whose `blobs` rows are under row-level security on PostgreSQL),
-- a patient appears nowhere here, and predictions themselves live in the ledger (an outcome row
-- names its prediction by ledger index).
CREATE TABLE model_versions (
    hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    zone TEXT NOT NULL,
    classification TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    trained_by TEXT NOT NULL,
    registered_by TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    ed25519 TEXT NOT NULL,
    card TEXT NOT NULL,
    canary_share_bp BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX model_versions_by_name ON model_versions (name);

CREATE TABLE model_transitions (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    zone TEXT NOT NULL,
    name TEXT NOT NULL,
    hash TEXT NOT NULL REFERENCES model_versions (hash),
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    ledger_index BIGINT NOT NULL
);

CREATE INDEX model_transitions_by_name ON model_transitions (name, seq);

CREATE TABLE model_approvals (
    hash TEXT NOT NULL REFERENCES model_versions (hash),
    zone TEXT NOT NULL,
    role TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    ledger_index BIGINT NOT NULL,
    PRIMARY KEY (hash, role)
);

CREATE TABLE prediction_outcomes (
    prediction BIGINT PRIMARY KEY,
    zone TEXT NOT NULL,
    label BIGINT NOT NULL,
    posted_by TEXT NOT NULL,
    at TEXT NOT NULL
);
