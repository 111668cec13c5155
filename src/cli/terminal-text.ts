/**
 * Text from the daemon made safe for a terminal. Labels, names and messages carry whatever a
 * container, an image or another node put in them: an escape sequence would drive the terminal
 * (clear the screen, retitle the window, recolour what follows), a newline or carriage return
 * would forge lines and table rows, a bidi override would show text in another order than it is.
 *
 * Every table and text formatter of the CLI writes daemon values through
 * {@link escapeTerminalText} (tables do it per cell, see table.ts); JSON output escapes the same
 * characters as `\uXXXX` ({@link terminalJson}), so it stays valid JSON with the same values; and
 * `print` neutralizes anything that slipped through ({@link guardTerminalOutput}).
 */

/**
 * Characters a terminal acts on or that change how a line reads: C0 controls, DEL, C1 controls
 * (U+0080–U+009F; U+009B is a one-character CSI on many terminals), the Unicode line and paragraph
 * separators, and the bidirectional marks, embeddings, overrides and isolates.
 */
const UNSAFE = '\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069';
const UNSAFE_OR_BACKSLASH = new RegExp(`[\\\\${UNSAFE}]`, 'g');
const UNSAFE_EXCEPT_NEWLINE = new RegExp(
  `[${UNSAFE.replace('\\u0000-\\u001f', '\\u0000-\\u0009\\u000b-\\u001f')}]`,
  'g',
);
/** What JSON.stringify leaves raw (it escapes C0 controls, `"` and `\` itself). */
const UNSAFE_IN_JSON = new RegExp(`[${UNSAFE.replace('\\u0000-\\u001f', '')}]`, 'g');

const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\' };

function visible(c: string): string {
  const code = c.charCodeAt(0);
  return (
    named[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`)
  );
}

/**
 * One value on one line, shown as it is: every character of {@link UNSAFE} as a visible escape
 * (`\n`, `\r`, `\t`, `\x1b`, `\x9b`, `\u202e`) and backslashes doubled, so that the escaping is
 * unambiguous (a value holding the two characters `\n` prints as `\\n`).
 */
export function escapeTerminalText(text: string): string {
  return text.replace(UNSAFE_OR_BACKSLASH, visible);
}

/** Lines composed by the CLI (each holding daemon values) as text: each line escaped, each ending in a newline. */
export function terminalLines(lines: readonly string[]): string {
  return lines.map((line) => `${escapeTerminalText(line)}\n`).join('');
}

/**
 * JSON text with the characters of {@link UNSAFE} that JSON.stringify leaves raw (DEL, C1, bidi,
 * U+2028/U+2029) as `\uXXXX` escapes: the same JSON value, nothing a terminal acts on.
 */
export function terminalJson(value: unknown, indent?: number): string {
  return (JSON.stringify(value, null, indent) ?? 'null').replace(
    UNSAFE_IN_JSON,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * The last line of defence for text about to be written: control characters other than the
 * newlines that end lines become visible escapes (backslashes are left alone: the text is
 * already formatted, possibly already escaped).
 */
export function guardTerminalOutput(text: string): string {
  return text.replace(UNSAFE_EXCEPT_NEWLINE, visible);
}
