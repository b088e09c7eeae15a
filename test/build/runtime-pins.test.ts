// The pinned runtime's integrity (scripts/verify-runtime.mjs, scripts/runtime-pins.json): the binary the
// npm `node` package installs outside package-lock.json, and the tarball rebuild-native takes headers from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pinsFor, readPins, tarballIntegrityOk, verifyRuntime } from '../../scripts/verify-runtime.mjs';
import { tempDir } from '../support.ts';

const ROOT = join(import.meta.dirname, '..', '..');

test('the installed runtime is the pinned version, byte for byte, and package.json pins the same version', () => {
  const pins = readPins(ROOT);
  assert.equal(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).dependencies.node, pins.version);
  assert.deepEqual(verifyRuntime(ROOT), { checked: true, version: pins.version });
  // What the tests run on is that binary.
  assert.equal(process.version, `v${pins.version}`);
  for (const arch of ['x64', 'arm64']) assert.match(pinsFor(pins, 'linux', arch).binarySha512, /^[0-9a-f]{128}$/);
  assert.throws(() => pinsFor(pins, 'linux', 'ia32'), /no pinned Node runtime for linux-ia32/);
});

test('a runtime binary that differs from its pin by one byte is refused', () => {
  const tmp = tempDir('penstock-pins-');
  try {
    const binary = Buffer.from('#!/bin/sh\necho pretend node\n');
    const pins = { version: '24.21.0', [`${process.platform}-${process.arch}`]: { package: 'x', integrity: 'sha512-AA==', binarySha512: createHash('sha512').update(binary).digest('hex') } };
    mkdirSync(join(tmp.dir, 'node_modules', 'node', 'bin'), { recursive: true });
    writeFileSync(join(tmp.dir, 'package.json'), JSON.stringify({ dependencies: { node: '24.21.0' } }));
    writeFileSync(join(tmp.dir, 'node_modules', 'node', 'package.json'), JSON.stringify({ version: '24.21.0' }));
    writeFileSync(join(tmp.dir, 'node_modules', 'node', 'bin', 'node'), binary);
    assert.equal(verifyRuntime(tmp.dir, pins).checked, true);
    binary[12] = binary[12]! ^ 1;
    writeFileSync(join(tmp.dir, 'node_modules', 'node', 'bin', 'node'), binary);
    assert.throws(() => verifyRuntime(tmp.dir, pins), /is not the pinned 24\.21\.0 runtime/);
    writeFileSync(join(tmp.dir, 'node_modules', 'node', 'package.json'), JSON.stringify({ version: '24.20.0' }));
    assert.throws(() => verifyRuntime(tmp.dir, pins), /node_modules\/node is 24\.20\.0, pinned 24\.21\.0/);
  } finally {
    tmp.cleanup();
  }
});

test('a headers tarball is used only when it matches its pinned integrity', () => {
  const tmp = tempDir('penstock-pins-');
  try {
    mkdirSync(join(tmp.dir, 'package', 'include', 'node'), { recursive: true });
    writeFileSync(join(tmp.dir, 'package', 'include', 'node', 'node_version.h'), '#define NODE_MAJOR_VERSION 24\n');
    const tgz = join(tmp.dir, 'node-linux-test.tgz');
    execFileSync('tar', ['czf', tgz, '-C', tmp.dir, 'package']);
    const integrity = `sha512-${createHash('sha512').update(readFileSync(tgz)).digest('base64')}`;
    assert.equal(tarballIntegrityOk(tgz, integrity), true);
    const bytes = readFileSync(tgz);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
    writeFileSync(tgz, bytes);
    assert.equal(tarballIntegrityOk(tgz, integrity), false);
    assert.throws(() => tarballIntegrityOk(tgz, 'sha1-abc'), /not a sha512 integrity string/);
  } finally {
    tmp.cleanup();
  }
});
