'use strict';
// Tracking-log search: the form's values are the page's query string; the
// same filters go to /api/log (this page) and /api/log.csv (export link).
(() => {
  const {api, h, link, query, clear, showError, params, fmtTime, fmtSize, table, nav} = Sekisho;
  const FILTERS = ['q', 'sender', 'rcpt', 'from', 'subject', 'verdict', 'since', 'until'];
  const p = params(FILTERS.concat(['limit', 'offset']));
  const form = document.getElementById('filters');
  for (const n of FILTERS.concat(['limit'])) if (form.elements[n]) form.elements[n].value = p[n];
  const results = document.getElementById('results');
  const pager = document.getElementById('pager');

  async function load() {
    await nav();
    const page = await api('GET', '/api/log' + query(p));
    const filters = {};
    for (const n of FILTERS) filters[n] = p[n];
    clear(pager);
    const first = page.offset + 1, last = page.offset + page.rows.length;
    pager.append(h('span', {id: 'total'}, page.total === 0 ? 'No rows' : `Rows ${first}-${last} of ${page.total}`));
    if (page.offset > 0)
      pager.append(link('/log', {...filters, limit: p.limit, offset: Math.max(0, page.offset - page.limit)}, 'Previous'));
    if (last < page.total)
      pager.append(link('/log', {...filters, limit: p.limit, offset: page.offset + page.limit}, 'Next'));
    pager.append(link('/api/log.csv', filters, 'Export CSV'));
    clear(results);
    results.append(table(page.rows, [
      ['Time', (r) => fmtTime(r.time)],
      ['Sender', (r) => r.sender],
      ['Recipient', (r) => r.recipient],
      ['From', (r) => r.from],
      ['Subject', (r) => link('/message', {id: r.event_id}, r.subject === '' ? '(no subject)' : r.subject)],
      ['Verdict', (r) => h('span', {class: 'verdict-' + r.verdict.action}, r.verdict.action)],
      ['Rule', (r) => r.verdict.rule],
      ['Score', (r) => r.verdict.score],
      ['Size', (r) => fmtSize(r.size)],
      ['Client', (r) => r.client],
    ], 'grid log'));
  }
  load().catch((e) => showError(results, e));
})();
