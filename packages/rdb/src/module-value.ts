/**
 * Module-typed data (type 7 values and MODULE_AUX blocks), kept opaque.
 *
 * Without the module a parser cannot interpret the data, but it can find its end: after the
 * 64-bit module id the module wrote a sequence of (sub-opcode, value) pairs ending with EOF (0).
 * Walking those pairs is what Redis's `rdbLoadCheckModuleValue` does to skip unknown modules.
 */
import { ModuleOpcode } from './constants.js';
import type { RdbCursor } from './cursor.js';

/** The 64 characters a module type name is spelled with, 6 bits each. */
const MODULE_NAME_CHARSET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * Splits a module type id into its 9-character name and 10-bit encoding version. The id is
 * the name's characters, 6 bits each with the first character most significant, shifted left by
 * 10 with the encoding version in the low bits.
 */
export function decodeModuleId(moduleId: bigint): { name: string; encodingVersion: number } {
  let name = '';
  for (let j = 0; j < 9; j++) {
    const shift = BigInt(10 + 6 * (8 - j));
    name += MODULE_NAME_CHARSET[Number((moduleId >> shift) & 63n)]!;
  }
  return { name, encodingVersion: Number(moduleId & 1023n) };
}

/**
 * Builds the 64-bit id of a module type from its 9-character name and encoding version (the
 * inverse of {@link decodeModuleId}).
 */
export function encodeModuleId(name: string, encodingVersion: number): bigint {
  let id = 0n;
  for (let j = 0; j < 9; j++) {
    const idx = MODULE_NAME_CHARSET.indexOf(name[j] ?? '');
    if (idx < 0) throw new RangeError(`invalid module type name "${name}"`);
    id = (id << 6n) | BigInt(idx);
  }
  return (id << 10n) | BigInt(encodingVersion & 1023);
}

/**
 * Walks module sub-opcodes from the cursor position through the EOF opcode and returns the bytes
 * walked over (copied).
 */
export function readModuleBody(cur: RdbCursor): Buffer {
  const start = cur.pos;
  for (;;) {
    const at = cur.offset;
    const op = cur.len();
    if (op === ModuleOpcode.EOF) break;
    switch (op) {
      case ModuleOpcode.SINT:
      case ModuleOpcode.UINT:
        cur.lenBig();
        break;
      case ModuleOpcode.FLOAT:
        cur.skip(4);
        break;
      case ModuleOpcode.DOUBLE:
        cur.skip(8);
        break;
      case ModuleOpcode.STRING:
        cur.blob();
        break;
      default:
        throw cur.corrupt(`unknown module sub-opcode ${op}`, at);
    }
  }
  return Buffer.from(cur.buf.subarray(start, cur.pos));
}
