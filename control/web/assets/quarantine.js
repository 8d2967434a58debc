'use strict';
// Quarantine list: GET /api/quarantine with the page's filters.
(() => {
  const {api, h, link, query, clear, showError, params, fmtSize, table, nav} = Sekisho;
  const FILTERS = ['q', 'rcpt', 'sender', 'category', 'state'];
  const p = params(FILTERS.concat(['limit', 'offset']));
  const form = document.getElementById('filters');
  for (const n of FILTERS.concat(['limit'])) if (form.elements[n]) form.elements[n].value = p[n];
  const results = document.getElementById('results');
  const pager = document.getElementById('pager');
  const usTime = (us) => (typeof us === 'number' ? new Date(us / 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '');

  async function load() {
    await nav();
    const page = await api('GET', '/api/quarantine' + query(p));
    const filters = {};
    for (const n of FILTERS) filters[n] = p[n];
    clear(pager);
    const first = page.offset + 1, last = page.offset + page.rows.length;
    pager.append(h('span', {id: 'total'}, page.total === 0 ? 'Nothing held' : `Messages ${first}-${last} of ${page.total}`));
    if (page.offset > 0)
      pager.append(link('/quarantine', {...filters, limit: p.limit, offset: Math.max(0, page.offset - page.limit)}, 'Previous'));
    if (last < page.total)
      pager.append(link('/quarantine', {...filters, limit: p.limit, offset: page.offset + page.limit}, 'Next'));
    clear(results);
    results.append(table(page.rows, [
      ['Time', (r) => usTime(r.time_us)],
      ['Sender', (r) => r.sender],
      ['Recipients', (r) => r.recipients],
      ['From', (r) => r.from],
      ['Subject', (r) => link('/quarantine/view', {id: r.id}, r.subject === '' ? '(no subject)' : r.subject)],
      ['Category', (r) => r.category],
      ['Rule', (r) => r.rule],
      ['Score', (r) => r.score],
      ['Size', (r) => fmtSize(r.size)],
      ['State', (r) => r.state],
      ['Expires', (r) => usTime(r.expires_us)],
    ], 'grid quarantine'));
  }
  load().catch((e) => showError(results, e));
})();
