/**
 * Prints the hottest functions of a V8 CPU profile (`node --cpu-prof`): self time and total
 * (inclusive) time, by function and source location.
 *
 *   npx tsx bench/profile-top.ts bench/profiles/CPU.*.cpuprofile [--top 25]
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function label(frame: CallFrame): string {
  const name = frame.functionName || '(anonymous)';
  if (!frame.url) return name;
  const file = frame.url.replace(/^file:\/\//, '').replace(/^.*\/(src|bench|node_modules)\//, '$1/');
  return `${name} ${file}:${frame.lineNumber + 1}`;
}

export function summarize(path: string, top: number): string {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const own = label(node.callFrame);
    self.set(own, (self.get(own) ?? 0) + us);
    // Inclusive: credit every distinct frame on the stack once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur);
      if (!frame) break;
      const name = label(frame.callFrame);
      if (seen.has(name)) continue;
      seen.add(name);
      total.set(name, (total.get(name) ?? 0) + us);
    }
  }
  const wallMs = (profile.endTime - profile.startTime) / 1000;
  const fmt = (entries: Map<string, number>): string =>
    [...entries]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => `${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / 1000 / wallMs).toFixed(1).padStart(5)}%  ${name}`)
      .join('\n');
  return `${path}: ${wallMs.toFixed(0)} ms profiled\n-- self time --\n${fmt(self)}\n-- total time --\n${fmt(total)}\n`;
}

const args = process.argv.slice(2);
const topIndex = args.indexOf('--top');
const top = topIndex >= 0 ? Number(args[topIndex + 1] ?? 25) : 25;
const files = args.filter((a, i) => a !== '--top' && (topIndex < 0 || i !== topIndex + 1));
for (const file of files) process.stdout.write(summarize(file, top));
