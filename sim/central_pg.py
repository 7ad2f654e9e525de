"""The reference central's store on PostgreSQL (`anpr-edge central --db postgresql://...`): psycopg 3
with a connection pool, the schema from sim/migrations applied once (recorded in schema_migrations,
under an advisory lock so instances starting together do not race), `read_id` unique so a re-delivery
is a no-op whichever instance gets it. Images stay files in the shared `out/images` folder, named by
read id, as with SQLite."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from sim.central import Store

MIGRATIONS = Path(__file__).with_name("migrations")
LOCK_ID = 7_224_011  # pg_advisory_lock key for migrations


def _pool(db: str, size: int = 4):
    try:
        from psycopg_pool import ConnectionPool
    except ImportError:
        raise RuntimeError("PostgreSQL needs psycopg: pip install 'anpr-edge[central]'") from None
    return ConnectionPool(db, min_size=1, max_size=size, open=True, kwargs={"autocommit": True}, timeout=30)


def migrate(conn) -> list[str]:
    """Apply the migration files not yet applied; their names."""
    done: list[str] = []
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ "
                     "NOT NULL DEFAULT now())")
        have = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
        for f in sorted(MIGRATIONS.glob("*.sql")):
            if f.name in have:
                continue
            with conn.transaction():
                conn.execute(f.read_text(encoding="utf-8"))
                conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (f.name,))
            done.append(f.name)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
    return done


class PgStore(Store):
    STATEMENTS: ClassVar[dict[str, str]] = {
        "insert_read": "INSERT INTO reads VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s::jsonb) "
                       "ON CONFLICT (read_id) DO NOTHING",
        "get_doc": "SELECT doc FROM reads WHERE read_id = %s",
        "add_conflict": "INSERT INTO conflicts VALUES (%s,%s,%s::jsonb)",
        "update_doc": "UPDATE reads SET doc = %s::jsonb WHERE read_id = %s",
        "insert_alert": "INSERT INTO alerts VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s::jsonb) "
                        "ON CONFLICT (alert_id) DO NOTHING",
        "alerts": "SELECT alert_id, read_id, vrm, raised_at, received_at, priority FROM alerts ORDER BY received_at",
        "count": "SELECT COUNT(*) FROM reads",
        "conflicts": "SELECT read_id FROM conflicts ORDER BY received_at",
        "read_ids": "SELECT read_id FROM reads ORDER BY read_id",
        "rows": "SELECT read_id, captured_at, received_at, site_id, camera_id FROM reads",
    }

    def __init__(self, out: Path, db: str) -> None:
        self.db = db
        super().__init__(out)

    def _connect(self) -> None:
        self._pool = _pool(self.db)
        with self._pool.connection() as conn:
            migrate(conn)

    def _run(self, name: str, args: tuple = ()) -> int:
        with self._pool.connection() as conn:
            return conn.execute(self.STATEMENTS[name], args).rowcount

    def _rows(self, name: str, args: tuple = ()) -> list[tuple]:
        with self._pool.connection() as conn:
            return [tuple(r) for r in conn.execute(self.STATEMENTS[name], args).fetchall()]

    def close(self) -> None:
        self._pool.close()


def reset(db: str) -> None:
    """Empty the tables (benchmark runs start from nothing); the schema stays."""
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        migrate(conn)
        conn.execute("TRUNCATE reads, conflicts, alerts")
