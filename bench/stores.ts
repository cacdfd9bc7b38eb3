// Cost of encryption at rest: AES-256-GCM encrypt + decrypt of a typical account record, and the
// secure store over memory Keyv, each against a baseline measured in the same run.
// Run: npx tsx bench/stores.ts   (about 6 seconds)
import Keyv from 'keyv';
import { createEncryptor, createSecureStore, generateEncryptionKey } from '../src/stores/index.js';
import { createKeyValueStore, storeKey } from '../src/stores/store.js';
import { fmt, measure } from './timing.js';
import { record as recordFigure } from './report.js';

const record = {
  connection: 'github',
  userId: 'alice@example.com',
  kind: 'oauth2',
  status: 'active',
  accessToken: 'gho_' + 'a'.repeat(36),
  refreshToken: 'ghr_' + 'b'.repeat(76),
  tokenType: 'bearer',
  scopes: ['repo', 'read:org', 'workflow'],
  expiresAt: Date.now() + 3600_000,
  generation: 7,
  createdAt: Date.now(),
  updatedAt: Date.now(),
};


async function main(): Promise<void> {
  const enc = await createEncryptor(generateEncryptionKey());
  const aad = storeKey('account', 'github', 'user', 'alice@example.com');
  const sealed = await enc.encrypt(JSON.stringify(record), aad);
  console.log(`record: ${JSON.stringify(record).length} bytes of JSON, ${sealed.length} bytes sealed`);

  const json = await measure(() => JSON.parse(JSON.stringify(record)));
  const crypt = await measure(async () => JSON.parse(await enc.decrypt(await enc.encrypt(JSON.stringify(record), aad), aad)));
  const decryptOnly = await measure(async () => JSON.parse(await enc.decrypt(sealed, aad)));

  const plain = createKeyValueStore(new Keyv());
  const secure = createSecureStore(createKeyValueStore(new Keyv()), enc);
  const map = new Map<string, unknown>();
  const mapRt = await measure(() => {
    map.set(aad, record);
    return map.get(aad);
  });
  const plainRt = await measure(async () => {
    await plain.set(aad, record);
    return plain.get(aad);
  });
  const secureRt = await measure(async () => {
    await secure.set(aad, record);
    return secure.get(aad);
  });
  await secure.set(aad, record);
  await plain.set(aad, record);
  const plainGet = await measure(() => plain.get(aad));
  const secureGet = await measure(() => secure.get(aad));

  console.log('');
  console.log('| operation | per call | ratio |');
  console.log('| --- | --- | --- |');
  console.log(`| JSON.stringify + JSON.parse (baseline) | ${fmt(json)} | 1.0x |`);
  console.log(`| stringify + encrypt + decrypt + parse | ${fmt(crypt)} | ${(crypt / json).toFixed(1)}x |`);
  console.log(`| decrypt + parse | ${fmt(decryptOnly)} | ${(decryptOnly / json).toFixed(1)}x |`);
  console.log(`| Map.set + Map.get (baseline) | ${fmt(mapRt)} | 1.0x |`);
  console.log(`| memory Keyv store set + get | ${fmt(plainRt)} | ${(plainRt / mapRt).toFixed(1)}x |`);
  console.log(`| secure store set + get (memory Keyv) | ${fmt(secureRt)} | ${(secureRt / mapRt).toFixed(1)}x (${(secureRt / plainRt).toFixed(2)}x plain store) |`);
  console.log(`| memory Keyv store get | ${fmt(plainGet)} | — |`);
  console.log(`| secure store get | ${fmt(secureGet)} | ${(secureGet / plainGet).toFixed(2)}x plain store get |`);
  recordFigure({ id: 'secure-get/plain-get', label: 'encrypted store get / plain memory store get', value: secureGet / plainGet });
}

void main();
