// Loads the configuration: defaults ← mirror.config.json (or --config PATH / LONGSHORE_CONFIG) ← LONGSHORE_* env.
// The result is validated once by the schema and deep-frozen; nothing else in the process reads env or files for settings.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import { configSchema, type Config } from './schema.js';

export const DEFAULT_CONFIG_FILE = 'mirror.config.json';

/** Environment variables that override one top-level key each. */
const ENV_KEYS: Record<string, keyof Config> = {
  LONGSHORE_LISTEN: 'listen',
  LONGSHORE_DATA_DIR: 'dataDir',
  LONGSHORE_LOG_LEVEL: 'logLevel',
  LONGSHORE_LOG_FORMAT: 'logFormat',
  LONGSHORE_DEFAULT_UPSTREAM: 'defaultUpstream',
  LONGSHORE_NODE_NAME: 'nodeName',
};

export interface LoadOptions {
  argv?: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** `--config PATH` or `--config=PATH` from the command line, else LONGSHORE_CONFIG. */
export function configPathFrom(argv: readonly string[], env: NodeJS.ProcessEnv): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--config' || arg === '-c') {
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError('--config needs a file path');
      return next;
    }
    if (arg.startsWith('--config=')) return arg.slice('--config='.length);
  }
  return env.LONGSHORE_CONFIG || undefined;
}

export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const explicit = configPathFrom(options.argv ?? process.argv.slice(2), env);
  const path = resolve(cwd, explicit ?? DEFAULT_CONFIG_FILE);

  let raw: Record<string, unknown> = {};
  try {
    raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    // The default file is optional: without it the embedded defaults run the mirror.
    if (!(missing && explicit === undefined)) {
      const reason = missing ? 'file not found' : (err as Error).message;
      throw new ConfigError(`cannot read config file ${path}: ${reason}`);
    }
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  }
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const value = env[name];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  resolveSecrets(raw, env, dirname(path));
  return parseConfig(raw, path);
}

/** Keys that name where an upstream's password is, instead of holding it. */
const SECRET_SOURCES = ['password', 'passwordFile', 'passwordEnv'] as const;

/**
 * Replaces each upstream's `passwordFile` (a path, relative to the config file's directory; contents
 * trimmed) or `passwordEnv` (a variable name) with `password`, in place. Errors name the key and the
 * file or variable, never the secret.
 */
export function resolveSecrets(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, baseDir: string): void {
  const upstreams = raw.upstreams;
  if (upstreams === null || typeof upstreams !== 'object' || Array.isArray(upstreams)) return;
  for (const [host, upstream] of Object.entries(upstreams as Record<string, unknown>)) {
    if (upstream === null || typeof upstream !== 'object' || Array.isArray(upstream)) continue;
    const entry = upstream as Record<string, unknown>;
    const key = `upstreams.${host}`;
    const given = SECRET_SOURCES.filter((k) => entry[k] !== undefined && entry[k] !== null);
    if (given.length > 1) throw new ConfigError(`${key}: give only one of ${given.join(', ')}`);
    const file = entry.passwordFile;
    const variable = entry.passwordEnv;
    delete entry.passwordFile;
    delete entry.passwordEnv;
    if (file !== undefined && file !== null) entry.password = readSecretFile(`${key}.passwordFile`, file, baseDir);
    if (variable !== undefined && variable !== null) entry.password = readSecretEnv(`${key}.passwordEnv`, variable, env);
  }
}

function readSecretFile(key: string, file: unknown, baseDir: string): string {
  if (typeof file !== 'string' || file === '') throw new ConfigError(`${key}: expected a file path`);
  const path = resolve(baseDir, file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : (code ?? 'unreadable');
    throw new ConfigError(`${key}: cannot read ${path}: ${reason}`);
  }
  const secret = text.trim();
  if (secret === '') throw new ConfigError(`${key}: ${path} is empty`);
  return secret;
}

function readSecretEnv(key: string, variable: unknown, env: NodeJS.ProcessEnv): string {
  if (typeof variable !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(variable)) {
    throw new ConfigError(`${key}: expected an environment variable name`);
  }
  const secret = env[variable];
  if (secret === undefined) throw new ConfigError(`${key}: environment variable ${variable} is not set`);
  if (secret.trim() === '') throw new ConfigError(`${key}: environment variable ${variable} is empty`);
  return secret;
}

/** Validates raw settings; the error names each bad key, its value and what was expected. */
export function parseConfig(raw: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const key = issue.path.join('.') || '(root)';
      const value = valueAt(raw, issue.path);
      const shown = value === undefined ? '' : ` (got ${JSON.stringify(redactIfSecret(issue.path, value))})`;
      return `  ${key}: ${issue.message}${shown}`;
    });
    throw new ConfigError(`invalid configuration in ${source}:\n${lines.join('\n')}`);
  }
  return deepFreeze(result.data);
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

function redactIfSecret(path: readonly PropertyKey[], value: unknown): unknown {
  return path.some((k) => typeof k === 'string' && /password|secret|token|key/i.test(k)) ? '[redacted]' : value;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
