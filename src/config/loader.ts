/**
 * ConfigLoader holds the config in force. A file-backed loader re-reads its YAML file when it
 * changes; an invalid file (or object) never replaces the config in force: the error is kept,
 * reported to `onInvalid` listeners, and the previous config stays.
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { SystemClock, type Clock, type TimerHandle } from '../clock/index.js';
import { errorMessage } from '../errors/index.js';
import { ConfigError, parseConfig, type DroverConfig } from './config.js';

export type ConfigChangeListener = (next: DroverConfig, previous: DroverConfig) => void;
export type ConfigInvalidListener = (error: ConfigError) => void;

export interface FileLoaderOptions {
  /** Re-read the file when it changes (default true). */
  watch?: boolean;
  /** Clock for the short debounce after a change (default: the system clock). */
  clock?: Clock;
  /** How long to wait for a burst of writes to settle before reading (default 50 ms). */
  debounceMs?: number;
}

export type ReloadResult = { ok: true; changed: boolean } | { ok: false; error: ConfigError };

/** Reads and validates a YAML config file. Throws ConfigError naming every problem. */
export function readConfigFile(path: string): { config: DroverConfig; text: string } {
  const source = basename(path);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '', message: `reading ${path}: ${errorMessage(err)}` }], source);
  }
  return { config: parseConfigText(text, source), text };
}

/** Parses YAML text as a config. Throws ConfigError. */
export function parseConfigText(text: string, source = 'config'): DroverConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` (line ${err.linePos[0].line}, column ${err.linePos[0].col})` : '';
    throw new ConfigError([{ path: '', message: `parsing YAML${where}: ${errorMessage(err).split('\n')[0] ?? ''}` }], source);
  }
  const parsed = parseConfig(raw, source);
  if (!parsed.ok) throw parsed.error;
  return parsed.config;
}

export class ConfigLoader {
  private current: DroverConfig;
  private lastText: string | undefined;
  private lastErrorValue: ConfigError | null = null;
  private readonly changeListeners = new Set<ConfigChangeListener>();
  private readonly invalidListeners = new Set<ConfigInvalidListener>();
  private watcher: FSWatcher | undefined;
  private debounce: TimerHandle | undefined;

  private constructor(
    config: DroverConfig,
    private readonly path: string | null,
    private readonly options: FileLoaderOptions = {},
  ) {
    this.current = config;
  }

  /** A loader over a fixed object. Throws ConfigError when the object is invalid. */
  static fromObject(input: unknown): ConfigLoader {
    const parsed = parseConfig(input);
    if (!parsed.ok) throw parsed.error;
    return new ConfigLoader(parsed.config, null);
  }

  /**
   * A loader over a YAML file, re-read when it changes (unless `watch: false`). Throws
   * ConfigError when the file is unreadable or invalid at the start.
   */
  static fromFile(path: string, options: FileLoaderOptions = {}): ConfigLoader {
    const absolute = resolve(path);
    const { config, text } = readConfigFile(absolute);
    const loader = new ConfigLoader(config, absolute, options);
    loader.lastText = text;
    if (options.watch !== false) loader.startWatching();
    return loader;
  }

  /** The config in force. */
  getCurrent(): DroverConfig {
    return this.current;
  }

  /** The file this loader reads, or null for an object loader. */
  get filePath(): string | null {
    return this.path;
  }

  /** The error of the last rejected config, or null when the last load succeeded. */
  get lastError(): ConfigError | null {
    return this.lastErrorValue;
  }

  onChange(listener: ConfigChangeListener): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  onInvalid(listener: ConfigInvalidListener): () => void {
    this.invalidListeners.add(listener);
    return () => this.invalidListeners.delete(listener);
  }

  /**
   * Replaces the config with a new object. An invalid object is rejected (the previous config
   * stays in force) and the error is returned.
   */
  update(input: unknown): ReloadResult {
    const parsed = parseConfig(input);
    if (!parsed.ok) return this.reject(parsed.error);
    return this.accept(parsed.config);
  }

  /** Re-reads the file now. For object loaders this is a no-op. */
  reload(): ReloadResult {
    if (!this.path) return { ok: true, changed: false };
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      return this.reject(new ConfigError([{ path: '', message: `reading ${this.path}: ${errorMessage(err)}` }], basename(this.path)));
    }
    if (text === this.lastText && this.lastErrorValue === null) return { ok: true, changed: false };
    try {
      const config = parseConfigText(text, basename(this.path));
      this.lastText = text;
      return this.accept(config);
    } catch (err) {
      if (err instanceof ConfigError) return this.reject(err);
      throw err;
    }
  }

  /** Stops watching the file. */
  close(): void {
    this.debounce?.cancel();
    this.watcher?.close();
    this.watcher = undefined;
  }

  private accept(config: DroverConfig): ReloadResult {
    const previous = this.current;
    this.current = config;
    this.lastErrorValue = null;
    for (const listener of this.changeListeners) listener(config, previous);
    return { ok: true, changed: true };
  }

  private reject(error: ConfigError): ReloadResult {
    this.lastErrorValue = error;
    for (const listener of this.invalidListeners) listener(error);
    return { ok: false, error };
  }

  private startWatching(): void {
    if (!this.path) return;
    const file = basename(this.path);
    const clock = this.options.clock ?? new SystemClock();
    const debounceMs = this.options.debounceMs ?? 50;
    // Watch the directory: editors often replace the file (rename) instead of writing it.
    this.watcher = watch(dirname(this.path), { persistent: false }, (_event, name) => {
      if (name !== null && name !== file) return;
      this.debounce?.cancel();
      this.debounce = clock.schedule(clock.nowMs() + debounceMs, () => {
        this.reload();
      });
    });
    this.watcher.on('error', () => {
      // The directory vanished; keep the config in force.
    });
  }
}
