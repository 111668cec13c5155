/**
 * Checked decoding of plugin request bodies into the types of wire.ts. dockerd retries a failed
 * call with an EMPTY body (protocol reference 1, "Retries and timeouts"), and a malformed body must
 * never crash a handler or be mistaken for a valid request: every field a type declares is checked
 * here (type, string length), once, and handlers only see the typed request.
 *
 * As libnetwork's json.Unmarshal into its structs: unknown fields are ignored (dockerd may add
 * some), an absent or null field decodes to its zero value ('' , {}, [], false), and a field of
 * the wrong type is a BadRequestError naming the call and the field's path (`Interface.Address`).
 */
import { BadRequestError } from '../util/errors.js';

/** A decoded JSON body known to be an object. */
export type Body = Record<string, unknown>;

/** Decodes the JSON value at `path` of `call`'s body, or throws a BadRequestError naming both. */
export type ValueDecoder<T> = (call: string, value: unknown, path: string) => T;

/** One decoder per field of T, in the order they are checked. */
export type FieldDecoders<T> = { readonly [K in keyof T]-?: ValueDecoder<T[K]> };

/** Decodes a whole request body of `call` into T. */
export type RequestDecoder<T> = (call: string, raw: unknown) => T;

/** Longest string accepted in any field (ids, addresses, names are all far shorter). */
const MAX_STRING = 4096;

/** The body as an object, or a BadRequestError naming the call. */
export function requireObject(call: string, body: unknown): Body {
  if (
    body === undefined ||
    body === null ||
    (typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0)
  ) {
    throw new BadRequestError(
      `${call}: empty request body (dockerd resends a failed call without its body); retry the docker command`,
    );
  }
  if (typeof body !== 'object' || Array.isArray(body))
    throw new BadRequestError(`${call}: request body must be a JSON object`);
  return body as Body;
}

/** A required non-empty string. */
export const requiredString: ValueDecoder<string> = (call, v, path) => {
  if (typeof v !== 'string' || v === '') throw new BadRequestError(`${call}: field ${path} must be a non-empty string`);
  if (v.length > MAX_STRING) throw new BadRequestError(`${call}: field ${path} is too long`);
  return v;
};

/** An optional string ('' when absent or null). */
export const optionalString: ValueDecoder<string> = (call, v, path) => {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new BadRequestError(`${call}: field ${path} must be a string`);
  if (v.length > MAX_STRING) throw new BadRequestError(`${call}: field ${path} is too long`);
  return v;
};

const ID = /^[0-9a-zA-Z_.-]{1,128}$/;

/** Docker ids are hex strings (64 chars from dockerd; shorter ones appear in recorded logs). */
export const requiredId: ValueDecoder<string> = (call, v, path) => {
  const id = requiredString(call, v, path);
  if (!ID.test(id)) throw new BadRequestError(`${call}: field ${path} is not a valid id`);
  return id;
};

/** An id the call does not need ('' when absent), still checked when present. */
export const optionalId: ValueDecoder<string> = (call, v, path) =>
  v === undefined || v === null ? '' : requiredId(call, v, path);

/** An optional boolean (false when absent or null). */
export const optionalBoolean: ValueDecoder<boolean> = (call, v, path) => {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new BadRequestError(`${call}: field ${path} must be a boolean`);
  return v;
};

/** An optional free-form object ({} when absent or null): option maps whose values vary by key. */
export const optionalObject: ValueDecoder<Body> = (call, v, path) => {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new BadRequestError(`${call}: field ${path} must be an object`);
  return v as Body;
};

/** An optional map of strings ({} when absent or null), as Go's map[string]string. */
export const optionalStringMap: ValueDecoder<Record<string, string>> = (call, v, path) => {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(optionalObject(call, v, path))) {
    if (key.length > MAX_STRING) throw new BadRequestError(`${call}: field ${path} has a key that is too long`);
    if (typeof value !== 'string') throw new BadRequestError(`${call}: field ${path}.${key} must be a string`);
    out[key] = optionalString(call, value, `${path}.${key}`);
  }
  return out;
};

/** Decodes the fields of `body` in declaration order; `prefix` makes nested paths (`Interface.`). */
function decodeFields<T>(call: string, body: Body, fields: FieldDecoders<T>, prefix: string): T {
  const out = {} as T;
  for (const field of Object.keys(fields) as Array<keyof T & string>)
    out[field] = fields[field](call, body[field], `${prefix}${field}`);
  return out;
}

/** An optional nested object with known fields (absent or null: every field's zero value). */
export function optionalObjectOf<T>(fields: FieldDecoders<T>): ValueDecoder<T> {
  return (call, v, path) => decodeFields(call, optionalObject(call, v, path), fields, `${path}.`);
}

/** A required nested object with known fields (array elements). */
export function objectOf<T>(fields: FieldDecoders<T>): ValueDecoder<T> {
  return (call, v, path) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw new BadRequestError(`${call}: field ${path} must be an object`);
    return decodeFields(call, v as Body, fields, `${path}.`);
  };
}

/** An optional array ([] when absent or null) of at most `max` elements, each decoded by `element`. */
export function optionalArrayOf<T>(element: ValueDecoder<T>, max: number): ValueDecoder<T[]> {
  return (call, v, path) => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw new BadRequestError(`${call}: field ${path} must be an array`);
    if (v.length > max)
      throw new BadRequestError(`${call}: field ${path} has ${v.length} entries; at most ${max} are accepted`);
    return v.map((item, i) => element(call, item, `${path}[${i}]`));
  };
}

/** A decoder of a whole request body: a non-empty JSON object, then each of `fields`. */
export function requestDecoder<T>(fields: FieldDecoders<T>): RequestDecoder<T> {
  return (call, raw) => decodeFields(call, requireObject(call, raw), fields, '');
}
