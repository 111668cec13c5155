#!/usr/bin/env node
// Benchmark runner (`make bench`). Runs each bench (TypeScript, through tap's TS loader in
// transpile-only mode, so it can use the e2e lab in test/lab), prints a markdown report and keeps
// the raw JSON, the report and the daemon's log in bench/results/ (gitignored).
//
//   node bench/run.mjs                    every bench (single-host, datapath, overlay, identity, programs, ct-bounce)
//   node bench/run.mjs single-host        one bench (or several: names as arguments)
//   BENCHES=datapath node bench/run.mjs   the same through the environment (`make bench BENCHES=datapath`)
//   node bench/run.mjs --report FILE.json re-render a saved result without running anything
//   node bench/run.mjs --list
//
// Settings come from the environment (see bench/README.md): ROUNDS, WARMUP, CONC_ROUNDS, CONC_N,
// CONC_CONFIGS, PROFILE_RUNS, MICRO_REPS (single-host); DP_* (datapath); OV_* (overlay); ID_* (identity); PROG_*
// (programs); CT_* (ct-bounce); BENCH_STRICT=1 exits 1 when a target is missed. Benches that need native tools get them
// compiled into bench/bin/ (gitignored) first, with $CC or gcc or clang.
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { renderSingleHost } from './lib/report.mjs';
import { renderDatapath } from './lib/datapath-report.mjs';
import { renderOverlay } from './lib/overlay-report.mjs';
import { renderIdentity } from './lib/identity-report.mjs';
import { renderPrograms } from './lib/programs-report.mjs';
import { renderCtBounce } from './lib/ct-bounce-report.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results');
const TS_LOADER = join(ROOT, 'node_modules', '@tapjs', 'typescript', 'dist', 'esm', 'import.mjs');

const BIN = join(ROOT, 'bench', 'bin');

const BENCHES = {
  'single-host': {
    file: join(ROOT, 'bench', 'single-host.ts'),
    render: renderSingleHost,
    what: 'container start latency and 50 concurrent starts: none vs Docker bridge vs ours, per-call profile',
  },
  datapath: {
    file: join(ROOT, 'bench', 'datapath.ts'),
    render: renderDatapath,
    tools: ['tcprr'],
    what:
      'container-to-container throughput and RR: raw veth vs Docker bridge vs ours (+50k policy entries) ' +
      'vs 50k iptables rules; policy install rate and import-to-enforced latency',
  },
  overlay: {
    file: join(ROOT, 'bench', 'overlay.ts'),
    render: renderOverlay,
    tools: ['tcprr'],
    what:
      'cross-host throughput and RR, interleaved: routed underlay vs plain kernel VXLAN vs Docker classic overlay ' +
      '(--cluster-store) vs ours with and without policy; policy import -> enforced on 3 hosts',
  },
  identity: {
    file: join(ROOT, 'bench', 'identity.ts'),
    render: renderIdentity,
    // A real etcd on loopback and worker processes: no lab host, no root, no dist/.
    lab: false,
    what:
      'identity allocation against a real etcd: latency and round trips (new/existing), ' +
      '3-process race throughput and conflict rate, resync of 1k/10k owned keys',
  },
  programs: {
    file: join(ROOT, 'bench', 'programs.ts'),
    render: renderPrograms,
    // BPF_PROG_TEST_RUN on bpf/lxc.bpf.o in private pin roots: root, but no lab host and no dist/.
    lab: false,
    root: true,
    what:
      'ns per run of our BPF programs per packet path (BPF_PROG_TEST_RUN, interleaved rounds): local, ' +
      'local with policy, reply, encapsulate, to-stack, to_container; 3 vs 50k policy entries',
  },
  'ct-bounce': {
    file: join(ROOT, 'bench', 'ct-bounce.ts'),
    render: renderCtBounce,
    // BPF_PROG_TEST_RUN in child processes pinned to CPU0/CPU1 on one pin root: root, no lab host.
    lab: false,
    root: true,
    what:
      "one flow's conntrack entry with its two directions on two CPUs at once vs alone, " +
      'conntrack counters on and off (BPF_PROG_TEST_RUN)',
  },
};

/** Compiles bench/src/<tool>.c into bench/bin/<tool> when the binary is missing or older. */
function buildTool(tool) {
  const src = join(ROOT, 'bench', 'src', `${tool}.c`);
  const bin = join(BIN, tool);
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(src).mtimeMs) return;
  mkdirSync(BIN, { recursive: true });
  const candidates = [process.env.CC, 'gcc', 'clang', 'cc'].filter(Boolean);
  const errors = [];
  for (const cc of candidates) {
    try {
      execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-o', bin, src], { stdio: ['ignore', 'inherit', 'pipe'] });
      console.error(`bench: compiled ${tool} with ${cc} -> ${bin}`);
      return;
    } catch (err) {
      errors.push(`${cc}: ${err.code === 'ENOENT' ? 'not found' : String(err.stderr ?? err.message).trim()}`);
    }
  }
  throw new Error(`cannot compile ${src}:\n${errors.join('\n')}`);
}

/** Bench names from argv, else from $BENCHES (comma or space separated), else all. */
function selectedBenches(args) {
  if (args.length > 0) return args;
  const fromEnv = (process.env.BENCHES ?? '').split(/[\s,]+/).filter((s) => s !== '');
  return fromEnv.length > 0 ? fromEnv : Object.keys(BENCHES);
}

function render(result) {
  const bench = BENCHES[result.bench];
  if (!bench) throw new Error(`unknown bench "${result.bench}" in result file`);
  return bench.render(result);
}

/**
 * What keeps the selected benches from running; lab benches (every one but `lab: false`)
 * need root and dist/, `root: true` ones root.
 */
function preflight(names) {
  const problems = [];
  const lab = names.some((n) => BENCHES[n].lab !== false);
  if (lab && process.getuid?.() !== 0) problems.push('benchmarks need root (network namespaces, dockerd)');
  else if (names.some((n) => BENCHES[n].root) && process.getuid?.() !== 0)
    problems.push('benchmarks need root (BPF programs)');
  if (lab && !existsSync(join(ROOT, 'dist', 'main.js')))
    problems.push('dist/main.js is missing: run `make build` first');
  if (!existsSync(TS_LOADER)) problems.push(`${TS_LOADER} is missing: run \`make setup\` (npm ci) first`);
  if (Number(process.versions.node.split('.')[0]) < 24)
    problems.push(`Node ${process.version}: need >= 24 (export PATH=${ROOT}.tools/bin:$PATH)`);
  return problems;
}

let current; // the running bench process
let interrupted = false;
// The child (same process group) gets a terminal's ^C itself and removes its lab host; a signal
// sent to the runner alone is passed on. Either way the runner waits for the child to finish.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    interrupted = true;
    try {
      current?.kill(sig);
    } catch {
      /* gone */
    }
  });
}

/** Runs one bench in a child Node process; resolves with its exit code. */
function runBench(name, env) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [`--import=${pathToFileURL(TS_LOADER).href}`, BENCHES[name].file], {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', ...env },
    });
    current = child;
    child.on('exit', (code, signal) => {
      current = undefined;
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

async function main() {
  const args = process.argv.slice(2);
  if (args[0] === '--list') {
    for (const [name, b] of Object.entries(BENCHES)) console.log(`${name}\t${b.what}`);
    return 0;
  }
  if (args[0] === '--report') {
    if (!args[1]) throw new Error('--report needs a result JSON file');
    const { markdown, verdicts } = render(JSON.parse(readFileSync(args[1], 'utf8')));
    console.log(markdown);
    return process.env.BENCH_STRICT === '1' && verdicts.some((v) => !v.ok) ? 1 : 0;
  }
  const names = selectedBenches(args);
  for (const n of names)
    if (!BENCHES[n]) throw new Error(`unknown bench "${n}"; known: ${Object.keys(BENCHES).join(', ')}`);
  const problems = preflight(names);
  if (problems.length > 0) {
    for (const p of problems) console.error(`bench: ${p}`);
    return 2;
  }
  for (const n of names) for (const tool of BENCHES[n].tools ?? []) buildTool(tool);
  mkdirSync(RESULTS, { recursive: true });
  const stamp = new Date()
    .toISOString()
    .replace(/[:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const sections = [];
  const allVerdicts = [];
  let failed = false;
  for (const name of names) {
    if (interrupted) break;
    const base = join(RESULTS, `${stamp}-${name}`);
    const out = `${base}.json`;
    console.error(`bench: running ${name} (raw results -> ${out})`);
    const code = await runBench(name, {
      BENCH_OUT: out,
      BENCH_DAEMON_LOG: `${base}-daemon.log`,
      BENCH_TRACE_FILE: `${base}-strace.txt`,
    });
    if (code !== 0 || !existsSync(out)) {
      console.error(`bench: ${name} failed (exit ${code})`);
      failed = true;
      continue;
    }
    const { markdown, verdicts } = render(JSON.parse(readFileSync(out, 'utf8')));
    sections.push(markdown);
    allVerdicts.push(...verdicts);
  }
  if (sections.length > 0) {
    const summary = allVerdicts.map((v) => `- ${v.ok ? 'meets' : 'MISSES'}: ${v.name} (measured ${v.text})`).join('\n');
    const targets = allVerdicts.length > 0 ? `\n\n### Targets\n\n${summary}` : '';
    const md = `# cilium-docker benchmarks (${stamp})\n\n${sections.join('\n\n')}${targets}\n`;
    writeFileSync(join(RESULTS, `${stamp}.md`), md);
    copyFileSync(join(RESULTS, `${stamp}.md`), join(RESULTS, 'latest.md'));
    console.log(md);
    console.error(`bench: report saved to ${join(RESULTS, `${stamp}.md`)} (and latest.md)`);
  }
  if (failed) return 1;
  return process.env.BENCH_STRICT === '1' && allVerdicts.some((v) => !v.ok) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  },
);
