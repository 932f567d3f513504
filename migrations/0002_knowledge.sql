-- Knowledge pipeline: documents (one row per version), per-page routes, durable ingestion jobs.
CREATE TABLE documents (
    id            INTEGER PRIMARY KEY,
    title         TEXT NOT NULL,
    filename      TEXT NOT NULL,
    sniffed_type  TEXT NOT NULL DEFAULT '',
    sha256        TEXT NOT NULL,
    size          INTEGER NOT NULL,
    version       INTEGER NOT NULL DEFAULT 1,
    collection    TEXT NOT NULL DEFAULT 'default',
    tags          TEXT NOT NULL DEFAULT '[]',          -- JSON list of strings
    uploader_id   INTEGER REFERENCES users(id) ON DELETE SET NULL,
    state         TEXT NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'done', 'failed')),
    routes        TEXT NOT NULL DEFAULT '[]',          -- JSON list of {page, route, reason, ...}
    warnings      TEXT NOT NULL DEFAULT '[]',          -- JSON list of strings
    pages         INTEGER,
    chunk_count   INTEGER NOT NULL DEFAULT 0,
    parent_count  INTEGER NOT NULL DEFAULT 0,
    retired       INTEGER NOT NULL DEFAULT 0 CHECK (retired IN (0, 1)),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (collection, title, version)
);
CREATE INDEX documents_sha ON documents(collection, sha256);
CREATE INDEX documents_title ON documents(collection, title);
CREATE INDEX documents_state ON documents(state);

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    document_id   INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    user_id       INTEGER REFERENCES users(id) ON DELETE SET NULL,
    kind          TEXT NOT NULL DEFAULT 'ingest',
    state         TEXT NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'done', 'failed')),
    stage         TEXT NOT NULL DEFAULT 'queued',
    progress      REAL NOT NULL DEFAULT 0,           -- percent, 0..100
    attempts      INTEGER NOT NULL DEFAULT 0,
    error_code    TEXT,
    error_message TEXT,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    started_at    TEXT,
    finished_at   TEXT,
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX jobs_state ON jobs(state, id);
CREATE INDEX jobs_document ON jobs(document_id);
