// Small globs for names policy compares: dotted names such as profile points (`setpoints.*`), node
// identifiers and file paths. `*` never crosses a separator, so `setpoints.*` cannot reach
// `setpoints.x.y` and `/var/log/*` cannot reach `/var/log/a/b`. Only paths know `**` (zero or more
// whole segments).

/** `*` matches any run of characters (including none) within one segment; everything else is literal. */
export function matchSegment(pattern: string, text: string): boolean {
  // Greedy two-pointer wildcard match with backtracking to the last star: linear in practice.
  let p = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === text[t]) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

/** A dotted name glob: the same number of segments, each matched by `matchSegment`. */
export function matchDotted(pattern: string, name: string): boolean {
  const ps = pattern.split('.');
  const ns = name.split('.');
  return ps.length === ns.length && ps.every((seg, i) => matchSegment(seg, ns[i]!));
}

/** A `/`-separated path glob; a `**` segment matches zero or more whole segments. */
export function matchPath(pattern: string, path: string): boolean {
  return matchSegments(pattern.split('/'), 0, path.split('/'), 0);
}

function matchSegments(ps: string[], i: number, ns: string[], j: number): boolean {
  if (i === ps.length) return j === ns.length;
  if (ps[i] === '**') {
    for (let k = j; k <= ns.length; k++) if (matchSegments(ps, i + 1, ns, k)) return true;
    return false;
  }
  return j < ns.length && matchSegment(ps[i]!, ns[j]!) && matchSegments(ps, i + 1, ns, j + 1);
}
