/** The XML writer: text is escaped exactly once, markup never. */
import { describe, expect, it } from 'vitest';
import { document, el, list, text } from './xml.js';

describe('xml', () => {
  it('escapes text content, including text that looks like markup, and nests markup as is', () => {
    expect(el('a', 'x < y & "z" \'w\' >', el('b', '<b/>')).markup).toBe('<a>x &lt; y &amp; &quot;z&quot; &apos;w&apos; &gt;<b>&lt;b/&gt;</b></a>');
  });

  it('writes empty elements self-closed, leaves absent values out, and lists entries as items', () => {
    expect(el('groupSet').markup).toBe('<groupSet/>');
    expect(el('x', text('missing', undefined), text('zero', 0), text('no', false)).markup).toBe('<x><zero>0</zero><no>false</no></x>');
    expect(list('tagSet', [['k', 'v']], ([k, v]) => [text('key', k), text('value', v)]).markup).toBe('<tagSet><item><key>k</key><value>v</value></item></tagSet>');
  });

  it('writes a document with its declaration and namespace', () => {
    expect(document('R', 'http://ec2.amazonaws.com/doc/2016-11-15/', text('requestId', 'r1'))).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<R xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r1</requestId></R>',
    );
  });
});
