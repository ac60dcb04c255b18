-- Airlock metadata. Portable SQL: the same statements run on SQLite and PostgreSQL.
-- No PHI in these tables: file names and other identified details live inside encrypted
-- manifests in the object store.
CREATE TABLE objects (
    zone TEXT NOT NULL,
    classification TEXT NOT NULL,
    hash TEXT NOT NULL,
    size BIGINT NOT NULL,
    wrapped_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (zone, classification, hash)
);

CREATE TABLE datasets (
    name TEXT PRIMARY KEY,
    zone TEXT NOT NULL,
    classification TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);

CREATE TABLE dataset_versions (
    dataset TEXT NOT NULL REFERENCES datasets (name),
    version INTEGER NOT NULL,
    format TEXT NOT NULL,
    manifest_hash TEXT NOT NULL,
    objects BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    records BIGINT NOT NULL,
    lineage TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (dataset, version)
);

CREATE TABLE version_parents (
    dataset TEXT NOT NULL,
    version INTEGER NOT NULL,
    parent_dataset TEXT NOT NULL,
    parent_version INTEGER NOT NULL,
    PRIMARY KEY (dataset, version, parent_dataset, parent_version)
);
