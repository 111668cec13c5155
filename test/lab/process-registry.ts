// Last-resort clean-up. t.teardown is the normal path; this registry covers a test process that
// exits without running it (uncaught exception, process.exit, SIGINT/SIGTERM/SIGHUP). Handlers
// here must be synchronous: they run from process 'exit', where the event loop is gone.
// A process killed with SIGKILL runs nothing; the stale-lab reaper (host-cleanup.ts) covers that
// on the next start.

type Cleanup = () => void;

const cleanups = new Map<number, Cleanup>();
let nextId = 1;
let installed = false;
let running = false;

const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

/** Runs every registered clean-up, newest first; each is isolated from the others' failures. */
export function runRegisteredCleanupsSync(): void {
  if (running) return;
  running = true;
  try {
    for (const [id, fn] of [...cleanups.entries()].reverse()) {
      cleanups.delete(id);
      try {
        fn();
      } catch (e) {
        process.stderr.write(`cdl lab: emergency clean-up failed: ${String(e)}\n`);
      }
    }
  } finally {
    running = false;
  }
}

function onSignal(signal: NodeJS.Signals): void {
  runRegisteredCleanupsSync();
  // Our listener suppressed the default action; end the process the way the signal would have.
  process.exit(128 + (SIGNAL_NUMBERS[signal] ?? 1));
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runRegisteredCleanupsSync);
  for (const s of FORWARDED_SIGNALS) process.on(s, onSignal);
}

/**
 * Registers a synchronous clean-up to run if the process exits before it is unregistered.
 * Returns the function that unregisters it (call it once the normal asynchronous teardown has
 * finished).
 */
export function registerEmergencyCleanup(fn: Cleanup): () => void {
  install();
  const id = nextId++;
  cleanups.set(id, fn);
  return () => {
    cleanups.delete(id);
  };
}

/** How many emergency clean-ups are pending (for tests of the lab itself). */
export function pendingEmergencyCleanups(): number {
  return cleanups.size;
}
