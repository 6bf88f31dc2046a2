/**
 * Certificates for TLS tests, made with the `openssl` binary in a temporary folder: a CA, and
 * leaf certificates it signs (server, client or both) for 127.0.0.1 and localhost. Nothing is
 * self-signed by the leaf and nothing disables verification: tests verify against these CAs.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertFiles {
  /** PEM certificate file. */
  cert: string;
  /** PEM private key file. */
  key: string;
}

export interface Ca extends CertFiles {
  name: string;
  /** The CA's PEM text. */
  pem: string;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A new CA (EC P-256, valid for a day) under `dir/<name>/`. */
export function makeCa(dir: string, name: string): Ca {
  const base = join(dir, name);
  mkdirSync(base, { recursive: true });
  const cert = join(base, 'ca.crt');
  const key = join(base, 'ca.key');
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { name, cert, key, pem: readFileSync(cert, 'utf8') };
}

export interface LeafOptions {
  /** subjectAltName entries; default IP:127.0.0.1 and DNS:localhost. */
  sans?: string[];
  /** Extended key usages; default both serverAuth and clientAuth. */
  usage?: Array<'serverAuth' | 'clientAuth'>;
}

/** A leaf certificate for `name` signed by `ca`, under `dir/<name>/` (cert.pem, key.pem). */
export function makeLeaf(dir: string, ca: Ca, name: string, options: LeafOptions = {}): CertFiles {
  const base = join(dir, name);
  mkdirSync(base, { recursive: true });
  const key = join(base, 'key.pem');
  const csr = join(base, 'req.csr');
  const cert = join(base, 'cert.pem');
  const ext = join(base, 'ext.cnf');
  const sans = options.sans ?? ['IP:127.0.0.1', 'DNS:localhost'];
  const usage = options.usage ?? ['serverAuth', 'clientAuth'];
  writeFileSync(ext, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=${usage.join(',')}\nsubjectAltName=${sans.join(',')}\n`);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', '1', '-extfile', ext]);
  return { cert, key };
}

/** SHA-256 fingerprint of a PEM certificate file, as node:tls reports a peer's (AA:BB:...). */
export function fingerprintOf(certFile: string): string {
  return new X509Certificate(readFileSync(certFile)).fingerprint256;
}
