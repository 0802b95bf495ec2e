// A private certificate authority made with the openssl CLI at test time, and server certificates it
// signs for 127.0.0.1 (subjectAltName IP, which is what clients check for an IP address) and any DNS
// names asked for. Node can verify certificates but not issue them.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCa {
  /** PEM certificate: what clients are told to trust. */
  certPath: string;
  keyPath: string;
  cert: Buffer;
}

export interface ServerCert {
  certPath: string;
  keyPath: string;
  cert: Buffer;
  key: Buffer;
  /** SHA-256 fingerprint as X509Certificate shows it ("AB:CD:…"). */
  fingerprint256: string;
}

function openssl(args: readonly string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function createTestCa(dir: string, name = 'Longshore Test CA'): TestCa {
  const keyPath = join(dir, `${name.replace(/\W+/g, '-')}.key`);
  const certPath = join(dir, `${name.replace(/\W+/g, '-')}.crt`);
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-sha256', '-days', '2',
    '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout', keyPath, '-out', certPath,
  ]);
  return { certPath, keyPath, cert: readFileSync(certPath) };
}

/** A server certificate signed by `ca`, written as `<dir>/<file>.crt` and `.key`. */
export function issueServerCert(ca: TestCa, dir: string, file: string, options: { dnsNames?: readonly string[]; commonName?: string } = {}): ServerCert {
  const keyPath = join(dir, `${file}.key`);
  const csrPath = join(dir, `${file}.csr`);
  const certPath = join(dir, `${file}.crt`);
  const extPath = join(dir, `${file}.ext`);
  const altNames = ['IP:127.0.0.1', ...(options.dnsNames ?? []).map((n) => `DNS:${n}`)].join(',');
  writeFileSync(extPath, [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    `subjectAltName=${altNames}`,
    '',
  ].join('\n'));
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${options.commonName ?? file}`, '-keyout', keyPath, '-out', csrPath]);
  openssl(['x509', '-req', '-in', csrPath, '-CA', ca.certPath, '-CAkey', ca.keyPath, '-CAcreateserial', '-sha256', '-days', '2', '-extfile', extPath, '-out', certPath]);
  const cert = readFileSync(certPath);
  return { certPath, keyPath, cert, key: readFileSync(keyPath), fingerprint256: new X509Certificate(cert).fingerprint256 };
}
