import type { ConsumerStatus, Observation, Subscription } from "./ports.js";

/**
 * The running consumers and observers of one bus (either implementation): one durable consumer
 * per name, handles that deregister themselves when stopped, their statuses, and stopping all
 * of them when the bus closes (observers first, then consumers, which drain their handlers).
 */
export class BusMembers {
  readonly #subscriptions = new Map<string, Subscription>();
  readonly #observations = new Set<Observation>();

  /** Throws when a consumer of this name already runs on the bus. */
  assertNew(name: string): void {
    if (this.#subscriptions.has(name)) throw new Error(`consumer ${name} is already subscribed on this bus`);
  }

  /** Registers a started consumer; the returned handle deregisters it when stopped. */
  addSubscription(subscription: Subscription): Subscription {
    const tracked: Subscription = {
      name: subscription.name,
      status: () => subscription.status(),
      stop: async () => {
        this.#subscriptions.delete(subscription.name);
        await subscription.stop();
      },
    };
    this.#subscriptions.set(subscription.name, tracked);
    return tracked;
  }

  /** Registers a started observer; the returned handle deregisters it when stopped. */
  addObservation(observation: Observation): Observation {
    const observations = this.#observations;
    const tracked: Observation = {
      get live() {
        return observation.live;
      },
      async stop() {
        observations.delete(tracked);
        await observation.stop();
      },
    };
    observations.add(tracked);
    return tracked;
  }

  /** Every consumer's status. */
  status(): ConsumerStatus[] {
    return [...this.#subscriptions.values()].map((s) => s.status());
  }

  /** Stops every observer, then every consumer (each waits for its handlers in flight). */
  async stopAll(): Promise<void> {
    await Promise.allSettled([...this.#observations].map((o) => o.stop()));
    await Promise.allSettled([...this.#subscriptions.values()].map((s) => s.stop()));
  }
}
