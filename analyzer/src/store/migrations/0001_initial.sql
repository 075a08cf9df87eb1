-- zonewatch store, schema 1: the tables every later version builds on.
-- Timestamps are INTEGER nanoseconds since the Unix epoch (UTC).
-- Counters are INTEGER (i64); the store refuses values above i64::MAX.

PRAGMA application_id = 1515668546; -- 0x5A574442, "ZWDB": marks a zonewatch store

-- Key/value facts about the store (e.g. baseline_start).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- The ledger of ingested files, known by content hash: a file is ingested once.
CREATE TABLE files (
    sha256      TEXT PRIMARY KEY NOT NULL,
    path        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    ingested_at INTEGER NOT NULL,
    packets     INTEGER NOT NULL,
    flows       INTEGER NOT NULL,
    errors      INTEGER NOT NULL
) WITHOUT ROWID;

-- Flow counters per time bucket, source, zone pair, service and decision.
-- Writes add to an existing row.
CREATE TABLE aggregates (
    bucket      INTEGER NOT NULL,
    bucket_secs INTEGER NOT NULL,
    source      TEXT NOT NULL,
    src_zone    TEXT NOT NULL,
    dst_zone    TEXT NOT NULL,
    proto       INTEGER NOT NULL,
    dport       INTEGER NOT NULL,
    decision    TEXT NOT NULL,
    flows       INTEGER NOT NULL,
    packets     INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    answered    INTEGER NOT NULL,
    UNIQUE (bucket, bucket_secs, source, src_zone, dst_zone, proto, dport, decision)
);

-- One row per finding (id = the analyzer's stable id of the aggregation key).
-- severity: 0 info, 1 low, 2 medium, 3 high, 4 critical.
-- confidence: 0 low, 1 medium, 2 high.
-- initiator_count, hosts, ports: sizes of the member sets in finding_members.
-- members_capped: a member set reached its cap, so those counts are lower bounds.
CREATE TABLE findings (
    id                  TEXT PRIMARY KEY NOT NULL,
    kind                TEXT NOT NULL,
    severity            INTEGER NOT NULL,
    src_zone            TEXT NOT NULL,
    dst_zone            TEXT NOT NULL,
    dst                 TEXT,
    initiator_count     INTEGER NOT NULL DEFAULT 0,
    hosts               INTEGER NOT NULL DEFAULT 0,
    ports               INTEGER NOT NULL DEFAULT 0,
    members_capped      INTEGER NOT NULL DEFAULT 0,
    flows               INTEGER NOT NULL,
    packets             INTEGER NOT NULL,
    bytes               INTEGER NOT NULL,
    answered            INTEGER NOT NULL,
    confidence          INTEGER NOT NULL,
    first               INTEGER NOT NULL,
    last                INTEGER NOT NULL,
    rule                TEXT NOT NULL,
    suppressed          TEXT,
    expired_suppression TEXT
);

-- Sample flows of a finding, each the JSON of a `zonewatch flows` record.
CREATE TABLE finding_evidence (
    finding_id TEXT NOT NULL REFERENCES findings (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    first      INTEGER NOT NULL,
    flow       TEXT NOT NULL,
    PRIMARY KEY (finding_id, seq)
) WITHOUT ROWID;

-- The distinct initiators (with bytes), responder hosts and services of a
-- finding, so its counts stay exact across batches and restarts.
-- member: an address as [4, a, b, c, d] or [6, 16 bytes]; a service as
-- [protocol, port high byte, port low byte].
CREATE TABLE finding_members (
    finding_id TEXT NOT NULL REFERENCES findings (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('initiator', 'host', 'service')),
    member     BLOB NOT NULL,
    bytes      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (finding_id, role, member)
) WITHOUT ROWID;

-- Every zone pair and service observed, allowed or not.
CREATE TABLE paths (
    id       INTEGER PRIMARY KEY,
    src_zone TEXT NOT NULL,
    dst_zone TEXT NOT NULL,
    proto    INTEGER NOT NULL,
    dport    INTEGER NOT NULL,
    decision TEXT NOT NULL,
    rule     TEXT NOT NULL,
    first    INTEGER NOT NULL,
    last     INTEGER NOT NULL,
    flows    INTEGER NOT NULL,
    packets  INTEGER NOT NULL,
    bytes    INTEGER NOT NULL,
    UNIQUE (src_zone, dst_zone, proto, dport)
);
