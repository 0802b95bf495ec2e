// Security issue, end to end: "skopeo --creds with pass-through credentials pulls a private image that
// the mirror's own credentials cannot see". The upstream is a real distribution registry behind the
// rig's token server, which grants per account and repository prefix, as Docker Hub does:
//   mirror (Longshore's configured account)  library/ only
//   carol                                    private/ and library/
//   dave                                     library/ only
//   anonymous                                library/ only
// Longshore's docker.io upstream has passThroughCredentials: a client's own Basic credentials act
// upstream, never the mirror's account. carol's skopeo pulls private/app:1 through Longshore; dave's
// and an anonymous skopeo are refused (401), also once everything is cached, and nothing is downloaded
// on their behalf; carol is then served from cache. The token server's records show whose credentials
// asked for which repository. The clients send their credentials at all only because Longshore's
// GET /v2/ asks for them (401, Basic challenge); skopeo without credentials answers it with empty ones,
// which are anonymous.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { Dockerd } from '../support/e2e/dockerd.js';
import { buildMultiArchImage, platformOf, type TestImage } from '../support/images.js';
import { Longshore, type LoggedRequest } from '../support/e2e/longshore.js';
import { Skopeo } from '../support/e2e/skopeo.js';
import { Teardown } from '../support/e2e/teardown.js';
import { describeWithTools } from '../support/e2e/tools.js';
import { startUpstreamStack, type UpstreamStack } from '../support/e2e/upstream-stack.js';
import { diagnostics } from '../support/e2e/diagnostics.js';

const STEP_TIMEOUT = 300_000;
const TOOLS = ['dockerd', 'docker', 'docker-registry', 'skopeo', 'openssl'] as const;
const CAROL = { username: 'carol', password: 'carol-Pass-6620' };
const DAVE = { username: 'dave', password: 'dave-Pass-4117' };
const PRIVATE_SCOPE = 'repository:private/app:pull';

describeWithTools('pass-through credentials: clients pull with their own upstream accounts (real clients)', TOOLS, () => {
  const teardown = new Teardown();
  const app: TestImage = buildMultiArchImage({ repository: 'private/app', tag: '1', format: 'oci' });
  const layerDigests = new Set(app.platforms.flatMap((p) => [p.config, ...p.layers]).map((b) => b.digest));
  let upstream: UpstreamStack;
  let longshore: Longshore;
  let skopeo: Skopeo;
  let dir: string;
  /** Token requests before this index were made by the test itself, straight to the upstream. */
  let clientTokensFrom = 0;

  before(async () => {
    upstream = teardown.add('upstream stack', await startUpstreamStack({
      extraImages: [app],
      mirrorRepositories: ['library/'],
      users: {
        [CAROL.username]: { password: CAROL.password, actions: ['pull'], repositories: ['private/', 'library/'] },
        [DAVE.username]: { password: DAVE.password, actions: ['pull'], repositories: ['library/'] },
      },
      anonymousPull: ['library/'],
    }), (s) => s.stop());
    longshore = teardown.add('longshore', await Longshore.start({
      upstreamUrl: upstream.proxy.url,
      // The mirror's own account is configured, and must not act for any client.
      ...upstream.mirrorCredentials,
      // TTLs longer than the file: "served from cache" must not depend on how fast the machine is.
      upstream: { passThroughCredentials: true, credentialTTL: '1h', tagTTL: '1h' },
      config: { auth: { enabled: false } },
    }), (l) => l.stop());
    dir = teardown.tempDir('client dir', 'longshore-pass-through-e2e-');
    skopeo = new Skopeo(dir);
  }, { timeout: STEP_TIMEOUT });

  after(() => teardown.runAll(), { timeout: 120_000 });

  const diagnose = (mark = 0) => diagnostics({ longshore, since: mark, lines: 30 }, { upstream: upstream.proxy }, { label: 'token requests', text: describeTokens() });

  function describeTokens(): string {
    return upstream.tokens.requests
      .map((r) => `${r.method} ${r.account ?? 'anonymous'} [${r.scopes.join(' ')}] -> ${r.status} ${JSON.stringify(r.granted.map((g) => g.actions))}`)
      .join('\n');
  }

  /** Requests Longshore answered since `mark`, once the lines of all answered so far are in the log. */
  async function answeredSince(mark: number): Promise<LoggedRequest[]> {
    await longshore.settledMark();
    return (await longshore.requestsSince(mark));
  }

  const appRef = (suffix = `:${app.tag}`) => `docker://${longshore.host}/${app.repository}${suffix}`;
  const creds = (user: { username: string; password: string }) => ['--creds', `${user.username}:${user.password}`];
  /** Token requests since `mark` (an index into the token server's records). */
  const tokensSince = (mark: number) => upstream.tokens.requests.slice(mark);
  /** Accounts whose token requests since `mark` asked for private/app. */
  const privateTokenAccounts = (mark: number) => tokensSince(mark).filter((r) => r.scopes.includes(PRIVATE_SCOPE)).map((r) => r.account ?? 'anonymous');
  const privateUpstream = () => upstream.proxy.requests.filter((r) => r.repository === app.repository);

  /** skopeo copy --all into a fresh dir: each blob's digest is verified by skopeo as it is written. */
  async function copyAll(user: { username: string; password: string } | undefined): Promise<{ code: number; stderr: string; files: Map<string, Buffer> }> {
    const dest = mkdtempSync(join(dir, 'copy-'));
    try {
      const copy = await skopeo.run(['copy', '--all', '--preserve-digests', '--src-tls-verify=false',
        ...(user ? ['--src-creds', `${user.username}:${user.password}`] : []), appRef(), `dir:${join(dest, 'img')}`]);
      const files = new Map<string, Buffer>();
      if (copy.code === 0) for (const f of readdirSync(join(dest, 'img'))) files.set(f, readFileSync(join(dest, 'img', f)));
      return { code: copy.code, stderr: copy.stderr, files };
    } finally {
      rmSync(dest, { recursive: true, force: true });
    }
  }

  /** The dir: transport's files for the whole image: index, each platform manifest, every config and layer. */
  function expectWholeImage(files: Map<string, Buffer>): void {
    const hex = (digest: string) => digest.slice('sha256:'.length);
    const expected = new Map<string, Buffer>([['manifest.json', app.index.bytes]]);
    for (const p of app.platforms) {
      expected.set(`${hex(p.manifest.digest)}.manifest.json`, p.manifest.bytes);
      for (const blob of [p.config, ...p.layers]) expected.set(hex(blob.digest), blob.bytes);
    }
    files.delete('version');
    assert.deepEqual([...files.keys()].sort(), [...expected.keys()].sort());
    for (const [name, bytes] of expected) assert.ok(files.get(name)!.equals(bytes), `${name} differs from what was published`);
  }

  it('precondition: the mirror\'s own account cannot see private/app upstream; carol\'s can', { timeout: STEP_TIMEOUT }, async () => {
    const direct = `docker://${upstream.registry.host}/${app.repository}:${app.tag}`;
    const mirror = await skopeo.run(['inspect', '--raw', '--tls-verify=false', ...creds(upstream.mirrorCredentials), direct]);
    assert.notEqual(mirror.code, 0, `the mirror's account read private/app upstream\n${describeTokens()}`);
    const carol = await skopeo.run(['inspect', '--raw', '--tls-verify=false', ...creds(CAROL), direct]);
    assert.equal(carol.code, 0, `${carol.stderr}\n${describeTokens()}`);
    assert.deepEqual(carol.stdout, app.index.bytes);
    clientTokensFrom = upstream.tokens.requestCount;
  });

  it('an anonymous skopeo is refused private/app (401), gets library/alpine anonymously, and the mirror\'s account is not used', { timeout: STEP_TIMEOUT }, async () => {
    upstream.proxy.reset();
    const tokenMark = upstream.tokens.requestCount;
    const mark = await longshore.settledMark();
    const inspect = await skopeo.run(['inspect', '--raw', '--tls-verify=false', appRef()]);
    assert.notEqual(inspect.code, 0, `an anonymous client read private/app\n${diagnose(mark)}`);
    assert.match(inspect.stderr, /unauthorized|authentication required|401/i, inspect.stderr);
    const answered = (await answeredSince(mark)).filter((r) => r.path.startsWith(`/v2/${app.repository}/`));
    assert.ok(answered.length > 0 && answered.every((r) => r.status === 401), diagnose(mark));
    assert.deepEqual(privateTokenAccounts(tokenMark).filter((a) => a !== 'anonymous'), [], diagnose(mark));
    assert.deepEqual(upstream.proxy.ofKind('blob', 'GET').map((r) => r.path), [], diagnose(mark));

    // anonymous is anonymous upstream, not refused outright: library/ is open to anonymous pulls there
    const alpine = await skopeo.run(['inspect', '--raw', '--tls-verify=false', `docker://${longshore.host}/${upstream.alpine.repository}:${upstream.alpine.tag}`]);
    assert.equal(alpine.code, 0, `${alpine.stderr}\n${diagnose(mark)}`);
    assert.deepEqual(alpine.stdout, upstream.alpine.index.bytes);
    const alpineTokens = tokensSince(tokenMark).filter((r) => r.scopes.includes(`repository:${upstream.alpine.repository}:pull`));
    assert.ok(alpineTokens.length > 0 && alpineTokens.every((r) => r.account === null), diagnose(mark));
  });

  it('skopeo --creds carol inspects and copies private/app:1 through Longshore, with carol\'s account upstream', { timeout: STEP_TIMEOUT }, async () => {
    upstream.proxy.reset();
    const tokenMark = upstream.tokens.requestCount;
    const mark = await longshore.settledMark();
    const inspect = await skopeo.run(['inspect', '--raw', '--tls-verify=false', ...creds(CAROL), appRef()]);
    assert.equal(inspect.code, 0, `${inspect.stderr}\n${diagnose(mark)}`);
    assert.deepEqual(inspect.stdout, app.index.bytes);

    const copy = await copyAll(CAROL);
    assert.equal(copy.code, 0, `${copy.stderr}\n${diagnose(mark)}`);
    expectWholeImage(copy.files);

    // Longshore fetched every config and layer of private/app upstream, once each
    const fetched = upstream.proxy.blobFetchCounts();
    for (const digest of layerDigests) assert.equal(fetched.get(digest), 1, `${digest} fetched once\n${diagnose(mark)}`);
    assert.ok(privateUpstream().some((r) => r.kind === 'manifest' && r.method === 'GET' && r.status === 200), diagnose(mark));
    // every token for private/app was asked for with carol's account, and granted her pull
    const privateTokens = tokensSince(tokenMark).filter((r) => r.scopes.includes(PRIVATE_SCOPE));
    assert.ok(privateTokens.length > 0, diagnose(mark));
    assert.deepEqual(privateTokenAccounts(tokenMark).filter((a) => a !== CAROL.username), [], diagnose(mark));
    assert.ok(privateTokens.every((r) => r.status === 200 && r.granted.some((g) => g.name === app.repository && g.actions.includes('pull'))), diagnose(mark));
  });

  it('skopeo --creds dave is refused private/app (401) though it is cached, and nothing is downloaded for him', { timeout: STEP_TIMEOUT }, async () => {
    upstream.proxy.reset();
    const tokenMark = upstream.tokens.requestCount;
    const mark = await longshore.settledMark();
    for (const ref of [appRef(), appRef(`@${app.index.digest}`), appRef(`@${platformOf(app, 'amd64').manifest.digest}`)]) {
      const inspect = await skopeo.run(['inspect', '--raw', '--tls-verify=false', ...creds(DAVE), ref]);
      assert.notEqual(inspect.code, 0, `dave inspected ${ref}\n${diagnose(mark)}`);
      assert.ok(!inspect.stdout.includes(app.index.bytes));
      assert.match(inspect.stderr, /unauthorized|authentication required|401/i, inspect.stderr);
    }
    const copy = await copyAll(DAVE);
    assert.notEqual(copy.code, 0, `dave copied private/app\n${diagnose(mark)}`);
    // skopeo did send dave's credentials: the upstream's token service judged them (and granted nothing)
    const daveTokens = tokensSince(tokenMark).filter((r) => r.account === DAVE.username && r.scopes.includes(PRIVATE_SCOPE));
    assert.ok(daveTokens.length > 0, diagnose(mark));
    assert.ok(daveTokens.every((r) => r.status === 200 && r.granted.every((g) => g.actions.length === 0)), diagnose(mark));

    // dave's own Basic credentials on a cached blob, by raw HTTP: 401 with a Basic challenge, no bytes
    const layer = platformOf(app, 'amd64').layers[0]!;
    const res = await fetch(`${longshore.url}/v2/${app.repository}/blobs/${layer.digest}`, {
      headers: { authorization: `Basic ${Buffer.from(`${DAVE.username}:${DAVE.password}`).toString('base64')}` },
    });
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(res.status, 401, diagnose(mark));
    assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm="longshore"/);
    assert.ok(!body.includes(layer.bytes.subarray(0, 64)));

    const answered = (await answeredSince(mark)).filter((r) => r.path.startsWith(`/v2/${app.repository}/`));
    assert.ok(answered.length > 0, diagnose(mark));
    assert.deepEqual(answered.filter((r) => r.status !== 401).map((r) => `${r.method} ${r.path} -> ${r.status}`), [], diagnose(mark));
    // only dave's credentials asked for private/app, and the upstream sent nothing of it
    assert.deepEqual(privateTokenAccounts(tokenMark).filter((a) => a !== DAVE.username), [], diagnose(mark));
    assert.deepEqual(upstream.proxy.ofKind('blob', 'GET').map((r) => `${r.path} -> ${r.status}`), [], diagnose(mark));
    assert.deepEqual(privateUpstream().filter((r) => r.method === 'GET').map((r) => `${r.path} -> ${r.status}`), [], diagnose(mark));
  });

  it('carol again: served from cache, no upstream request within credentialTTL', { timeout: STEP_TIMEOUT }, async () => {
    upstream.proxy.reset();
    const tokenMark = upstream.tokens.requestCount;
    const mark = await longshore.settledMark();
    const copy = await copyAll(CAROL);
    assert.equal(copy.code, 0, `${copy.stderr}\n${diagnose(mark)}`);
    expectWholeImage(copy.files);
    assert.deepEqual(upstream.proxy.requests.map((r) => `${r.method} ${r.path} -> ${r.status}`), [], diagnose(mark));
    assert.equal(upstream.tokens.requestCount, tokenMark, diagnose(mark));
    const served = (await answeredSince(mark)).filter((r) => r.method === 'GET' && r.path.startsWith(`/v2/${app.repository}/blobs/`));
    assert.ok(served.length >= layerDigests.size && served.every((r) => r.status === 200 && r.cache === 'hit'), diagnose(mark));
  });

  it('docker login <mirror> -u carol, then docker pull of private/app:1; with a wrong password the pull is refused', { timeout: STEP_TIMEOUT }, async () => {
    // dockerd as a direct-registry client: 127.0.0.0/8 is an insecure registry by default.
    const dockerd = await Dockerd.start();
    try {
      const ref = `${longshore.host}/${app.repository}:${app.tag}`;
      const mark = await longshore.settledMark();
      const anonymous = await dockerd.docker(['pull', ref]);
      assert.notEqual(anonymous.code, 0, `an anonymous docker pulled private/app\n${diagnose(mark)}`);
      const login = await dockerd.docker(['login', '--username', CAROL.username, '--password', CAROL.password, longshore.host]);
      assert.equal(login.code, 0, `${login.stderr}\n${diagnose(mark)}`);
      const pull = await dockerd.docker(['pull', ref]);
      assert.equal(pull.code, 0, `${pull.stderr}\n${diagnose(mark)}`);
      const id = await dockerd.docker(['image', 'inspect', '--format', '{{.Id}}', ref]);
      assert.equal(id.stdout.trim(), platformOf(app, 'amd64').config.digest);

      // A wrong password passes `docker login` (the ping cannot judge it: only the upstream can, per
      // repository) but gets nothing: the pull is refused 401, cached as the image is.
      await dockerd.dockerOk(['image', 'rm', ref]);
      upstream.proxy.reset();
      const tokenMark = upstream.tokens.requestCount;
      const wrongMark = await longshore.settledMark();
      const wrongLogin = await dockerd.docker(['login', '--username', CAROL.username, '--password', 'not-carols-password', longshore.host]);
      assert.equal(wrongLogin.code, 0, wrongLogin.stderr);
      const refused = await dockerd.docker(['pull', ref]);
      assert.notEqual(refused.code, 0, `a wrong password pulled private/app\n${diagnose(wrongMark)}`);
      const answered = (await answeredSince(wrongMark)).filter((r) => r.path.startsWith(`/v2/${app.repository}/`));
      assert.ok(answered.length > 0 && answered.every((r) => r.status === 401), diagnose(wrongMark));
      const judged = tokensSince(tokenMark).filter((r) => r.scopes.includes(PRIVATE_SCOPE));
      assert.ok(judged.length > 0 && judged.every((r) => r.account === CAROL.username && r.status === 401), diagnose(wrongMark));
      assert.deepEqual(upstream.proxy.ofKind('blob', 'GET').map((r) => r.path), [], diagnose(wrongMark));
    } finally {
      await dockerd.stop();
    }
  });

  it('the mirror\'s account never asked for a token, and no client password is in Longshore\'s log', () => {
    assert.deepEqual(tokensSince(clientTokensFrom).filter((r) => r.account === upstream.mirrorCredentials.username).map((r) => r.scopes.join(' ')), [], describeTokens());
    const log = JSON.stringify(longshore.records) + longshore.process.recentOutput();
    for (const { username, password } of [CAROL, DAVE, { username: CAROL.username, password: 'not-carols-password' }]) {
      assert.ok(!log.includes(password), `${username}'s password is in the log`);
      assert.ok(!log.includes(Buffer.from(`${username}:${password}`).toString('base64')), `${username}'s Basic credentials are in the log`);
    }
  });
});
