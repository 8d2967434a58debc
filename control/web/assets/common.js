'use strict';
// Shared by every page: the session (GET /api/me), API calls carrying the
// CSRF token, DOM building that only ever creates text nodes and sets
// attributes from an allow-list (mail-derived strings are never parsed as
// HTML), links built from encoded query strings, and the navigation bar.
const Sekisho = (() => {
  let me = null;

  function toLogin() {
    location.assign('/login?next=' + encodeURIComponent(location.pathname + location.search));
  }

  async function session() {
    if (me) return me;
    const r = await fetch('/api/me', {credentials: 'same-origin', headers: {Accept: 'application/json'}});
    if (r.status === 401) {
      toLogin();
      throw new Error('login required');
    }
    if (!r.ok) throw new Error('GET /api/me: HTTP ' + r.status);
    me = await r.json();
    return me;
  }

  // method, path (already encoded), optional JSON body. Resolves to the
  // parsed JSON answer; rejects with Error(message from the server).
  async function api(method, path, body) {
    const headers = {Accept: 'application/json'};
    if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = (await session()).csrf;
    const init = {method, headers, credentials: 'same-origin'};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    if (r.status === 401) {
      toLogin();
      throw new Error('login required');
    }
    const type = r.headers.get('Content-Type') || '';
    const data = type.startsWith('application/json') ? await r.json() : await r.text();
    if (!r.ok) {
      const e = new Error((data && data.error) || 'HTTP ' + r.status);
      e.status = r.status;
      e.data = data;
      throw e;
    }
    return data;
  }

  const SAFE_ATTRS = new Set(['class', 'id', 'type', 'name', 'value', 'for', 'colspan', 'title', 'placeholder',
    'min', 'max', 'step', 'selected', 'checked', 'disabled', 'href', 'download', 'rows', 'cols', 'aria-label',
    'role', 'autocomplete', 'required', 'multiple', 'accept', 'data-field']);

  // A local path: never a scheme (a javascript or data URL) or another host.
  function localHref(v) {
    return typeof v === 'string' && v.startsWith('/') && !v.startsWith('//') && !v.startsWith('/\\');
  }

  // h('td', {class: 'x'}, 'text', otherNode): strings become text nodes.
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (!SAFE_ATTRS.has(k)) throw new Error('attribute not allowed: ' + k);
      if (k === 'href' && !localHref(v)) throw new Error('not a local link');
      e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // "?a=1&b=x%20y" from an object, leaving out empty values.
  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {}))
      if (v !== '' && v !== null && v !== undefined) q.append(k, String(v));
    const s = q.toString();
    return s ? '?' + s : '';
  }

  function link(path, params, ...text) {
    return h('a', {href: path + query(params)}, ...text);
  }

  function clear(e) {
    while (e.firstChild) e.removeChild(e.firstChild);
  }

  function showError(where, err) {
    clear(where);
    where.append(h('p', {class: 'error', role: 'alert'}, err && err.message ? err.message : String(err)));
  }

  // The page's query parameters (only the names asked for).
  function params(names) {
    const u = new URLSearchParams(location.search);
    const out = {};
    for (const n of names) out[n] = u.get(n) || '';
    return out;
  }

  function fmtTime(iso) {
    if (!iso) return '';
    return String(iso).replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  function fmtSize(n) {
    if (typeof n !== 'number') return '';
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
    return (n / 1024 / 1024).toFixed(1) + ' MiB';
  }

  // Any JSON value as text (objects as "key: value" pairs).
  function text(v) {
    if (v === null || v === undefined) return '';
    if (Array.isArray(v)) return v.map(text).join(', ');
    if (typeof v === 'object') return Object.entries(v).map(([k, x]) => k + ': ' + text(x)).join('; ');
    return String(v);
  }

  // A table from rows and [header, value-function] columns.
  function table(rows, columns, cls) {
    return h('table', {class: cls || 'grid'},
      h('thead', null, h('tr', null, columns.map(([title]) => h('th', null, title)))),
      h('tbody', null, rows.map((r) => h('tr', null, columns.map(([, f]) => {
        const v = f(r);
        return h('td', null, v instanceof Node ? v : text(v));
      })))));
  }

  // A definition list from [label, value] pairs.
  function fields(pairs) {
    return h('dl', {class: 'fields'}, pairs.map(([k, v]) => [h('dt', null, k),
      h('dd', {'data-field': k}, v instanceof Node ? v : text(v))]));
  }

  async function nav() {
    const bar = document.getElementById('nav');
    const s = await session();
    const logout = h('button', {type: 'button', id: 'logout'}, 'Log out');
    logout.addEventListener('click', async () => {
      try {
        await api('POST', '/api/logout');
      } finally {
        location.assign('/login');
      }
    });
    const here = location.pathname;
    const item = (path, label) => h('a', {href: path, class: here === path || here.startsWith(path + '/') ? 'active' : ''}, label);
    clear(bar);
    bar.append(h('nav', null, h('span', {class: 'brand'}, 'Sekisho'), item('/log', 'Tracking log'),
      item('/quarantine', 'Quarantine'), item('/rules', 'Rules'), item('/policy', 'Policy'),
      h('span', {class: 'who'}, s.user + (s.admin ? ' (admin)' : '')), logout));
    return s;
  }

  return {api, session, h, query, link, clear, showError, params, fmtTime, fmtSize, text, table, fields, nav};
})();
