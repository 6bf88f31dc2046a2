import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock/clock.js';
import { ConfigError, type DroverConfig } from '../../src/config/config.js';
import { ConfigLoader, parseConfigText, readConfigFile } from '../../src/config/loader.js';

const templates = { web: { image: 'web:1' } };

function configObject(size: number): Record<string, unknown> {
  return { templates, groups: { default: { web: { size, template: 'web' } } } };
}

function yamlWithSize(size: number | string): string {
  return ['templates:', '  web:', '    image: web:1', 'groups:', '  default:', '    web:', `      size: ${size}`, '      template: web', ''].join('\n');
}

function sizeOf(config: DroverConfig): number | undefined {
  return config.groups.default?.web?.size;
}

describe('ConfigLoader.fromObject', () => {
  it('holds the parsed config', () => {
    const loader = ConfigLoader.fromObject(configObject(3));
    expect(sizeOf(loader.getCurrent())).toBe(3);
    expect(loader.getCurrent().shard.workers).toBe(16);
    expect(loader.lastError).toBeNull();
    expect(loader.filePath).toBeNull();
  });

  it('throws a ConfigError naming the problem when the object is invalid', () => {
    let caught: unknown;
    try {
      ConfigLoader.fromObject(configObject(-1));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).issues).toEqual([{ path: 'groups.default.web.size', message: 'must be >= 0' }]);
  });

  it('treats reload() as a no-op', () => {
    const loader = ConfigLoader.fromObject(configObject(3));
    const before = loader.getCurrent();
    expect(loader.reload()).toEqual({ ok: true, changed: false });
    expect(loader.getCurrent()).toBe(before);
  });
});

describe('ConfigLoader.update', () => {
  it('replaces the config and tells onChange listeners the next and previous configs', () => {
    const loader = ConfigLoader.fromObject(configObject(3));
    const first = loader.getCurrent();
    const seen: Array<[number | undefined, number | undefined]> = [];
    loader.onChange((next, previous) => seen.push([sizeOf(next), sizeOf(previous)]));
    expect(loader.update(configObject(5))).toEqual({ ok: true, changed: true });
    expect(sizeOf(loader.getCurrent())).toBe(5);
    expect(loader.getCurrent()).not.toBe(first);
    expect(seen).toEqual([[5, 3]]);
  });

  it('keeps the previous config when given an invalid one, and returns and reports the error', () => {
    const loader = ConfigLoader.fromObject(configObject(3));
    const before = loader.getCurrent();
    const invalid: ConfigError[] = [];
    let changes = 0;
    loader.onInvalid((error) => invalid.push(error));
    loader.onChange(() => changes++);

    const result = loader.update({ ...configObject(3), shard: { workers: 0 } });

    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toBeInstanceOf(ConfigError);
    expect(result.error.issues).toEqual([{ path: 'shard.workers', message: 'must be >= 1' }]);
    expect(loader.getCurrent()).toBe(before);
    expect(loader.lastError).toBe(result.error);
    expect(invalid).toEqual([result.error]);
    expect(changes).toBe(0);
  });

  it('clears lastError once a valid config is accepted', () => {
    const loader = ConfigLoader.fromObject(configObject(3));
    loader.update(configObject(-5));
    expect(loader.lastError).not.toBeNull();
    loader.update(configObject(4));
    expect(loader.lastError).toBeNull();
    expect(sizeOf(loader.getCurrent())).toBe(4);
  });

  it('stops calling a listener once it unsubscribes', () => {
    const loader = ConfigLoader.fromObject(configObject(1));
    let changes = 0;
    let invalids = 0;
    const offChange = loader.onChange(() => changes++);
    const offInvalid = loader.onInvalid(() => invalids++);
    loader.update(configObject(2));
    loader.update(configObject(-2));
    offChange();
    offInvalid();
    loader.update(configObject(3));
    loader.update(configObject(-3));
    expect(changes).toBe(1);
    expect(invalids).toBe(1);
  });
});

describe('parseConfigText', () => {
  it('reads YAML into a config', () => {
    expect(sizeOf(parseConfigText(yamlWithSize(7)))).toBe(7);
  });

  it('refuses an empty, whitespace-only, "---"-only or null document', () => {
    for (const text of ['', '   \n\t\n', '---\n', '--- \n...\n', 'null\n', '~']) {
      expect(() => parseConfigText(text), JSON.stringify(text)).toThrow(/the config is empty/);
    }
  });

  it('reports a YAML syntax error as a ConfigError saying on which line', () => {
    const text = ['templates:', '  web:', '    image: web:1', 'groups:', '  default: [unclosed', '    web: {'].join('\n');
    let caught: unknown;
    try {
      parseConfigText(text, 'drover.yaml');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const error = caught as ConfigError;
    expect(error.message).toMatch(/^invalid drover\.yaml: parsing YAML \(line \d+, column \d+\)/);
    expect(error.issues).toHaveLength(1);
  });

  it('gives the line of the YAML syntax error', () => {
    const text = ['shard:', '  workers: 4', '  id: "unterminated', 'groups: {}'].join('\n');
    expect(() => parseConfigText(text)).toThrow(/line [34]\b/);
  });

  it('reports schema problems in YAML with their paths', () => {
    expect(() => parseConfigText(yamlWithSize(-1))).toThrow(/groups\.default\.web\.size: must be >= 0/);
  });
});

describe('file-backed ConfigLoader', () => {
  let dir: string;
  let file: string;
  const loaders: ConfigLoader[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'drover-config-'));
    file = join(dir, 'drover.yaml');
  });

  afterEach(() => {
    for (const loader of loaders.splice(0)) loader.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function open(options: Parameters<typeof ConfigLoader.fromFile>[1] = {}): ConfigLoader {
    const loader = ConfigLoader.fromFile(file, options);
    loaders.push(loader);
    return loader;
  }

  /** Replaces the file in one step, as editors do, so a reader never sees it half-written. */
  function replaceFile(text: string): void {
    const temp = join(dir, `.drover.yaml.${Math.random().toString(36).slice(2)}`);
    writeFileSync(temp, text);
    renameSync(temp, file);
  }

  /** Resolves with the first accepted config that satisfies `predicate`. */
  function nextChange(loader: ConfigLoader, predicate: (config: DroverConfig) => boolean): Promise<{ next: DroverConfig; previous: DroverConfig }> {
    return new Promise((resolve) => {
      const off = loader.onChange((next, previous) => {
        if (!predicate(next)) return;
        off();
        resolve({ next, previous });
      });
    });
  }

  function nextInvalid(loader: ConfigLoader): Promise<ConfigError> {
    return new Promise((resolve) => {
      const off = loader.onInvalid((error) => {
        off();
        resolve(error);
      });
    });
  }

  it('reads the YAML file it is given', () => {
    writeFileSync(file, yamlWithSize(2));
    const loader = open({ watch: false });
    expect(sizeOf(loader.getCurrent())).toBe(2);
    expect(loader.filePath).toBe(file);
    expect(loader.lastError).toBeNull();
  });

  it('throws a ConfigError when the file does not exist', () => {
    expect(() => ConfigLoader.fromFile(join(dir, 'missing.yaml'), { watch: false })).toThrow(ConfigError);
    expect(() => readConfigFile(join(dir, 'missing.yaml'))).toThrow(/reading .*missing\.yaml/);
  });

  it('throws a ConfigError mentioning the line when the file is not valid YAML', () => {
    writeFileSync(file, 'groups:\n  default:\n    web: [1, 2\n');
    expect(() => ConfigLoader.fromFile(file, { watch: false })).toThrow(ConfigError);
    expect(() => ConfigLoader.fromFile(file, { watch: false })).toThrow(/line \d+/);
  });

  it('throws a ConfigError naming the field when the file is invalid at the start', () => {
    writeFileSync(file, yamlWithSize(-3));
    expect(() => ConfigLoader.fromFile(file, { watch: false })).toThrow(/invalid drover\.yaml: groups\.default\.web\.size: must be >= 0/);
  });

  it('reload() applies a changed file and reports an unchanged one as unchanged', () => {
    writeFileSync(file, yamlWithSize(2));
    const loader = open({ watch: false });
    let changes = 0;
    loader.onChange(() => changes++);
    expect(loader.reload()).toEqual({ ok: true, changed: false });
    expect(changes).toBe(0);
    writeFileSync(file, yamlWithSize(6));
    expect(loader.reload()).toEqual({ ok: true, changed: true });
    expect(sizeOf(loader.getCurrent())).toBe(6);
    expect(changes).toBe(1);
  });

  it('reload() keeps the previous config when the file becomes invalid, and applies it again once fixed', () => {
    writeFileSync(file, yamlWithSize(2));
    const loader = open({ watch: false });
    const before = loader.getCurrent();

    writeFileSync(file, yamlWithSize('lots'));
    const bad = loader.reload();
    expect(bad.ok).toBe(false);
    expect(loader.getCurrent()).toBe(before);
    expect(loader.lastError?.message).toContain('groups.default.web.size');

    // Restoring the very text that was in force before counts as a fix.
    writeFileSync(file, yamlWithSize(2));
    expect(loader.reload()).toEqual({ ok: true, changed: true });
    expect(loader.lastError).toBeNull();
  });

  it('reload() keeps the previous config when the file is removed', () => {
    writeFileSync(file, yamlWithSize(2));
    const loader = open({ watch: false });
    rmSync(file);
    const result = loader.reload();
    expect(result.ok).toBe(false);
    expect(loader.lastError?.message).toMatch(/reading/);
    expect(sizeOf(loader.getCurrent())).toBe(2);
  });

  it('does not re-read the file by itself when watching is off', { timeout: 20_000 }, async () => {
    writeFileSync(file, yamlWithSize(2));
    const clock = new ManualClock();
    const loader = open({ watch: false, clock, debounceMs: 10 });
    // A watching loader on the same file shows when the change has been noticed.
    const witnessClock = new ManualClock();
    open({ clock: witnessClock, debounceMs: 10 });
    writeFileSync(file, yamlWithSize(9));
    await expect.poll(() => witnessClock.pendingTimers(), { timeout: 10_000 }).toBe(1);
    expect(clock.pendingTimers()).toBe(0);
    await clock.advance(1_000);
    expect(sizeOf(loader.getCurrent())).toBe(2);
  });

  it('hot-reloads the file when it changes, and keeps the previous config when it turns invalid', { timeout: 20_000 }, async () => {
    writeFileSync(file, yamlWithSize(2));
    const loader = open({ debounceMs: 20 });
    const sizesSeen: Array<number | undefined> = [];
    loader.onChange((next) => sizesSeen.push(sizeOf(next)));

    // An edit in place.
    const changed = nextChange(loader, (c) => sizeOf(c) === 5);
    writeFileSync(file, yamlWithSize(5));
    const { next, previous } = await changed;
    expect(sizeOf(next)).toBe(5);
    expect(sizeOf(loader.getCurrent())).toBe(5);
    expect(loader.lastError).toBeNull();
    // The previous config handed to the listener is one that was in force before.
    expect(sizeOf(previous)).not.toBe(5);

    // A replacement with an invalid file.
    const inForce = loader.getCurrent();
    const changesBefore = sizesSeen.length;
    const invalid = nextInvalid(loader);
    replaceFile(yamlWithSize(-4));
    const error = await invalid;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.issues).toEqual([{ path: 'groups.default.web.size', message: 'must be >= 0' }]);
    expect(loader.getCurrent()).toBe(inForce);
    expect(loader.lastError?.message).toContain('groups.default.web.size');
    expect(sizesSeen.length).toBe(changesBefore);

    // Fixing the file applies it.
    const fixed = nextChange(loader, (c) => sizeOf(c) === 8);
    replaceFile(yamlWithSize(8));
    await fixed;
    expect(sizeOf(loader.getCurrent())).toBe(8);
    expect(loader.lastError).toBeNull();
  });

  it('ignores changes to other files in the same directory', { timeout: 20_000 }, async () => {
    writeFileSync(file, yamlWithSize(2));
    const other = join(dir, 'other.yaml');
    writeFileSync(other, yamlWithSize(1));
    const clock = new ManualClock();
    open({ clock, debounceMs: 50 });
    // A loader watching the other file shows when the change has been noticed.
    const witnessClock = new ManualClock();
    loaders.push(ConfigLoader.fromFile(other, { clock: witnessClock, debounceMs: 50 }));
    writeFileSync(other, yamlWithSize(7));
    await expect.poll(() => witnessClock.pendingTimers(), { timeout: 10_000 }).toBe(1);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('waits for a burst of writes to settle (on its clock) and then reads the file once', { timeout: 20_000 }, async () => {
    writeFileSync(file, yamlWithSize(2));
    const clock = new ManualClock();
    const loader = open({ clock, debounceMs: 50 });
    const sizesSeen: Array<number | undefined> = [];
    loader.onChange((next) => sizesSeen.push(sizeOf(next)));

    writeFileSync(file, yamlWithSize(3));
    writeFileSync(file, yamlWithSize(4));
    await expect.poll(() => clock.pendingTimers(), { timeout: 10_000 }).toBe(1);
    // Nothing is read before the debounce has passed.
    expect(sizeOf(loader.getCurrent())).toBe(2);
    await clock.advance(49);
    expect(sizeOf(loader.getCurrent())).toBe(2);
    await clock.advance(1);
    expect(sizeOf(loader.getCurrent())).toBe(4);
    expect(sizesSeen).toEqual([4]);
  });

  it('stops reacting to the file once closed', { timeout: 20_000 }, async () => {
    writeFileSync(file, yamlWithSize(2));
    const clock = new ManualClock();
    const loader = open({ clock, debounceMs: 50 });
    writeFileSync(file, yamlWithSize(3));
    await expect.poll(() => clock.pendingTimers(), { timeout: 10_000 }).toBe(1);
    loader.close();
    // The pending debounce is cancelled too.
    expect(clock.pendingTimers()).toBe(0);
    await clock.advance(1_000);
    expect(sizeOf(loader.getCurrent())).toBe(2);
  });
});
