/**
 * What the datapath tests need from the machine: root, a bpffs, the built addon and objects, a
 * private pin directory per test, fixture programs compiled on demand. Everything a test creates
 * is removed by t.teardown, whether the test passed or not.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addonPath } from '../../../src/datapath/bpf/native.js';
import { defaultLxcObjectPath } from '../../../src/datapath/bpf/programs.js';

/** The part of a tap test object the sandbox uses. */
interface Teardown {
  teardown(fn: () => unknown): void;
}

const BPFFS = '/sys/fs/bpf';
const BPF_FS_MAGIC = 0xcafe4a11;

/** Runs a command; returns stdout. Throws with stderr in the message on failure. */
export function sh(command: string, args: string[], input?: string): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

/** Mounts the bpffs at /sys/fs/bpf when it is missing (as root; allowed on test machines). */
function ensureBpffs(): boolean {
  try {
    if (statfsSync(BPFFS).type === BPF_FS_MAGIC) return true;
    sh('mount', ['-t', 'bpf', 'bpf', BPFFS]);
    return statfsSync(BPFFS).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** Why BPF tests cannot run here, or undefined when they can. */
export function bpfSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (BPF, tc and network namespaces)';
  if (!existsSync(addonPath)) return `addon not built (${addonPath}): run scripts/build-native.sh`;
  if (!existsSync(defaultLxcObjectPath)) return `${defaultLxcObjectPath} missing: run scripts/build-bpf.sh`;
  if (!ensureBpffs()) return `no bpf filesystem at ${BPFFS} and mounting one failed`;
  return undefined;
}

/** A fresh pin directory /sys/fs/bpf/cdtest-<pid>-<n>, removed with everything in it at teardown. */
export function pinRoot(t: Teardown): string {
  const dir = mkdtempSync(join(BPFFS, `cdtest-${process.pid}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const fixtureDir = fileURLToPath(new URL('./fixtures/', import.meta.url));
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** Compiles fixtures/<name>.bpf.c as scripts/build-bpf.sh would; returns the object's path. */
export function compileFixture(t: Teardown, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cdtest-bpf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const object = join(dir, `${name}.bpf.o`);
  const multiarch = sh('gcc', ['-print-multiarch']).trim() || `${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`;
  sh('clang', ['-O2', '-g', '-target', 'bpf', `-I${join(repoRoot, 'bpf/include')}`, `-I/usr/include/${multiarch}`,
    '-c', join(fixtureDir, `${name}.bpf.c`), '-o', object]);
  return object;
}
