-- Identities, sessions, API tokens, break-glass grants and de-identification runs started over
-- the API. No PHI: a patient appears only as a keyed pseudonym, and a break-glass justification is
-- sealed (AES-256-GCM under a data key wrapped by the deployment's key manager).
CREATE TABLE principals (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    roles TEXT NOT NULL,
    password_hash TEXT,
    totp_secret TEXT,
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    client_cert_sha256 TEXT,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until TEXT,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    principal TEXT NOT NULL REFERENCES principals (id),
    created_at TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    principal TEXT NOT NULL REFERENCES principals (id),
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE TABLE break_glass (
    id TEXT PRIMARY KEY,
    zone TEXT NOT NULL,
    principal TEXT NOT NULL,
    patient TEXT NOT NULL,
    reason TEXT NOT NULL,
    justification TEXT,
    started_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    reviewed_by TEXT,
    reviewed_at TEXT
);

CREATE TABLE deid_runs (
    id TEXT PRIMARY KEY,
    zone TEXT NOT NULL,
    actor TEXT NOT NULL,
    profile TEXT NOT NULL,
    dataset TEXT NOT NULL,
    out_dataset TEXT NOT NULL,
    status TEXT NOT NULL,
    report TEXT,
    error TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT
)
