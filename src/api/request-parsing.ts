/**
 * Decoding of the agent API's request bodies and query parameters into checked values: every
 * malformed request is a BadRequestError that says what was expected (the routes in server.ts
 * only call these).
 */
import { BadRequestError } from '../util/errors.js';
import type { Request } from '../util/http-server.js';
import type { MonitorEventModel, TraceRequestModel } from './models.js';
import { singleQueryValue } from './route-group.js';

/** `GET /v1/policy/wait/:revision` without `?timeout=`. */
const DEFAULT_POLICY_WAIT_MS = 30_000;
/** Upper bound of `?timeout=` (a wait is one held request; longer waits are better re-issued). */
const MAX_POLICY_WAIT_MS = 3_600_000;

/** The event types `GET /v1/monitor?type=` accepts; a Record so that a new model type must be added here. */
const monitorEventTypes: Record<MonitorEventModel['type'], true> = { drop: true, 'policy-verdict': true, trace: true };

const traceRequestFields: ReadonlyArray<keyof TraceRequestModel> = ['srcLabels', 'dstLabels', 'dport', 'protocol'];

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Validates `POST /v1/policy` bodies: `{"text": "<policy YAML or JSON>"}`. */
export function parsePolicyImportBody(body: unknown): string {
  if (!isPlainObject(body) || typeof body.text !== 'string') {
    throw new BadRequestError(
      'policy import body must be a JSON object {"text": "<CiliumNetworkPolicy YAML or JSON>"}',
    );
  }
  if (body.text.trim() === '')
    throw new BadRequestError('policy import text is empty; give one or more CiliumNetworkPolicy documents');
  return body.text;
}

function parseTraceLabels(body: Record<string, unknown>, field: 'srcLabels' | 'dstLabels'): string[] {
  const value = body[field];
  const expected = `${field} must be a non-empty array of labels, each "key=value" or "source:key=value"`;
  if (!Array.isArray(value) || value.length === 0)
    throw new BadRequestError(`${expected}; got ${JSON.stringify(value) ?? 'nothing'}`);
  return value.map((label, i) => {
    if (typeof label !== 'string' || label === '' || /[\s,]/.test(label)) {
      throw new BadRequestError(`${field}[${i}] ${JSON.stringify(label)} is not a label; ${expected}`);
    }
    return label;
  });
}

/**
 * `?labels=a&labels=b` of `GET|DELETE /v1/policy`: the labels (Cilium's `source:key=value`) that
 * select policies. Present but empty is refused, so that no malformed query deletes everything.
 */
export function parsePolicyLabelsQuery(query: Request['query']): string[] {
  const raw = query['labels'];
  const labels = (Array.isArray(raw) ? raw : [raw]).filter((l): l is string => typeof l === 'string');
  if (labels.length === 0 || labels.length !== (Array.isArray(raw) ? raw.length : 1) || labels.some((l) => l === '')) {
    throw new BadRequestError('labels must be one or more non-empty ?labels=source:key=value parameters');
  }
  return labels;
}

/** Validates `POST /v1/policy/trace` bodies; `dport` defaults to 0 (any) and `protocol` to ANY. */
export function parseTraceRequest(body: unknown): TraceRequestModel {
  if (!isPlainObject(body)) {
    throw new BadRequestError(
      'trace request must be a JSON object {"srcLabels": [...], "dstLabels": [...], ' +
        '"dport": N, "protocol": "TCP|UDP|ANY"}',
    );
  }
  for (const key of Object.keys(body)) {
    if (!(traceRequestFields as readonly string[]).includes(key)) {
      throw new BadRequestError(`unknown field "${key}" in trace request; expected ${traceRequestFields.join(', ')}`);
    }
  }
  const srcLabels = parseTraceLabels(body, 'srcLabels');
  const dstLabels = parseTraceLabels(body, 'dstLabels');
  const dport = body.dport ?? 0;
  if (typeof dport !== 'number' || !Number.isInteger(dport) || dport < 0 || dport > 65535) {
    throw new BadRequestError(`dport must be a port number 0-65535 (0 = any port); got ${JSON.stringify(dport)}`);
  }
  const protocol = body.protocol ?? 'ANY';
  const upper = typeof protocol === 'string' ? protocol.toUpperCase() : '';
  if (upper !== 'TCP' && upper !== 'UDP' && upper !== 'ANY') {
    throw new BadRequestError(`protocol must be TCP, UDP or ANY; got ${JSON.stringify(protocol)}`);
  }
  return { srcLabels, dstLabels, dport, protocol: upper };
}

export function parseWaitTimeout(query: Request['query']): number {
  const text = singleQueryValue(query, 'timeout');
  if (text === undefined) return DEFAULT_POLICY_WAIT_MS;
  if (!/^\d+$/.test(text) || Number(text) > MAX_POLICY_WAIT_MS) {
    throw new BadRequestError(
      `timeout must be a number of milliseconds from 0 to ${MAX_POLICY_WAIT_MS}; got "${text}"`,
    );
  }
  return Number(text);
}

/**
 * `?type=drop,trace` (or `?type=drop&type=trace`) as a set; undefined (every type) when absent
 * or empty.
 */
export function parseMonitorTypes(value: unknown): Set<string> | undefined {
  if (value === undefined) return undefined;
  const parts = (Array.isArray(value) ? value : [value]).flatMap((v) => String(v).split(','));
  const types = new Set(parts.map((t) => t.trim()).filter((t) => t !== ''));
  for (const type of types) {
    if (!Object.hasOwn(monitorEventTypes, type)) {
      throw new BadRequestError(
        `unknown monitor event type "${type}"; expected one of ${Object.keys(monitorEventTypes).join(', ')}`,
      );
    }
  }
  return types.size > 0 ? types : undefined;
}
