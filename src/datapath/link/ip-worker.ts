/**
 * One long-lived `ip -force -json -batch -` process for the commands of container start and
 * teardown. Spawning `ip` per command costs a fork of the whole daemon (the event loop is blocked
 * meanwhile) plus the start of `ip` itself: measured ~40 ms of CPU per container for 2–3 spawns.
 * Here a request is a few lines written to the worker's stdin.
 *
 * Protocol. stderr is merged into stdout (`exec 2>&1`) and stdout is line-buffered (`stdbuf
 * -oL`), so the worker's output is one ordered stream of lines:
 *  - a JSON array, printed by each successful `show` command (one line each, with -json);
 *  - error text (`RTNETLINK answers: File exists`, `Device "x" does not exist.`) followed by
 *    `Command failed -:<line>`, the line number of the failed command on stdin (-force goes on).
 * After its commands, every request writes a sentinel `link show dev lo`; its JSON line ends the
 * request, so requests can be pipelined and are answered in order.
 *
 * iproute2 caches name -> ifindex for the life of the process: a link deleted behind its back (a
 * container's namespace going away takes its veth along) leaves a stale index, and commands naming
 * it fail with "No such device". A request failing that way is retried once on a fresh worker.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { DatapathError } from '../../util/errors.js';

const SENTINEL = ['link', 'show', 'dev', 'lo'];
const REQUEST_TIMEOUT_MS = 15_000;
const STALE_INDEX = /No such device/;

/** Commands whose output is a JSON line when they succeed. */
function prints(command: readonly string[]): boolean {
  const verb = command[1] ?? '';
  return (
    command[0] !== undefined &&
    (verb === 'show' || verb === 'list' || verb === 'ls' || verb === 'lst' || verb === 'get')
  );
}

interface Pending {
  commands: readonly (readonly string[])[];
  /** stdin line number of commands[0]; the sentinel is firstLine + commands.length. */
  firstLine: number;
  outputs: unknown[][];
  /** Index of the next printing command waiting for its JSON line. */
  nextPrinter: number;
  failures: Map<number, string>;
  resolve: (outputs: unknown[][]) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

class IpWorker {
  private readonly child: ChildProcessByStdio<Writable, Readable, null>;
  private readonly queue: Pending[] = [];
  private nextLine = 1;
  private buffered = '';
  private errorText: string[] = [];
  dead = false;
  /** Requests sent to this process (a stale name cache needs at least one before). */
  served = 0;

  constructor(ipBinary: string) {
    // exec: the shell is replaced, so the pid (and a kill) is ip's own. No stderr pipe: the shell
    // moves stderr onto stdout, so a pipe there would only be closed at once — and a closed
    // socket's ref()/unref() queues a 'connect' listener that never fires (one per idle cycle).
    this.child = spawn('sh', ['-c', 'exec 2>&1; exec stdbuf -oL "$0" -force -json -batch -', ipBinary], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    this.child.stdout.setEncoding('utf8').on('data', (chunk: string) => this.onData(chunk));
    this.child.stdin.on('error', () => undefined);
    this.child.on('error', (err) => this.fail(new DatapathError(`ip worker: ${err.message}`, { cause: err })));
    this.child.on('close', (code, signal) =>
      this.fail(new DatapathError(`ip worker exited (${signal ?? `code ${code}`}) with requests in flight`)),
    );
    // An idle worker must not hold the event loop open (the daemon may exit with it idle); a
    // request in flight must (setRef).
    this.setRef(false);
  }

  private setRef(on: boolean): void {
    if (on) this.child.ref();
    else this.child.unref();
    for (const s of [this.child.stdin, this.child.stdout] as Array<{
      destroyed: boolean;
      ref?: () => void;
      unref?: () => void;
    }>) {
      // A pipe already closed (stdin after retire(), both after the exit) has no handle to ref:
      // Node would queue a 'connect' listener instead, for ever.
      if (s.destroyed) continue;
      if (on) s.ref?.();
      else s.unref?.();
    }
  }

  /** Listeners on the process and its pipes, all events together (a leak check for tests). */
  listenerCount(): number {
    return [this.child, this.child.stdin, this.child.stdout].reduce(
      (sum, emitter) => sum + emitter.eventNames().reduce((n, name) => n + emitter.listenerCount(name), 0),
      0,
    );
  }

  run(commands: readonly (readonly string[])[]): Promise<unknown[][]> {
    return new Promise((resolve, reject) => {
      if (this.dead) {
        reject(new DatapathError('ip worker is not running'));
        return;
      }
      const timer = setTimeout(() => {
        this.fail(
          new DatapathError(
            `ip -batch (${describe(commands)}): no answer within ${REQUEST_TIMEOUT_MS} ms; the worker was restarted`,
          ),
        );
      }, REQUEST_TIMEOUT_MS);
      timer.unref();
      const pending: Pending = {
        commands,
        firstLine: this.nextLine,
        outputs: [],
        nextPrinter: 0,
        failures: new Map(),
        resolve,
        reject,
        timer,
      };
      if (this.queue.length === 0) this.setRef(true);
      this.queue.push(pending);
      this.nextLine += commands.length + 1;
      this.served++;
      this.child.stdin.write(`${[...commands, SENTINEL].map((c) => c.join(' ')).join('\n')}\n`);
    });
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    for (let nl = this.buffered.indexOf('\n'); nl >= 0; nl = this.buffered.indexOf('\n')) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      this.onLine(line);
    }
  }

  private onLine(line: string): void {
    const head = this.queue[0];
    if (!head) return;
    const failed = /^Command failed -:(\d+)$/.exec(line);
    if (failed) {
      const index = Number(failed[1]) - head.firstLine;
      const text = this.errorText.join('; ').trim() || 'failed';
      this.errorText = [];
      if (index === head.commands.length || index < 0 || index > head.commands.length) {
        this.fail(new DatapathError(`ip worker lost track of its requests (${line}: ${text})`));
        return;
      }
      head.failures.set(index, text);
      return;
    }
    if (!line.startsWith('[')) {
      if (line.trim() !== '') this.errorText.push(line.trim());
      return;
    }
    while (
      head.nextPrinter < head.commands.length &&
      (!prints(head.commands[head.nextPrinter]!) || head.failures.has(head.nextPrinter))
    )
      head.nextPrinter++;
    let parsed: unknown[];
    try {
      parsed = JSON.parse(line) as unknown[];
    } catch {
      this.fail(new DatapathError(`ip worker printed an unreadable line: ${line.slice(0, 200)}`));
      return;
    }
    if (head.nextPrinter < head.commands.length) {
      head.outputs.push(parsed);
      head.nextPrinter++;
      return;
    }
    // The sentinel's line: the request is complete.
    this.queue.shift();
    if (this.queue.length === 0) this.setRef(false);
    clearTimeout(head.timer);
    if (head.failures.size === 0) {
      head.resolve(head.outputs);
      return;
    }
    const [index, text] = [...head.failures].sort((a, b) => a[0] - b[0])[0]!;
    head.reject(new DatapathError(`ip ${head.commands[index]!.join(' ')}: ${text}`));
  }

  /**
   * Takes no new requests (the next one gets a new worker) but lets the ones in flight finish:
   * stdin is closed, so `ip` exits after answering them.
   */
  retire(): void {
    if (this.dead) return;
    this.dead = true;
    this.child.stdin.end();
  }

  /** Fails every request in flight and kills the process; the next request gets a new worker. */
  fail(err: Error): void {
    this.dead = true;
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    this.setRef(false);
    for (const p of this.queue.splice(0)) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }
}

function describe(commands: readonly (readonly string[])[]): string {
  return commands.map((c) => c.join(' ')).join('; ');
}

let worker: IpWorker | undefined;

function current(ipBinary: string): IpWorker {
  if (!worker || worker.dead) worker = new IpWorker(ipBinary);
  return worker;
}

/**
 * Runs `commands` in the shared `ip` worker; resolves with the JSON arrays of the `show`
 * commands, in order. Rejects with DatapathError naming the first failed command and iproute2's
 * message when any command failed (the others still ran, as with `ip -force -batch`).
 */
export async function runInIpWorker(commands: readonly (readonly string[])[], ipBinary = 'ip'): Promise<unknown[][]> {
  const w = current(ipBinary);
  const hadServed = w.served > 0;
  try {
    return await w.run(commands);
  } catch (err) {
    // A name cached by an older request may point at a link that is gone: retry on a fresh
    // process, once. (Interface indexes only grow, so a stale index never names another link.)
    if (!hadServed || !(err instanceof DatapathError) || !STALE_INDEX.test(err.message)) throw err;
    // Requests already sent to the old process (other containers') still get their answers.
    w.retire();
    return current(ipBinary).run(commands);
  }
}

/** Listeners on the shared worker's process and pipes (0 without a worker); tests check it stays bounded. */
export function ipWorkerListenerCount(): number {
  return worker?.listenerCount() ?? 0;
}

/** Stops the shared worker (daemon shutdown, tests). */
export function stopIpWorker(): void {
  worker?.fail(new DatapathError('ip worker stopped'));
  worker = undefined;
}
