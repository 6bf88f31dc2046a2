/**
 * Reading the PEM files a config names (server.tls, leader.tls): errors name the setting and the
 * file ("reading server.tls.cert /etc/drover/tls.crt: ENOENT: ..."), so an operator knows which
 * line of the config to fix. They are SettingErrors (code 'config', not retryable).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SettingError, doing } from '../errors/index.js';

/** The bytes of the file a setting names; a SettingError naming both when it cannot be read. */
export function readSettingFile(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new SettingError(doing(`reading ${setting} ${path}`, err), err);
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate of a PEM text (a chain or a CA bundle); at least one is required. */
export function parseCertificates(setting: string, path: string, pem: Buffer | string): [X509Certificate, ...X509Certificate[]] {
  const blocks = (typeof pem === 'string' ? pem : pem.toString('utf8')).match(PEM_CERTIFICATE) ?? [];
  const [first, ...rest] = blocks;
  if (first === undefined) throw new SettingError(`reading ${setting} ${path}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it`);
  const parse = (block: string, i: number): X509Certificate => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new SettingError(doing(`reading ${setting} ${path}: certificate ${i + 1}`, err), err);
    }
  };
  return [parse(first, 0), ...rest.map((b, i) => parse(b, i + 1))];
}
