import {
  type AllStreamSubscription,
  type Position as EsdbPosition,
  eventTypeFilter,
  excludeSystemEvents,
  type Filter,
  streamNameFilter,
} from '@eventstore/db-client';
import { type EventFilter, matchesFilter } from '@muster/event-store';
import { isSystemEvent } from './envelope.js';

/**
 * EventStoreDB filters a subscription on ONE of stream name or event type. The port's filter may
 * name both (AND), and exact types besides prefixes; so the server gets the most useful part, and
 * the adapter applies the whole filter again to what arrives. System events ($-prefixed type or
 * stream) are always dropped on the client too, whatever the server was asked.
 */
export type ServerFilterPlan =
  | { on: 'stream-name'; prefixes: string[] }
  | { on: 'event-type'; prefixes: string[] }
  | { on: 'exclude-system-events' };

export function planServerFilter(filter: EventFilter | undefined): ServerFilterPlan {
  const streamPrefixes = unique(filter?.streamPrefixes ?? []);
  if (streamPrefixes.length > 0) return { on: 'stream-name', prefixes: streamPrefixes };
  // An exact type is also a prefix of itself; the client-side pass keeps only exact matches.
  const typePrefixes = unique([...(filter?.eventTypes ?? []), ...(filter?.eventTypePrefixes ?? [])]);
  if (typePrefixes.length > 0) return { on: 'event-type', prefixes: typePrefixes };
  return { on: 'exclude-system-events' };
}

export interface FilterCallbacks {
  /** Multiplies the server's search window (32 events): a checkpoint every N × 32 scanned events. */
  checkpointIntervalMultiplier: number;
  checkpointReached: (subscription: AllStreamSubscription, position: EsdbPosition) => void;
}

export function toEsdbFilter(plan: ServerFilterPlan, callbacks: FilterCallbacks): Filter {
  const common = {
    checkpointInterval: callbacks.checkpointIntervalMultiplier,
    checkpointReached: callbacks.checkpointReached,
  };
  switch (plan.on) {
    case 'stream-name':
      return streamNameFilter({ prefixes: plan.prefixes, ...common });
    case 'event-type':
      return eventTypeFilter({ prefixes: plan.prefixes, ...common });
    case 'exclude-system-events':
      return excludeSystemEvents(common);
    default: {
      const exhaustive: never = plan;
      return exhaustive;
    }
  }
}

/** The client-side pass: what the port's filter keeps, never a system event. */
export function acceptsEvent(filter: EventFilter | undefined, stream: string, type: string): boolean {
  return !isSystemEvent(stream, type) && matchesFilter(filter, stream, type);
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}
