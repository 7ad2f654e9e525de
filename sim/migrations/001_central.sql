-- The reference central's tables on PostgreSQL (sim.central_pg applies each file once, in name order,
-- and records it in schema_migrations). read_id is the primary key: a re-delivered read is a no-op.
CREATE TABLE reads (
  read_id     TEXT PRIMARY KEY,
  site_id     TEXT NOT NULL,
  camera_id   TEXT NOT NULL,
  captured_at TIMESTAMPTZ NOT NULL,
  received_at DOUBLE PRECISION NOT NULL,
  vrm         TEXT NOT NULL,
  confidence  REAL NOT NULL,
  format      TEXT NOT NULL,
  doc         JSONB NOT NULL
);
CREATE INDEX reads_vrm ON reads (vrm);
CREATE INDEX reads_camera_time ON reads (site_id, camera_id, captured_at);
CREATE TABLE conflicts (
  read_id     TEXT NOT NULL,
  received_at DOUBLE PRECISION NOT NULL,
  doc         JSONB NOT NULL
);
CREATE TABLE alerts (
  alert_id    TEXT PRIMARY KEY,
  read_id     TEXT NOT NULL,
  site_id     TEXT NOT NULL,
  camera_id   TEXT NOT NULL,
  raised_at   TIMESTAMPTZ NOT NULL,
  received_at DOUBLE PRECISION NOT NULL,
  vrm         TEXT NOT NULL,
  priority    INTEGER NOT NULL,
  doc         JSONB NOT NULL
);
