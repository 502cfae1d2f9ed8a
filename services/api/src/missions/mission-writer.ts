import {
  type Actor,
  type AppendResult,
  canonicalJson,
  type EventStore,
  type RecordedEvent,
  StreamNotFoundError,
  type StreamTail,
  WrongExpectedRevisionError,
} from '@muster/event-store';
import {
  decideParsed,
  evolve,
  fromStoredEvent,
  initialState,
  type MissionCommand,
  type MissionEvent,
  type MissionState,
  missionStreamName,
  toStoredEvent,
} from '@muster/readiness';
import { ApiError } from '../errors.js';

/**
 * The write side of a mission. States are cached per mission with the revision they fold up to,
 * so a command never re-reads the stream. Commands on one mission are decided one after the
 * other on the *tentative* state (which includes appends still being written), so that many
 * commands on a hot mission travel in the same group commit instead of conflicting; each append
 * still carries the exact expected revision, so the store has the last word. A conflict (another
 * replica wrote) or a failed append drops the cached state; the command is decided again on a
 * refreshed one, a bounded number of times. With If-Match the caller's revision is the expected
 * one and a stale revision is answered with 412 instead.
 *
 * Where the store can decide under a stream's lock (`appendUnderLock`: PostgreSQL, SQLite), a
 * command whose optimistic tries keep conflicting is decided there instead, on the log as it
 * stands, and its append cannot conflict: another replica appending to the same mission without
 * pause can no longer starve it. EventStoreDB keeps the bounded optimistic loop.
 */

export interface CommandContext {
  actor: Actor;
  correlationId: string;
  /**
   * The revision the caller says the mission is at (If-Match), or `*`: the mission has events,
   * whichever revision (RFC 9110 §13.1.1); conflicts are then retried as without the header.
   */
  ifMatch?: number | '*' | undefined;
  /** Checks rights that depend on the state (a donor acting only for itself); throws ApiError. */
  authorize?: (command: MissionCommand, state: MissionState) => void;
}

export interface CommandOutcome {
  missionId: string;
  commandId: string;
  /** Revision of the mission's last event after the command (null: the mission has no events). */
  revision: number | null;
  /** Global position of the last appended event (or of the mission's head when nothing was appended). */
  position: string | null;
  events: RecordedEvent[];
  /** True when the command's events were already in the log (a retry): nothing was appended. */
  replayed: boolean;
}

/** A cached mission: its load (or reload) and, once loaded, the entry itself. */
interface Slot {
  promise: Promise<MissionEntry>;
  entry: MissionEntry | null;
}

interface Folded {
  state: MissionState;
  revision: number | null;
  position: string | null;
}

class MissionEntry {
  committed: Folded;
  tentative: Folded;
  inFlight = 0;
  private drainWaiters: Array<() => void> = [];
  lastUsed = Date.now();
  /** A decision under the stream's lock under way: commands wait for it rather than decide beside it. */
  locked: Promise<void> | null = null;

  constructor(
    readonly missionId: string,
    base: Folded,
  ) {
    this.committed = base;
    this.tentative = base;
  }

  begin(): void {
    this.inFlight++;
  }

  end(): void {
    this.inFlight--;
    if (this.inFlight === 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Takes this mission's turn (when commands must not overlap); resolves with its release. */
  async turn(): Promise<() => void> {
    const previous = this.queue;
    let release: () => void = () => {};
    this.queue = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    return release;
  }

  private queue: Promise<void> = Promise.resolve();

  drained(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }
}

export interface MissionWriterOptions {
  store: EventStore;
  /**
   * Decide a mission's next command before the previous append has settled (default true). Safe
   * only where the store refuses an append whose predecessor failed: the embedded store (the only
   * writer), PostgreSQL with `chainPipelinedAppends`. Elsewhere commands on a mission take turns.
   */
  pipeline?: boolean;
  maxRetries?: number;
  /**
   * Optimistic tries that conflicted before the command is decided under the stream's lock, where
   * the store offers it (default 2; see decision 50). The first conflict is usually a race already
   * over (or a pipelined predecessor that failed), and a retry on the refreshed state rides the
   * group commit; a second in a row says the mission is being written without pause.
   */
  lockAfterConflicts?: number;
  maxCachedMissions?: number;
  /**
   * Most events folded into the cached states together (default 200,000): memory stays bounded
   * however long the streams grow. The least recently used missions go first and are read again
   * when next needed.
   */
  maxCachedEvents?: number;
  /**
   * Other processes may append to the same streams (PostgreSQL, EventStoreDB replicas): a refusal
   * decided on the cached state is checked against the log's revision before it is answered, since
   * nothing else would tell a stale cache (an append at least fails on its expected revision).
   * Default false: the embedded store has one writer.
   */
  sharedStore?: boolean;
  /** Observes each append's duration (seconds) and outcome for metrics; `error` when it failed. */
  onAppend?: (seconds: number, ok: boolean, error?: unknown) => void;
  /** Told how each command decided under the stream's lock ended, for metrics. */
  onLocked?: (outcome: LockedOutcome) => void;
  /** Told the position of every append that succeeded (read-your-writes for the read models). */
  onCommitted?: (position: string) => void;
  /**
   * A state of the mission someone else already folded (the projection in this process): a cold
   * load starts from it and reads only the events after it. States are immutable, so sharing is safe.
   */
  knownState?: (
    missionId: string,
  ) => { state: MissionState; revision: number; position: string | null } | undefined;
}

/**
 * How a command decided under the stream's lock ended: its events appended, found already
 * appended (`replayed`), nothing to append, refused (by the domain, its rights or If-Match), or
 * failed (the store's error).
 */
export type LockedOutcome = 'appended' | 'replayed' | 'unchanged' | 'refused' | 'failed';

export class MissionWriter {
  private readonly entries = new Map<string, Slot>();
  private readonly store: EventStore;
  private readonly maxRetries: number;
  private readonly lockAfterConflicts: number;
  private readonly maxCached: number;
  private readonly maxCachedEvents: number;
  private commitsSinceEviction = 0;
  private readonly pipeline: boolean;
  private readonly sharedStore: boolean;
  private readonly onAppend: (seconds: number, ok: boolean, error?: unknown) => void;
  private readonly onLocked: (outcome: LockedOutcome) => void;
  private readonly onCommitted: (position: string) => void;
  private readonly knownState: NonNullable<MissionWriterOptions['knownState']>;

  constructor(options: MissionWriterOptions) {
    this.store = options.store;
    this.maxRetries = options.maxRetries ?? 8;
    this.lockAfterConflicts = options.lockAfterConflicts ?? 2;
    this.maxCached = options.maxCachedMissions ?? 1000;
    this.maxCachedEvents = options.maxCachedEvents ?? 200_000;
    this.pipeline = options.pipeline ?? true;
    this.sharedStore = options.sharedStore ?? false;
    this.onAppend = options.onAppend ?? (() => {});
    this.onLocked = options.onLocked ?? (() => {});
    this.onCommitted = options.onCommitted ?? (() => {});
    this.knownState = options.knownState ?? (() => undefined);
  }

  /** The current state of a mission (fresh: its revision is checked against the store). */
  async current(missionId: string): Promise<Folded> {
    let entry = await this.entry(missionId);
    const revision = await this.store.streamRevision(missionStreamName(missionId));
    if (revision === entry.committed.revision) return entry.committed;
    if (entry.inFlight === 0) {
      entry = await this.refresh(missionId, entry);
      return entry.committed;
    }
    // This process's appends are still landing, so the cache is theirs to move; the answer still
    // folds what the log holds past it (another replica's writes among them), for this call only.
    return (await this.load(missionId, entry.committed)).committed;
  }

  /** A revision the mission has certainly reached (from the cache; no store round trip). */
  async knownRevision(missionId: string): Promise<number | null> {
    return (await this.entry(missionId)).committed.revision;
  }

  /**
   * Decides and appends a command that has passed `commandSchema` (`parseCommand`, or a command
   * route's body schema and envelope): it is not validated again here.
   */
  async execute(command: MissionCommand, context: CommandContext): Promise<CommandOutcome> {
    const { missionId } = command;
    const refusals: Refusals = { at: undefined, count: 0 };
    for (let attempt = 0; ; attempt++) {
      let entry = await this.entry(missionId);
      while (entry.locked !== null) {
        await entry.locked;
        entry = await this.entry(missionId);
      }
      const release = this.pipeline ? null : await entry.turn();
      try {
        if (release) entry = await this.entry(missionId);
        // Tries that ended in a conflict or a refusal on a stale cache: the other writer keeps winning.
        const outcome =
          this.store.appendUnderLock && attempt >= this.lockAfterConflicts
            ? await this.lockedAttempt(command, context, entry)
            : await this.attempt(command, context, entry, attempt, refusals);
        if (outcome) return outcome;
      } finally {
        release?.();
      }
    }
  }

  /**
   * The command decided under the stream's lock, on the cached state and the events the log holds
   * past it: the log's true state, which no one else can move until the append commits. Nothing
   * here conflicts, so it answers: the events, a refusal (true of the log, so it needs no check
   * against the log's revision), or the store's error.
   */
  private async lockedAttempt(
    command: MissionCommand,
    context: CommandContext,
    entry: MissionEntry,
  ): Promise<CommandOutcome> {
    const { missionId } = command;
    const { ifMatch } = context;
    const known = entry.committed;
    let seen: Folded = known;
    let state: MissionState = known.state;
    let decided: MissionEvent[] = [];
    let refusal: { error: unknown } | null = null;
    const decide = (tail: StreamTail) => {
      try {
        seen = foldTail(missionId, known, tail);
        if (
          ifMatch !== undefined &&
          (ifMatch === '*' ? seen.revision === null : ifMatch !== (seen.revision ?? -1))
        ) {
          throw staleRevision(ifMatch, seen.revision);
        }
        context.authorize?.(command, seen.state);
        decided = decideParsed(command, seen.state);
        state = decided.reduce<MissionState>((s, e) => evolve(s, e), seen.state);
        return decided.map((event) => toAppend(event, command, context));
      } catch (error) {
        refusal = { error };
        throw error;
      }
    };
    let unlocked: () => void = () => {};
    entry.locked = new Promise<void>((resolve) => {
      unlocked = resolve;
    });
    entry.begin();
    const started = performance.now();
    let result: AppendResult | null;
    try {
      result = await (this.store.appendUnderLock as NonNullable<EventStore['appendUnderLock']>).call(
        this.store,
        missionStreamName(missionId),
        { knownRevision: known.revision },
        decide,
      );
    } catch (error) {
      entry.end();
      entry.locked = null;
      unlocked();
      if (refusal !== null && (refusal as { error: unknown }).error === error) {
        this.adopt(entry, known, seen);
        this.onLocked('refused');
        throw error;
      }
      this.onAppend((performance.now() - started) / 1000, false, error);
      this.forget(missionId, entry);
      if (!(error instanceof WrongExpectedRevisionError)) {
        this.onLocked('failed');
        throw error;
      }
      // Under the lock the stream cannot move: the store refused the events' ids, recorded before
      // by a command with this commandId; perhaps by this one, whose answer was lost.
      let landed: RecordedEvent[] | null;
      try {
        landed = await this.landedAs(missionId, command.commandId, decided);
      } catch (lookup) {
        this.onLocked('failed');
        throw lookup;
      }
      if (landed) {
        this.onLocked('replayed');
        return outcome(missionId, command.commandId, landed, true);
      }
      this.onLocked('refused');
      throw commandIdReused(command.commandId);
    }
    entry.end();
    entry.locked = null;
    unlocked();
    if (result === null) {
      this.adopt(entry, known, seen);
      this.onLocked('unchanged');
      return {
        missionId,
        commandId: command.commandId,
        revision: seen.revision,
        position: seen.position,
        events: [],
        replayed: false,
      };
    }
    this.onAppend((performance.now() - started) / 1000, true);
    this.onCommitted(result.position);
    if (++this.commitsSinceEviction >= 100) this.evict();
    if (result.idempotent) {
      // Its first attempt landed and its answer was lost: the store found the events again.
      this.forget(missionId, entry);
      this.onLocked('replayed');
      return outcome(missionId, command.commandId, result.events, true);
    }
    this.adopt(entry, known, {
      state,
      revision: result.nextExpectedRevision,
      position: result.position,
    });
    this.onLocked('appended');
    return outcome(missionId, command.commandId, result.events, false);
  }

  /**
   * Caches a state read under the lock, when nothing moved the entry meanwhile; otherwise the entry
   * is reloaded (its own appends issued meanwhile may have been refused over this one).
   */
  private adopt(entry: MissionEntry, known: Folded, folded: Folded): void {
    if (folded === known) return;
    if (entry.committed === known && entry.tentative === known) {
      entry.committed = folded;
      entry.tentative = folded;
    } else {
      this.forget(entry.missionId, entry);
    }
  }

  /** One decision and append; null when it must be tried again on a refreshed state. */
  private async attempt(
    command: MissionCommand,
    context: CommandContext,
    entry: MissionEntry,
    attempt: number,
    refusals: Refusals,
  ): Promise<CommandOutcome | null> {
    const { missionId } = command;
    // From here to the append call nothing awaits: commands on this mission are decided in order.
    const base = entry.tentative;
    const { ifMatch } = context;
    let decided: ReturnType<typeof decideParsed>;
    try {
      if (
        ifMatch !== undefined &&
        (ifMatch === '*' ? base.revision === null : ifMatch !== (base.revision ?? -1))
      ) {
        throw staleRevision(ifMatch, base.revision);
      }
      context.authorize?.(command, base.state);
      decided = decideParsed(command, base.state);
    } catch (refusal) {
      if (this.sharedStore && !(await this.refusalStands(missionId, entry, base.revision, attempt)))
        return null;
      throw refusal;
    }
    if (decided.length === 0) {
      return {
        missionId,
        commandId: command.commandId,
        revision: base.revision,
        position: base.position,
        events: [],
        replayed: false,
      };
    }
    const state = decided.reduce<MissionState>((s, e) => evolve(s, e), base.state);
    const expected = base.revision ?? 'no_stream';
    const nextRevision = (base.revision ?? -1) + decided.length;
    entry.tentative = { state, revision: nextRevision, position: base.position };
    entry.begin();
    const started = performance.now();
    let result: Awaited<ReturnType<EventStore['appendToStream']>>;
    try {
      result = await this.store.appendToStream(
        missionStreamName(missionId),
        decided.map((event) => toAppend(event, command, context)),
        { expectedRevision: expected },
      );
    } catch (error) {
      this.onAppend((performance.now() - started) / 1000, false, error);
      entry.end();
      this.forget(missionId, entry);
      if (!(error instanceof WrongExpectedRevisionError)) throw error;
      const fresh = await this.entry(missionId);
      if (typeof context.ifMatch === 'number' && fresh.committed.revision !== context.ifMatch) {
        throw staleRevision(context.ifMatch, fresh.committed.revision);
      }
      // Refused twice on the same revision while the log stayed there: no other write came
      // between, so the store refused the events' ids, recorded before by a command that gave the
      // same commandId. (Once can be a pipelined predecessor that failed while another writer
      // took its revision.) Retrying would be refused the same way every time.
      if (fresh.committed.revision === base.revision) {
        refusals.count = refusals.at === base.revision ? refusals.count + 1 : 1;
        refusals.at = base.revision;
        if (refusals.count >= 2) {
          // The same command may be what holds those ids: its first attempt landed, unseen (a
          // lost answer, a holder that died). Then this is its answer, not a reuse.
          const landed = await this.landedAs(missionId, command.commandId, decided);
          if (landed) return outcome(missionId, command.commandId, landed, true);
          throw commandIdReused(command.commandId);
        }
      }
      if (attempt >= this.maxRetries) {
        throw new ApiError('conflict', 'The mission kept changing under this command; retry it', {
          attempts: attempt + 1,
        });
      }
      if (attempt >= 2) await sleep(Math.random() * 5 * attempt);
      return null;
    }
    this.onAppend((performance.now() - started) / 1000, true);
    this.onCommitted(result.position);
    entry.end();
    if (++this.commitsSinceEviction >= 100) this.evict();
    if (result.idempotent) {
      // The events were already there: a retry of a command whose first attempt landed.
      this.forget(missionId, entry);
      return outcome(missionId, command.commandId, result.events, true);
    }
    const folded = { state, revision: result.nextExpectedRevision, position: result.position };
    if (entry.committed.revision === base.revision) entry.committed = folded;
    if (entry.tentative.revision === nextRevision && entry.tentative.state === state)
      entry.tentative = folded;
    return outcome(missionId, command.commandId, result.events, false);
  }

  /**
   * Whether a refusal decided on `revision` (the cached state) may be answered: yes when the log
   * is there too. When it is not, the cache is dropped (or, with this process's own appends still
   * landing, given a moment) and the command decided again, within the usual bound.
   */
  private async refusalStands(
    missionId: string,
    entry: MissionEntry,
    revision: number | null,
    attempt: number,
  ): Promise<boolean> {
    if (attempt >= this.maxRetries) return true;
    const logged = await this.store.streamRevision(missionStreamName(missionId));
    if (logged === revision) return true;
    if (entry.inFlight === 0) this.forget(missionId, entry);
    else await sleep(1 + attempt);
    return false;
  }

  /**
   * The events of `commandId` among the stream's last thousand, when they are exactly the events
   * `decided` (same types, same data): the command landed before. Null otherwise.
   */
  private async landedAs(
    missionId: string,
    commandId: string,
    decided: readonly { type: string; data: unknown }[],
  ): Promise<RecordedEvent[] | null> {
    const found: RecordedEvent[] = [];
    try {
      for await (const event of this.store.readStream(missionStreamName(missionId), {
        direction: 'backwards',
        maxCount: 1000,
      })) {
        if (event.metadata.commandId === commandId) found.unshift(event);
        else if (found.length > 0) break;
      }
    } catch (error) {
      if (!(error instanceof StreamNotFoundError)) throw error;
    }
    const same =
      found.length === decided.length &&
      found.every(
        (event, i) =>
          event.type === decided[i]?.type && canonicalJson(event.data) === canonicalJson(decided[i]?.data),
      );
    return same ? found : null;
  }

  /** Events a dead attempt of this command appended after `baseRevision`, if any. */
  async findCommandEvents(
    missionId: string,
    commandId: string,
    baseRevision: number | null,
  ): Promise<RecordedEvent[]> {
    const found: RecordedEvent[] = [];
    try {
      for await (const event of this.store.readStream(missionStreamName(missionId), {
        fromRevision: baseRevision === null ? 0 : baseRevision + 1,
      })) {
        if (event.metadata.commandId === commandId) found.push(event);
        else if (found.length > 0) break;
      }
    } catch (error) {
      if (!(error instanceof StreamNotFoundError)) throw error;
    }
    return found;
  }

  private entry(missionId: string): Promise<MissionEntry> {
    let slot = this.entries.get(missionId);
    if (!slot) {
      slot = this.slot(missionId, this.load(missionId, null));
      this.evict();
    }
    return slot.promise.then((entry) => {
      entry.lastUsed = Date.now();
      return entry;
    });
  }

  private slot(missionId: string, promise: Promise<MissionEntry>): Slot {
    const slot: Slot = { promise, entry: null };
    this.entries.set(missionId, slot);
    promise.then(
      (entry) => {
        slot.entry = entry;
      },
      () => {
        if (this.entries.get(missionId) === slot) this.entries.delete(missionId);
      },
    );
    return slot;
  }

  /**
   * Replaces a cached entry that may be wrong (a failed or conflicting append), at once, so that a
   * retry never decides on it again: the new one starts from what was certainly committed and
   * reads the rest from the store, once every append in flight has settled.
   */
  private forget(missionId: string, entry: MissionEntry): void {
    const slot = this.entries.get(missionId);
    if (!slot || slot.entry !== entry) return;
    this.slot(
      missionId,
      entry.drained().then(() => this.load(missionId, entry.committed)),
    );
  }

  private async refresh(missionId: string, entry: MissionEntry): Promise<MissionEntry> {
    this.forget(missionId, entry);
    return this.entry(missionId);
  }

  private async load(missionId: string, given: Folded | null): Promise<MissionEntry> {
    const known = given ? undefined : this.knownState(missionId);
    const base = given ?? (known && known.revision >= 0 ? known : null);
    let state = base?.state ?? initialState();
    let revision = base?.revision ?? null;
    let position = base?.position ?? null;
    try {
      for await (const recorded of this.store.readStream(missionStreamName(missionId), {
        fromRevision: revision === null ? 0 : revision + 1,
      })) {
        state = evolve(state, fromStoredEvent(recorded));
        revision = recorded.revision;
        position = recorded.position;
      }
    } catch (error) {
      if (!(error instanceof StreamNotFoundError)) throw error;
    }
    return new MissionEntry(missionId, { state, revision, position });
  }

  /** Keeps the cache within its bounds: missions and events folded; least recently used first. */
  private evict(): void {
    this.commitsSinceEviction = 0;
    const loaded = [...this.entries].filter(([, slot]) => slot.entry !== null) as Array<
      [string, Slot & { entry: MissionEntry }]
    >;
    let events = loaded.reduce((sum, [, slot]) => sum + slot.entry.committed.state.eventCount, 0);
    if (this.entries.size <= this.maxCached && events <= this.maxCachedEvents) return;
    loaded.sort(([, a], [, b]) => a.entry.lastUsed - b.entry.lastUsed);
    for (const [missionId, slot] of loaded) {
      if (this.entries.size <= this.maxCached && events <= this.maxCachedEvents) break;
      if (slot.entry.inFlight > 0 || this.entries.get(missionId) !== slot) continue;
      this.entries.delete(missionId);
      events -= slot.entry.committed.state.eventCount;
    }
  }
}

function toAppend(event: MissionEvent, command: MissionCommand, context: CommandContext) {
  const stored = toStoredEvent(event);
  return {
    id: stored.id,
    type: stored.type,
    data: stored.data,
    metadata: {
      ...stored.metadata,
      actor: context.actor,
      commandId: command.commandId,
      correlationId: context.correlationId,
      causationId: command.commandId,
    },
  };
}

function outcome(
  missionId: string,
  commandId: string,
  events: RecordedEvent[],
  replayed: boolean,
): CommandOutcome {
  const last = events[events.length - 1];
  return {
    missionId,
    commandId,
    revision: last?.revision ?? null,
    position: last?.position ?? null,
    events,
    replayed,
  };
}

/** The cached state carried on by the events the log holds past it (read under the stream's lock). */
function foldTail(missionId: string, known: Folded, tail: StreamTail): Folded {
  if ((tail.revision ?? -1) < (known.revision ?? -1)) {
    throw new Error(
      `mission ${missionId}: the log ends at revision ${tail.revision}, before revision ${known.revision} this process saw committed`,
    );
  }
  let state = known.state;
  let position = known.position;
  for (const recorded of tail.events) {
    state = evolve(state, fromStoredEvent(recorded));
    position = recorded.position;
  }
  return tail.events.length === 0 ? known : { state, revision: tail.revision, position };
}

function commandIdReused(commandId: string): ApiError {
  return new ApiError(
    'command-id-reused',
    `commandId ${commandId} was already used on this mission, by another command or by this one sent before: give each command its own id, and send an Idempotency-Key to make a retry safe`,
    { commandId },
  );
}

/** Appends of one command refused while the log stood at the revision it was decided on. */
interface Refusals {
  at: number | null | undefined;
  count: number;
}

function staleRevision(expected: number | '*', current: number | null): ApiError {
  return new ApiError(
    'precondition-failed',
    expected === '*'
      ? 'If-Match: * asks for an existing mission, but the mission has no events'
      : `If-Match names revision ${expected}, but the mission is at revision ${current ?? 'none (no events)'}`,
    { expectedRevision: expected, currentRevision: current },
    current === null ? {} : { etag: `"${current}"` },
  );
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
