/**
 * The packed argument of record.lua and apply.lua: the flat form of their instructions or
 * operations (see `meta.ts`) in one byte string instead of one script argument per item.
 *
 * Why: ioredis builds a command argument by argument, about 0.5 µs of the agent's CPU for each
 * one, and a batch of 512 operations is 3,500 arguments. One packed argument costs it nothing,
 * and Redis splits it (`unpack_items` in the Lua helpers) in about the time it takes to fill ARGV
 * with the same items. Nothing of this leaves the connection to Redis: the outbox and the wire
 * keep their formats.
 *
 * Each item is its length, then its bytes. A length up to 254 is one byte; a longer one is the
 * byte 255 and then four bytes, big-endian.
 */

/** Largest length written in one byte; 255 announces a four-byte length. */
const SHORT_MAX = 254;
const LONG = 255;

/**
 * Appends items to one growing buffer; {@link ScriptArgPacker.finish} returns the packed bytes.
 *
 * @example
 * const p = new ScriptArgPacker();
 * p.text('v'); p.int(0); p.bytes(key); p.text(tag);
 * await client.evalsha(sha, 0, origin, seq, p.finish());
 */
export class ScriptArgPacker {
  #buf: Buffer;
  #len = 0;

  /** @param initialBytes room to start with; the buffer doubles when it runs out. */
  constructor(initialBytes = 16 * 1024) {
    this.#buf = Buffer.allocUnsafe(initialBytes);
  }

  /** One binary item (key, member, value, DUMP payload). */
  bytes(b: Uint8Array): void {
    this.#header(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }

  /**
   * One text item, as UTF-8 (what ioredis sent for a string argument). Every text item is ASCII
   * in practice (tags, decimal numbers, kinds, region names are checked), where it is one byte
   * per character.
   */
  text(s: string): void {
    const n = Buffer.byteLength(s);
    this.#header(n);
    this.#len += this.#buf.write(s, this.#len, n, 'utf8');
  }

  /** One integer as decimal text. */
  int(n: number): void {
    this.text(String(n));
  }

  /** The packed items (a view of the packer's buffer: the packer is done). */
  finish(): Buffer {
    return this.#buf.subarray(0, this.#len);
  }

  /** Writes the length of the next item, making room for it and the item. */
  #header(length: number): void {
    this.#reserve(length + 5);
    if (length <= SHORT_MAX) {
      this.#buf[this.#len++] = length;
    } else {
      this.#buf[this.#len++] = LONG;
      this.#buf.writeUInt32BE(length, this.#len);
      this.#len += 4;
    }
  }

  #reserve(more: number): void {
    if (this.#len + more <= this.#buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(2 * this.#buf.length, this.#len + more));
    this.#buf.copy(grown, 0, 0, this.#len);
    this.#buf = grown;
  }
}

/**
 * Lua for the scripts: splits a packed argument into its items, appended to `into` (ARGV's
 * header items first), which it returns. A truncated argument is an error, never a short item.
 */
export const LUA_UNPACK_ITEMS = String.raw`
local function unpack_items(s, into)
  local byte, sub = string.byte, string.sub
  local pos, len, n = 1, #s, #into
  while pos <= len do
    local l = byte(s, pos)
    if l == 255 then
      local a, b, c, d = byte(s, pos + 1, pos + 4)
      l = ((a * 256 + b) * 256 + c) * 256 + d
      pos = pos + 5
    else
      pos = pos + 1
    end
    if pos + l - 1 > len then error('georep: truncated packed argument') end
    n = n + 1
    into[n] = sub(s, pos, pos + l - 1)
    pos = pos + l
  end
  return into
end
`;
