// The TLS certificate and key Longshore serves, read from `tls.cert` and `tls.key`, and reloaded on
// SIGHUP: a renewed certificate takes effect for new TLS handshakes, while connections already open
// keep theirs. A reload that fails (unreadable file, key not matching the certificate) keeps the
// certificate in use and logs why. The key is never logged, nor put in an error.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { TlsConfig } from '../config/schema.js';
import { ConfigError } from '../errors.js';

export interface KeyPair {
  cert: Buffer;
  key: Buffer;
}

/** Reads and checks both files; throws ConfigError naming the file that is wrong. */
export function readKeyPair(tls: Pick<TlsConfig, 'cert' | 'key'>): KeyPair {
  const read = (what: 'cert' | 'key') => {
    const path = resolve(tls[what]);
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(`tls.${what}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`);
    }
  };
  const pair = { cert: read('cert'), key: read('key') };
  try {
    createSecureContext(pair);
  } catch (err) {
    // OpenSSL's reason ("key values mismatch", "no start line"), which quotes no key material.
    throw new ConfigError(`tls: cannot use ${resolve(tls.cert)} with its key: ${(err as Error).message}`);
  }
  return pair;
}

/** The SHA-256 fingerprint of the first certificate of a PEM chain, as node:tls reports a peer's (`AA:BB:…`). */
export function certificateFingerprint(cert: Buffer): string {
  return new X509Certificate(cert).fingerprint256;
}

/** Facts about the certificate worth a log line: whom it names, until when, and its fingerprint. */
export function describeCertificate(cert: Buffer): Record<string, string> {
  try {
    const x509 = new X509Certificate(cert);
    return { subject: x509.subject.replace(/\n/g, ', '), subjectAltName: x509.subjectAltName ?? '', validTo: x509.validTo, fingerprint256: x509.fingerprint256 };
  } catch {
    return {};
  }
}

export class CertificateReloader {
  constructor(
    private readonly server: HttpsServer,
    private readonly tls: Pick<TlsConfig, 'cert' | 'key'>,
    private readonly log: Logger,
    /** Told of every pair put in use by reload(). */
    private readonly onLoaded?: (pair: KeyPair) => void,
  ) {}

  /** Re-reads both files and serves them to new handshakes; true when the new pair is in use. */
  reload(): boolean {
    let pair: KeyPair;
    try {
      pair = readKeyPair(this.tls);
    } catch (err) {
      this.log.error({ error: (err as Error).message }, 'tls reload failed; keeping the certificate in use');
      return false;
    }
    this.server.setSecureContext(pair);
    this.log.info(describeCertificate(pair.cert), 'tls certificate loaded');
    this.onLoaded?.(pair);
    return true;
  }
}
