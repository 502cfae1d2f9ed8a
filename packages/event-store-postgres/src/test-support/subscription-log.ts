import type { RecordedEvent, Subscription, SubscriptionMessage } from '@muster/event-store';

/**
 * Drains a subscription in the background and keeps everything it delivered, so a test can look
 * at what arrived (and what did not) at any moment without holding a pending read.
 */
export class SubscriptionLog {
  readonly messages: SubscriptionMessage[] = [];
  readonly events: RecordedEvent[] = [];
  error: unknown = null;
  ended = false;
  private readonly done: Promise<void>;

  constructor(readonly subscription: Subscription) {
    this.done = (async () => {
      try {
        for await (const message of subscription) {
          this.messages.push(message);
          if (message.kind === 'event') this.events.push(message.event);
        }
      } catch (error) {
        this.error = error;
      } finally {
        this.ended = true;
      }
    })();
  }

  get caughtUp(): boolean {
    return this.messages.some((m) => m.kind === 'caught-up');
  }

  /** The last position the subscriber could store as its checkpoint. */
  get checkpoint(): string | null {
    for (let i = this.messages.length - 1; i >= 0; i--) {
      const m = this.messages[i] as SubscriptionMessage;
      if (m.kind === 'event') return m.event.position;
      if (m.position !== null) return m.position;
    }
    return null;
  }

  async until(what: string, predicate: (log: this) => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this)) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}; ${this.events.length} events, error ${String(this.error)}`,
        );
      }
      await sleep(10);
    }
  }

  async close(): Promise<void> {
    await this.subscription.close();
    await this.done;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
