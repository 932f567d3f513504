-- Practice domain: courses, scenarios (+ their personas), personas, versioned rubrics, products,
-- compliance rules. Nothing is ever deleted: DELETE sets `archived`, so sessions and reports that
-- reference a row keep working; list endpoints hide archived rows. Lists/dicts are JSON text.
CREATE TABLE courses (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    archived     INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX courses_name ON courses(name);

CREATE TABLE products (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    currency     TEXT NOT NULL DEFAULT 'USD',
    fees         TEXT NOT NULL DEFAULT '{}',   -- JSON {fee key: amount}
    waivers      TEXT NOT NULL DEFAULT '[]',   -- JSON list of {fee, condition, min_annual_spend}
    benefits     TEXT NOT NULL DEFAULT '[]',   -- JSON list of strings
    eligibility  TEXT NOT NULL DEFAULT '[]',   -- JSON list of strings
    description  TEXT NOT NULL DEFAULT '',
    archived     INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX products_name ON products(name);

CREATE TABLE personas (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    difficulty    TEXT NOT NULL DEFAULT 'medium' CHECK (difficulty IN ('easy', 'medium', 'hard')),
    description   TEXT NOT NULL DEFAULT '',
    goals         TEXT NOT NULL DEFAULT '[]',  -- JSON list of strings
    objections    TEXT NOT NULL DEFAULT '[]',  -- JSON list of strings
    knows         TEXT NOT NULL DEFAULT '[]',  -- JSON list of strings
    language      TEXT NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'zh')),
    initial_mood  REAL NOT NULL DEFAULT 0.5 CHECK (initial_mood >= 0 AND initial_mood <= 1),
    archived      INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX personas_name ON personas(name);

-- a rubric's identity; its content lives in rubric_versions (an old version is never changed)
CREATE TABLE rubrics (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    latest_version  INTEGER NOT NULL DEFAULT 1,
    archived        INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX rubrics_name ON rubrics(name);

CREATE TABLE rubric_versions (
    rubric_id    INTEGER NOT NULL REFERENCES rubrics(id),
    version      INTEGER NOT NULL CHECK (version >= 1),
    name         TEXT NOT NULL,
    dimensions   TEXT NOT NULL,                -- JSON list of {key, name, weight, description, stages}
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (rubric_id, version)
);

CREATE TABLE scenarios (
    id                    INTEGER PRIMARY KEY,
    course_id             INTEGER REFERENCES courses(id),
    name                  TEXT NOT NULL,
    description           TEXT NOT NULL DEFAULT '',
    objective             TEXT NOT NULL DEFAULT '',
    kind                  TEXT NOT NULL DEFAULT 'other'
                          CHECK (kind IN ('retention', 'new_sale', 'other')),
    product_id            INTEGER REFERENCES products(id),
    rubric_id             INTEGER REFERENCES rubrics(id),
    language              TEXT NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'zh')),
    knowledge_collection  TEXT NOT NULL DEFAULT 'default',
    archived              INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    created_at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX scenarios_name ON scenarios(name);
CREATE INDEX scenarios_course ON scenarios(course_id);

CREATE TABLE scenario_personas (
    scenario_id  INTEGER NOT NULL REFERENCES scenarios(id) ON DELETE CASCADE,
    persona_id   INTEGER NOT NULL REFERENCES personas(id),
    position     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scenario_id, persona_id)
);
CREATE INDEX scenario_personas_persona ON scenario_personas(persona_id);

CREATE TABLE compliance_rules (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('phrase', 'regex')),
    pattern      TEXT NOT NULL,
    severity     TEXT NOT NULL CHECK (severity IN ('warn', 'block')),
    applies_to   TEXT NOT NULL DEFAULT 'both' CHECK (applies_to IN ('trainee', 'customer', 'both')),
    message      TEXT NOT NULL DEFAULT '',
    archived     INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX compliance_rules_name ON compliance_rules(name);
