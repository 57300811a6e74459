/**
 * Branded identifiers. A `RegionId` is a string that passed {@link parseRegionId}; the brand keeps
 * a node id from being passed where a region is expected.
 */
import { ConfigError } from './errors.js';

declare const brand: unique symbol;
/** A nominal type: `T` tagged with `B` so that two kinds of string do not mix. */
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** A region name: lower-case letters, digits and `-`, 1–32 characters (`eu-west`). */
export type RegionId = Brand<string, 'RegionId'>;
/** A group name: lower-case letters, digits and `-`, 1–32 characters (`orders`). */
export type GroupName = Brand<string, 'GroupName'>;
/** A Redis node id: stable, shown by `status`; letters, digits, `-`, `_`, `.`, `:`. */
export type NodeId = Brand<string, 'NodeId'>;

const NAME = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;
const NODE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

/** True when `name` is valid as a region or group name (it is also a NATS subject token). */
export function isValidName(name: string): boolean {
  return NAME.test(name);
}

function parseName<T>(kind: string, value: string): T {
  if (!isValidName(value)) {
    throw new ConfigError(`config.invalid-${kind}`, `invalid ${kind} name "${value}"`, {
      hint: `use 1-32 lower-case letters, digits or '-', starting and ending with a letter or digit (e.g. "eu-west")`,
    });
  }
  return value as T;
}

/** Validates a region name; throws `config.invalid-region`. */
export function parseRegionId(value: string): RegionId {
  return parseName<RegionId>('region', value);
}

/** Validates a group name; throws `config.invalid-group`. */
export function parseGroupName(value: string): GroupName {
  return parseName<GroupName>('group', value);
}

/** Validates a node id; throws `config.invalid-node`. */
export function parseNodeId(value: string): NodeId {
  if (!NODE.test(value)) {
    throw new ConfigError('config.invalid-node', `invalid node id "${value}"`, {
      hint: "use 1-64 letters, digits or '-', '_', '.', ':' (e.g. \"eu-west-1\")",
    });
  }
  return value as NodeId;
}
