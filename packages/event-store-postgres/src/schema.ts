import type pg from 'pg';
import { NO_STATEMENT_TIMEOUT_IN_TRANSACTION, untimed } from './connection.js';

/** NOTIFY channel that wakes live subscriptions; the payload is the id of the notifying store. */
export const CHANNEL = 'muster_events';

/**
 * The stream's append lock, as the append functions take it (the same key), for a transaction that
 * decides under it (`appendUnderLock`). Advisory locks are re-entrant within a session, so the
 * append function called later in that transaction takes it again at once.
 */
export const STREAM_LOCK_SQL = 'SELECT pg_advisory_xact_lock(hashtextextended($1, 7150735))';

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

/**
 * Group commit: several appends, to one stream or many, in one call and one transaction (one WAL
 * flush for all of them). Each append keeps its own checks and outcome, and one that is refused
 * leaves nothing behind and does not disturb the others: the function never raises for a replay,
 * a revision mismatch or an event id taken elsewhere, it reports them.
 *
 * `p_streams` are the batch's distinct streams; per append, in issue order: `p_stream_of` (its
 * stream's index in `p_streams`, 1-based), `p_expected` and `p_counts`; per event, the appends'
 * events concatenated: ids, types, data, metadata and the hash input parts. Rows come back per
 * append (`o_append`, 1-based), in order, with `o_outcome`:
 *   written                  one row per event: revision, position, hash, previous hash
 *   replay                   the recorded run of events the append's first id starts (the caller
 *                            applies the port's idempotent-replay rule to it)
 *   wrong-expected-revision  one row, `o_current` the stream's revision
 *   broken-chain             one row, `o_current` the stream's revision: it matches the expected
 *                            one, but its last event is not `p_after_ids`' (below)
 *   id-conflict              one row, `o_id` the first id of the append already in the log elsewhere
 *
 * `p_after_ids`, per append, NULL or the id of the event the append was issued behind: the last
 * event of an earlier append to the same stream, not yet settled when this one was issued, whose
 * success the expected revision assumes. The stream's last event must then be that one; without
 * it, a pipelined append whose predecessor failed could land on top of another writer's event that
 * happens to hold the expected revision, on a state it was never decided on.
 *
 * Gap safety: every stream's lock is taken first, in one global order (no deadlock between two
 * batches), and all before the transaction has an xid. So xids still grow with each stream's
 * revisions, every event of a batch carries the batch's xid, and within the batch positions follow
 * the order of the appends.
 *
 * Two paths. The fast one reads every stream's head in one statement, checks and chains the appends
 * in variables, and inserts all their events in one statement: a few statements per batch, not per
 * append. It is valid only when no event id is in the log yet; otherwise (a retried append, an id
 * reused elsewhere, the same ids twice in the batch) ON CONFLICT skips a row, the fast path deletes
 * what it inserted, and the careful path takes over: per append, it looks for a replay first, then
 * checks and inserts, and when an id turns out to be taken it deletes that append's own rows again.
 * No savepoints: a plpgsql EXCEPTION block is a subtransaction, and past 64 of them that wrote, every
 * snapshot in the cluster overflows into pg_subtrans lookups.
 */
const APPEND_BATCH_FUNCTION = `
CREATE OR REPLACE FUNCTION muster_append_batch(
  p_streams     text[],
  p_stream_of   integer[],
  p_expected    bigint[],
  p_after_ids   uuid[],
  p_counts      integer[],
  p_ids         uuid[],
  p_types       text[],
  p_data        text[],
  p_metadata    text[],
  p_recorded_at text,
  p_heads       text[],
  p_middles     text[],
  p_tails       text[]
) RETURNS TABLE (
  o_append         integer,
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
  v_appends      integer := coalesce(cardinality(p_stream_of), 0);
  v_events       integer := coalesce(cardinality(p_ids), 0);
  v_key          bigint;
  v_offset       integer := 0;
  v_count        integer;
  v_slot         integer;
  v_stream       text;
  v_expected     bigint;
  v_current      bigint;
  v_base         bigint;
  v_last_hash    text;
  v_last_xid     xid8;
  v_found_stream text;
  v_found_rev    bigint;
  v_xid          xid8;
  v_previous     text;
  v_hash         text;
  v_hashes       text[];
  v_previouses   text[];
  v_positions    bigint[];
  -- the fast path: stream heads by slot, outcomes by append, rows to insert
  v_head_rev     bigint[];
  v_head_hash    text[];
  v_head_xid     xid8[];
  v_head_id      uuid[];
  v_last_id      uuid;
  v_outcomes     text[] := ARRAY[]::text[];
  v_currents     bigint[] := ARRAY[]::bigint[];
  v_refused      uuid[] := ARRAY[]::uuid[];
  r_ids          uuid[] := ARRAY[]::uuid[];
  r_streams      text[] := ARRAY[]::text[];
  r_revisions    bigint[] := ARRAY[]::bigint[];
  r_types        text[] := ARRAY[]::text[];
  r_data         text[] := ARRAY[]::text[];
  r_metadata     text[] := ARRAY[]::text[];
  r_hashes       text[] := ARRAY[]::text[];
  r_previous     text[] := ARRAY[]::text[];
  v_inserted     uuid[];
  v_row          integer;
BEGIN
  IF v_appends = 0 OR v_events = 0 OR coalesce(cardinality(p_streams), 0) = 0
     OR coalesce(cardinality(p_expected), 0) <> v_appends OR coalesce(cardinality(p_counts), 0) <> v_appends
     OR coalesce(cardinality(p_after_ids), 0) <> v_appends
     OR (SELECT count(*) FROM unnest(p_counts) AS c(n) WHERE c.n IS NULL OR c.n < 1) > 0
     OR (SELECT sum(c.n) FROM unnest(p_counts) AS c(n)) <> v_events
     OR (SELECT count(*) FROM unnest(p_stream_of) AS f(n) WHERE f.n IS NULL OR f.n < 1 OR f.n > cardinality(p_streams)) > 0
     OR (SELECT count(DISTINCT s.name) FROM unnest(p_streams) AS s(name)) <> cardinality(p_streams)
     OR coalesce(cardinality(p_types), 0) <> v_events OR coalesce(cardinality(p_data), 0) <> v_events
     OR coalesce(cardinality(p_metadata), 0) <> v_events OR coalesce(cardinality(p_heads), 0) <> v_events
     OR coalesce(cardinality(p_middles), 0) <> v_events OR coalesce(cardinality(p_tails), 0) <> v_events THEN
    RAISE EXCEPTION 'muster_append_batch: the stream, append and event arrays must be non-empty and agree'
      USING ERRCODE = '22023';
  END IF;

  -- The same lock as muster_append_events, so both can serve one database during an upgrade.
  FOR v_key IN
    SELECT DISTINCT hashtextextended(s.name, 7150735) FROM unnest(p_streams) AS s(name) ORDER BY 1
  LOOP
    PERFORM pg_advisory_xact_lock(v_key);
  END LOOP;

  -- The fast path.
  SELECT array_agg(h.revision ORDER BY s.n), array_agg(h.hash ORDER BY s.n), array_agg(h.transaction_id ORDER BY s.n),
         array_agg(h.id ORDER BY s.n)
    INTO v_head_rev, v_head_hash, v_head_xid, v_head_id
    FROM unnest(p_streams) WITH ORDINALITY AS s(name, n)
    LEFT JOIN LATERAL (
      SELECT e.revision, e.hash, e.transaction_id, e.id FROM muster_events e
       WHERE e.stream = s.name ORDER BY e.revision DESC LIMIT 1) h ON true;

  FOR v_a IN 1 .. v_appends LOOP
    v_slot := p_stream_of[v_a];
    v_expected := p_expected[v_a];
    v_count := p_counts[v_a];
    v_current := v_head_rev[v_slot];
    v_currents := array_append(v_currents, v_current);
    IF (v_expected = -2 AND v_current IS NOT NULL)
       OR (v_expected = -3 AND v_current IS NULL)
       OR (v_expected >= 0 AND v_current IS DISTINCT FROM v_expected) THEN
      -- Unless it is the retry of an append already written (checked below).
      v_outcomes := array_append(v_outcomes, 'wrong-expected-revision');
      v_refused := array_append(v_refused, p_ids[v_offset + 1]);
    ELSIF p_after_ids[v_a] IS NOT NULL AND v_head_id[v_slot] IS DISTINCT FROM p_after_ids[v_a] THEN
      v_outcomes := array_append(v_outcomes, 'broken-chain');
      v_refused := array_append(v_refused, p_ids[v_offset + 1]);
    ELSE
      IF v_xid IS NULL THEN
        v_xid := pg_current_xact_id();
      END IF;
      IF v_head_xid[v_slot] > v_xid THEN
        -- Only possible when the caller's transaction got its xid before an append to this stream
        -- committed: writing now would put this revision before the previous one in the global order.
        RAISE EXCEPTION 'muster_append_batch: stream % was appended to by a younger transaction; retry',
          p_streams[v_slot] USING ERRCODE = '40001';
      END IF;
      v_outcomes := array_append(v_outcomes, 'written');
      v_base := coalesce(v_current, -1);
      v_previous := v_head_hash[v_slot];
      FOR v_i IN v_offset + 1 .. v_offset + v_count LOOP
        v_base := v_base + 1;
        v_hash := encode(sha256(convert_to(
          p_heads[v_i] || coalesce('"' || v_previous || '"', 'null') || p_middles[v_i] || v_base::text || p_tails[v_i],
          'UTF8')), 'hex');
        r_ids := array_append(r_ids, p_ids[v_i]);
        r_streams := array_append(r_streams, p_streams[v_slot]);
        r_revisions := array_append(r_revisions, v_base);
        r_types := array_append(r_types, p_types[v_i]);
        r_data := array_append(r_data, p_data[v_i]);
        r_metadata := array_append(r_metadata, p_metadata[v_i]);
        r_hashes := array_append(r_hashes, v_hash);
        r_previous := array_append(r_previous, v_previous);
        v_previous := v_hash;
      END LOOP;
      v_head_rev[v_slot] := v_base;
      v_head_hash[v_slot] := v_previous;
      v_head_xid[v_slot] := v_xid;
      v_head_id[v_slot] := p_ids[v_offset + v_count];
    END IF;
    v_offset := v_offset + v_count;
  END LOOP;

  v_positions := ARRAY[]::bigint[];
  IF cardinality(r_ids) > 0 THEN
    -- An id inserted meanwhile by another transaction is waited for, then skipped.
    WITH inserted AS (
      INSERT INTO muster_events AS e (id, stream, revision, type, data, metadata, recorded_at, hash, previous_hash)
      SELECT r.id, r.stream, r.revision, r.type, r.data::json, r.metadata::json, p_recorded_at, r.hash, r.previous
        FROM unnest(r_ids, r_streams, r_revisions, r_types, r_data, r_metadata, r_hashes, r_previous)
             WITH ORDINALITY AS r(id, stream, revision, type, data, metadata, hash, previous, n)
       ORDER BY r.n
      ON CONFLICT (id) DO NOTHING
      RETURNING e.id, e.global_position
    )
    SELECT coalesce(array_agg(inserted.global_position ORDER BY inserted.global_position), ARRAY[]::bigint[]),
           coalesce(array_agg(inserted.id), ARRAY[]::uuid[])
      INTO v_positions, v_inserted FROM inserted;
  END IF;

  -- A refused append may be the retry of one already written: that is for the careful path to say.
  IF cardinality(v_positions) = cardinality(r_ids)
     AND (cardinality(v_refused) = 0 OR NOT EXISTS (SELECT 1 FROM muster_events e WHERE e.id = ANY (v_refused))) THEN
    v_row := 0;
    v_offset := 0;
    FOR v_a IN 1 .. v_appends LOOP
      o_append := v_a;
      o_outcome := v_outcomes[v_a];
      o_current := v_currents[v_a];
      IF o_outcome = 'written' THEN
        o_transaction_id := v_xid::text;
        FOR v_i IN 1 .. p_counts[v_a] LOOP
          v_row := v_row + 1;
          o_revision := r_revisions[v_row];
          o_position := v_positions[v_row]::text;
          o_hash := r_hashes[v_row];
          o_previous_hash := r_previous[v_row];
          RETURN NEXT;
        END LOOP;
      ELSE
        o_transaction_id := NULL; o_revision := NULL; o_position := NULL; o_hash := NULL; o_previous_hash := NULL;
        RETURN NEXT;
      END IF;
    END LOOP;
    RETURN;
  END IF;
  IF cardinality(v_inserted) > 0 THEN
    DELETE FROM muster_events e WHERE e.id = ANY (v_inserted);
  END IF;

  -- The careful path, one append at a time.
  v_offset := 0;
  FOR v_a IN 1 .. v_appends LOOP
    v_stream := p_streams[p_stream_of[v_a]];
    v_expected := p_expected[v_a];
    v_count := p_counts[v_a];
    o_append := v_a;
    o_current := NULL; o_id := NULL; o_stream := NULL; o_revision := NULL; o_transaction_id := NULL;
    o_position := NULL; o_type := NULL; o_data := NULL; o_metadata := NULL; o_recorded_at := NULL;
    o_hash := NULL; o_previous_hash := NULL;

    -- Sees the appends of this batch that came before: they are this transaction's own rows.
    SELECT e.revision, e.hash, e.transaction_id, e.id INTO v_current, v_last_hash, v_last_xid, v_last_id
      FROM muster_events e WHERE e.stream = v_stream ORDER BY e.revision DESC LIMIT 1;

    SELECT e.stream, e.revision INTO v_found_stream, v_found_rev
      FROM muster_events e WHERE e.id = p_ids[v_offset + 1];
    IF FOUND THEN
      RETURN QUERY
        SELECT v_a, 'replay'::text, v_current, e.id, e.stream, e.revision, e.transaction_id::text,
               e.global_position::text, e.type, e.data::text, e.metadata::text, e.recorded_at, e.hash,
               e.previous_hash
          FROM muster_events e
         WHERE e.stream = v_found_stream AND e.revision >= v_found_rev
         ORDER BY e.revision
         LIMIT v_count;
    ELSIF (v_expected = -2 AND v_current IS NOT NULL)
       OR (v_expected = -3 AND v_current IS NULL)
       OR (v_expected >= 0 AND v_current IS DISTINCT FROM v_expected) THEN
      o_outcome := 'wrong-expected-revision';
      o_current := v_current;
      RETURN NEXT;
    ELSIF p_after_ids[v_a] IS NOT NULL AND v_last_id IS DISTINCT FROM p_after_ids[v_a] THEN
      o_outcome := 'broken-chain';
      o_current := v_current;
      RETURN NEXT;
    ELSE
      IF v_xid IS NULL THEN
        v_xid := pg_current_xact_id();
      END IF;
      IF v_last_xid IS NOT NULL AND v_last_xid > v_xid THEN
        RAISE EXCEPTION 'muster_append_batch: stream % was appended to by a younger transaction; retry', v_stream
          USING ERRCODE = '40001';
      END IF;
      v_base := coalesce(v_current, -1);
      v_previous := v_last_hash;
      v_hashes := ARRAY[]::text[];
      v_previouses := ARRAY[]::text[];
      FOR v_i IN 1 .. v_count LOOP
        v_hash := encode(sha256(convert_to(
          p_heads[v_offset + v_i] || coalesce('"' || v_previous || '"', 'null') || p_middles[v_offset + v_i]
            || (v_base + v_i)::text || p_tails[v_offset + v_i],
          'UTF8')), 'hex');
        v_previouses := array_append(v_previouses, v_previous);
        v_hashes := array_append(v_hashes, v_hash);
        v_previous := v_hash;
      END LOOP;
      WITH inserted AS (
        INSERT INTO muster_events AS e (id, stream, revision, type, data, metadata, recorded_at, hash, previous_hash)
        SELECT p_ids[v_offset + g.n], v_stream, v_base + g.n, p_types[v_offset + g.n], p_data[v_offset + g.n]::json,
               p_metadata[v_offset + g.n]::json, p_recorded_at, v_hashes[g.n], v_previouses[g.n]
          FROM generate_series(1, v_count) AS g(n)
         ORDER BY g.n
        ON CONFLICT (id) DO NOTHING
        RETURNING e.global_position
      )
      SELECT array_agg(inserted.global_position ORDER BY inserted.global_position) INTO v_positions FROM inserted;
      IF coalesce(cardinality(v_positions), 0) < v_count THEN
        -- Holding the stream's lock, the rows above the head read are this append's and no one else's.
        DELETE FROM muster_events e WHERE e.stream = v_stream AND e.revision > v_base;
        o_outcome := 'id-conflict';
        SELECT u.id INTO o_id
          FROM unnest(p_ids[v_offset + 1 : v_offset + v_count]) WITH ORDINALITY AS u(id, n)
         WHERE EXISTS (SELECT 1 FROM muster_events e WHERE e.id = u.id)
         ORDER BY u.n LIMIT 1;
        RETURN NEXT;
      ELSE
        o_outcome := 'written';
        o_current := v_current;
        o_transaction_id := v_xid::text;
        FOR v_i IN 1 .. v_count LOOP
          o_revision := v_base + v_i;
          o_position := v_positions[v_i]::text;
          o_hash := v_hashes[v_i];
          o_previous_hash := v_previouses[v_i];
          RETURN NEXT;
        END LOOP;
      END IF;
    END IF;
    v_offset := v_offset + v_count;
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
  {
    version: 2,
    sql: `${APPEND_BATCH_FUNCTION};`,
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
    // Another replica may hold the lock for as long as its migration takes, which may be long.
    await client.query(NO_STATEMENT_TIMEOUT_IN_TRANSACTION);
    await client.query(untimed(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`));
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
      await client.query(untimed(migration.sql));
      await client.query('INSERT INTO muster_event_store_schema (version) VALUES ($1)', [migration.version]);
    }
    await client.query('COMMIT');
    return Math.max(current, SCHEMA_VERSION);
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}
