"""The receiver's PostgreSQL schema: its migrations, a batch's rows, and their INSERTs.

The tables and columns are the SQLite store's (receiver/_store.py), with
PostgreSQL's types. A database at schema version N is given the steps after N,
in order, by the first receiver to start (receiver._postgres, under an
advisory lock); a step, once released, is never edited: a change is a new step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.batch import GatewayTags

# The schema, one step per entry; a database at version N gets the entries after N.
# COLLATE "C": text sorts by code point, as SQLite's does, whatever the database's locale.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE batches (
        id BIGSERIAL PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        gateway TEXT COLLATE "C" NOT NULL,
        sequence BIGINT NOT NULL,
        schema_version INTEGER NOT NULL,
        factor_set TEXT NOT NULL,
        received_at TEXT NOT NULL,
        body_sha256 TEXT NOT NULL,
        intervals INTEGER NOT NULL DEFAULT 0,
        events INTEGER NOT NULL DEFAULT 0,
        samples INTEGER NOT NULL DEFAULT 0,
        duplicate_records INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE intervals (
        id BIGSERIAL PRIMARY KEY,
        batch_id BIGINT NOT NULL REFERENCES batches (id),
        gateway TEXT COLLATE "C" NOT NULL,
        enterprise_id TEXT COLLATE "C" NOT NULL,
        region_code TEXT COLLATE "C" NOT NULL,
        industry_code TEXT COLLATE "C" NOT NULL,
        timezone TEXT NOT NULL,
        device TEXT COLLATE "C" NOT NULL,
        carrier TEXT COLLATE "C" NOT NULL,
        start_text TEXT NOT NULL,
        end_text TEXT NOT NULL,
        start_s DOUBLE PRECISION NOT NULL,
        end_s DOUBLE PRECISION NOT NULL,
        duration_s DOUBLE PRECISION NOT NULL,
        local_date TEXT COLLATE "C" NOT NULL,
        quantity DOUBLE PRECISION NOT NULL,
        unit TEXT NOT NULL,
        kwh DOUBLE PRECISION,
        tce_kg DOUBLE PRECISION,
        co2_kg DOUBLE PRECISION,
        scope INTEGER,
        factor_id TEXT,
        coverage DOUBLE PRECISION NOT NULL,
        quality TEXT NOT NULL,
        record TEXT NOT NULL,
        UNIQUE (gateway, device, carrier, start_s, end_s)
    );
    CREATE INDEX intervals_device_start ON intervals (device, start_s);
    CREATE INDEX intervals_local_date ON intervals (local_date);
    CREATE TABLE events (
        id BIGSERIAL PRIMARY KEY,
        batch_id BIGINT NOT NULL REFERENCES batches (id),
        gateway TEXT COLLATE "C" NOT NULL,
        event_id BIGINT NOT NULL,
        ts_text TEXT NOT NULL,
        ts_s DOUBLE PRECISION NOT NULL,
        device TEXT COLLATE "C",
        kind TEXT COLLATE "C" NOT NULL,
        severity TEXT COLLATE "C" NOT NULL,
        message TEXT NOT NULL,
        record TEXT NOT NULL,
        UNIQUE (gateway, event_id)
    );
    CREATE TABLE samples (
        id BIGSERIAL PRIMARY KEY,
        batch_id BIGINT NOT NULL REFERENCES batches (id),
        gateway TEXT COLLATE "C" NOT NULL,
        device TEXT COLLATE "C" NOT NULL,
        point TEXT COLLATE "C" NOT NULL,
        ts_text TEXT NOT NULL,
        ts_s DOUBLE PRECISION NOT NULL,
        value DOUBLE PRECISION,
        unit TEXT NOT NULL,
        quality TEXT NOT NULL,
        record TEXT NOT NULL,
        UNIQUE (gateway, device, point, ts_s)
    );
    """,
    # the events read side filters by time across gateways
    "CREATE INDEX events_ts ON events (ts_s)",
)

# (column, PostgreSQL array type) per table, in insert order; batch_id comes first, not listed.
INTERVAL_COLUMNS = (
    ("gateway", "text"),
    ("enterprise_id", "text"),
    ("region_code", "text"),
    ("industry_code", "text"),
    ("timezone", "text"),
    ("device", "text"),
    ("carrier", "text"),
    ("start_text", "text"),
    ("end_text", "text"),
    ("start_s", "float8"),
    ("end_s", "float8"),
    ("duration_s", "float8"),
    ("local_date", "text"),
    ("quantity", "float8"),
    ("unit", "text"),
    ("kwh", "float8"),
    ("tce_kg", "float8"),
    ("co2_kg", "float8"),
    ("scope", "int4"),
    ("factor_id", "text"),
    ("coverage", "float8"),
    ("quality", "text"),
    ("record", "text"),
)
_EVENT_COLUMNS = (
    ("gateway", "text"),
    ("event_id", "int8"),
    ("ts_text", "text"),
    ("ts_s", "float8"),
    ("device", "text"),
    ("kind", "text"),
    ("severity", "text"),
    ("message", "text"),
    ("record", "text"),
)
_SAMPLE_COLUMNS = (
    ("gateway", "text"),
    ("device", "text"),
    ("point", "text"),
    ("ts_text", "text"),
    ("ts_s", "float8"),
    ("value", "float8"),
    ("unit", "text"),
    ("quality", "text"),
    ("record", "text"),
)


def _insert_sql(table: str, columns: Sequence[tuple[str, str]]) -> str:
    """The INSERT of one row of a batch (run by executemany), skipping a row whose key is held.

    executemany in psycopg 3 sends the rows in pipeline mode, one round trip per batch;
    bench/receiver_ingest.py measured it faster than one INSERT from unnest(arrays) or
    COPY into a temporary table followed by INSERT ... SELECT.
    """
    names = ", ".join(name for name, _ in columns)
    values = ", ".join(["%s"] * (len(columns) + 1))
    return f"INSERT INTO {table} (batch_id, {names}) VALUES ({values}) ON CONFLICT DO NOTHING"


INSERT_INTERVALS = _insert_sql("intervals", INTERVAL_COLUMNS)

# A batch's intervals taken by PostgreSQL from the body itself (one parameter, the JSON
# text): json_array_elements on `json` (not jsonb) gives each record's text as it came, and
# json_to_record reads its fields in one pass (PostgreSQL 15 documentation, 9.16 "JSON
# Functions and Operators", Table 9.47). The receiver has validated the body against the
# schema first (receiver._request), so every field has its type; this spares Python the
# per-record work (a second JSON parse, time arithmetic, re-serialising each record, and
# adapting 24 parameters a row) that made it the slowest step of ingest (bench/RESULTS.md,
# "A region's day"). Rows go in the order of their natural key, as with executemany, so
# concurrent batches lock in one order. The time columns are what Python computed before:
# epoch seconds of the RFC 3339 text (exact numeric, then float8: correctly rounded, as
# datetime.timestamp()), and the local date in the gateway's IANA zone.
INSERT_INTERVALS_JSON = f"""
INSERT INTO intervals (batch_id, {", ".join(name for name, _ in INTERVAL_COLUMNS)})
SELECT %(batch_id)s, %(gateway)s, %(enterprise_id)s, %(region_code)s, %(industry_code)s,
    %(timezone)s, x.device, x.carrier, x.start, x."end",
    extract(epoch FROM t.s)::float8, extract(epoch FROM t.e)::float8,
    extract(epoch FROM t.e - t.s)::float8, (t.s AT TIME ZONE %(timezone)s)::date::text,
    x.quantity, x.unit, x.kwh, x.tce_kg, x.co2_kg, x.scope, x.factor ->> 'id', x.coverage,
    x.quality, r::text
FROM json_array_elements(%(body)s::json -> 'intervals') AS r,
    LATERAL json_to_record(r) AS x(device text, carrier text, start text, "end" text,
        quantity float8, unit text, kwh float8, tce_kg float8, co2_kg float8, scope int4,
        factor json, coverage float8, quality text),
    LATERAL (SELECT x.start::timestamptz AS s, x."end"::timestamptz AS e) AS t
ORDER BY x.device COLLATE "C", x.carrier COLLATE "C", 11, 12
ON CONFLICT DO NOTHING
"""
INSERT_EVENTS = _insert_sql("events", _EVENT_COLUMNS)
INSERT_SAMPLES = _insert_sql("samples", _SAMPLE_COLUMNS)


def json_parameters(gateway: GatewayTags, body: str) -> dict[str, Any]:
    """INSERT_INTERVALS_JSON's parameters but `batch_id`: the batch's tags and its body."""
    return {
        "gateway": gateway.id,
        "enterprise_id": gateway.enterprise_id,
        "region_code": gateway.region_code,
        "industry_code": gateway.industry_code,
        "timezone": gateway.timezone,
        "body": body,
    }


def nul_characters(document: dict[str, Any]) -> list[dict[str, str]]:
    """Where a record has text with U+0000 that would go into a column of its own.

    PostgreSQL's text cannot hold it (PostgreSQL 15 documentation, 8.3 "Character
    Types": "the character with code zero ... cannot be stored"); SQLite can. The
    record as a whole is kept as JSON, which writes it as \\u0000, so only the
    fields with a column are checked.
    """
    message = "text with U+0000 (NUL) cannot be stored in PostgreSQL"
    found = []
    gateway = document.get("gateway")
    heads = {"factor_set": document.get("factor_set")} | (
        {f"gateway.{k}": v for k, v in gateway.items()} if isinstance(gateway, dict) else {}
    )
    for name, value in heads.items():
        if isinstance(value, str) and "\x00" in value:
            found.append({"path": name, "message": message})
    for section in ("intervals", "events", "samples"):
        for n, record in enumerate(document.get(section) or []):
            if not isinstance(record, dict):
                continue
            fields = dict(record)
            factor = record.get("factor")
            if isinstance(factor, dict):
                fields["factor.id"] = factor.get("id")
            for name, value in fields.items():
                if isinstance(value, str) and "\x00" in value:
                    found.append({"path": f"{section}[{n}].{name}", "message": message})
    return found
