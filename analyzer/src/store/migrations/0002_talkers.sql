-- zonewatch store, schema 2: who talks on each path, and the index that
-- makes listing a finding's top initiators cheap.

-- The largest talkers (by bytes) of a path; the store keeps a bounded number per path.
CREATE TABLE path_talkers (
    path_id INTEGER NOT NULL REFERENCES paths (id) ON DELETE CASCADE,
    src     TEXT NOT NULL,
    dst     TEXT NOT NULL,
    flows   INTEGER NOT NULL,
    bytes   INTEGER NOT NULL,
    PRIMARY KEY (path_id, src, dst)
);

-- A finding's top initiators by bytes without sorting all its members.
CREATE INDEX finding_members_by_bytes ON finding_members (finding_id, role, bytes DESC);
