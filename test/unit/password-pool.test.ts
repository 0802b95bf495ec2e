// Password checks run on worker threads (auth/password-pool.ts), not on the event loop: issue finding 4.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { LoginLimiter } from '../../src/auth/login-limiter.js';
import { PasswordPool, type PasswordChecker } from '../../src/auth/password-pool.js';
import { UserStore } from '../../src/auth/users.js';
import { isLongshoreError } from '../../src/errors.js';
import { toOciError } from '../../src/http/oci-errors.js';

describe('password pool', () => {
  const hash = bcrypt.hashSync('pw-1', 4);

  it('checks passwords on threads it starts at the first check, and terminates them on close', async () => {
    const pool = new PasswordPool({ threads: 2, maxWaiting: 8 });
    assert.equal(pool.threads, 0, 'no thread before the first login');
    try {
      assert.equal(await pool.check('pw-1', hash), true);
      assert.equal(await pool.check('pw-2', hash), false);
      assert.equal(await pool.check('pw-1', 'not a bcrypt hash'), false);
      const parallel = await Promise.all([1, 2, 3, 4].map((n) => pool.check(n === 3 ? 'pw-1' : `pw-x${n}`, hash)));
      assert.deepEqual(parallel, [false, false, true, false]);
      assert.ok(pool.threads >= 1 && pool.threads <= 2, `threads: ${pool.threads}`);
      assert.equal(pool.checks, 7);
    } finally {
      await pool.close();
    }
    assert.equal(pool.threads, 0, 'close terminates every thread');
    await assert.rejects(pool.check('pw-1', hash), (err) => isLongshoreError(err, 'LS_INTERNAL'));
  });

  it('refuses a check beyond its queue with 429 and Retry-After instead of queueing it', async () => {
    const pool = new PasswordPool({ threads: 1, maxWaiting: 2 });
    try {
      const accepted = [pool.check('a', hash), pool.check('b', hash), pool.check('pw-1', hash)];
      const refused = await pool.check('c', hash).then(() => undefined, (err: unknown) => err);
      assert.ok(isLongshoreError(refused, 'LS_LOGIN_QUEUE_FULL'), String(refused));
      const wire = toOciError(refused);
      assert.equal(wire.status, 429);
      assert.equal(wire.body.errors[0]?.code, 'TOOMANYREQUESTS');
      assert.match(wire.headers['retry-after'] ?? '', /^\d+$/);
      assert.deepEqual(await Promise.all(accepted), [false, false, true]);
      assert.equal(await pool.check('pw-1', hash), true, 'the queue frees as checks finish');
    } finally {
      await pool.close();
    }
  });

  it('refuses checks still waiting when closed', async () => {
    const pool = new PasswordPool({ threads: 1, maxWaiting: 4 });
    const pending = [pool.check('a', hash), pool.check('b', hash), pool.check('c', hash)].map((p) => p.then(() => 'done', () => 'refused'));
    await pool.close();
    assert.ok((await Promise.all(pending)).includes('refused'));
    assert.equal(pool.threads, 0);
  });

  it('backs a user store: an unknown user costs a check against the decoy hash, and never matches', async () => {
    const pool = new PasswordPool({ threads: 1, maxWaiting: 4 });
    const calls: string[] = [];
    const counting: PasswordChecker = { check: (password, h) => (calls.push(h), pool.check(password, h)) };
    try {
      const store = new UserStore([{ username: 'bob', passwordHash: hash }], undefined, counting);
      assert.equal(await store.verify('bob', 'pw-1'), true);
      assert.equal(await store.verify('bob', 'pw-2'), false);
      assert.equal(await store.verify('nobody', 'pw-1'), false);
      assert.equal(calls.length, 3, 'an unknown user is checked too');
      assert.notEqual(calls[2], hash);
      assert.match(calls[2]!, /^\$2b\$10\$/, 'the decoy costs what a real (cost 10) hash does');
    } finally {
      await pool.close();
    }
  });
});

describe('login limiter', () => {
  it('holds back a client after maxFailures within the window, until its oldest failure ages out', () => {
    let now = 1_000_000;
    const limiter = new LoginLimiter({ maxFailures: 3, windowMs: 60_000, now: () => now });
    for (let i = 0; i < 3; i++) {
      assert.equal(limiter.blockedFor('10.0.0.1'), 0);
      limiter.attempt('10.0.0.1');
      now += 1_000;
    }
    assert.equal(limiter.blockedFor('10.0.0.1'), 57_000);
    assert.equal(limiter.blockedFor('10.0.0.2'), 0, 'another client is not held back');
    now += 57_000;
    assert.equal(limiter.blockedFor('10.0.0.1'), 0);
  });

  it('takes back a withdrawn attempt but keeps earlier failures', () => {
    const now = 5_000;
    const limiter = new LoginLimiter({ maxFailures: 2, windowMs: 60_000, now: () => now });
    limiter.attempt('c');
    const at = limiter.attempt('c');
    assert.ok(limiter.blockedFor('c') > 0);
    limiter.withdraw('c', at);
    assert.equal(limiter.blockedFor('c'), 0);
    limiter.attempt('c');
    assert.ok(limiter.blockedFor('c') > 0);
  });

  it('remembers at most maxClients addresses', () => {
    const limiter = new LoginLimiter({ maxFailures: 1, windowMs: 60_000, maxClients: 2 });
    for (const client of ['a', 'b', 'c']) limiter.attempt(client);
    assert.equal(limiter.blockedFor('a'), 0, 'the least recent address was forgotten');
    assert.ok(limiter.blockedFor('c') > 0);
  });
});
