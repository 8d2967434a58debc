'use strict';
// One held message: headers (decoded), the safe text rendering (never the
// raw HTML: it is shown as text in a <pre>), release and delete.
(() => {
  const {api, h, link, clear, showError, params, fmtSize, table, fields, nav} = Sekisho;
  const detail = document.getElementById('detail');
  const actions = document.getElementById('actions');
  const outcome = document.getElementById('outcome');
  const id = params(['id']).id;
  const usTime = (us) => (typeof us === 'number' ? new Date(us / 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '');

  function say(ok, text) {
    outcome.className = ok ? 'ok' : 'error';
    outcome.textContent = text;
  }

  async function act(op, body, question) {
    if (!window.confirm(question)) return;
    try {
      await api('POST', '/api/quarantine/' + encodeURIComponent(id) + '/' + op, body);
      say(true, op === 'release' ? 'Released.' : 'Deleted.');
      await load();
    } catch (e) {
      say(false, e.message);
    }
  }

  function render(m) {
    clear(detail);
    detail.append(fields([
      ['Quarantine id', m.id],
      ['State', m.state],
      ['Time', usTime(m.time_us)],
      ['Expires', usTime(m.expires_us)],
      ['Envelope sender', m.sender],
      ['Recipients', m.recipients],
      ['From', m.from],
      ['To', m.to],
      ['Cc', m.cc],
      ['Reply-To', m.reply_to === null || m.reply_to === undefined ? '(none)' : m.reply_to],
      ['Subject', m.subject],
      ['Message-ID', m.message_id],
      ['Size', fmtSize(m.size)],
      ['Client', m.client],
      ['Server', m.server],
      ['Category', m.category],
      ['Rule', m.rule],
      ['Score', m.score],
      ['Release', m.release === null || m.release === undefined ? '' : m.release],
    ]));
    if (Array.isArray(m.headers)) {
      detail.append(h('h2', null, 'Headers'));
      detail.append(table(m.headers, [['Name', (x) => x[0]], ['Value', (x) => x[1]]], 'grid headers'));
    }
    if (m.text !== undefined) {
      detail.append(h('h2', null, 'Text' + (m.text_truncated ? ' (truncated)' : '')));
      const pre = h('pre', {class: 'safe-text', id: 'safe-text'});
      pre.textContent = m.text === null ? '(not available)' : m.text;
      detail.append(pre);
    }
    const rules = Array.isArray(m.rules) ? m.rules : [];
    if (rules.length) {
      detail.append(h('h2', null, 'Rules hit'));
      detail.append(table(rules, [['Rule', (r) => (r && typeof r === 'object' ? r.rule : r)],
        ['Details', (r) => (r && typeof r === 'object' ? Object.fromEntries(Object.entries(r).filter(([k]) => k !== 'rule')) : '')]],
      'grid rules'));
    }
    const att = Array.isArray(m.attachments) ? m.attachments : [];
    if (att.length) {
      detail.append(h('h2', null, 'Attachments'));
      detail.append(table(att, [['Name', (a) => (a && typeof a === 'object' ? (a.name !== undefined ? a.name : a.filename) : a)],
        ['Details', (a) => (a && typeof a === 'object' ? Object.fromEntries(Object.entries(a).filter(([k]) => k !== 'name' && k !== 'filename')) : '')]],
      'grid attachments'));
    }
  }

  async function load() {
    const s = await nav();
    if (!id) throw new Error('no quarantine id given');
    const m = await api('GET', '/api/quarantine/' + encodeURIComponent(id));
    clear(actions);
    actions.append(link('/api/quarantine/' + encodeURIComponent(id) + '/message', {}, 'Download .eml'));
    if (m.state === 'held' && s.admin) {
      const release = h('button', {type: 'button', id: 'release'}, 'Release');
      release.addEventListener('click', () => act('release', {}, 'Release this message to its recipients?'));
      const relay = h('button', {type: 'button', id: 'release-relay'}, 'Release via relay');
      relay.addEventListener('click', () => act('release', {relay: true}, 'Release this message through the configured relay?'));
      const del = h('button', {type: 'button', id: 'delete', class: 'danger'}, 'Delete');
      del.addEventListener('click', () => act('delete', undefined, 'Delete this message for good?'));
      actions.append(release, relay, del);
    }
    render(m);
  }
  load().catch((e) => showError(detail, e));
})();
