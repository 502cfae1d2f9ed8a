import {
  type Actor,
  type EventStore,
  type RecordedEvent,
  type Subscription,
  uuidv7,
  WrongExpectedRevisionError,
} from '@muster/event-store';
import { z } from 'zod';
import { ApiError } from '../errors.js';
import { bootstrapKeyId, generateApiKey, hashSecret, parseApiKey, sameHash } from './api-keys.js';
import { type Principal, ROLES, type Role } from './roles.js';

/**
 * Agencies and their API keys are event-sourced like everything else: each agency has a stream
 * `agency-<id>`, and every registration, key issued and key revoked is an event that records who
 * did it. The registry is the in-memory fold of those streams, kept current by a subscription so
 * that keys issued on another replica work here too.
 */
export const AGENCY_STREAM_PREFIX = 'agency-';
export const agencyStream = (agencyId: string) => `${AGENCY_STREAM_PREFIX}${agencyId}`;

const slug = z
  .string()
  .min(2)
  .max(64)
  .regex(/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/, 'lower-case letters, digits and inner hyphens');

export const agencyIdSchema = slug;

export const registerAgencySchema = z
  .strictObject({
    id: slug,
    name: z.string().trim().min(1).max(200),
    roles: z
      .array(z.enum(ROLES))
      .min(1)
      .max(ROLES.length)
      .refine((roles) => new Set(roles).size === roles.length, 'each role once'),
    missions: z
      .array(z.union([z.literal('*'), slug]))
      .min(1)
      .max(1000)
      .refine((missions) => new Set(missions).size === missions.length, 'each mission once')
      .default(['*']),
  })
  // An administrator or an auditor reads every mission: a narrower scope would be accepted,
  // echoed back and never applied, which misleads whoever reads the agency later.
  .refine(
    (agency) =>
      !agency.roles.some((role) => role === 'admin' || role === 'auditor') ||
      (agency.missions.length === 1 && agency.missions[0] === '*'),
    {
      path: ['missions'],
      message: 'an admin or auditor reads every mission: leave missions out, or give ["*"]',
    },
  );

export const issueKeySchema = z.strictObject({
  label: z.string().min(1).max(200).default('api key'),
  expiresAt: z.iso.datetime({ offset: true }).optional(),
});

export type RegisterAgency = z.infer<typeof registerAgencySchema>;

type AgencyEvent =
  | { type: 'AgencyRegistered'; data: { agencyId: string; name: string; roles: Role[]; missions: string[] } }
  | {
      type: 'ApiKeyIssued';
      data: { agencyId: string; keyId: string; label: string; secretHash: string; expiresAt: string | null };
    }
  | { type: 'ApiKeyRevoked'; data: { agencyId: string; keyId: string } };

export interface ApiKeyRecord {
  keyId: string;
  agencyId: string;
  label: string;
  secretHash: string;
  issuedAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  /** A bootstrap key is stored as the hash of the whole token, not of a secret part. */
  bootstrap: boolean;
}

export interface Agency {
  id: string;
  name: string;
  roles: Role[];
  missions: string[];
  registeredAt: string;
  revision: number;
}

export class AgencyRegistry {
  private readonly agencies = new Map<string, Agency>();
  private readonly keys = new Map<string, ApiKeyRecord>();
  private subscription: Subscription | null = null;
  /** How far the subscription has read; local appends are applied at once and skipped later by id. */
  private lastPosition: string | null = null;
  private readonly applied = new Set<string>();

  constructor(
    private readonly store: EventStore,
    private readonly clock: () => Date,
  ) {}

  /** Folds every agency stream, then follows new agency events. */
  async start(onError: (error: unknown) => void): Promise<void> {
    for await (const event of this.store.readAll({ filter: { streamPrefixes: [AGENCY_STREAM_PREFIX] } })) {
      this.apply(event);
      this.lastPosition = event.position;
    }
    this.follow(onError);
  }

  private follow(onError: (error: unknown) => void): void {
    const subscription = this.store.subscribeToAll({
      fromPosition: this.lastPosition ?? 'start',
      filter: { streamPrefixes: [AGENCY_STREAM_PREFIX] },
    });
    this.subscription = subscription;
    void (async () => {
      try {
        for await (const message of subscription) {
          if (message.kind === 'event') {
            this.apply(message.event);
            this.lastPosition = message.event.position;
          }
        }
      } catch (error) {
        onError(error);
        if (this.subscription === subscription) setTimeout(() => this.follow(onError), 1000).unref();
      }
    })();
  }

  async stop(): Promise<void> {
    const subscription = this.subscription;
    this.subscription = null;
    await subscription?.close();
  }

  /** Applies a recorded agency event; an event already applied is ignored. */
  apply(event: RecordedEvent): void {
    if (this.applied.has(event.id)) return;
    this.applied.add(event.id);
    const e = { type: event.type, data: event.data } as AgencyEvent;
    switch (e.type) {
      case 'AgencyRegistered':
        this.agencies.set(e.data.agencyId, {
          id: e.data.agencyId,
          name: e.data.name,
          roles: [...e.data.roles],
          missions: [...e.data.missions],
          registeredAt: event.recordedAt,
          revision: event.revision,
        });
        return;
      case 'ApiKeyIssued':
        this.keys.set(e.data.keyId, {
          keyId: e.data.keyId,
          agencyId: e.data.agencyId,
          label: e.data.label,
          secretHash: e.data.secretHash,
          issuedAt: event.recordedAt,
          expiresAt: e.data.expiresAt,
          revokedAt: null,
          bootstrap: e.data.keyId.startsWith('boot'),
        });
        this.touch(e.data.agencyId, event.revision);
        return;
      case 'ApiKeyRevoked': {
        const key = this.keys.get(e.data.keyId);
        if (key) key.revokedAt = event.recordedAt;
        this.touch(e.data.agencyId, event.revision);
        return;
      }
      default:
        return;
    }
  }

  private touch(agencyId: string, revision: number): void {
    const agency = this.agencies.get(agencyId);
    if (agency) agency.revision = Math.max(agency.revision, revision);
  }

  /** The principal a bearer token stands for, or null. Every path costs one constant-time compare. */
  authenticate(token: string): Principal | null {
    const parsed = parseApiKey(token);
    const keyId = parsed ? parsed.keyId : bootstrapKeyId(token);
    const presented = parsed ? hashSecret(parsed.secret) : hashSecret(token);
    const key = this.keys.get(keyId);
    // Compare against a dummy when the key id is unknown, so timing does not tell ids apart.
    const matches = sameHash(presented, key?.secretHash ?? DUMMY_HASH);
    if (!key || !matches || key.revokedAt !== null) return null;
    if (key.expiresAt !== null && Date.parse(key.expiresAt) <= this.clock().getTime()) return null;
    const agency = this.agencies.get(key.agencyId);
    if (!agency) return null;
    return { agencyId: agency.id, keyId: key.keyId, roles: agency.roles, missions: agency.missions };
  }

  /**
   * Whether a key that authenticated a request still stands: a request is authenticated when its
   * headers arrive, and its body may take until the request timeout to follow.
   */
  isActive(keyId: string): boolean {
    const key = this.keys.get(keyId);
    if (!key || key.revokedAt !== null) return false;
    return key.expiresAt === null || Date.parse(key.expiresAt) > this.clock().getTime();
  }

  agency(id: string): Agency | undefined {
    return this.agencies.get(id);
  }

  listAgencies(): Agency[] {
    return [...this.agencies.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  listKeys(agencyId: string): ApiKeyRecord[] {
    return [...this.keys.values()]
      .filter((k) => k.agencyId === agencyId)
      .sort((a, b) => a.issuedAt.localeCompare(b.issuedAt));
  }

  key(keyId: string): ApiKeyRecord | undefined {
    return this.keys.get(keyId);
  }
}

const DUMMY_HASH = 'f'.repeat(64);

/**
 * Keys one agency may hold at once (neither revoked nor expired). Rate limits are per key, so
 * without a bound an agency could issue itself keys until its budget had no limit, and every key
 * stays in every replica's memory.
 */
export const MAX_LIVE_KEYS_PER_AGENCY = 50;

export interface IssuedKey {
  keyId: string;
  agencyId: string;
  label: string;
  key: string;
  expiresAt: string | null;
}

/** Writes agency events and applies them to the registry at once (read-your-writes). */
export class AgencyService {
  constructor(
    private readonly store: EventStore,
    readonly registry: AgencyRegistry,
  ) {}

  async register(input: RegisterAgency, actor: Actor): Promise<Agency> {
    const event: AgencyEvent = {
      type: 'AgencyRegistered',
      data: { agencyId: input.id, name: input.name, roles: [...input.roles], missions: [...input.missions] },
    };
    try {
      await this.append(input.id, event, actor, 'no_stream');
    } catch (error) {
      if (error instanceof WrongExpectedRevisionError) {
        throw new ApiError('conflict', `Agency '${input.id}' is already registered`);
      }
      throw error;
    }
    return this.registry.agency(input.id) as Agency;
  }

  async issueKey(
    agencyId: string,
    input: { label: string; expiresAt?: string | undefined },
    actor: Actor,
  ): Promise<IssuedKey> {
    this.requireAgency(agencyId);
    const live = this.registry.listKeys(agencyId).filter((k) => this.registry.isActive(k.keyId)).length;
    if (live >= MAX_LIVE_KEYS_PER_AGENCY) {
      throw new ApiError(
        'conflict',
        `Agency '${agencyId}' holds ${MAX_LIVE_KEYS_PER_AGENCY} live keys already; revoke one first`,
        { limit: MAX_LIVE_KEYS_PER_AGENCY },
      );
    }
    const generated = generateApiKey();
    const expiresAt = input.expiresAt ? new Date(input.expiresAt).toISOString() : null;
    await this.append(
      agencyId,
      {
        type: 'ApiKeyIssued',
        data: {
          agencyId,
          keyId: generated.keyId,
          label: input.label,
          secretHash: generated.secretHash,
          expiresAt,
        },
      },
      actor,
      'stream_exists',
    );
    return { keyId: generated.keyId, agencyId, label: input.label, key: generated.token, expiresAt };
  }

  async revokeKey(agencyId: string, keyId: string, actor: Actor): Promise<void> {
    this.requireAgency(agencyId);
    const key = this.registry.key(keyId);
    if (!key || key.agencyId !== agencyId)
      throw new ApiError('not-found', `Agency '${agencyId}' has no key '${keyId}'`);
    if (key.revokedAt !== null) return;
    await this.append(agencyId, { type: 'ApiKeyRevoked', data: { agencyId, keyId } }, actor, 'stream_exists');
  }

  /**
   * Registers a configured key as an administrator's, once: the key id derives from the key, so
   * a restart with the same key finds it already there.
   */
  async bootstrapAdmin(
    token: string,
    agencyId = 'muster-admin',
  ): Promise<{ agencyId: string; keyId: string; created: boolean; revoked: boolean }> {
    const keyId = bootstrapKeyId(token);
    const system: Actor = { agency: 'system', keyId: 'bootstrap' };
    if (!this.registry.agency(agencyId)) {
      await this.register(
        { id: agencyId, name: 'Muster administrators', roles: ['admin'], missions: ['*'] },
        system,
      ).catch((error) => {
        if (!(error instanceof ApiError && error.code === 'conflict')) throw error;
      });
    }
    const existing = this.registry.key(keyId);
    // A revoked bootstrap key stays revoked: the variable is still set on every restart (compose
    // and the manifest require it), and reissuing it would undo the revocation each time.
    if (existing)
      return { agencyId: existing.agencyId, keyId, created: false, revoked: existing.revokedAt !== null };
    await this.append(
      agencyId,
      {
        type: 'ApiKeyIssued',
        data: {
          agencyId,
          keyId,
          label: 'bootstrap admin key',
          secretHash: hashSecret(token),
          expiresAt: null,
        },
      },
      system,
      'stream_exists',
    );
    return { agencyId, keyId, created: true, revoked: false };
  }

  private requireAgency(agencyId: string): Agency {
    const agency = this.registry.agency(agencyId);
    if (!agency) throw new ApiError('not-found', `No agency '${agencyId}'`);
    return agency;
  }

  private async append(
    agencyId: string,
    event: AgencyEvent,
    actor: Actor,
    expectedRevision: 'no_stream' | 'stream_exists',
  ): Promise<void> {
    const result = await this.store.appendToStream(
      agencyStream(agencyId),
      [{ id: uuidv7(), type: event.type, data: event.data, metadata: { actor } }],
      { expectedRevision },
    );
    for (const recorded of result.events) this.registry.apply(recorded);
  }
}
