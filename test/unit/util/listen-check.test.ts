/**
 * Pre-flight listen check: free addresses pass and are released; a port in use, an address of
 * no interface and two options on one port are ConfigErrors naming the option and the reason.
 */
import t from 'tap';
import { createServer, type AddressInfo } from 'node:net';
import { checkListenAddresses } from '../../../src/util/listen-check.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

t.test('free addresses pass and are released again', async (t) => {
  const port = await freePort();
  await checkListenAddresses([
    { option: '--metrics-address', host: '127.0.0.1', port, protocols: ['tcp'] },
    { option: '--dns-address', host: '127.0.0.2', port, protocols: ['udp', 'tcp'] },
  ]);
  await checkListenAddresses([{ option: '--metrics-address', host: '127.0.0.1', port, protocols: ['tcp'] }]);
  const s = createServer();
  await new Promise<void>((resolve, reject) => s.once('error', reject).listen(port, '127.0.0.1', resolve));
  s.close();
  t.pass('the port is free after the check');
  await checkListenAddresses([]);
});

t.test('a port in use', async (t) => {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.teardown(() => void s.close());
  const { port } = s.address() as AddressInfo;
  await t.rejects(
    checkListenAddresses([{ option: '--metrics-address', host: '127.0.0.1', port, protocols: ['tcp'] }]),
    {
      code: 'ERR_CONFIG',
      message:
        `--metrics-address 127.0.0.1:${port}: cannot listen on TCP (the port is in use); ` +
        'give an address of this host whose port is free, or leave --metrics-address empty',
    },
  );
});

t.test('an address of no interface', async (t) => {
  await t.rejects(
    checkListenAddresses([{ option: '--dns-address', host: '198.18.99.1', port: 53, protocols: ['udp', 'tcp'] }]),
    {
      code: 'ERR_CONFIG',
      message: /^--dns-address 198\.18\.99\.1:53: cannot listen on UDP \(not an address of this host\)/,
    },
  );
});

t.test('two options on one port collide, and everything bound so far is released', async (t) => {
  const port = await freePort();
  await t.rejects(
    checkListenAddresses([
      { option: '--dns-address', host: '127.0.0.1', port, protocols: ['udp', 'tcp'] },
      { option: '--metrics-address', host: '127.0.0.1', port, protocols: ['tcp'] },
    ]),
    {
      code: 'ERR_CONFIG',
      message: new RegExp(`^--metrics-address 127\\.0\\.0\\.1:${port}: cannot listen on TCP \\(the port is in use\\)`),
    },
  );
  await checkListenAddresses([{ option: '--dns-address', host: '127.0.0.1', port, protocols: ['udp', 'tcp'] }]);
  t.pass('the DNS port was released after the failure');
});
