'use strict';
// One message of the tracking log: GET /api/log/EVENT_ID.
(() => {
  const {api, h, link, query, clear, showError, params, fmtTime, fmtSize, table, fields, text, nav} = Sekisho;
  const detail = document.getElementById('detail');

  // GET /api/log/ID; a server without that route answers 404 "no such
  // resource", and the message is then put together from its log rows.
  async function fetchMessage(id) {
    try {
      return await api('GET', '/api/log/' + encodeURIComponent(id));
    } catch (e) {
      if (e.status !== 404 || e.message !== 'no such resource') throw e;
    }
    const page = await api('GET', '/api/log' + query({q: id, limit: 1000}));
    const rows = page.rows.filter((r) => r.event_id === id);
    if (!rows.length) throw new Error('no message ' + id + ' in the tracking log');
    return {...rows[0], recipients: rows.map((r) => r.recipient)};
  }

  async function load() {
    await nav();
    const id = params(['id']).id;
    if (!id) throw new Error('no message id given');
    const m = await fetchMessage(id);
    clear(detail);
    const v = m.verdict || {};
    detail.append(fields([
      ['Event id', m.event_id],
      ['Time', fmtTime(m.time)],
      ['Envelope sender', m.sender],
      ['Recipients', m.recipients || m.recipient],
      ['From', m.from],
      ['To', m.to],
      ['Cc', m.cc],
      ['Reply-To', m.reply_to === null ? '(none)' : m.reply_to],
      ['Subject', m.subject],
      ['Message-ID', m.message_id],
      ['Size', fmtSize(m.size)],
      ['Client', m.client],
      ['Server', m.server],
      ['TLS', m.tls ? 'yes' : 'no'],
      ['Verdict', h('span', {class: 'verdict-' + v.action}, v.action || '')],
      ['Deciding rule', v.rule],
      ['Score', v.score],
    ]));
    detail.append(h('h2', null, 'Rules hit'));
    const rules = Array.isArray(m.rules) ? m.rules : [];
    detail.append(rules.length ? table(rules, [
      ['Rule', (r) => (r && typeof r === 'object' ? r.rule : r)],
      ['Details', (r) => (r && typeof r === 'object' ? Object.fromEntries(Object.entries(r).filter(([k]) => k !== 'rule')) : '')],
    ], 'grid rules') : h('p', null, 'None.'));
    detail.append(h('h2', null, 'Attachments'));
    const att = Array.isArray(m.attachments) ? m.attachments : [];
    detail.append(att.length ? table(att, [
      ['Name', (a) => (a && typeof a === 'object' ? (a.name !== undefined ? a.name : a.filename) : a)],
      ['Details', (a) => (a && typeof a === 'object' ? Object.fromEntries(Object.entries(a).filter(([k]) => k !== 'name' && k !== 'filename')) : '')],
    ], 'grid attachments') : h('p', null, 'None.'));
    if (m.verdict && m.verdict.action === 'quarantine')
      detail.append(h('p', null, link('/quarantine', {q: m.message_id || m.event_id}, 'Find in quarantine')));
  }
  load().catch((e) => showError(detail, e));
})();
