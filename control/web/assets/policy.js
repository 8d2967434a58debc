'use strict';
// The policy: GET /api/policy, edited as JSON, saved with PUT /api/policy
// (a new ruleset version; ?activate=1 activates it once compiled).
(() => {
  const {api, h, clear, showError, nav} = Sekisho;
  const text = document.getElementById('policy');
  const outcome = document.getElementById('outcome');
  const problems = document.getElementById('problems');
  const usTime = (us) => (us ? new Date(us / 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '');

  function say(ok, msg, errors) {
    outcome.className = ok ? 'ok' : 'error';
    outcome.textContent = msg;
    clear(problems);
    for (const e of errors || []) {
      const where = typeof e === 'object' && e ? [e.rule !== undefined ? 'rule ' + e.rule : '', e.name, e.field].filter((x) => x !== undefined && x !== '').join(', ') : '';
      problems.append(h('li', null, typeof e === 'object' && e ? (where ? where + ': ' : '') + (e.reason || JSON.stringify(e)) : String(e)));
    }
  }

  async function load() {
    const p = await api('GET', '/api/policy');
    document.getElementById('revision').textContent = p.revision
      ? `Revision ${p.revision}, saved ${usTime(p.created_us)} by ${p.created_by}` : 'No policy saved yet.';
    text.value = JSON.stringify(p.policy === undefined || p.policy === null ? {} : p.policy, null, 2);
    document.getElementById('compiled').textContent = p.compiled || '';
  }

  async function save(activate) {
    let policy;
    try {
      policy = JSON.parse(text.value);
    } catch (e) {
      say(false, 'Not valid JSON: ' + e.message);
      return;
    }
    try {
      const r = await api('PUT', '/api/policy' + (activate ? '?activate=1' : ''), policy);
      say(true, `Saved as revision ${r.revision}; ruleset version ${r.version}` + (activate ? ' is activated once compiled.' : ' is compiling.'));
      await load();
    } catch (e) {
      say(false, e.message, e.data && e.data.errors);
    }
  }

  document.getElementById('edit').addEventListener('submit', (ev) => {
    ev.preventDefault();
    save(false);
  });
  document.getElementById('save-activate').addEventListener('click', () => save(true));
  nav().then((s) => {
    if (!s.admin) for (const b of document.querySelectorAll('#edit button')) b.disabled = true;
    return load();
  }).catch((e) => showError(document.getElementById('compiled'), e));
})();
