/**
 * DNS wire codec: a query round-trips through encodeQuery/decodeQuery with case kept; answers carry
 * the id, RD, the question as sent and A records; truncated, looping, over-long and response
 * messages decode to undefined instead of throwing; random bytes never throw.
 */
import t from 'tap';
import {
  decodeAddresses,
  decodeHeader,
  decodeQuery,
  encodeAnswer,
  encodeHeaderError,
  encodeQuery,
  readName,
  QTYPE_A,
  QTYPE_AAAA,
  RCODE,
} from '../../../src/dns/dns-message.js';

t.test('a query round-trips and an answer carries id, RD, question and A records', async (t) => {
  const q = decodeQuery(encodeQuery(0x1234, 'Web.Ovl', QTYPE_A));
  t.ok(q);
  t.equal(q!.header.id, 0x1234);
  t.equal(q!.name, 'Web.Ovl', 'case as sent');
  t.equal(q!.type, QTYPE_A);
  t.ok(q!.header.recursionDesired);
  const reply = encodeAnswer(q!, {
    rcode: RCODE.noError,
    authoritative: true,
    recursionAvailable: false,
    addresses: ['198.18.1.2', '198.18.1.3'],
    ttlSeconds: 5,
  });
  const h = decodeHeader(reply)!;
  t.match(h, { id: 0x1234, response: true, rcode: 0, questionCount: 1, answerCount: 2, recursionDesired: true });
  t.equal(reply.readUInt16BE(2) & 0x0400, 0x0400, 'AA set');
  t.same(decodeAddresses(reply), ['198.18.1.2', '198.18.1.3']);
  t.equal(decodeQuery(reply), undefined, 'a response is not a query');
  t.equal(reply.readUInt32BE(reply.length - 10), 5, 'TTL of the last record');
  const nx = encodeAnswer(decodeQuery(encodeQuery(7, 'x', QTYPE_AAAA))!, {
    rcode: RCODE.nxDomain,
    authoritative: true,
    recursionAvailable: true,
  });
  t.match(decodeHeader(nx), { id: 7, rcode: RCODE.nxDomain, answerCount: 0 });
});

t.test('malformed messages decode to undefined, never throw', async (t) => {
  t.equal(decodeQuery(Buffer.alloc(0)), undefined, 'empty');
  t.equal(decodeQuery(Buffer.alloc(11)), undefined, 'shorter than a header');
  const good = encodeQuery(1, 'a.b', QTYPE_A);
  t.equal(decodeQuery(good.subarray(0, good.length - 1)), undefined, 'question cut short');
  const noQuestion = Buffer.from(good.subarray(0, 12));
  noQuestion.writeUInt16BE(0, 4);
  t.equal(decodeQuery(noQuestion), undefined, 'no question');
  // A name that points at itself.
  const loop = Buffer.concat([good.subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
  t.equal(decodeQuery(loop), undefined, 'compression loop');
  t.equal(readName(Buffer.from([0x80, 0]), 0), undefined, 'reserved label type');
  const long = encodeQuery(1, Array.from({ length: 5 }, () => 'x'.repeat(63)).join('.'), QTYPE_A);
  t.equal(decodeQuery(long), undefined, 'name over 255 bytes');
  t.match(decodeHeader(encodeHeaderError(decodeHeader(good)!, RCODE.formErr)), {
    id: 1,
    response: true,
    rcode: RCODE.formErr,
    questionCount: 0,
  });
  for (let i = 0; i < 2000; i++) {
    const junk = Buffer.from(
      Array.from({ length: Math.floor(Math.random() * 64) }, () => Math.floor(Math.random() * 256)),
    );
    decodeQuery(junk);
    decodeAddresses(junk);
  }
  t.pass('2000 random messages decoded without throwing');
});
