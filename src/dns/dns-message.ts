/**
 * DNS wire format (RFC 1035 section 4), the small part the cluster resolver needs: decoding a
 * query's header and its one question, and encoding an answer with A records. Hand-written: the
 * resolver answers A/AAAA for container names and relays every other message byte for byte, so a
 * full DNS library would buy nothing.
 *
 * Decoding never throws on hostile input: a message that is not a well-formed query decodes to
 * `undefined` (or to a header only, so a FORMERR can still carry the query's id).
 */
import { parseIpv4 } from '../util/ipv4.js';

/** Record types the resolver knows by name. */
export const QTYPE_A = 1;
export const QTYPE_AAAA = 28;
/** The Internet class. */
export const QCLASS_IN = 1;

/** Response codes (RFC 1035 4.1.1). */
export const RCODE = { noError: 0, formErr: 1, servFail: 2, nxDomain: 3, notImp: 4, refused: 5 } as const;

const HEADER_LENGTH = 12;
const MAX_NAME_LENGTH = 255;
/** Compression pointers followed before a name is declared a loop. */
const MAX_POINTERS = 16;

/** The fixed 12-byte header. */
export interface DnsHeader {
  id: number;
  /** QR bit: true for responses. */
  response: boolean;
  opcode: number;
  recursionDesired: boolean;
  rcode: number;
  questionCount: number;
  answerCount: number;
}

/** A decoded query: its header and its (first) question. */
export interface DnsQuery {
  header: DnsHeader;
  /** The name as sent (case preserved, no trailing dot; '' for the root). */
  name: string;
  type: number;
  class: number;
  /** The question section's bytes as received (echoed in the answer, case included: RFC 4343). */
  questionBytes: Buffer;
}

/** Decodes the header; undefined when the message is shorter than a header. */
export function decodeHeader(message: Buffer): DnsHeader | undefined {
  if (message.length < HEADER_LENGTH) return undefined;
  const flags = message.readUInt16BE(2);
  return {
    id: message.readUInt16BE(0),
    response: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    recursionDesired: (flags & 0x0100) !== 0,
    rcode: flags & 0xf,
    questionCount: message.readUInt16BE(4),
    answerCount: message.readUInt16BE(6),
  };
}

/**
 * Reads a (possibly compressed) name at `offset`. Returns the dotted name and the offset just past
 * the name's bytes at `offset`, or undefined when the name runs past the message, loops, uses a
 * reserved label type or is longer than 255 bytes.
 */
export function readName(message: Buffer, offset: number): { name: string; next: number } | undefined {
  const labels: string[] = [];
  let length = 0;
  let pos = offset;
  let next: number | undefined;
  for (let pointers = 0; ; ) {
    if (pos >= message.length) return undefined;
    const len = message[pos]!;
    if (len === 0) {
      next ??= pos + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= message.length || ++pointers > MAX_POINTERS) return undefined;
      next ??= pos + 2;
      pos = ((len & 0x3f) << 8) | message[pos + 1]!;
      continue;
    }
    if ((len & 0xc0) !== 0) return undefined;
    if (pos + 1 + len > message.length) return undefined;
    length += len + 1;
    if (length > MAX_NAME_LENGTH) return undefined;
    labels.push(message.toString('latin1', pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
  return { name: labels.join('.'), next };
}

/**
 * Decodes a query: header plus first question. Undefined when the message is not a query
 * (a response, no question, or truncated); the caller answers FORMERR when at least the header
 * decodes.
 */
export function decodeQuery(message: Buffer): DnsQuery | undefined {
  const header = decodeHeader(message);
  if (!header || header.response || header.questionCount < 1) return undefined;
  const name = readName(message, HEADER_LENGTH);
  if (!name || name.next + 4 > message.length) return undefined;
  return {
    header,
    name: name.name,
    type: message.readUInt16BE(name.next),
    class: message.readUInt16BE(name.next + 2),
    questionBytes: message.subarray(HEADER_LENGTH, name.next + 4),
  };
}

/** What an answer says. */
export interface AnswerSpec {
  rcode: number;
  /** AA: the resolver is the authority for the name (cluster names). */
  authoritative: boolean;
  /** RA: recursion is available (upstreams are configured). */
  recursionAvailable: boolean;
  /** IPv4 addresses answered as A records of the question's name. */
  addresses?: string[];
  ttlSeconds?: number;
}

/**
 * Encodes the response to `query` (id, opcode, RD and the question echoed). A records point at
 * the question's name with a compression pointer (offset 12).
 */
export function encodeAnswer(query: DnsQuery, spec: AnswerSpec): Buffer {
  // Addresses come from endpoint records; one that is not an address gets no record rather than zeros.
  const addresses = (spec.addresses ?? []).map(parseIpv4).filter((a): a is number => a !== undefined);
  const header = Buffer.alloc(HEADER_LENGTH);
  header.writeUInt16BE(query.header.id, 0);
  const flags =
    0x8000 |
    ((query.header.opcode & 0xf) << 11) |
    (spec.authoritative ? 0x0400 : 0) |
    (query.header.recursionDesired ? 0x0100 : 0) |
    (spec.recursionAvailable ? 0x0080 : 0) |
    (spec.rcode & 0xf);
  header.writeUInt16BE(flags, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(addresses.length, 6);
  const records = addresses.map((ip) => {
    const r = Buffer.alloc(16);
    r.writeUInt16BE(0xc000 | HEADER_LENGTH, 0);
    r.writeUInt16BE(QTYPE_A, 2);
    r.writeUInt16BE(QCLASS_IN, 4);
    r.writeUInt32BE(spec.ttlSeconds ?? 0, 6);
    r.writeUInt16BE(4, 10);
    r.writeUInt32BE(ip, 12);
    return r;
  });
  return Buffer.concat([header, query.questionBytes, ...records]);
}

/** A header-only error response (FORMERR for an undecodable query), keeping the id and opcode. */
export function encodeHeaderError(header: DnsHeader, rcode: number): Buffer {
  const out = Buffer.alloc(HEADER_LENGTH);
  out.writeUInt16BE(header.id, 0);
  out.writeUInt16BE(0x8000 | ((header.opcode & 0xf) << 11) | (header.recursionDesired ? 0x0100 : 0) | (rcode & 0xf), 2);
  return out;
}

/** Encodes a query (used by tests and by nothing on the answer path). */
export function encodeQuery(
  id: number,
  name: string,
  type: number,
  options: { recursionDesired?: boolean } = {},
): Buffer {
  const labels = name === '' ? [] : name.replace(/\.$/, '').split('.');
  const parts = labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')]));
  const header = Buffer.alloc(HEADER_LENGTH);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(options.recursionDesired === false ? 0 : 0x0100, 2);
  header.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(type, 1);
  tail.writeUInt16BE(QCLASS_IN, 3);
  return Buffer.concat([header, ...parts, tail]);
}

/** Decodes the A records of a response (tests, and the e2e's checks): addresses in order. */
export function decodeAddresses(message: Buffer): string[] {
  const header = decodeHeader(message);
  if (!header) return [];
  let pos = HEADER_LENGTH;
  for (let i = 0; i < header.questionCount; i++) {
    const n = readName(message, pos);
    if (!n) return [];
    pos = n.next + 4;
  }
  const out: string[] = [];
  for (let i = 0; i < header.answerCount; i++) {
    const n = readName(message, pos);
    if (!n || n.next + 10 > message.length) return out;
    const type = message.readUInt16BE(n.next);
    const len = message.readUInt16BE(n.next + 8);
    const data = n.next + 10;
    if (data + len > message.length) return out;
    if (type === QTYPE_A && len === 4) out.push([...message.subarray(data, data + 4)].join('.'));
    pos = data + len;
  }
  return out;
}
