/**
 * Which Docker events make the watcher inspect a container: `connect` only on our networks, a
 * container `start` only while an endpoint of ours still waits for its container, a container
 * `rename` always, network `create` only names the network.
 */
import t from 'tap';
import { pino } from 'pino';
import { DockerWatcher } from '../../../src/docker/docker-watcher.js';

function watcher(state: { ourNetworks: Set<string>; awaiting: boolean }) {
  const named: Array<[string, string]> = [];
  const w = new DockerWatcher({
    dockerHost: 'unix:///nonexistent/docker.sock',
    log: pino({ level: 'silent' }),
    isOurEndpoint: () => false,
    isOurNetwork: (id) => state.ourNetworks.has(id),
    awaitingContainer: () => state.awaiting,
    waitingEndpoints: () => [],
    attach: async () => undefined,
    networkNamed: async (id, name) => void named.push([id, name]),
  });
  const resolved: string[] = [];
  (w as unknown as { resolveContainer: (id: string) => Promise<void> }).resolveContainer = async (id) =>
    void resolved.push(id);
  const feed = (ev: object) => (w as unknown as { onEvent: (line: string) => void }).onEvent(JSON.stringify(ev));
  return { feed, resolved, named };
}

t.test('network connect: inspected only for our networks', async (t) => {
  const state = { ourNetworks: new Set(['net-ours']), awaiting: true };
  const { feed, resolved } = watcher(state);
  feed({ Type: 'network', Action: 'connect', Actor: { ID: 'net-other', Attributes: { container: 'c1' } } });
  t.same(resolved, [], "a connect to another driver's network is ignored");
  feed({ Type: 'network', Action: 'connect', Actor: { ID: 'net-ours', Attributes: { container: 'c2' } } });
  t.same(resolved, ['c2'], 'a connect to ours is inspected');
});

t.test('container start: inspected only while an endpoint waits for its container', async (t) => {
  const state = { ourNetworks: new Set<string>(), awaiting: false };
  const { feed, resolved } = watcher(state);
  feed({ Type: 'container', Action: 'start', Actor: { ID: 'c1' } });
  t.same(resolved, [], 'nothing to learn: no inspect');
  state.awaiting = true;
  feed({ Type: 'container', Action: 'start', Actor: { ID: 'c2' } });
  t.same(resolved, ['c2'], 'an endpoint waits: inspected');
  feed({ Type: 'container', Action: 'die', Actor: { ID: 'c3' } });
  t.same(resolved, ['c2'], 'other container events are ignored');
});

t.test('container rename: always inspected (the new name of a running container)', async (t) => {
  const { feed, resolved } = watcher({ ourNetworks: new Set(), awaiting: false });
  feed({ Type: 'container', Action: 'rename', Actor: { ID: 'c1', Attributes: { name: 'new', oldName: '/old' } } });
  t.same(resolved, ['c1'], 'inspected although no endpoint waits');
});

t.test('network create names the network; garbage is ignored', async (t) => {
  const { feed, resolved, named } = watcher({ ourNetworks: new Set(), awaiting: true });
  feed({ Type: 'network', Action: 'create', Actor: { ID: 'n1', Attributes: { name: 'web' } } });
  await new Promise((r) => setImmediate(r));
  t.same(named, [['n1', 'web']]);
  t.same(resolved, []);
});
