/**
 * Terminal injection: labels and names come from containers, images and other nodes. A label
 * holding an escape sequence (`\x1b[2J` clears the screen), a newline followed by a fake table
 * row, a carriage return, a C1 CSI or a bidi override must print as visible escapes in every
 * table and text output, never raw; JSON output stays JSON with the same values.
 */
import t from 'tap';
import type { EndpointModel, IdentityModel, StatusModel } from '../../../src/api/models.js';
import { renderTable } from '../../../src/cli/table.js';
import { escapeTerminalText, guardTerminalOutput, terminalJson } from '../../../src/cli/terminal-text.js';
import { NotFoundError } from '../../../src/util/errors.js';
import { dropEvent, startApi } from '../api/fixtures/api-harness.js';
import { runCli, spawnCli } from './fixtures/run-cli.js';

/** A label that clears the screen, then draws a row that looks like a reserved:host endpoint. */
const hostileLabel = 'container:app=x\x1b[2J\n99   evil   1   reserved:host   198.18.0.99   ready';
const hostileLabels = [hostileLabel, 'container:note=a\rb\x9b31m\u202etxt.exe', 'container:path=C:\\n'];

/** Every character a terminal would act on, except the newline that ends lines. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: it finds the control characters the CLI must escape.
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

const endpoint: EndpointModel = {
  id: 7,
  endpointId: 'e'.repeat(64),
  networkId: 'n'.repeat(64),
  networkName: 'net\x1b]0;owned\x07',
  containerId: 'c'.repeat(64),
  containerName: 'web\nfake',
  ipv4: '198.18.0.7',
  mac: '02:42:c6:12:00:07',
  hostInterface: 'lxc0123456789a',
  state: 'ready',
  identity: 40001,
  labels: hostileLabels,
  policyRevision: 1,
  createdAt: '2025-01-01T00:00:00.000Z',
};

const identity: IdentityModel = { id: 40001, labels: hostileLabels, reserved: false, localReferences: 1 };

t.test('escapeTerminalText: visible escapes for C0, DEL, C1 and bidi; backslashes doubled', async (t) => {
  t.equal(escapeTerminalText('a\x1b[2Jb'), 'a\\x1b[2Jb');
  t.equal(escapeTerminalText('1\n2\r3\t4'), '1\\n2\\r3\\t4');
  t.equal(escapeTerminalText('\x00\x07\x7f\x9b\x85'), '\\x00\\x07\\x7f\\x9b\\x85');
  t.equal(escapeTerminalText('\u202eexe.txt\u2066\u2028'), '\\u202eexe.txt\\u2066\\u2028');
  t.equal(escapeTerminalText('C:\\n'), 'C:\\\\n', 'a literal backslash-n is not mistaken for an escaped newline');
  t.equal(
    escapeTerminalText('app=web-1 é ✓ 日本'),
    'app=web-1 é ✓ 日本',
    'printable text, Unicode included, unchanged',
  );
  t.equal(
    guardTerminalOutput('ok\n\x1b[31mred\r\n'),
    'ok\n\\x1b[31mred\\r\n',
    'the guard keeps line ends and nothing else',
  );
  const json = terminalJson({ label: 'a\x1b\x9b\u202e\n' });
  t.notMatch(json, RAW_CONTROL);
  t.same(JSON.parse(json), { label: 'a\x1b\x9b\u202e\n' }, 'JSON keeps the value');
});

t.test('renderTable: a hostile cell stays in its row; arrays are lines', async (t) => {
  const text = renderTable(
    ['ID', 'LABELS', 'STATE'],
    [
      ['7', hostileLabels, 'ready'],
      ['8', 'container:app=y\nfake row', 'ready'],
    ],
  );
  t.notMatch(text, RAW_CONTROL);
  t.same(text.split('\n'), [
    'ID   LABELS                                                                        STATE',
    '7    container:app=x\\x1b[2J\\n99   evil   1   reserved:host   198.18.0.99   ready   ready',
    '     container:note=a\\rb\\x9b31m\\u202etxt.exe',
    '     container:path=C:\\\\n',
    '8    container:app=y\\nfake row                                                     ready',
    '',
  ]);
});

t.test('the CLI never writes a raw control character from the daemon', async (t) => {
  const { host, backend } = await startApi(t);
  backend.listEndpoints = () => [endpoint];
  backend.getEndpoint = () => endpoint;
  backend.listIdentities = async () => [identity];
  backend.getIdentity = async () => identity;
  const status = await backend.status();
  backend.status = async (): Promise<StatusModel> => ({
    ...status,
    node: 'node-1\x1b[2J',
    docker: { connected: false, detail: 'refused\nKVStore:     Ok   (forged)' },
  });

  // Independent runs in parallel (each CLI start compiles TypeScript).
  const [endpoints, identities, one, statusText, json] = await Promise.all([
    runCli(['--host', host, 'endpoint', 'list']),
    runCli(['--host', host, 'identity', 'list']),
    runCli(['--host', host, 'endpoint', 'get', '7']),
    runCli(['--host', host, 'status']),
    runCli(['--host', host, 'endpoint', 'list', '-o', 'json']),
  ]);
  t.equal(endpoints.code, 0, endpoints.stderr);
  t.notMatch(endpoints.stdout, RAW_CONTROL, 'endpoint list: no raw control character');
  const rows = endpoints.stdout.split('\n');
  t.equal(rows.length, 1 + hostileLabels.length + 1, 'endpoint list: the header, one line per label, nothing more');
  t.match(
    rows[1],
    new RegExp(
      /^7 +web\\nfake +40001 +container:app=x\\x1b\[2J/.source +
        /\\n99 {3}evil {3}1 {3}reserved:host {3}198\.18\.0\.99 {3}ready +198\.18\.0\.7 +ready$/.source,
    ),
    'the fake row is inside the label cell',
  );
  t.notOk(
    rows.some((row) => row.startsWith('99')),
    'no line starts with the forged endpoint id',
  );

  t.equal(identities.code, 0, identities.stderr);
  t.notMatch(identities.stdout, RAW_CONTROL, 'identity list: no raw control character');
  t.equal(
    identities.stdout.split('\n').length,
    1 + hostileLabels.length + 1,
    'identity list: the header, one line per label',
  );
  t.match(identities.stdout, /container:app=x\\x1b\[2J\\n99 {3}evil/);

  t.equal(one.code, 0, one.stderr);
  t.notMatch(one.stdout, RAW_CONTROL, 'endpoint get: no raw control character');
  t.match(one.stdout, /^Container: {8}web\\nfake c{64}\n/m);
  t.match(one.stdout, /^Network: {10}net\\x1b\]0;owned\\x07 n{64}\n/m);
  t.equal(one.stdout.split('\n').length, 12, 'endpoint get: its 11 lines');

  t.equal(statusText.code, 0, statusText.stderr);
  t.notMatch(statusText.stdout, RAW_CONTROL, 'status: no raw control character');
  t.match(statusText.stdout, /^Node: {8}node-1\\x1b\[2J\n/);
  t.match(statusText.stdout, /^Docker: {6}Failure {3}refused\\nKVStore: {5}Ok {3}\(forged\)\n/m);
  t.notMatch(statusText.stdout, /^KVStore: {5}Ok {3}\(forged\)/m, 'no forged status line');

  t.equal(json.code, 0, json.stderr);
  t.notMatch(json.stdout, RAW_CONTROL, 'JSON output: no raw control character');
  t.same((JSON.parse(json.stdout) as EndpointModel[])[0]!.labels, hostileLabels, 'JSON output: the labels as they are');

  backend.getEndpoint = () => {
    throw new NotFoundError('endpoint "\x1b[2Jx" not found');
  };
  const missing = await runCli(['--host', host, 'endpoint', 'get', 'x']);
  t.equal(missing.code, 1);
  t.notMatch(missing.stderr, RAW_CONTROL, 'error message: no raw control character');
  t.match(missing.stderr, /^Error: endpoint "\\x1b\[2Jx" not found \(ERR_NOT_FOUND\)\n$/);
});

t.test('monitor lines are escaped too', async (t) => {
  const { host, backend } = await startApi(t);
  const cli = spawnCli(['--host', host, 'monitor']);
  t.teardown(() => void cli.child.kill('SIGKILL'));
  await backend.subscription(0);
  backend.emit({ ...dropEvent, srcLabels: [hostileLabel], reasonName: 'Policy denied\x1b[0m' });
  const [line] = await cli.lines(1);
  t.notMatch(cli.stdout(), RAW_CONTROL);
  t.match(
    line,
    new RegExp(
      /^xx drop \(Policy denied\\x1b\[0m\) flow 0x0 to endpoint 12, .* /.source +
        /\[container:app=x\\x1b\[2J\\n99 {3}evil {3}1 {3}reserved:host {3}198\.18\.0\.99 {3}ready\] -> /.source +
        /\[container:app=db\]$/.source,
    ),
  );
  cli.child.kill('SIGINT');
  await cli.exited;
});
