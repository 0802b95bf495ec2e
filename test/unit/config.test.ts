import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localOrigin, parseListen } from '../../src/config/listen.js';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { parseDuration, parseSize } from '../../src/config/units.js';
import { ConfigError } from '../../src/errors.js';

describe('sizes and durations', () => {
  it('parses binary and SI sizes', () => {
    assert.equal(parseSize('50GiB'), 50 * 1024 ** 3);
    assert.equal(parseSize('50GB'), 50e9);
    assert.equal(parseSize('1.5 MiB'), 1.5 * 1024 * 1024);
    assert.equal(parseSize(4096), 4096);
    assert.equal(parseSize('12'), 12);
    assert.equal(parseSize('5 parsecs'), undefined);
    assert.equal(parseSize(-1), undefined);
  });
  it('parses durations', () => {
    assert.equal(parseDuration('10m'), 600_000);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration(1500), 1500);
    assert.equal(parseDuration('soon'), undefined);
  });
});

describe('configuration', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-config-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('runs on embedded defaults when there is no config file', () => {
    const config = loadConfig({ argv: [], env: {}, cwd: dir });
    assert.equal(config.listen, '127.0.0.1:5000');
    assert.equal(config.dataDir, './data');
    assert.equal(config.upstreams['docker.io']?.url, 'https://registry-1.docker.io');
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.upstreams['docker.io']));
  });

  it('matches the shipped mirror.config.json', async () => {
    const shipped = JSON.parse(await readFile(new URL('../../mirror.config.json', import.meta.url), 'utf8')) as unknown;
    assert.deepEqual(parseConfig(shipped), parseConfig({}));
  });

  it('reads --config, LONGSHORE_CONFIG, and env overrides in that order of precedence', async () => {
    const a = join(dir, 'a.json');
    const b = join(dir, 'b.json');
    await writeFile(a, JSON.stringify({ listen: '127.0.0.1:6000', upstreams: { 'docker.io': { url: 'http://127.0.0.1:9', tagTTL: '10m' } } }));
    await writeFile(b, JSON.stringify({ listen: '127.0.0.1:7000' }));
    assert.equal(loadConfig({ argv: ['--config', a], env: { LONGSHORE_CONFIG: b }, cwd: dir }).listen, '127.0.0.1:6000');
    assert.equal(loadConfig({ argv: [`--config=${a}`], env: {}, cwd: dir }).upstreams['docker.io']?.tagTTL, 600_000);
    assert.equal(loadConfig({ argv: [], env: { LONGSHORE_CONFIG: b }, cwd: dir }).listen, '127.0.0.1:7000');
    assert.equal(loadConfig({ argv: [], env: { LONGSHORE_CONFIG: b, LONGSHORE_LISTEN: '0.0.0.0:5000' }, cwd: dir }).listen, '0.0.0.0:5000');
  });

  it('names the key, the value and what was expected', () => {
    assert.throws(() => parseConfig({ upstreams: { 'docker.io': { url: 'https://x', tagTTL: 'forever' } } }),
      (err: Error) => /upstreams\.docker\.io\.tagTTL: expected a duration .* \(got "forever"\)/.test(err.message));
    assert.throws(() => parseConfig({ listen: 'nowhere' }), (err: Error) => /listen: expected "host:port".*\(got "nowhere"\)/.test(err.message));
    assert.throws(() => parseConfig({ upstreams: { 'docker.io': { url: 'ftp://x' } } }), (err: Error) => /upstreams\.docker\.io\.url: expected an http/.test(err.message));
    assert.throws(() => parseConfig({ defaultUpstream: 'ghcr.io' }), (err: Error) => /defaultUpstream/.test(err.message));
    assert.throws(() => parseConfig({ listn: '1' }), (err: Error) => /listn/.test(err.message));
  });

  it('never echoes a password in an error', () => {
    assert.throws(() => parseConfig({ upstreams: { 'docker.io': { url: 'https://x', username: 'u', password: 42 } } }),
      (err: Error) => err.message.includes('password') && !err.message.includes('42'));
  });

  it('fails clearly on an unreadable or explicit-but-missing file', async () => {
    assert.throws(() => loadConfig({ argv: ['--config', join(dir, 'missing.json')], env: {}, cwd: dir }), /file not found/);
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{ not json');
    assert.throws(() => loadConfig({ argv: ['--config', bad], env: {}, cwd: dir }), /cannot read config file/);
  });
});

describe('secrets from files and the environment', () => {
  let dir: string;
  const url = 'http://127.0.0.1:9';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'longshore-secrets-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  async function configWith(upstream: Record<string, unknown>): Promise<string> {
    const path = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
    await writeFile(path, JSON.stringify({ upstreams: { 'docker.io': { url, username: 'mirror', ...upstream } } }));
    return path;
  }

  it('reads passwordFile, trimmed, relative to the config file', async () => {
    await writeFile(join(dir, 'hub-token'), '  s3cret-from-file\n');
    const config = loadConfig({ argv: ['--config', await configWith({ passwordFile: 'hub-token' })], env: {}, cwd: '/' });
    assert.equal(config.upstreams['docker.io']?.password, 's3cret-from-file');
    assert.equal(config.upstreams['docker.io']?.username, 'mirror');
    assert.equal('passwordFile' in config.upstreams['docker.io']!, false);
  });

  it('reads passwordEnv', async () => {
    const config = loadConfig({ argv: ['--config', await configWith({ passwordEnv: 'HUB_TOKEN' })], env: { HUB_TOKEN: 's3cret-from-env' }, cwd: dir });
    assert.equal(config.upstreams['docker.io']?.password, 's3cret-from-env');
  });

  it('names the key and the file when the file is missing or empty', async () => {
    const missing = await configWith({ passwordFile: join(dir, 'nope') });
    assert.throws(() => loadConfig({ argv: ['--config', missing], env: {}, cwd: dir }),
      (err: Error) => err instanceof ConfigError && /upstreams\.docker\.io\.passwordFile: cannot read .*nope: file not found/.test(err.message));
    await writeFile(join(dir, 'blank'), ' \n');
    const blank = await configWith({ passwordFile: 'blank' });
    assert.throws(() => loadConfig({ argv: ['--config', blank], env: {}, cwd: dir }), /upstreams\.docker\.io\.passwordFile: .*blank is empty/);
  });

  it('names the key and the variable when it is unset', async () => {
    const path = await configWith({ passwordEnv: 'HUB_TOKEN' });
    assert.throws(() => loadConfig({ argv: ['--config', path], env: {}, cwd: dir }),
      (err: Error) => err instanceof ConfigError && err.message === 'upstreams.docker.io.passwordEnv: environment variable HUB_TOKEN is not set');
    const bad = await configWith({ passwordEnv: 'not a name' });
    assert.throws(() => loadConfig({ argv: ['--config', bad], env: {}, cwd: dir }), /passwordEnv: expected an environment variable name/);
  });

  it('refuses more than one source, without echoing the secret', async () => {
    await writeFile(join(dir, 'token'), 'file-secret');
    const both = await configWith({ password: 'inline-secret', passwordFile: 'token' });
    assert.throws(() => loadConfig({ argv: ['--config', both], env: {}, cwd: dir }),
      (err: Error) => /upstreams\.docker\.io: give only one of password, passwordFile/.test(err.message) && !err.message.includes('secret'));
    const fileAndEnv = await configWith({ passwordFile: 'token', passwordEnv: 'HUB_TOKEN' });
    assert.throws(() => loadConfig({ argv: ['--config', fileAndEnv], env: { HUB_TOKEN: 'env-secret' }, cwd: dir }), /give only one of passwordFile, passwordEnv/);
  });

  it('keeps a resolved secret out of validation errors', async () => {
    await writeFile(join(dir, 'lonely'), 'lonely-secret');
    // A password without a username fails validation after the file was read.
    const path = join(dir, 'no-user.json');
    await writeFile(path, JSON.stringify({ upstreams: { 'docker.io': { url, passwordFile: 'lonely' } } }));
    assert.throws(() => loadConfig({ argv: ['--config', path], env: {}, cwd: dir }),
      (err: Error) => /username and password must be given together/.test(err.message) && !err.message.includes('lonely-secret'));
  });
});

describe('operations settings', () => {
  it('defaults: JSON logs, 30 s shutdown grace, dashboard on', () => {
    const config = parseConfig({});
    assert.equal(config.logFormat, 'json');
    assert.equal(config.shutdownGrace, 30_000);
    assert.equal(config.ui.enabled, true);
  });

  it('takes logFormat from LONGSHORE_LOG_FORMAT and rejects unknown formats', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'longshore-config-'));
    try {
      assert.equal(loadConfig({ argv: [], env: { LONGSHORE_LOG_FORMAT: 'pretty' }, cwd: dir }).logFormat, 'pretty');
      assert.throws(() => loadConfig({ argv: [], env: { LONGSHORE_LOG_FORMAT: 'xml' }, cwd: dir }), /logFormat: .*\(got "xml"\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    assert.equal(parseConfig({ shutdownGrace: '5s', ui: { enabled: false } }).shutdownGrace, 5000);
    assert.throws(() => parseConfig({ ui: { enabeld: false } }), /ui/);
  });
});

describe('fleet settings', () => {
  it('defaults: no drain delay, the hostname as node name; LONGSHORE_NODE_NAME names the node', async () => {
    const config = parseConfig({});
    assert.equal(config.drainDelay, 0);
    assert.equal(config.nodeName, null);
    assert.equal(parseConfig({ drainDelay: '3s' }).drainDelay, 3000);
    const dir = await mkdtemp(join(tmpdir(), 'longshore-config-'));
    try {
      assert.equal(loadConfig({ argv: [], env: { LONGSHORE_NODE_NAME: 'longshore-2' }, cwd: dir }).nodeName, 'longshore-2');
      assert.throws(() => loadConfig({ argv: [], env: { LONGSHORE_NODE_NAME: 'two words' }, cwd: dir }), /nodeName/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('listen addresses', () => {
  it('parses host:port, [v6]:port, :port and a bare port', () => {
    assert.deepEqual(parseListen('0.0.0.0:5000'), { host: '0.0.0.0', port: 5000 });
    assert.deepEqual(parseListen('[::1]:5001'), { host: '::1', port: 5001 });
    assert.deepEqual(parseListen(':5002'), { host: undefined, port: 5002 });
    assert.deepEqual(parseListen('5003'), { host: undefined, port: 5003 });
    assert.throws(() => parseListen('localhost'), ConfigError);
  });

  it('reaches a wildcard address on loopback and any other address as it is', () => {
    assert.equal(localOrigin('0.0.0.0:5000', 'http'), 'http://127.0.0.1:5000');
    assert.equal(localOrigin(':5000', 'http'), 'http://127.0.0.1:5000');
    assert.equal(localOrigin('5000', 'https'), 'https://127.0.0.1:5000');
    assert.equal(localOrigin('[::]:5000', 'http'), 'http://[::1]:5000');
    assert.equal(localOrigin('[::1]:5000', 'http'), 'http://[::1]:5000');
    assert.equal(localOrigin('10.1.2.3:80', 'http'), 'http://10.1.2.3:80');
  });
});
