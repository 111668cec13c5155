/**
 * `cilium bpf policy get|ipcache list|ct list|endpoint list` end to end (tables and -o json), and
 * the port/protocol column of policy entries.
 */
import t from 'tap';
import { formatPortProtocol } from '../../../src/cli/bpf-commands.js';
import { bpfEndpoints, bpfPolicyOf12, conntrack, ipcache, startApi } from '../api/fixtures/api-harness.js';
import { runCli } from './fixtures/run-cli.js';

t.test('bpf policy get prints the enforcement header and the entries', async (t) => {
  const { host } = await startApi(t);
  const [table, json, missing] = await Promise.all([
    runCli(['--host', host, 'bpf', 'policy', 'get', '12']),
    runCli(['--host', host, 'bpf', 'policy', 'get', '12', '-o', 'json']),
    runCli(['--host', host, 'bpf', 'policy', 'get', '13']),
  ]);
  t.equal(table.code, 0, table.stderr);
  t.equal(
    table.stdout,
    [
      'Endpoint 12, identity 5678: ingress enforcement enabled, egress enforcement disabled',
      'DIRECTION   IDENTITY   LABELS              PORT/PROTO      VERDICT   POLICY',
      'Ingress     4321       container:app=web   80/TCP          Allow     db-policy',
      'Ingress     0          ANY                 1024-2047/UDP   Deny      db-deny-high',
      'Egress      0          ANY                 ANY             Allow',
      '',
    ].join('\n'),
  );
  t.equal(json.code, 0, json.stderr);
  t.same(JSON.parse(json.stdout), bpfPolicyOf12);
  t.equal(missing.code, 1);
  t.equal(missing.stderr, 'Error: endpoint "13" not found (ERR_NOT_FOUND)\n');
});

t.test('bpf ipcache list, bpf ct list and bpf endpoint list print their tables', async (t) => {
  const { host } = await startApi(t);
  const [ipc, ct, ep] = await Promise.all([
    runCli(['--host', host, 'bpf', 'ipcache', 'list']),
    runCli(['--host', host, 'bpf', 'ct', 'list']),
    runCli(['--host', host, 'bpf', 'endpoint', 'list']),
  ]);
  t.equal(ipc.code, 0, ipc.stderr);
  t.equal(
    ipc.stdout,
    [
      'PREFIX            IDENTITY   NETID   TUNNEL',
      '198.18.100.2/32   4321       1',
      '198.18.200.7/32   9001       1       10.0.0.2',
      '198.18.201.0/26   2          0       10.0.1.2 via 10.0.0.254',
      '198.18.202.0/26   2          0       10.0.2.2 (device)',
      '',
    ].join('\n'),
  );
  t.equal(ct.code, 0, ct.stderr);
  t.equal(
    ct.stdout,
    [
      'SOURCE               DESTINATION       PROTO   IDENTITY   PACKETS (FWD/REV)   BYTES (FWD/REV) ' +
        '            FLAGS               EXPIRES',
      '198.18.100.2:43210   198.18.100.3:80   TCP     4321       12/10               ' +
        '1500/18446744073709551615   reply-seen,denied   21590s',
      '198.18.100.3:5353    198.18.100.9:53   UDP     5678       -                   -                    ' +
        '       -                   58s',
      '',
    ].join('\n'),
  );
  t.equal(ep.code, 0, ep.stderr);
  t.equal(
    ep.stdout,
    [
      'IP             ENDPOINT   IFINDEX   IDENTITY   NETID   ENFORCE   MAC',
      '198.18.100.3   12         41        5678       1       ingress   02:42:c6:12:64:03',
      '',
    ].join('\n'),
  );
});

t.test('bpf list commands with -o json print the models', async (t) => {
  const { host } = await startApi(t);
  const [ipc, ct, ep] = await Promise.all([
    runCli(['--host', host, 'bpf', 'ipcache', 'list', '-o', 'json']),
    runCli(['--host', host, 'bpf', 'ct', 'list', '-o', 'json']),
    runCli(['--host', host, 'bpf', 'endpoint', 'list', '-o', 'json']),
  ]);
  t.same(JSON.parse(ipc.stdout), ipcache);
  t.same(JSON.parse(ct.stdout), conntrack);
  t.same(JSON.parse(ep.stdout), bpfEndpoints);
});

t.test('formatPortProtocol: single ports, port blocks, any port, any protocol', async (t) => {
  t.equal(formatPortProtocol(80, 16, 6), '80/TCP');
  t.equal(formatPortProtocol(53, 16, 17), '53/UDP');
  t.equal(formatPortProtocol(1024, 6, 6), '1024-2047/TCP');
  t.equal(formatPortProtocol(8080, 15, 6), '8080-8081/TCP');
  t.equal(formatPortProtocol(32768, 1, 17), '32768-65535/UDP');
  t.equal(formatPortProtocol(0, 0, 6), 'ANY/TCP');
  t.equal(formatPortProtocol(0, 0, 0), 'ANY');
  t.equal(formatPortProtocol(0, 0, 132), 'ANY/SCTP');
});
