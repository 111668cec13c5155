/**
 * Checked access to plugin request bodies. dockerd retries a failed call with an EMPTY body
 * (protocol reference 1, "Retries and timeouts"), and a malformed body must never crash a handler
 * or be mistaken for a valid request: every required field is checked here.
 */
import { BadRequestError } from '../util/errors.js';

/** A decoded JSON body known to be an object. */
export type Body = Record<string, unknown>;

/** The body as an object, or a BadRequestError naming the call. */
export function requireObject(call: string, body: unknown): Body {
  if (body === undefined || body === null || (typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0)) {
    throw new BadRequestError(`${call}: empty request body (dockerd resends a failed call without its body); retry the docker command`);
  }
  if (typeof body !== 'object' || Array.isArray(body)) throw new BadRequestError(`${call}: request body must be a JSON object`);
  return body as Body;
}

/** A required non-empty string field. */
export function requireString(call: string, body: Body, field: string): string {
  const v = body[field];
  if (typeof v !== 'string' || v === '') throw new BadRequestError(`${call}: field ${field} must be a non-empty string`);
  if (v.length > 4096) throw new BadRequestError(`${call}: field ${field} is too long`);
  return v;
}

/** An optional string field ('' when absent or null). */
export function optionalString(call: string, body: Body, field: string): string {
  const v = body[field];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new BadRequestError(`${call}: field ${field} must be a string`);
  if (v.length > 4096) throw new BadRequestError(`${call}: field ${field} is too long`);
  return v;
}

/** An optional object field ({} when absent or null). */
export function optionalObject(call: string, body: Body, field: string): Body {
  const v = body[field];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new BadRequestError(`${call}: field ${field} must be an object`);
  return v as Body;
}

/** An optional array field ([] when absent or null). */
export function optionalArray(call: string, body: Body, field: string): unknown[] {
  const v = body[field];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new BadRequestError(`${call}: field ${field} must be an array`);
  return v;
}

/** An optional boolean field (false when absent). */
export function optionalBoolean(call: string, body: Body, field: string): boolean {
  const v = body[field];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new BadRequestError(`${call}: field ${field} must be a boolean`);
  return v;
}

/** Docker ids are hex strings (64 chars from dockerd; shorter ones appear in recorded logs). */
export function requireId(call: string, body: Body, field: string): string {
  const v = requireString(call, body, field);
  if (!/^[0-9a-zA-Z_.-]{1,128}$/.test(v)) throw new BadRequestError(`${call}: field ${field} is not a valid id`);
  return v;
}
