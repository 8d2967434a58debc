'use strict';
// Ruleset versions: upload packs (checked with file:line errors), compile,
// activate, roll back. GET/POST /api/rulesets...
(() => {
  const {api, h, query, clear, showError, table, nav} = Sekisho;
  const outcome = document.getElementById('outcome');
  const problems = document.getElementById('problems');
  const versions = document.getElementById('versions');
  const actions = document.getElementById('actions');
  const usTime = (us) => (us ? new Date(us / 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '');
  let admin = false;

  function say(ok, text, errors) {
    outcome.className = ok ? 'ok' : 'error';
    outcome.textContent = text;
    clear(problems);
    for (const e of errors || []) problems.append(h('li', null, typeof e === 'string' ? e : JSON.stringify(e)));
  }

  async function files() {
    const out = {};
    for (const f of document.getElementById('files').files) out[f.name] = await f.text();
    if (!Object.keys(out).length) throw new Error('choose the pack files first');
    return out;
  }

  async function run(what) {
    try {
      await what();
    } catch (e) {
      say(false, e.message, e.data && e.data.errors);
    }
    await load().catch((e) => showError(versions, e));
  }

  document.getElementById('check').addEventListener('click', () => run(async () => {
    const r = await api('POST', '/api/rulesets/check', {files: await files()});
    say(r.ok, r.ok ? `No errors: ${r.rules} rules, ${r.lists} lists.` : 'The packs have errors:', r.errors);
  }));
  document.getElementById('upload').addEventListener('submit', (ev) => {
    ev.preventDefault();
    run(async () => {
      const activate = document.getElementById('activate').checked;
      const r = await api('POST', '/api/rulesets' + query({activate: activate ? 1 : ''}), {files: await files()});
      say(true, `Version ${r.version} is ${r.state}` + (activate ? '; it is activated once compiled.' : '.'));
    });
  });

  async function load() {
    const data = await api('GET', '/api/rulesets' + query({limit: 100}));
    clear(actions);
    if (admin) {
      const rollback = h('button', {type: 'button', id: 'rollback'}, 'Roll back to the previous version');
      rollback.addEventListener('click', () => {
        if (window.confirm('Activate the version that was active before the current one?'))
          run(async () => {
            const r = await api('POST', '/api/rulesets/rollback');
            say(true, `Version ${r.version} is active again (was ${r.previous}).`);
          });
      });
      actions.append(rollback);
    }
    clear(versions);
    versions.append(h('p', null, 'Active version: ' + (data.active ? data.active : 'none')));
    versions.append(table(data.versions, [
      ['Version', (v) => v.version],
      ['State', (v) => v.state],
      ['Origin', (v) => v.origin + (v.policy_revision ? ' (policy ' + v.policy_revision + ')' : '')],
      ['Created', (v) => usTime(v.created_us) + ' by ' + v.created_by],
      ['Rules active / defined / refused', (v) => `${v.rules.active} / ${v.rules.defined} / ${v.rules.refused}`],
      ['Last activated', (v) => usTime(v.activated_us)],
      ['Error', (v) => v.error],
      ['', (v) => {
        if (!admin || v.state !== 'compiled') return '';
        const b = h('button', {type: 'button', class: 'activate'}, 'Activate');
        b.addEventListener('click', () => {
          if (window.confirm(`Activate version ${v.version} on the dataplane?`))
            run(async () => {
              const r = await api('POST', '/api/rulesets/' + encodeURIComponent(v.version) + '/activate');
              say(true, `Version ${r.version} is active (was ${r.previous}).`);
            });
        });
        return b;
      }],
    ], 'grid versions'));
  }

  nav().then((s) => {
    admin = s.admin;
    if (!admin) document.getElementById('upload').hidden = true;
    return load();
  }).catch((e) => showError(versions, e));
})();
