// A throwaway RSA key and self-signed certificate for the token server. Node can sign with a key
// but cannot issue X.509 certificates, so the openssl CLI makes the pair.
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SigningCert {
  privateKey: KeyObject;
  /** PEM file holding the certificate: distribution's `auth.token.rootcertbundle`. */
  certPath: string;
  /** The certificate as DER, base64 (standard alphabet), as a JWS `x5c` entry wants it. */
  certDerBase64: string;
}

export function createSigningCert(dir: string, commonName: string): SigningCert {
  const keyPath = join(dir, 'token-signing.key');
  const certPath = join(dir, 'token-signing.crt');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
    '-subj', `/CN=${commonName}`, '-keyout', keyPath, '-out', certPath,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  const cert = new X509Certificate(readFileSync(certPath));
  return {
    privateKey: createPrivateKey(readFileSync(keyPath)),
    certPath,
    certDerBase64: cert.raw.toString('base64'),
  };
}
