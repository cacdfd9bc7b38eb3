/**
 * @internal HTML for the pages: every value is escaped, and characters that hide or reorder text
 * (bidi controls, zero-width and other invisible characters, control characters) are shown as a
 * visible `U+XXXX` marker instead of acting on the page. Nothing here builds a link from a value.
 *
 * @module
 */

/**
 * Characters that change how text reads without being seen: C0/C1 controls, soft hyphen, combining
 * grapheme joiner, Arabic letter mark, Hangul fillers, Khmer vowel inherents, Mongolian variation
 * selectors and vowel separator, zero-width space / non-joiner / joiner, LRM/RLM, bidi embeddings,
 * overrides and isolates, word joiner and invisible operators, variation selectors, BOM, interlinear
 * annotations, and the tag characters.
 */
// eslint-disable-next-line no-control-regex
const HIDDEN = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb]|[\u{e0000}-\u{e0fff}]/gu;

/** Escape for HTML text and double- or single-quoted attributes. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"'`=]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** True when `value` holds a character {@link text} shows as a marker. */
export function hasHiddenChars(value: string): boolean {
  HIDDEN.lastIndex = 0;
  const found = HIDDEN.test(value);
  HIDDEN.lastIndex = 0;
  return found;
}

/** Untrusted text as HTML: escaped, with hidden characters shown as `U+XXXX` markers. */
export function text(value: unknown): string {
  const s = typeof value === 'string' ? value : value === undefined || value === null ? '' : String(value);
  let out = '';
  let last = 0;
  for (const m of s.matchAll(HIDDEN)) {
    const i = m.index;
    out += escapeHtml(s.slice(last, i));
    const cp = (m[0].codePointAt(0) as number).toString(16).toUpperCase().padStart(4, '0');
    out += `<span class="hidden-char" title="invisible or control character">U+${cp}</span>`;
    last = i + m[0].length;
  }
  return out + escapeHtml(s.slice(last));
}

/** An attribute value (escaped; hidden characters dropped, so they cannot change what it says). */
export function attr(value: string): string {
  return escapeHtml(value.replace(HIDDEN, ''));
}

/** The security headers of every page, stylesheet and redirect. */
export function securityHeaders(contentType: string): Record<string, string> {
  return {
    'content-type': contentType,
    'cache-control': 'no-store',
    // No script at all, styles only from the pages' own stylesheet, forms only to the pages, never framed.
    'content-security-policy': "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    'x-content-type-options': 'nosniff',
    // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on a form POST,
    // and the Origin check is one of the two CSRF defences. Nothing leaks to other origins.
    'referrer-policy': 'same-origin',
    'x-frame-options': 'DENY',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=()',
  };
}

/** Navigation links, the signed-in person and a sign-out form. */
export interface Layout {
  base: string;
  title: string;
  user?: { userId: string; csrf: string; signOut: boolean };
  nav?: Array<{ href: string; label: string; current: boolean }>;
  /** A short message shown at the top (`role=status`), e.g. after a decision. */
  notice?: string;
  /** Meta refresh: go to this URL (escaped) after `seconds`. */
  refresh?: { url: string; seconds: number };
}

export function page(layout: Layout, body: string): string {
  const nav = (layout.nav ?? [])
    .map((n) => `<a href="${attr(n.href)}"${n.current ? ' aria-current="page"' : ''}>${text(n.label)}</a>`)
    .join(' ');
  const who =
    layout.user === undefined
      ? ''
      : `<span class="who">Signed in as <strong>${text(layout.user.userId)}</strong></span>` +
        (layout.user.signOut
          ? ` <form method="post" action="${attr(`${layout.base}/sign-out`)}" class="inline">${csrfField(layout.user.csrf)}<button type="submit">Sign out</button></form>`
          : '');
  const refresh = layout.refresh === undefined ? '' : `<meta http-equiv="refresh" content="${layout.refresh.seconds};url=${attr(layout.refresh.url)}">`;
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<meta name="referrer" content="same-origin">${refresh}<title>${text(layout.title)}</title>` +
    `<link rel="stylesheet" href="${attr(`${layout.base}/assets/pages.css`)}"></head><body>` +
    `<a class="skip" href="#main">Skip to content</a>` +
    `<header><nav aria-label="agent-iam pages">${nav}</nav><div class="account">${who}</div></header>` +
    `<main id="main" tabindex="-1"><h1>${text(layout.title)}</h1>` +
    (layout.notice === undefined ? '' : `<p class="notice" role="status">${text(layout.notice)}</p>`) +
    `${body}</main></body></html>`
  );
}

export function csrfField(token: string): string {
  return `<input type="hidden" name="csrf" value="${attr(token)}">`;
}

/** A time for people: ISO 8601 in UTC, to the second. */
export function time(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '';
  return `<time datetime="${attr(new Date(ms).toISOString())}">${text(new Date(ms).toISOString().replace('T', ' ').slice(0, 19))} UTC</time>`;
}

/** The stylesheet: plain, readable, with a visible focus ring for keyboard use. */
export const STYLESHEET = `
:root { color-scheme: light; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --accent: #0b57d0; --bad: #b3261e; --good: #146c2e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg); background: #fff; }
header { display: flex; justify-content: space-between; align-items: center; gap: 1rem; padding: .6rem 1.5rem; border-bottom: 1px solid var(--line); background: #f6f8fa; }
nav a { margin-right: 1rem; color: var(--accent); text-decoration: none; font-weight: 600; }
nav a[aria-current="page"] { text-decoration: underline; text-underline-offset: .3em; }
main { padding: 1rem 1.5rem 3rem; max-width: 72rem; }
main:focus { outline: none; }
h1 { font-size: 1.4rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: .85rem; color: var(--muted); font-weight: 600; }
td code, dd code { font: 13px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; word-break: break-all; }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: .35rem 1.2rem; margin: 0 0 1rem; }
dl.fields dt { color: var(--muted); font-weight: 600; }
dl.fields dd { margin: 0; }
.untrusted { border-left: 3px solid #e3b341; padding-left: .5rem; }
.hidden-char { display: inline-block; padding: 0 .25em; margin: 0 .1em; border: 1px solid var(--bad); border-radius: 3px; color: var(--bad); font: 11px/1.4 ui-monospace, monospace; }
.status { font-weight: 600; }
.status-pending { color: #9a6700; } .status-approved, .status-consumed, .status-active { color: var(--good); }
.status-denied, .status-expired, .status-revoked, .status-needs_consent { color: var(--bad); }
form.inline { display: inline; margin: 0; }
form.decide { border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; margin: .8rem 0; max-width: 36rem; }
label { display: block; font-weight: 600; margin-bottom: .3rem; }
input[type=text], select { font: inherit; padding: .35rem .5rem; border: 1px solid #8c959f; border-radius: 4px; min-width: 16rem; }
button, a.button { font: inherit; font-weight: 600; padding: .35rem .9rem; border-radius: 4px; border: 1px solid #8c959f; background: #f6f8fa; color: var(--fg); cursor: pointer; text-decoration: none; display: inline-block; }
button.approve { background: var(--good); border-color: var(--good); color: #fff; }
button.deny, button.disconnect { background: #fff; border-color: var(--bad); color: var(--bad); }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.notice { padding: .5rem .8rem; background: #ddf4ff; border: 1px solid #54aeff; border-radius: 6px; }
.error { padding: .5rem .8rem; background: #ffebe9; border: 1px solid #ff8182; border-radius: 6px; }
.muted { color: var(--muted); }
.skip { position: absolute; left: -999px; } .skip:focus { left: 1rem; top: .5rem; background: #fff; padding: .3rem .6rem; z-index: 1; }
`;
