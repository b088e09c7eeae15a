// TLS material is given either as PEM text or as a path to a PEM file: text that contains a PEM
// header is used as is, anything else is read as a path. Read once, at start-up.
import { readFileSync } from 'node:fs';
import { PenstockError } from '../common/errors.ts';

export function pemOrFile(value: string | Buffer, what: string): string {
  const text = typeof value === 'string' ? value : value.toString('utf8');
  if (text.includes('-----BEGIN ')) return text;
  try {
    const fromFile = readFileSync(text, 'utf8');
    if (!fromFile.includes('-----BEGIN ')) throw new Error('no PEM block in file');
    return fromFile;
  } catch (err) {
    throw new PenstockError('PS_CONFIG_READ', `${what}: cannot read a PEM file at ${text}`, { what, path: text }, { cause: err });
  }
}
