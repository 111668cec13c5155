/**
 * A real store behind a switch, for outage tests: `fail()` makes every call reject with
 * KvUnavailableError as a backend that cannot reach its server does, `hang()` makes calls wait
 * (a server that accepted the connection and does not answer) until `restore()`, which also lets
 * the waiting calls through. `calls` counts the calls that reached the switch, so a test can
 * assert "zero store round trips". A Proxy, so it follows the KvStore interface as it grows.
 */
import type { KvStore } from '../../src/kvstore/kvstore.js';
import { KvUnavailableError } from '../../src/util/errors.js';

/** The switchable store. */
export interface OutageStore {
  store: KvStore;
  /** Calls made through `store` (every method but `watch`, `status`, `close`). */
  readonly calls: number;
  fail(): void;
  hang(): void;
  restore(): void;
}

/** Wraps `inner`; starts healthy. */
export function withOutageSwitch(inner: KvStore, name = 'test-store'): OutageStore {
  let mode: 'up' | 'fail' | 'hang' = 'up';
  let calls = 0;
  let released: Array<() => void> = [];
  const passThrough = new Set<PropertyKey>(['watch', 'status', 'close']);
  const store = new Proxy(inner, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      if (passThrough.has(property)) return (value as (...a: unknown[]) => unknown).bind(target);
      return async (...args: unknown[]) => {
        calls++;
        if (mode === 'hang') await new Promise<void>((resolve) => released.push(resolve));
        if (mode === 'fail')
          throw new KvUnavailableError(`${name}: connection refused (simulated outage); cannot ${String(property)}`);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    store,
    get calls() {
      return calls;
    },
    fail() {
      mode = 'fail';
    },
    hang() {
      mode = 'hang';
    },
    restore() {
      mode = 'up';
      const waiting = released;
      released = [];
      for (const resolve of waiting) resolve();
    },
  };
}
