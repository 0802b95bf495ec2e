// The key that signs client tokens: `auth.signingKeyFile` when configured (EC P-256 → ES256, Ed25519 →
// EdDSA), else a P-256 key generated at first start and kept in the data dir, so that tokens survive a
// restart. The key is only ever read from disk here; it is never logged.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '../errors.js';

export interface SigningKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly alg: 'ES256' | 'EdDSA';
  /** Names the key in the token header: the start of its public key's SHA-256. */
  readonly kid: string;
}

export async function loadSigningKey(configured: string | null, generatedPath: string): Promise<SigningKey> {
  if (configured !== null) {
    const path = resolve(configured);
    let pem: string;
    try {
      pem = await readFile(path, 'utf8');
    } catch (err) {
      throw new ConfigError(`auth.signingKeyFile: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`);
    }
    return fromPem(pem, 'auth.signingKeyFile');
  }
  try {
    return fromPem(await readFile(generatedPath, 'utf8'), generatedPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  await mkdir(dirname(generatedPath), { recursive: true, mode: 0o700 });
  const temp = `${generatedPath}.${process.pid}.tmp`;
  await writeFile(temp, pem, { mode: 0o600 });
  await rename(temp, generatedPath);
  return fromPem(pem, generatedPath);
}

function fromPem(pem: string, source: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw new ConfigError(`${source}: not a PEM private key`);
  }
  const type = privateKey.asymmetricKeyType;
  const curve = privateKey.asymmetricKeyDetails?.namedCurve;
  let alg: SigningKey['alg'];
  if (type === 'ec' && curve === 'prime256v1') alg = 'ES256';
  else if (type === 'ed25519') alg = 'EdDSA';
  else throw new ConfigError(`${source}: expected an EC P-256 or Ed25519 key, got ${type}${curve ? ` ${curve}` : ''}`);
  const publicKey = createPublicKey(privateKey);
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const kid = createHash('sha256').update(spki).digest('base64url').slice(0, 22);
  return { privateKey, publicKey, alg, kid };
}
