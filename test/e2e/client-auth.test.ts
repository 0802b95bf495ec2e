// Issue 6: client authentication with real clients. Longshore runs with `auth.enabled`, one account
// and rules that leave nothing open to anonymous clients; clients address it directly
// (127.0.0.1:PORT/library/alpine, not as a mirror) and must log in: `docker login`, `skopeo --creds`,
// `ctr --user`. Each follows the registry token flow against Longshore's own /token endpoint.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { pullOnlyAuth } from '../support/e2e/client-accounts.js';
import { Containerd, SNAPSHOTTER } from '../support/e2e/containerd.js';
import { Dockerd } from '../support/e2e/dockerd.js';
import { platformOf } from '../support/images.js';
import { Longshore } from '../support/e2e/longshore.js';
import type { Skopeo } from '../support/e2e/skopeo.js';
import { Teardown } from '../support/e2e/teardown.js';
import { describeWithTools } from '../support/e2e/tools.js';
import { startSkopeoOverStack, type UpstreamStack } from '../support/e2e/upstream-stack.js';
import { diagnostics } from '../support/e2e/diagnostics.js';

const STEP_TIMEOUT = 300_000;
const TOOLS = ['dockerd', 'docker', 'containerd', 'ctr', 'docker-registry', 'skopeo', 'openssl'] as const;
const ALICE = { username: 'alice', password: 'alice-Pass-5512' };
const BOB = { username: 'bob', password: 'bob-Pass-0907' };

describeWithTools('clients log in to Longshore (auth.enabled)', TOOLS, () => {
  const teardown = new Teardown();
  let upstream: UpstreamStack;
  let longshore: Longshore;
  let dockerd: Dockerd;
  let containerd: Containerd;
  let skopeo: Skopeo;

  before(async () => {
    const auth = pullOnlyAuth([
      { account: ALICE, pull: ['docker.io/library/*'] },
      { account: BOB, pull: ['docker.io/team/*'] },
    ], 10);
    ({ upstream, longshore, skopeo } = await startSkopeoOverStack(teardown, 'longshore-auth-e2e-', { config: { auth } }));
    containerd = teardown.add('containerd', await Containerd.start(), (c) => c.stop());
    // No registry-mirrors: the image references name Longshore itself. dockerd treats 127.0.0.0/8 as
    // an insecure registry by default, so plain HTTP is accepted.
    dockerd = teardown.add('dockerd', await Dockerd.start(), (d) => d.stop());
  }, { timeout: STEP_TIMEOUT });

  after(() => teardown.runAll(), { timeout: 120_000 });

  const diagnose = (mark = 0) => diagnostics({ longshore, since: mark, lines: 30 }, { upstream: upstream.proxy });

  const alpineRef = () => `${longshore.host}/${upstream.alpine.repository}:${upstream.alpine.tag}`;
  const ocitestRef = () => `${longshore.host}/${upstream.ocitest.repository}:${upstream.ocitest.tag}`;

  it('docker pull without login is refused with 401 and nothing is fetched upstream', { timeout: STEP_TIMEOUT }, async () => {
    upstream.proxy.reset();
    const mark = await longshore.settledMark();
    const result = await dockerd.docker(['pull', alpineRef()]);
    assert.notEqual(result.code, 0, `an anonymous pull succeeded\n${diagnose(mark)}`);
    // docker words a 401 as "pull access denied …, repository does not exist or may require 'docker login'".
    assert.match(result.stderr, /docker login|unauthorized|authentication required/i);
    assert.deepEqual(upstream.proxy.requests.map((r) => r.path), [], diagnose(mark));
    assert.ok((await longshore.requestsSince(mark)).some((r) => r.status === 401), diagnose(mark));
  });

  it('docker login with a wrong password fails', { timeout: STEP_TIMEOUT }, async () => {
    const result = await dockerd.docker(['login', '--username', ALICE.username, '--password', 'wrong-password', longshore.host]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /incorrect username or password|unauthorized/i);
  });

  it('docker login, then docker pull 127.0.0.1:PORT/library/alpine:3.19', { timeout: STEP_TIMEOUT }, async () => {
    const mark = await longshore.settledMark();
    const login = await dockerd.docker(['login', '--username', ALICE.username, '--password', ALICE.password, longshore.host]);
    assert.equal(login.code, 0, `${login.stderr}\n${diagnose(mark)}`);
    assert.match(login.stdout, /Login Succeeded/);
    const pull = await dockerd.docker(['pull', alpineRef()]);
    assert.equal(pull.code, 0, `${pull.stderr}\n${diagnose(mark)}`);
    const id = await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', alpineRef()]);
    assert.equal(id.stdout.trim(), platformOf(upstream.alpine, 'amd64').config.digest);
    const tokens = (await longshore.requestsSince(mark)).filter((r) => r.path.startsWith('/token'));
    assert.ok(tokens.length > 0 && tokens.every((r) => r.status === 200), diagnose(mark));
  });

  it('a logged-in user is denied (403) what the rules do not allow her, cached or not', { timeout: STEP_TIMEOUT }, async () => {
    const login = await dockerd.docker(['login', '--username', BOB.username, '--password', BOB.password, longshore.host]);
    assert.equal(login.code, 0, login.stderr);
    const mark = await longshore.settledMark();
    await dockerd.docker(['image', 'rm', alpineRef()]);
    const pull = await dockerd.docker(['pull', alpineRef()]);
    assert.notEqual(pull.code, 0, `bob pulled alice's repository\n${diagnose(mark)}`);
    assert.match(pull.stderr, /denied/i);
    assert.ok((await longshore.requestsSince(mark)).some((r) => r.status === 403), diagnose(mark));
  });

  it('skopeo --creds copies an image; without or with wrong credentials it is refused', { timeout: STEP_TIMEOUT }, async () => {
    const ref = `docker://${ocitestRef()}`;
    const anonymous = await skopeo.run(['inspect', '--raw', '--tls-verify=false', ref]);
    assert.notEqual(anonymous.code, 0);
    const wrong = await skopeo.run(['inspect', '--raw', '--tls-verify=false', '--creds', `${ALICE.username}:nope`, ref]);
    assert.notEqual(wrong.code, 0);
    const mark = await longshore.settledMark();
    const raw = await skopeo.run(['inspect', '--raw', '--tls-verify=false', '--creds', `${ALICE.username}:${ALICE.password}`, ref]);
    assert.equal(raw.code, 0, `${raw.stderr}\n${diagnose(mark)}`);
    assert.deepEqual(raw.stdout, upstream.ocitest.index.bytes);
    const dest = mkdtempSync(join(tmpdir(), 'longshore-skopeo-dest-'));
    try {
      const copy = await skopeo.run(['copy', '--all', '--preserve-digests', '--src-tls-verify=false', '--src-creds', `${ALICE.username}:${ALICE.password}`, ref, `dir:${join(dest, 'img')}`]);
      assert.equal(copy.code, 0, `${copy.stderr}\n${diagnose(mark)}`);
    } finally {
      rmSync(dest, { recursive: true, force: true });
    }
  });

  it('ctr --user pulls 127.0.0.1:PORT/library/ocitest:1.0 (POST /token, then GET)', { timeout: STEP_TIMEOUT }, async () => {
    const mark = await longshore.settledMark();
    const ref = ocitestRef();
    const denied = await containerd.ctr(['images', 'pull', '--plain-http', '--snapshotter', SNAPSHOTTER, '--platform', 'linux/amd64', '--user', `${BOB.username}:${BOB.password}`, ref]);
    assert.notEqual(denied.code, 0, 'bob pulled a repository no rule gives him');
    const pulled = await containerd.ctr(['images', 'pull', '--plain-http', '--snapshotter', SNAPSHOTTER, '--platform', 'linux/amd64', '--user', `${ALICE.username}:${ALICE.password}`, ref]);
    assert.equal(pulled.code, 0, `${pulled.stderr}\n${diagnose(mark)}`);
    const row = (await containerd.images()).find((r) => r.ref === ref);
    assert.equal(row?.digest, upstream.ocitest.index.digest);
    assert.ok((await longshore.requestsSince(mark)).some((r) => r.method === 'POST' && r.path.startsWith('/token') && r.status === 200), diagnose(mark));
  });

  it('logged no client password', () => {
    const log = JSON.stringify(longshore.records);
    for (const { username, password } of [ALICE, BOB]) {
      assert.ok(!log.includes(password), `${username}'s password is in the log`);
      assert.ok(!log.includes(Buffer.from(`${username}:${password}`).toString('base64')), `${username}'s Basic credentials are in the log`);
    }
  });
});
