-- Predetermined change control plans (issue 19). No patient data: a plan is a governance
-- document (the modifications allowed to a model, the verification each needs, the rollout it
-- follows), signed with the deployment key; approvals and the versions approved under a plan
-- are names, hashes and ledger indices. No row-level security, as for the model tables'
-- approvals.
CREATE TABLE model_plans (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    model TEXT NOT NULL,
    body TEXT NOT NULL,
    hash TEXT NOT NULL,
    ed25519 TEXT NOT NULL,
    proposed_by TEXT NOT NULL,
    proposed_at TEXT NOT NULL,
    state TEXT NOT NULL,
    ledger_index BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE model_plan_approvals (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    role TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    ledger_index BIGINT NOT NULL,
    PRIMARY KEY (name, version, role)
);

-- A model version approved by a plan instead of the quorum: which plan (and its hash), which
-- version it replaces, and the clauses it was checked against.
CREATE TABLE model_plan_updates (
    hash TEXT PRIMARY KEY REFERENCES model_versions (hash),
    plan TEXT NOT NULL,
    plan_version BIGINT NOT NULL,
    plan_hash TEXT NOT NULL,
    replaces TEXT NOT NULL,
    clauses TEXT NOT NULL,
    at TEXT NOT NULL,
    ledger_index BIGINT NOT NULL
);
