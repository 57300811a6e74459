import { describe, expect, it } from 'vitest';
import {
  EOF_MARKER_LENGTH,
  RdbPayloadDecoder,
  ReplicationLineReader,
  parsePayloadPreamble,
} from '@georep/redis';

const MARKER = Buffer.from('0123456789abcdefghijABCDEFGHIJ0123456789', 'latin1');

/** Feeds `chunks` through a fresh decoder; returns the payload and whether the end was seen. */
function decode(framing: Parameters<typeof parsePayloadPreamble>[0], chunks: Buffer[]) {
  const f = parsePayloadPreamble(framing);
  if (f === undefined) throw new Error(`bad preamble ${framing}`);
  const d = new RdbPayloadDecoder(f);
  const out: Buffer[] = [];
  let doneAfter = -1;
  chunks.forEach((c, i) => {
    out.push(...d.push(c));
    if (d.done && doneAfter < 0) doneAfter = i;
  });
  return { payload: Buffer.concat(out), done: d.done, doneAfter, decoder: d };
}

describe('replication framing', () => {
  const payload = Buffer.from('REDIS0010' + 'x'.repeat(100) + '\xff12345678', 'latin1');
  const stream = Buffer.concat([payload, MARKER]);

  it('framing - preambles parse to length or EOF-marker framing; anything else is refused', () => {
    expect(parsePayloadPreamble('$1234')).toEqual({ kind: 'length', length: 1234 });
    expect(parsePayloadPreamble(`$EOF:${MARKER.toString('latin1')}`)).toEqual({
      kind: 'eof-marker',
      marker: MARKER,
    });
    expect(EOF_MARKER_LENGTH).toBe(40);
    expect(parsePayloadPreamble('$EOF:short')).toBeUndefined();
    expect(parsePayloadPreamble('$-1')).toBeUndefined();
    expect(parsePayloadPreamble('+OK')).toBeUndefined();
  });

  it('framing - the EOF marker is found when split across two chunks at every position', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const r = decode(`$EOF:${MARKER.toString('latin1')}`, [
        stream.subarray(0, cut),
        stream.subarray(cut),
      ]);
      expect(r.done, `cut at ${cut}`).toBe(true);
      expect(r.payload.equals(payload), `cut at ${cut}`).toBe(true);
    }
  });

  it('framing - the EOF marker is found across three chunks at every pair of cut points', () => {
    const start = payload.length - 5;
    for (let a = start; a <= stream.length; a++) {
      for (let b = a; b <= stream.length; b++) {
        const r = decode(`$EOF:${MARKER.toString('latin1')}`, [
          stream.subarray(0, a),
          stream.subarray(a, b),
          stream.subarray(b),
        ]);
        expect(r.payload.equals(payload) && r.done, `cuts ${a}/${b}`).toBe(true);
      }
    }
  });

  it('framing - byte-at-a-time input ends exactly on the last marker byte', () => {
    const bytes = [...stream].map((b) => Buffer.from([b]));
    const r = decode(`$EOF:${MARKER.toString('latin1')}`, bytes);
    expect(r.payload.equals(payload)).toBe(true);
    expect(r.doneAfter).toBe(stream.length - 1);
  });

  it('framing - partial markers inside the payload are payload, not the end', () => {
    // Every proper prefix and suffix of the marker appears in the body, at chunk edges too.
    const parts: Buffer[] = [Buffer.from('REDIS0010')];
    for (let n = 1; n < EOF_MARKER_LENGTH; n++) {
      parts.push(MARKER.subarray(0, n), Buffer.from('-'), MARKER.subarray(n), Buffer.from('+'));
    }
    const body = Buffer.concat(parts);
    const chunks = [...parts, MARKER];
    const r = decode(`$EOF:${MARKER.toString('latin1')}`, chunks);
    expect(r.done).toBe(true);
    expect(r.doneAfter).toBe(chunks.length - 1);
    expect(r.payload.equals(body)).toBe(true);
  });

  it('framing - without the marker the stream is never complete and nothing past it leaks', () => {
    const r = decode(`$EOF:${MARKER.toString('latin1')}`, [payload, MARKER.subarray(0, 39)]);
    expect(r.done).toBe(false);
    expect(r.payload.length).toBeLessThanOrEqual(payload.length);
  });

  it('framing - $<len> takes exactly len bytes, without a trailing CRLF, and drops the rest', () => {
    for (let cut = 0; cut <= payload.length + 5; cut++) {
      const withTail = Buffer.concat([payload, Buffer.from('*1\r\n$4\r\nPING\r\n')]);
      const r = decode(`$${payload.length}`, [withTail.subarray(0, cut), withTail.subarray(cut)]);
      expect(r.done, `cut at ${cut}`).toBe(true);
      expect(r.payload.equals(payload), `cut at ${cut}`).toBe(true);
      expect(r.decoder.trailingBytes).toBe(withTail.length - payload.length);
    }
    expect(decode('$0', []).done).toBe(true);
  });

  it('framing - the line reader skips keepalive newlines and hands over the payload start', () => {
    const lines = new ReplicationLineReader();
    lines.push(Buffer.from('+FULLRESYNC abc 42\r\n\n\n'));
    expect(lines.nextLine()).toBe('+FULLRESYNC abc 42');
    expect(lines.nextLine()).toBeUndefined();
    lines.push(Buffer.from('\n$EOF:'));
    expect(lines.nextLine()).toBeUndefined();
    lines.push(Buffer.from(`${MARKER.toString('latin1')}\r\nREDIS`));
    expect(lines.nextLine()).toBe(`$EOF:${MARKER.toString('latin1')}`);
    expect(lines.takeRest().toString()).toBe('REDIS');
  });
});
