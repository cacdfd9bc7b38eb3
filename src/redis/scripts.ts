/**
 * The Lua scripts of the Redis store, and their SHA-1 digests for EVALSHA.
 *
 * @module
 */
import { toHex } from '../lib/encoding.js';

// ---------------------------------------------------------------------------------------------
// Lua scripts. Each touches exactly one key (KEYS[1]), so they also run on a cluster.
// A value is a HASH { v: JSON text, n: version }; an index is a ZSET member -> expiry (ms since
// the epoch, server clock) or +inf. Expiry of a value is Redis' own key expiry (PEXPIRE).
// ---------------------------------------------------------------------------------------------

/** The server clock in ms. replicate_commands: Redis < 5 refuses a write after TIME otherwise. */
export const NOW = `if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nows = string.format('%.0f', now)
`;

/** The index key expires with its last member (or never, when a member never expires). */
export const REFRESH_INDEX_EXPIRY = `local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] ~= nil then
  if top[2] == 'inf' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIREAT', KEYS[1], top[2]) end
end
`;

export const SCRIPTS = {
  // ARGV: json, version, ttl ms ('' = none), mode ('set' | 'nx' | 'cas'), expected version
  write: `local k = KEYS[1]
if ARGV[4] == 'nx' then
  if redis.call('EXISTS', k) == 1 then return 0 end
elseif ARGV[4] == 'cas' then
  if redis.call('HGET', k, 'n') ~= ARGV[5] then return 0 end
end
redis.call('HSET', k, 'v', ARGV[1], 'n', ARGV[2])
if ARGV[3] == '' then redis.call('PERSIST', k) else redis.call('PEXPIRE', k, ARGV[3]) end
return 1`,
  // ARGV: owner JSON
  deleteIfOwner: `if redis.call('HGET', KEYS[1], 'v') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`,
  consume: `local v = redis.call('HGET', KEYS[1], 'v')
if v then redis.call('DEL', KEYS[1]) end
return v`,
  // ARGV: member, ttl ms ('' = none)
  indexAdd: `${NOW}redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', nows)
local score = '+inf'
if ARGV[2] ~= '' then score = string.format('%.0f', now + tonumber(ARGV[2])) end
redis.call('ZADD', KEYS[1], score, ARGV[1])
${REFRESH_INDEX_EXPIRY}return 1`,
  // ARGV: limit ('' = all). With a limit: the last ones, latest first (reversed by the caller).
  indexMembers: `${NOW}if ARGV[1] == '' then return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. nows, '+inf') end
return redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '(' .. nows, 'LIMIT', '0', ARGV[1])`,
  // ARGV: member. 1 when it was there and live.
  indexRemove: `${NOW}local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
${REFRESH_INDEX_EXPIRY}if s == 'inf' or tonumber(s) > now then return 1 end
return 0`,
} as const;

export type ScriptName = keyof typeof SCRIPTS;

let shas: Promise<Record<ScriptName, string>> | undefined;
let shasReady: Record<ScriptName, string> | undefined;

/** SHA-1 of every script (WebCrypto), for EVALSHA; computed once per process. */
export function scriptShas(): Promise<Record<ScriptName, string>> {
  shas ??= (async () => {
    const out = {} as Record<ScriptName, string>;
    const enc = new TextEncoder();
    for (const name of Object.keys(SCRIPTS) as ScriptName[]) {
      out[name] = toHex(new Uint8Array(await crypto.subtle.digest('SHA-1', enc.encode(SCRIPTS[name]))));
    }
    shasReady = out;
    return out;
  })();
  return shas;
}

/** The digests once loaded (synchronous, for the hot path), else `undefined`. */
export function loadedShas(): Record<ScriptName, string> | undefined {
  return shasReady;
}
