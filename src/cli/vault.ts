// penstockctl vault …: manage target credentials on the gateway, offline (the vault file and its key
// file, read from the config). Values are read from standard input, never from the command line (which
// other users can see in `ps`), and are never printed. Run `config reload` or restart afterwards.
import type { Command } from 'commander';
import { dirname, resolve } from 'node:path';
import { mkdirSync, readFileSync } from 'node:fs';
import { UsageError, type Io } from './io.ts';
import { protocols } from '../adapters/registry.ts';

/** commander's name for a flag's value: --some-form → someForm. */
const camel = (flag: string) => flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

interface VaultHelpers {
  io: Io;
  show(result: unknown, human: () => string): void;
}

/** The vault and key paths the daemon would use for this config file. */
async function vaultPaths(configFile: string): Promise<{ file: string; keyFile: string }> {
  const [{ loadConfig }, { protocols }] = await Promise.all([import('../config/load.ts'), import('../adapters/registry.ts')]);
  const config = loadConfig(resolve(configFile), protocols);
  return { file: config.appliance.vault_file, keyFile: config.appliance.vault_key_file };
}

function readStdinValue(): string {
  const value = readFileSync(0, 'utf8').replace(/\r?\n$/, '');
  if (value.length === 0) throw new UsageError('no value on standard input');
  return value;
}

export function addVaultCommands(program: Command, h: VaultHelpers): void {
  const vault = program.command('vault').description('target credentials, encrypted at rest (offline: works on the files, not the daemon)');
  const configOption = ['--config <file>', 'the daemon\'s config file', '/etc/penstock/penstock.yaml'] as const;

  vault.command('init-key')
    .description('create the vault key file (32 random bytes, mode 0600); refuses to overwrite one')
    .option(...configOption)
    .action(async (o: { config: string }) => {
      const { Vault } = await import('../vault/vault.ts');
      const { keyFile } = await vaultPaths(o.config);
      Vault.createKeyFile(keyFile);
      h.show({ keyFile }, () => `vault key written to ${keyFile} (keep it outside backups of the vault file)`);
    });

  vault.command('list')
    .description('entry names (never values)')
    .option(...configOption)
    .action(async (o: { config: string }) => {
      const { Vault } = await import('../vault/vault.ts');
      const { file, keyFile } = await vaultPaths(o.config);
      const names = Vault.open(file, keyFile).names();
      h.show(names, () => (names.length ? names.join('\n') : '(vault is empty)'));
    });

  const set = vault.command('set')
    .description('store a credential read from standard input, e.g.  penstockctl vault set plc-1 < key.pem')
    .argument('<name>', 'referenced from config as vault:NAME')
    .option(...configOption);
  // A protocol that keeps a secret in a form of its own (a password hash) adds a flag: --<form>.
  const forms = [...protocols.values()].flatMap((m) => Object.entries(m.secretForms ?? {}));
  for (const [form, { description }] of forms) set.option(`--${form}`, description);
  set
    .action(async (name: string, o: Record<string, string | boolean | undefined> & { config: string }) => {
      const { Vault } = await import('../vault/vault.ts');
      const { file, keyFile } = await vaultPaths(o.config);
      let value = readStdinValue();
      const chosen = forms.filter(([form]) => o[camel(form)] === true);
      if (chosen.length > 1) throw new UsageError(`choose one of ${chosen.map(([f]) => `--${f}`).join(', ')}`);
      if (chosen[0]) value = await chosen[0][1].encode(value);
      mkdirSync(dirname(file), { recursive: true, mode: 0o750 });
      Vault.open(file, keyFile).set(name, value);
      h.show({ name, stored: true }, () => `stored vault:${name}`);
    });

  vault.command('delete')
    .description('remove an entry')
    .argument('<name>')
    .option(...configOption)
    .action(async (name: string, o: { config: string }) => {
      const { Vault } = await import('../vault/vault.ts');
      const { file, keyFile } = await vaultPaths(o.config);
      const removed = Vault.open(file, keyFile).delete(name);
      h.show({ name, removed }, () => (removed ? `removed vault:${name}` : `no entry vault:${name}`));
    });
}
