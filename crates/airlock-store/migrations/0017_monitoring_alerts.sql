-- Monitoring rules and alerts (issue 20). No patient data: a rule set is a TOML document
-- (measures and thresholds), an alert is a rule's verdict on aggregates of a window of
-- predictions (ledger indices, a figure, a count), and a webhook destination is a URL and the
-- certificate to trust for it (its signing key is derived, never stored).
CREATE TABLE monitoring_rules (
    model TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    hash TEXT NOT NULL,
    set_by TEXT NOT NULL,
    at TEXT NOT NULL,
    ledger_index BIGINT NOT NULL,
    PRIMARY KEY (model, version)
);

CREATE TABLE monitoring_alerts (
    ledger_index BIGINT PRIMARY KEY,
    model TEXT NOT NULL,
    version_hash TEXT NOT NULL,
    rule TEXT NOT NULL,
    rules_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    severity TEXT NOT NULL,
    measure TEXT NOT NULL,
    value TEXT NOT NULL,
    threshold TEXT NOT NULL,
    first_index BIGINT NOT NULL,
    last_index BIGINT NOT NULL,
    samples BIGINT NOT NULL,
    at TEXT NOT NULL
);

CREATE TABLE webhook_destinations (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    ca_pem TEXT NOT NULL,
    added_by TEXT NOT NULL,
    at TEXT NOT NULL,
    ledger_index BIGINT NOT NULL,
    active BIGINT NOT NULL
);
