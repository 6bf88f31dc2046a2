import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/config/duration.js';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['90s', 90 * SECOND],
    ['5m', 5 * MINUTE],
    ['2h', 2 * HOUR],
    ['21d', 21 * DAY],
    ['1h30m', HOUR + 30 * MINUTE],
    ['1d2h3m4s5ms', DAY + 2 * HOUR + 3 * MINUTE + 4 * SECOND + 5],
    ['1.5h', 1.5 * HOUR],
    ['0.5s', 500],
  ])('reads %j as a number of milliseconds', (text, expected) => {
    expect(parseDuration(text)).toBe(expected);
  });

  it('tells "ms" (milliseconds) apart from "m" (minutes)', () => {
    expect(parseDuration('5ms')).toBe(5);
    expect(parseDuration('5m')).toBe(5 * MINUTE);
    expect(parseDuration('5m5ms')).toBe(5 * MINUTE + 5);
  });

  it('accepts zero written as "0", "0s" or the number 0', () => {
    expect(parseDuration('0')).toBe(0);
    expect(parseDuration('0s')).toBe(0);
    expect(parseDuration('0ms')).toBe(0);
    expect(parseDuration(0)).toBe(0);
  });

  it('ignores whitespace around the text', () => {
    expect(parseDuration('  5m \n')).toBe(5 * MINUTE);
  });

  it('rounds fractional milliseconds to a whole number', () => {
    expect(parseDuration('0.0015s')).toBe(2);
    expect(Number.isInteger(parseDuration('1.3333s'))).toBe(true);
  });

  it.each([
    [''],
    ['   '],
    ['5'],
    ['10 10s'],
    ['5x'],
    ['m'],
    ['ms'],
    ['-5s'],
    ['+5s'],
    ['5 m'],
    ['1h 30m'],
    ['5M'],
    ['5S'],
    ['1e3s'],
    ['.5s'],
    ['5.s'],
    ['5s!'],
    ['abc'],
    ['0x10s'],
  ])('rejects %j', (text) => {
    expect(parseDuration(text)).toBeNull();
  });

  it('rejects numbers other than 0 (a bare number has no unit)', () => {
    expect(parseDuration(5)).toBeNull();
    expect(parseDuration(1_000)).toBeNull();
    expect(parseDuration(Number.NaN)).toBeNull();
  });

  it('is not confused by an earlier failed parse (the pattern keeps no state between calls)', () => {
    expect(parseDuration('5m garbage')).toBeNull();
    expect(parseDuration('5m')).toBe(5 * MINUTE);
    expect(parseDuration('1h30mX')).toBeNull();
    expect(parseDuration('1h30m')).toBe(HOUR + 30 * MINUTE);
  });
});

describe('formatDuration', () => {
  it.each([
    [500, '500ms'],
    [90 * SECOND, '1m30s'],
    [5 * MINUTE, '5m'],
    [2 * HOUR, '2h'],
    [21 * DAY, '21d'],
    [HOUR + 30 * MINUTE, '1h30m'],
    [DAY + 2 * HOUR + 3 * MINUTE + 4 * SECOND + 5, '1d2h3m4s5ms'],
  ])('writes %d ms as %j', (ms, expected) => {
    expect(formatDuration(ms)).toBe(expected);
  });

  it('writes zero as "0s"', () => {
    expect(formatDuration(0)).toBe('0s');
  });

  it('writes an amount that rounds to zero as "0s", never as an empty string', () => {
    expect(formatDuration(0.4)).toBe('0s');
    expect(formatDuration(-0.4)).toBe('0s');
  });

  it('rounds to whole milliseconds', () => {
    expect(formatDuration(1_499.6)).toBe('1s500ms');
  });

  it('marks negative durations with a leading minus', () => {
    expect(formatDuration(-90 * SECOND)).toBe('-1m30s');
  });

  it('writes text that parseDuration reads back to the same amount', () => {
    const samples = [1, 999, 1_000, 59_999, 60_000, 3_599_999, 86_400_000, 123_456_789, 21 * DAY + 1];
    for (const ms of samples) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });
});
