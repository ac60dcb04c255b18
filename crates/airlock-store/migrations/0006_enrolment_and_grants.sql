-- People enrol themselves: an administrator creates a person with a one-time, expiring
-- enrolment token (stored as a SHA-256 digest) and never sees their password or second
-- factor. Roles that reach PHI or approve models are granted by one person and confirmed by
-- another before they take effect (two-person rule); both steps are also ledger entries.
CREATE TABLE enrolments (
    token_hash TEXT PRIMARY KEY,
    principal TEXT NOT NULL REFERENCES principals (id),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE role_grants (
    principal TEXT NOT NULL REFERENCES principals (id),
    role TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    PRIMARY KEY (principal, role)
)
