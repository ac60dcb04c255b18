-- The index of the ledger entry that recorded each dataset version. That entry carries the
-- SHA-256 of the version's lineage record and its manifest hash, so showing a lineage can check
-- that neither was edited in the database since. Versions written before have none (NULL).
ALTER TABLE dataset_versions ADD COLUMN ledger_index BIGINT
