-- The prediction log (issue 20): what each served prediction was given and what it gave, for
-- drift and performance monitoring. Predictions are batched into encrypted blobs in the
-- clinical zone; this table only indexes the batches (ledger indices, counts, times): no
-- feature value, score or patient is in it.
CREATE TABLE prediction_log_batches (
    model TEXT NOT NULL,
    first_index BIGINT NOT NULL,
    last_index BIGINT NOT NULL,
    row_count BIGINT NOT NULL,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    blob TEXT NOT NULL,
    zone TEXT NOT NULL,
    PRIMARY KEY (model, first_index)
);
