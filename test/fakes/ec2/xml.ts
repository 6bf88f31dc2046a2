/**
 * A tiny XML writer for the fake EC2's answers. EC2 answers are small, flat documents; all
 * that matters is that text is escaped exactly once. Markup is therefore a branded value (`Xml`)
 * that only these functions make: a plain string passed as content is always text and always
 * escaped, so a tag value such as `<b>&` can never break or inject markup.
 */

/** Markup made by this module. Only `el`, `text`, `list` and `frag` produce it. */
export interface Xml {
  readonly markup: string;
}

/** What an element may contain: markup, or text (escaped); `undefined` and `null` are skipped. */
export type XmlContent = Xml | string | number | boolean | undefined | null;

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** Escapes text for element content or attribute values. */
export function escapeXml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function isXml(value: XmlContent): value is Xml {
  return typeof value === 'object' && value !== null;
}

function contentOf(children: readonly XmlContent[]): string {
  let out = '';
  for (const child of children) {
    if (child === undefined || child === null) continue;
    out += isXml(child) ? child.markup : escapeXml(String(child));
  }
  return out;
}

/** `<name>children</name>`, or `<name/>` when nothing is inside. */
export function el(name: string, ...children: XmlContent[]): Xml {
  const inner = contentOf(children);
  return { markup: inner === '' ? `<${name}/>` : `<${name}>${inner}</${name}>` };
}

/**
 * An element holding one value, left out entirely when the value is `undefined` or `null` (EC2
 * omits absent members rather than sending them empty).
 */
export function text(name: string, value: string | number | boolean | undefined | null): Xml {
  if (value === undefined || value === null) return { markup: '' };
  return el(name, String(value));
}

/** An EC2 list: `<name><item>…</item>…</name>`; each entry is the inside of one `item`. */
export function list<T>(name: string, items: readonly T[], item: (value: T) => XmlContent[]): Xml {
  return el(name, ...items.map((value) => el('item', ...item(value))));
}

/** Several siblings as one piece of markup. */
export function frag(...children: XmlContent[]): Xml {
  return { markup: contentOf(children) };
}

/** A whole document with the XML declaration and a root element carrying `xmlns`. */
export function document(root: string, xmlns: string | undefined, ...children: XmlContent[]): string {
  const open = xmlns === undefined ? `<${root}>` : `<${root} xmlns="${escapeXml(xmlns)}">`;
  return `<?xml version="1.0" encoding="UTF-8"?>\n${open}${contentOf(children)}</${root}>`;
}
