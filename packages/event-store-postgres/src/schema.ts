import type pg from 'pg';

/** NOTIFY channel that wakes live subscriptions; the payload is the id of the notifying store. */
export const CHANNEL = 'muster_events';

/** Any 64-bit constant works as long as every process uses the same one. */
const MIGRATION_LOCK = "hashtextextended('muster:event-store-postgres:migrate', 0)";

/**
 * The append function. One call is one round trip and one transaction: it takes a lock on the
 * stream (appends to other streams go on in parallel), decides idempotent replays and the expected
 * revision against committed data, computes the hash chain and inserts. It never raises for a
 * revision mismatch or a replay: it returns what it found, and the caller applies the port's rules
 * to the facts (`outcome`), so that every adapter words its errors the same way.
 *
 * `p_expected`: an exact revision (>= 0), -1 any, -2 no_stream, -3 stream_exists.
 * The hashed string is `head || previous || middle || revision || tail`, where `previous` is `null`
 * or the JSON-quoted previous hash: the caller builds the parts with `hashInputParts`.
 */
const APPEND_FUNCTION = `
CREATE OR REPLACE FUNCTION muster_append_events(
  p_stream      text,
  p_expected    bigint,
  p_ids         uuid[],
  p_types       text[],
  p_data        text[],
  p_metadata    text[],
  p_recorded_at text,
  p_heads       text[],
  p_middles     text[],
  p_tails       text[]
) RETURNS TABLE (
  o_outcome        text,
  o_current        bigint,
  o_id             uuid,
  o_stream         text,
  o_revision       bigint,
  o_transaction_id text,
  o_position       text,
  o_type           text,
  o_data           text,
  o_metadata       text,
  o_recorded_at    text,
  o_hash           text,
  o_previous_hash  text
) LANGUAGE plpgsql AS $fn$
DECLARE
  v_count         integer := coalesce(cardinality(p_ids), 0);
  v_current       bigint;
  v_last_hash     text;
  v_last_xid      xid8;
  v_found_stream  text;
  v_found_rev     bigint;
  v_xid           xid8;
  v_revision      bigint;
  v_previous      text;
  v_hash          text;
  v_position      bigint;
BEGIN
  IF v_count = 0
     OR coalesce(cardinality(p_types), 0) <> v_count OR coalesce(cardinality(p_data), 0) <> v_count
     OR coalesce(cardinality(p_metadata), 0) <> v_count OR coalesce(cardinality(p_heads), 0) <> v_count
     OR coalesce(cardinality(p_middles), 0) <> v_count OR coalesce(cardinality(p_tails), 0) <> v_count THEN
    RAISE EXCEPTION 'muster_append_events: the event arrays must be non-empty and of equal length'
      USING ERRCODE = '22023';
  END IF;

  -- Appends to one stream take turns. The lock is taken before this transaction has an xid, so
  -- xids (and with them the global order) follow the stream's revisions.
  PERFORM pg_advisory_xact_lock(hashtextextended(p_stream, 7150735));

  SELECT e.revision, e.hash, e.transaction_id INTO v_current, v_last_hash, v_last_xid
    FROM muster_events e WHERE e.stream = p_stream ORDER BY e.revision DESC LIMIT 1;

  SELECT e.stream, e.revision INTO v_found_stream, v_found_rev
    FROM muster_events e WHERE e.id = p_ids[1];
  IF FOUND THEN
    RETURN QUERY
      SELECT 'replay'::text, v_current, e.id, e.stream, e.revision, e.transaction_id::text,
             e.global_position::text, e.type, e.data::text, e.metadata::text, e.recorded_at, e.hash,
             e.previous_hash
        FROM muster_events e
       WHERE e.stream = v_found_stream AND e.revision >= v_found_rev
       ORDER BY e.revision
       LIMIT v_count;
    RETURN;
  END IF;

  IF (p_expected = -2 AND v_current IS NOT NULL)
     OR (p_expected = -3 AND v_current IS NULL)
     OR (p_expected >= 0 AND v_current IS DISTINCT FROM p_expected) THEN
    o_outcome := 'wrong-expected-revision';
    o_current := v_current;
    RETURN NEXT;
    RETURN;
  END IF;

  v_xid := pg_current_xact_id();
  IF v_last_xid IS NOT NULL AND v_last_xid > v_xid THEN
    -- Only possible when the caller's transaction got its xid before an append to this stream
    -- committed: writing now would put this revision before the previous one in the global order.
    RAISE EXCEPTION 'muster_append_events: stream % was appended to by a younger transaction; retry', p_stream
      USING ERRCODE = '40001';
  END IF;

  v_revision := coalesce(v_current, -1);
  v_previous := v_last_hash;
  FOR i IN 1 .. v_count LOOP
    v_revision := v_revision + 1;
    v_hash := encode(sha256(convert_to(
      p_heads[i] || coalesce('"' || v_previous || '"', 'null') || p_middles[i] || v_revision::text || p_tails[i],
      'UTF8')), 'hex');
    INSERT INTO muster_events AS e (id, stream, revision, type, data, metadata, recorded_at, hash, previous_hash)
    VALUES (p_ids[i], p_stream, v_revision, p_types[i], p_data[i]::json, p_metadata[i]::json, p_recorded_at,
            v_hash, v_previous)
    RETURNING e.global_position INTO v_position;
    o_outcome := 'written';
    o_current := v_current;
    o_id := p_ids[i];
    o_stream := p_stream;
    o_revision := v_revision;
    o_transaction_id := v_xid::text;
    o_position := v_position::text;
    o_hash := v_hash;
    o_previous_hash := v_previous;
    RETURN NEXT;
    v_previous := v_hash;
  END LOOP;
END
$fn$`;

/** Versioned, in order; a version is never edited once released, only followed by another. */
export const MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
CREATE TABLE muster_events (
  id              uuid   NOT NULL,
  global_position bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
  transaction_id  xid8   NOT NULL DEFAULT pg_current_xact_id(),
  stream          text   NOT NULL,
  revision        bigint NOT NULL CHECK (revision >= 0),
  type            text   NOT NULL,
  data            json   NOT NULL,
  metadata        json   NOT NULL,
  recorded_at     text   NOT NULL,
  hash            text   NOT NULL,
  previous_hash   text,
  CONSTRAINT muster_events_id_key PRIMARY KEY (id),
  CONSTRAINT muster_events_stream_revision_key UNIQUE (stream, revision)
);
-- The order subscribers deliver in. global_position needs no index of its own: it is only ever
-- read together with the transaction id, and the identity keeps it unique.
CREATE INDEX muster_events_commit_order ON muster_events (transaction_id, global_position);
${APPEND_FUNCTION};
`,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

/**
 * Brings the schema up to SCHEMA_VERSION in one transaction. The advisory lock comes first, so two
 * replicas starting at once take turns: the second finds the work done. A database migrated by a
 * newer release (a higher version) is left alone.
 */
export async function migrateSchema(client: pg.ClientBase): Promise<number> {
  await client.query('BEGIN');
  try {
    await client.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS muster_event_store_schema (
         version    integer PRIMARY KEY,
         applied_at timestamptz NOT NULL DEFAULT now()
       )`,
    );
    const { rows } = await client.query<{ version: number | null }>(
      'SELECT max(version) AS version FROM muster_event_store_schema',
    );
    const current = rows[0]?.version ?? 0;
    for (const migration of MIGRATIONS) {
      if (migration.version <= current) continue;
      await client.query(migration.sql);
      await client.query('INSERT INTO muster_event_store_schema (version) VALUES ($1)', [migration.version]);
    }
    await client.query('COMMIT');
    return Math.max(current, SCHEMA_VERSION);
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}
