/** Lets timers and I/O callbacks (plugin and API requests) run before continuing: long work yields with it. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
