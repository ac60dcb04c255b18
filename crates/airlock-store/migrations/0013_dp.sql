-- Differential privacy (issue 21). No patient data: metadata is public facts the privacy
-- officer declares (the unit column's name, bounds, category domains); budgets are figures.
-- No row-level security, as for witness_logs.
--
-- A dataset's DP metadata, versioned and append-only: a query records which version it ran
-- under.
CREATE TABLE dp_metadata (
    dataset TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL,
    PRIMARY KEY (dataset, version)
);

-- Budgets in zCDP, as integers of 1e-12 rho so that sums are exact. `analyst` is a principal
-- id, or '*' for the dataset's total. A query reserves by a conditional UPDATE
-- (`spent + charge <= limit`) of both its rows in one transaction, so no interleaving of
-- queries, threads, processes or servers on one database can overspend either.
CREATE TABLE dp_budgets (
    dataset TEXT NOT NULL,
    analyst TEXT NOT NULL,
    limit_units BIGINT NOT NULL,
    spent_units BIGINT NOT NULL,
    delta DOUBLE PRECISION,
    set_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (dataset, analyst)
)
