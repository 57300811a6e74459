// Output identity of two builds of @georep/rdb: parses the same inputs with this package and with
// another build (a copy of an earlier `packages/rdb/dist`, placed where `@georep/core` resolves
// from it, as for bench/rdb-parse.mjs) and compares everything they produce, record by record:
// field order, Buffer contents and prototypes, numbers (-0 and NaN included), bigints, and for
// failing inputs the records yielded before the error and the error itself (class, code, offset,
// message). Prints what differs and a count of the cases compared; exits 1 on any difference.
//   node bench/rdb-parse-compare.mjs --baseline path/to/other/dist/index.js [--fixtures dir]
// Inputs: the RDB fixtures (every *.rdb under --fixtures, when given), files written by RdbWriter
// for every version with values shaped for each encoder branch, files with hand-built compact
// encodings (listpack hashes, sets, zsets and hashes with field expiry, quicklist PLAIN nodes),
// truncations and byte mutations of all of these, and DUMP payloads of every key. Each input is
// parsed in several chunk sizes, record by record and in batches, decoded and raw, with the
// checksum verified or not, and with a record size limit that the larger keys exceed.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as current from '@georep/rdb';

const args = process.argv.slice(2);
const option = (name) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : undefined;
};
const baselinePath = option('--baseline');
const fixturesDir = option('--fixtures');
if (baselinePath === undefined) {
  console.error(
    'usage: node bench/rdb-parse-compare.mjs --baseline <dist/index.js> [--fixtures <dir>]',
  );
  process.exit(2);
}
const baseline = await import(pathToFileURL(path.resolve(baselinePath)).href);
const { RdbWriter, lzfCompress, Crc64 } = current;

// ---- canonical form of anything the parser returns ---------------------------------------------

/** A string that two values share exactly when they are the same output. */
function canon(v) {
  if (v === undefined) return 'u';
  if (v === null) return 'null';
  switch (typeof v) {
    case 'number':
      return Object.is(v, -0) ? 'n-0' : `n${v}`;
    case 'bigint':
      return `b${v}`;
    case 'string':
      return JSON.stringify(v);
    case 'boolean':
      return String(v);
  }
  if (v instanceof Uint8Array) {
    const proto = Object.getPrototypeOf(v) === Buffer.prototype ? 'B' : 'U8?';
    return `${proto}<${Buffer.from(v.buffer, v.byteOffset, v.length).toString('hex')}>`;
  }
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  const proto = Object.getPrototypeOf(v) === Object.prototype ? '' : 'proto?';
  return `${proto}{${Object.keys(v)
    .map((k) => `${k}:${canon(v[k])}`)
    .join(',')}}`;
}

function canonError(err) {
  if (err === undefined) return 'no error';
  return canon({
    name: err.constructor?.name,
    code: err.code,
    offset: err.offset,
    message: err.message,
    details: err.details,
  });
}

// ---- running both builds ---------------------------------------------------------------------------

function* chunked(buf, size) {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

/** Every record (canonical form) and the error, of one parse. */
async function run(lib, input, chunk, mode, options) {
  const out = [];
  let error;
  try {
    if (mode === 'batches') {
      for await (const batch of lib.parseRdbBatches(chunked(input, chunk), options)) {
        for (const r of batch) out.push(canon(r));
      }
    } else {
      for await (const r of lib.parseRdb(chunked(input, chunk), options)) out.push(canon(r));
    }
  } catch (err) {
    error = err;
  }
  return { records: out, error: canonError(error) };
}

let cases = 0;
let failingCases = 0;
let differences = 0;

function report(what, a, b) {
  differences++;
  if (differences > 20) return;
  console.log(`DIFFERENT: ${what}`);
  console.log(`  new:      ${a.slice(0, 600)}`);
  console.log(`  baseline: ${b.slice(0, 600)}`);
}

async function compareParse(name, input, chunk, mode, options) {
  cases++;
  const [a, b] = [
    await run(current, input, chunk, mode, options),
    await run(baseline, input, chunk, mode, options),
  ];
  if (b.error !== 'no error') failingCases++;
  const what = `${name} chunk=${chunk} ${mode} ${JSON.stringify(options)}`;
  if (a.error !== b.error) report(`${what}: error`, a.error, b.error);
  const n = Math.max(a.records.length, b.records.length);
  for (let i = 0; i < n; i++) {
    if (a.records[i] !== b.records[i]) {
      report(`${what}: record ${i}`, a.records[i] ?? 'none', b.records[i] ?? 'none');
      break;
    }
  }
}

function compareDump(name, payload, options) {
  cases++;
  const result = (lib) => {
    try {
      return canon(lib.parseDumpPayload(payload, options));
    } catch (err) {
      failingCases++;
      return canonError(err);
    }
  };
  const a = result(current);
  const b = result(baseline);
  if (a !== b) report(`${name}: DUMP payload`, a, b);
}

// ---- inputs -------------------------------------------------------------------------------------

const b = (s) => Buffer.from(s);

/** Deterministic pseudo-random bytes. */
function bytes(len, seed) {
  const out = Buffer.alloc(len);
  let x = seed >>> 0;
  for (let i = 0; i < len; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Integers at every width boundary of RDB int strings, intsets, ziplists and listpacks. */
const INTEGERS = [
  '0', '1', '-1', '12', '13', '127', '128', '-128', '-129', '4095', '4096', '-4096', '-4097',
  '32767', '32768', '-32768', '-32769', '8388607', '8388608', '-8388608', '-8388609',
  '2147483647', '2147483648', '-2147483648', '-2147483649', '4294967295', '4294967296',
  '9007199254740991', '9007199254740993', '-9223372036854775808', '9223372036854775807', '007',
  '-0', '+1',
]; // prettier-ignore

/** Strings at the length boundaries of listpack and ziplist entries and back-lengths. */
function boundaryStrings(seed) {
  return [0, 1, 11, 12, 20, 21, 63, 64, 125, 126, 127, 128, 4095, 4096, 16380, 16384].map((n) =>
    n % 2 === 0 ? b('x'.repeat(n)) : bytes(n, seed + n),
  );
}

function valuesFor(version) {
  const ints = INTEGERS.map(b);
  const strs = boundaryStrings(version);
  const values = {
    'str:empty': { type: 'string', value: b('') },
    'str:short': { type: 'string', value: b('hello') },
    'str:compressible': { type: 'string', value: b('abc'.repeat(700)) },
    'str:binary': { type: 'string', value: bytes(3000, 7) },
    'str:utf8': { type: 'string', value: b('héllo wörld ✓') },
    'list:ints': { type: 'list', value: ints },
    'list:strings': { type: 'list', value: strs },
    'list:mixed-big': {
      type: 'list',
      value: Array.from({ length: 2500 }, (_, i) =>
        i % 3 === 0 ? b(String(i * 7919 - 9000)) : b(`item-${i}-${'y'.repeat(i % 50)}`),
      ),
    },
    'set:intset': { type: 'set', value: ints.slice(0, 31) },
    'set:strings': { type: 'set', value: [b('apple'), b('banana'), b(''), b('1'), ...strs] },
    'set:big': { type: 'set', value: Array.from({ length: 1500 }, (_, i) => b(`m${i}`)) },
    'zset:scores': {
      type: 'zset',
      value: [1.5, -2, 1e300, Infinity, -Infinity, 0.1, -0, 5e-324, 2 ** 53].map((score, i) => ({
        member: b(`z${i}`),
        score,
      })),
    },
    'zset:big': {
      type: 'zset',
      value: Array.from({ length: 400 }, (_, i) => ({ member: b(`m${i}`), score: i / 7 })),
    },
    'hash:small': {
      type: 'hash',
      value: ints.map((v, i) => ({ field: b(`f${i}`), value: v })),
    },
    'hash:strings': {
      type: 'hash',
      value: strs.map((v, i) => ({ field: v, value: strs[15 - i] })),
    },
    'hash:big': {
      type: 'hash',
      value: Array.from({ length: 700 }, (_, i) => ({ field: b(`field:${i}`), value: b(`v${i}`) })),
    },
    'hash:lzf': {
      type: 'hash',
      value: Array.from({ length: 10 }, (_, j) => ({
        field: b(`f${j}`),
        value: b(`${'x'.repeat(40)}${j}`),
      })),
    },
  };
  if (version >= 12 || version === 80) {
    values['hash:field-ttl'] = {
      type: 'hash',
      value: [
        { field: b('a'), value: b('1'), expireAtMs: 1900000000000 },
        { field: b('b'), value: b('two') },
        { field: b('c'), value: b('x'.repeat(30)), expireAtMs: 1900000000123 },
      ],
    };
  }
  if (version >= 9) {
    const entries = Array.from({ length: 230 }, (_, i) => ({
      id: { ms: 1700000000000n + BigInt(i >> 2), seq: BigInt(i & 3) },
      fields:
        i % 5 === 0
          ? [[b('other'), b(`v${i}`)]]
          : [
              [b('name'), b(`n${i}`)],
              [b('count'), b(String(i * 1000 - 70000))],
            ],
      deleted: false,
    }));
    const id = (i) => entries[i].id;
    values['stream'] = {
      type: 'stream',
      value: {
        entries,
        length: entries.length,
        lastId: id(229),
        firstId: id(0),
        maxDeletedId: { ms: 0n, seq: 0n },
        entriesAdded: 230n,
        groups: [
          {
            name: b('g1'),
            lastId: id(10),
            entriesRead: 11n,
            pending: [{ id: id(3), deliveryTime: 1700000000100, deliveryCount: 2 }],
            consumers: [
              {
                name: b('alice'),
                seenTime: 1700000000300,
                activeTime: 1700000000250,
                pending: [id(3)],
              },
            ],
          },
        ],
      },
    };
  }
  if (version >= 8) {
    values['module'] = {
      type: 'module',
      value: {
        moduleId: 0x1234567890abcn,
        moduleName: '',
        encodingVersion: 0,
        body: b('\x02\x05\x00'),
      },
    };
  }
  return values;
}

/** RDB string encoding (verbatim, or LZF when it saves space), for hand-built values. */
function rdbString(s, compress) {
  const parts = [];
  if (compress && s.length > 20) {
    const c = lzfCompress(s);
    if (c.length + 4 < s.length)
      return Buffer.concat([Buffer.from([0xc3]), len(c.length), len(s.length), c]);
  }
  parts.push(len(s.length), s);
  return Buffer.concat(parts);
}

function len(n) {
  if (n < 64) return Buffer.from([n]);
  if (n < 16384) return Buffer.from([0x40 | (n >> 8), n & 0xff]);
  const out = Buffer.alloc(5);
  out[0] = 0x80;
  out.writeUInt32BE(n, 1);
  return out;
}

function backlen(n) {
  const size = n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : n < 268435456 ? 4 : 5;
  const out = [];
  for (let i = size - 1; i >= 0; i--) {
    const chunk = Math.floor(n / 2 ** (7 * i)) & 0x7f;
    out.push(i === size - 1 ? chunk : chunk | 0x80);
  }
  return Buffer.from(out);
}

/** A listpack entry: integers in every width (when `asInt`), strings in every length form. */
function lpEntry(e) {
  let enc;
  if (typeof e === 'bigint') {
    const v = e;
    if (v >= 0n && v <= 127n) enc = Buffer.from([Number(v)]);
    else if (v >= -4096n && v <= 4095n) {
      const u = Number(v < 0n ? v + 8192n : v);
      enc = Buffer.from([0xc0 | (u >> 8), u & 0xff]);
    } else if (v >= -32768n && v <= 32767n) {
      enc = Buffer.alloc(3);
      enc[0] = 0xf1;
      enc.writeInt16LE(Number(v), 1);
    } else if (v >= -8388608n && v <= 8388607n) {
      enc = Buffer.alloc(4);
      enc[0] = 0xf2;
      enc.writeIntLE(Number(v), 1, 3);
    } else if (v >= -2147483648n && v <= 2147483647n) {
      enc = Buffer.alloc(5);
      enc[0] = 0xf3;
      enc.writeInt32LE(Number(v), 1);
    } else {
      enc = Buffer.alloc(9);
      enc[0] = 0xf4;
      enc.writeBigInt64LE(v, 1);
    }
  } else if (e.length < 64) enc = Buffer.concat([Buffer.from([0x80 | e.length]), e]);
  else if (e.length < 4096)
    enc = Buffer.concat([Buffer.from([0xe0 | (e.length >> 8), e.length & 0xff]), e]);
  else {
    const h = Buffer.alloc(5);
    h[0] = 0xf0;
    h.writeUInt32LE(e.length, 1);
    enc = Buffer.concat([h, e]);
  }
  return Buffer.concat([enc, backlen(enc.length)]);
}

function listpack(elements) {
  const body = Buffer.concat(elements.map(lpEntry));
  const head = Buffer.alloc(6);
  head.writeUInt32LE(6 + body.length + 1, 0);
  head.writeUInt16LE(Math.min(elements.length, 0xffff), 4);
  return Buffer.concat([head, body, Buffer.from([0xff])]);
}

/** Elements for hand-built listpacks: integers of every width and strings of every length form. */
function lpElements(seed) {
  const ints = [0n, 5n, 127n, 128n, -1n, 4095n, -4096n, 4096n, 32767n, -32768n, 32768n, 8388607n,
    -8388608n, 8388608n, 2147483647n, -2147483648n, 2147483648n, 9007199254740993n,
    -9223372036854775808n, 9223372036854775807n]; // prettier-ignore
  return [...ints, ...boundaryStrings(seed), b('f'), b('field'), b('123x')];
}

/** Raw values (type byte + body) of compact encodings RdbWriter does not produce. */
function handBuiltRaws(version, compress) {
  const els = lpElements(version);
  const raws = {};
  const str = (s) => rdbString(s, compress);
  const withType = (t, ...parts) => Buffer.concat([Buffer.from([t]), ...parts]);
  if (version >= 10) {
    const pairs = els.slice(0, els.length - (els.length % 2));
    raws['lp:hash'] = withType(16, str(listpack(pairs)));
    raws['lp:hash-lzf'] = withType(
      16,
      str(listpack(Array.from({ length: 20 }, (_, i) => (i % 2 ? b('v'.repeat(45)) : b(`f${i}`))))),
    );
    const zs = [];
    for (let i = 0; i < 12; i++)
      zs.push(b(`m${i}`), i % 3 === 0 ? BigInt(i * 1000 - 3000) : b(String(i / 3)));
    zs.push(b('inf'), b('inf'), b('ninf'), b('-inf'));
    raws['lp:zset'] = withType(17, str(listpack(zs)));
    const nodes = [listpack(els), listpack(els.slice(3, 9)), listpack([b('z'.repeat(70))])];
    raws['ql2:packed+plain'] = withType(
      18,
      len(4),
      ...nodes.slice(0, 2).flatMap((n) => [len(2), str(n)]),
      len(1),
      str(bytes(9000, version)),
      len(2),
      str(nodes[2]),
    );
  }
  if (version >= 11) raws['lp:set'] = withType(20, str(listpack(els)));
  if (version === 12) {
    const triples = [];
    for (let i = 0; i < 8; i++)
      triples.push(
        b(`f${i}`),
        i % 2 ? BigInt(i) : b(`v${i}`),
        i % 3 ? 0n : 1900000000000n + BigInt(i),
      );
    const min = Buffer.alloc(8);
    min.writeBigInt64LE(1900000000000n);
    raws['lp:hash-ex'] = withType(25, min, str(listpack(triples)));
  }
  return raws;
}

function generatedFile(version, compress) {
  const w = new RdbWriter({ version, compress });
  const parts = [w.header()];
  if (version >= 7) parts.push(w.aux('redis-ver', '7.2.0'), w.aux('ctime', '1700000000'));
  if (version >= 10)
    parts.push(w.function('#!lua name=lib\nredis.register_function("f", function() return 1 end)'));
  parts.push(w.selectDb(0));
  let i = 0;
  for (const [key, value] of Object.entries(valuesFor(version))) {
    const opts = i % 3 === 0 ? {} : { expireAtMs: 2e12 + i, idleSeconds: i, lfuFreq: i };
    parts.push(w.key(`${key}:${version}`, value, i % 4 === 1 ? {} : opts));
    i++;
  }
  parts.push(w.selectDb(3));
  for (const [key, raw] of Object.entries(handBuiltRaws(version, compress))) {
    parts.push(w.rawKey(key, raw, { expireAtMs: 2e12 + i++ }));
  }
  parts.push(w.end());
  return Buffer.concat(parts);
}

/** A file of many small keys like the one bench/rdb-parse.mjs parses. */
function benchLikeFile() {
  const w = new RdbWriter({ version: 10 });
  const parts = [w.header(), w.selectDb(0)];
  const value = b(`${'x'.repeat(40)}0.5h3k2`);
  for (let i = 0; i < 1000; i++) {
    switch (i % 4) {
      case 0:
        parts.push(w.key(`user:${i}:name`, { type: 'string', value }));
        break;
      case 1:
        parts.push(w.key(`counter:${i}`, { type: 'string', value: b(String(i * 1013 - 100000)) }));
        break;
      case 2:
        parts.push(
          w.key(`h:${i}`, {
            type: 'hash',
            value: Array.from({ length: 10 }, (_, j) => ({ field: b(`f${j}`), value })),
          }),
        );
        break;
      default:
        parts.push(
          w.key(`l:${i}`, { type: 'list', value: Array.from({ length: 20 }, () => value) }),
        );
    }
  }
  parts.push(w.end());
  return Buffer.concat(parts);
}

const inputs = [];
if (fixturesDir !== undefined) {
  const walk = (dir) => {
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.rdb'))
        inputs.push([`fixture ${path.relative(fixturesDir, p)}`, readFileSync(p)]);
    }
  };
  walk(fixturesDir);
}
for (const version of [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 80]) {
  for (const compress of [true, false]) {
    inputs.push([
      `generated v${version}${compress ? '' : ' uncompressed'}`,
      generatedFile(version, compress),
    ]);
  }
}
inputs.push(['bench-like', benchLikeFile()]);

// ---- the comparisons --------------------------------------------------------------------------------

let seed = 7;
const rand = (n) => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return (seed >>> 8) % n;
};

const MODES = [
  ['records', {}],
  ['batches', {}],
  ['batches', { decodeValues: false }],
  ['records', { verifyChecksum: false }],
  ['batches', { maxRecordBytes: 2000 }],
  ['batches', { strictVersion: false }],
];

for (const [name, input] of inputs) {
  for (const chunk of [1, 7, 333, 4096, 1 << 30]) {
    if (chunk === 1 && input.length > 20000) continue;
    for (const [mode, options] of MODES) await compareParse(name, input, chunk, mode, options);
  }
  // DUMP payloads of every key, as RESTORE would send them, and a damaged copy of each.
  const keys = [];
  try {
    for await (const r of current.parseRdb([input], { decodeValues: false })) {
      if (r.kind === 'key') keys.push(r.raw);
    }
  } catch {
    // the fixtures include deliberately broken files; their keys up to the break are enough
  }
  for (const raw of keys) {
    const payload = current.dumpPayloadFromRaw(raw, 10);
    compareDump(name, payload, {});
    const damaged = Buffer.from(payload);
    damaged[1 + rand(Math.max(1, damaged.length - 11))] ^= 1 << rand(8);
    compareDump(`${name} damaged`, damaged, { skipChecksum: true });
  }
  // Truncations (every cut point for small inputs, a sample otherwise) and byte mutations.
  const cuts =
    input.length <= 3000
      ? Array.from({ length: input.length }, (_, i) => i)
      : Array.from({ length: 300 }, () => rand(input.length));
  for (const cut of cuts) {
    await compareParse(`${name} cut at ${cut}`, input.subarray(0, cut), 4096, 'batches', {});
  }
  const mutations = input.length <= 20000 ? 300 : 100;
  for (let m = 0; m < mutations; m++) {
    const damaged = Buffer.from(input);
    const at = rand(damaged.length);
    damaged[at] = m % 3 === 0 ? rand(256) : damaged[at] ^ (1 << rand(8));
    const chunk = [64, 4096, 1 << 30][m % 3];
    await compareParse(`${name} byte ${at} changed`, damaged, chunk, 'batches', {});
    await compareParse(`${name} byte ${at} changed`, damaged, chunk, 'records', {
      verifyChecksum: false,
    });
  }
}

console.log(
  `${inputs.length} inputs, ${cases} cases compared (${failingCases} of them failing with an error), ` +
    `${differences} differences`,
);
process.exit(differences === 0 ? 0 : 1);
