/**
 * Plugin request decoding (src/plugin/wire-decoders.ts): every request dockerd 20.10 really sent
 * (the whole recorded call log, every run) decodes into its wire type with the values it carried;
 * absent and null fields become zero values, unknown fields are ignored, and a field of the wrong
 * type, too long, or an array too large is a BadRequestError naming the call and the field's path.
 */
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import {
  decodeAllocateNetworkRequest,
  decodeCreateEndpointRequest,
  decodeCreateNetworkRequest,
  decodeEndpointIdRequest,
  decodeEndpointOnlyRequest,
  decodeJoinRequest,
  decodeNetworkIdRequest,
  decodeProgramExternalConnectivityRequest,
  decodeReleaseAddressRequest,
  decodeReleasePoolRequest,
  decodeRequestAddressRequest,
  decodeRequestPoolRequest,
} from '../../../src/plugin/wire-decoders.js';
import type { RequestDecoder } from '../../../src/plugin/request-body.js';
import { BadRequestError } from '../../../src/util/errors.js';

/** The decoder of each call that has a body. */
const DECODERS: Record<string, RequestDecoder<unknown>> = {
  'NetworkDriver.CreateNetwork': decodeCreateNetworkRequest,
  'NetworkDriver.AllocateNetwork': decodeAllocateNetworkRequest,
  'NetworkDriver.DeleteNetwork': decodeNetworkIdRequest,
  'NetworkDriver.FreeNetwork': decodeNetworkIdRequest,
  'NetworkDriver.CreateEndpoint': decodeCreateEndpointRequest,
  'NetworkDriver.EndpointOperInfo': decodeEndpointOnlyRequest,
  'NetworkDriver.DeleteEndpoint': decodeEndpointIdRequest,
  'NetworkDriver.Join': decodeJoinRequest,
  'NetworkDriver.Leave': decodeEndpointIdRequest,
  'NetworkDriver.ProgramExternalConnectivity': decodeProgramExternalConnectivityRequest,
  'NetworkDriver.RevokeExternalConnectivity': decodeEndpointOnlyRequest,
  'IpamDriver.RequestPool': decodeRequestPoolRequest,
  'IpamDriver.ReleasePool': decodeReleasePoolRequest,
  'IpamDriver.RequestAddress': decodeRequestAddressRequest,
  'IpamDriver.ReleaseAddress': decodeReleaseAddressRequest,
};

/** `value` with JSON nulls as the decoders' zero values, for comparing with what was sent. */
function withoutNulls(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null));
}

function refused(t: Test, decode: RequestDecoder<unknown>, call: string, body: unknown, message: RegExp): void {
  t.throws(() => decode(call, body), BadRequestError, `${call} ${JSON.stringify(body).slice(0, 80)}: BadRequestError`);
  try {
    decode(call, body);
  } catch (err) {
    t.match((err as Error).message, message, `${call}: ${(err as Error).message.slice(0, 100)}`);
  }
}

t.test('every request of the recorded dockerd 20.10 call log decodes, values unchanged', async (t) => {
  const lines = readFileSync(new URL('../../fixtures/dockerd-20.10-calllog.jsonl', import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { call?: string; req?: Record<string, unknown> });
  const seen = new Set<string>();
  for (const line of lines) {
    const decode = line.call ? DECODERS[line.call] : undefined;
    if (!decode || line.req === undefined) continue;
    seen.add(line.call!);
    const decoded = decode(line.call!.split('.')[1]!, line.req) as Record<string, unknown>;
    // Every field dockerd sent that the type declares comes through as sent (nulls as zero values).
    t.has(decoded, withoutNulls(line.req), `${line.call}: decoded as sent`);
  }
  t.same(
    [...seen].sort(),
    Object.keys(DECODERS)
      .filter((c) => !c.endsWith('AllocateNetwork') && !c.endsWith('FreeNetwork'))
      .sort(),
    'the log covers every local-scope call with a body',
  );
});

t.test('zero values for absent and null fields, unknown fields ignored', async (t) => {
  t.same(decodeCreateEndpointRequest('CreateEndpoint', { NetworkID: 'n1', EndpointID: 'e1', Future: { x: 1 } }), {
    NetworkID: 'n1',
    EndpointID: 'e1',
    Interface: { Address: '', AddressIPv6: '', MacAddress: '' },
    Options: {},
  });
  t.same(
    decodeCreateNetworkRequest('CreateNetwork', {
      NetworkID: 'n1',
      IPv4Data: [{ Pool: '198.18.0.0/24', Gateway: null, Extra: 1 }],
      IPv6Data: null,
    }),
    {
      NetworkID: 'n1',
      Options: {},
      IPv4Data: [{ AddressSpace: '', Pool: '198.18.0.0/24', Gateway: '', AuxAddresses: {} }],
      IPv6Data: [],
    },
  );
  t.same(decodeRequestAddressRequest('RequestAddress', { PoolID: 'p', Address: '', Options: null }), {
    PoolID: 'p',
    Address: '',
    Options: {},
  });
  t.same(decodeRequestPoolRequest('RequestPool', { AddressSpace: 'CiliumLocal' }), {
    AddressSpace: 'CiliumLocal',
    Pool: '',
    SubPool: '',
    Options: {},
    V6: false,
  });
  t.same(
    decodeEndpointOnlyRequest('RevokeExternalConnectivity', { EndpointID: 'e1' }),
    { NetworkID: '', EndpointID: 'e1' },
    'a call that needs only the endpoint id',
  );
});

t.test('wrong types, long strings and large arrays are named by path', async (t) => {
  refused(
    t,
    decodeCreateEndpointRequest,
    'CreateEndpoint',
    { NetworkID: 'n1', EndpointID: 'e1', Interface: { Address: 7 } },
    /^CreateEndpoint: field Interface\.Address must be a string$/,
  );
  refused(
    t,
    decodeCreateEndpointRequest,
    'CreateEndpoint',
    { NetworkID: 'n1', EndpointID: 'e1', Interface: [] },
    /^CreateEndpoint: field Interface must be an object$/,
  );
  refused(
    t,
    decodeCreateEndpointRequest,
    'CreateEndpoint',
    { NetworkID: 'n1', EndpointID: 'e1', Interface: { MacAddress: 'x'.repeat(5000) } },
    /field Interface\.MacAddress is too long/,
  );
  refused(
    t,
    decodeCreateEndpointRequest,
    'CreateEndpoint',
    { NetworkID: 'n1/../x', EndpointID: 'e1' },
    /field NetworkID is not a valid id/,
  );
  refused(
    t,
    decodeCreateNetworkRequest,
    'CreateNetwork',
    { NetworkID: 'n1', IPv4Data: [42] },
    /^CreateNetwork: field IPv4Data\[0\] must be an object$/,
  );
  refused(
    t,
    decodeCreateNetworkRequest,
    'CreateNetwork',
    { NetworkID: 'n1', IPv4Data: [{ Pool: '198.18.0.0/24' }, { Pool: ['x'] }] },
    /field IPv4Data\[1\]\.Pool must be a string/,
  );
  refused(
    t,
    decodeCreateNetworkRequest,
    'CreateNetwork',
    { NetworkID: 'n1', IPv4Data: [{ AuxAddresses: { h: 1 } }] },
    /field IPv4Data\[0\]\.AuxAddresses\.h must be a string/,
  );
  refused(
    t,
    decodeCreateNetworkRequest,
    'CreateNetwork',
    { NetworkID: 'n1', IPv4Data: new Array(100_000).fill({}) },
    /field IPv4Data has 100000 entries; at most 64/,
  );
  refused(
    t,
    decodeRequestPoolRequest,
    'RequestPool',
    { AddressSpace: 'CiliumLocal', Options: { 'cilium.network': 5 } },
    /field Options\.cilium\.network must be a string/,
  );
  refused(
    t,
    decodeRequestPoolRequest,
    'RequestPool',
    { AddressSpace: 'CiliumLocal', V6: 'false' },
    /field V6 must be a boolean/,
  );
  refused(
    t,
    decodeRequestAddressRequest,
    'RequestAddress',
    { PoolID: 'p', Options: { RequestAddressType: ['com.docker.network.gateway'] } },
    /field Options\.RequestAddressType must be a string/,
  );
  refused(
    t,
    decodeEndpointOnlyRequest,
    'EndpointOperInfo',
    { NetworkID: 5, EndpointID: 'e1' },
    /field NetworkID must be a non-empty string/,
  );
  refused(t, decodeReleaseAddressRequest, 'ReleaseAddress', {}, /^ReleaseAddress: empty request body/);
  refused(
    t,
    decodeReleaseAddressRequest,
    'ReleaseAddress',
    [1],
    /^ReleaseAddress: request body must be a JSON object$/,
  );
});
