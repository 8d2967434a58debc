'use strict';
// The login form: JSON POST /api/login (the form also works without
// scripts), then on to `next` when it is a local path.
(() => {
  const form = document.getElementById('login');
  const message = document.getElementById('message');
  const u = new URLSearchParams(location.search);
  const next = u.get('next') || '';
  const local = next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\');
  document.getElementById('next').value = local ? next : '';
  const errors = {failed: 'Wrong user name or password.', throttled: 'Too many failed logins; try again later.'};
  if (errors[u.get('error')]) {
    message.className = 'error';
    message.textContent = errors[u.get('error')];
  }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    message.textContent = '';
    const r = await fetch('/api/login', {
      method: 'POST',
      credentials: 'same-origin',
      headers: {'Content-Type': 'application/json', Accept: 'application/json'},
      body: JSON.stringify({user: form.user.value, password: form.password.value}),
    });
    if (r.ok) {
      location.assign(local ? next : '/log');
      return;
    }
    let why = 'HTTP ' + r.status;
    try {
      why = (await r.json()).error || why;
    } catch (e) { /* not JSON */ }
    message.className = 'error';
    message.textContent = why;
    form.password.value = '';
  });
})();
