/**
 * The agent-iam test clock for one test: installed now, restored when the test ends (pass or fail).
 * Only what reads `nowMs()` moves with it (agent-iam's expiries, TTLs, cool-downs); real timers,
 * sockets, Redis, PostgreSQL and oidc-provider keep real time.
 */
import { onTestFinished } from 'vitest';
import { installTestClock, type TestClock } from '../../src/testing/index.js';

export type { TestClock };

/** Install the test clock (starting at `start`, default now) until the current test ends. */
export function testClock(start?: number): TestClock {
  const clock = installTestClock(start);
  onTestFinished(() => clock.restore());
  return clock;
}
