// The README stays the front page and docs/ holds the reference (issue 13, item 7): the README opens with
// the two commands, every relative link in README.md and docs/**/*.md reaches a file (and, for a link
// into a Markdown file, a heading there), and every registered front door has a page that follows
// docs/protocols/TEMPLATE.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { tempDir } from '../support.ts';
import { protocols as registered } from '../../src/adapters/registry.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/** README.md and every .md below docs/, as absolute paths. */
function pages(root: string): string[] {
  const found = [join(root, 'README.md')];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.md')) found.push(path);
    }
  };
  if (existsSync(join(root, 'docs'))) walk(join(root, 'docs'));
  return found;
}

/** The text as a reader sees links in it: no fenced code blocks, no code spans, no HTML comments. */
function prose(markdown: string): string {
  return markdown
    .replace(/^```[^\n]*\n[\s\S]*?^```[^\n]*$/gm, '')
    .replace(/<!--[\s\S]*?-->/g, '')
    .replace(/``[^`]*?``|`[^`\n]*`/g, '');
}

/** GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const ids = new Set<string>();
  const seen = new Map<string, number>();
  const body = markdown.replace(/^```[^\n]*\n[\s\S]*?^```[^\n]*$/gm, '');
  for (const [, heading] of body.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = heading!.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    ids.add(n === 0 ? base : `${base}-${n}`);
  }
  return ids;
}

/** Every relative link of the pages that leads to no file, or to no heading of a Markdown file. */
function brokenLinks(root: string, files: string[]): string[] {
  const problems: string[] = [];
  for (const file of files) {
    const text = prose(readFileSync(file, 'utf8'));
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target!)) continue; // https:, mailto: — not ours to check
      const [path, anchor] = target!.split('#', 2) as [string, string | undefined];
      const to = path === '' ? file : resolve(dirname(file), decodeURI(path));
      const where = `${relative(root, file)}: ${target}`;
      if (!existsSync(to)) problems.push(`${where}: no such file`);
      else if (anchor !== undefined && to.endsWith('.md') && !anchors(readFileSync(to, 'utf8')).has(anchor)) problems.push(`${where}: no such heading`);
    }
  }
  return problems;
}

test('the README opens with the demo command and the test command, exactly', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const top = readme.slice(0, readme.search(/^(## |---$)/m));
  const blocks = [...top.matchAll(/^```[^\n]*\n([\s\S]*?)^```$/gm)].map((m) => m[1]!.trim());
  assert.deepEqual(blocks, ['npm ci && npm run demo', 'bash scripts/install-deps.sh && npm ci && npm test']);
});

test('every relative link in README.md and docs/ reaches a file and heading that exist', () => {
  const files = pages(ROOT);
  assert.ok(files.length >= 9, `README and the docs pages found (${files.length})`);
  assert.deepEqual(brokenLinks(ROOT, files), []);
});

test('the link check finds a missing file, a missing heading and ignores links in code', () => {
  const tmp = tempDir('penstock-docs-');
  try {
    mkdirSync(join(tmp.dir, 'docs'));
    writeFileSync(join(tmp.dir, 'docs', 'a.md'), '# A page\n\n## Known limits: `x` too\n');
    writeFileSync(
      join(tmp.dir, 'README.md'),
      [
        '[ok](docs/a.md#known-limits-x-too) [here](#top-1) [web](https://example.com/x)',
        '[gone](docs/b.md) [no heading](docs/a.md#limits)',
        '`[in code](docs/c.md)`',
        '```',
        '[in a block](docs/d.md)',
        '```',
        '# Top',
        '# Top',
      ].join('\n'),
    );
    assert.deepEqual(brokenLinks(tmp.dir, pages(tmp.dir)), ['README.md: docs/b.md: no such file', 'README.md: docs/a.md#limits: no such heading']);
  } finally {
    tmp.cleanup();
  }
});

test('every front door page has the template sections, in the template order', () => {
  const sections = (file: string): string[] => [...readFileSync(file, 'utf8').matchAll(/^## (.+)$/gm)].map((m) => m[1]!);
  const dir = join(ROOT, 'docs', 'protocols');
  const template = sections(join(dir, 'TEMPLATE.md'));
  assert.equal(template.length, 8);
  const protocols = readdirSync(dir).filter((n) => n.endsWith('.md') && n !== 'TEMPLATE.md');
  // One page per protocol in the module table (src/adapters/registry.ts): a new front door brings its page.
  assert.deepEqual(protocols.sort(), [...registered.keys()].map((name) => `${name}.md`).sort());
  for (const name of protocols) assert.deepEqual(sections(join(dir, name)), template, name);
  // Each front door's page links its adapter's own README.
  for (const name of protocols) assert.ok(readFileSync(join(dir, name), 'utf8').includes(`(../../src/adapters/${name.replace('.md', '')}/README.md)`), name);
});
