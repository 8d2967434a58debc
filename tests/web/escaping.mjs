// Drives Debian's Chromium (headless, through playwright-core) over the
// admin pages and checks that mail-derived strings carrying script/HTML
// payloads are shown literally and never run.
//
//   node escaping.mjs CASE.json
// CASE.json: {base, user, password, event_id, expect: {subject, from, ...},
//             quarantine_id (or null), chromium, screenshots (dir or null)}
// Prints one JSON line with what it saw; exits 1 on any failed check.
import {readFileSync} from 'node:fs';
import {chromium} from 'playwright-core';

const c = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const failures = [];
const seen = {pages: []};
const check = (ok, what) => {
  if (!ok) failures.push(what);
};

const browser = await chromium.launch({
  executablePath: c.chromium,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const context = await browser.newContext({ignoreHTTPSErrors: true});
  const page = await context.newPage();
  const dialogs = [], consoleErrors = [], pageErrors = [];
  page.on('dialog', async (d) => {
    dialogs.push(d.type() + ': ' + d.message());
    await d.dismiss();
  });
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  // What every page must satisfy once it has rendered.
  async function inspect(name) {
    const r = await page.evaluate(() => ({
      pwned: typeof window.__pwned,
      injected: document.querySelectorAll('main script, main img, main svg, main iframe, main object, main embed').length,
      javascriptLinks: [...document.querySelectorAll('a')].filter((a) => !a.getAttribute('href').startsWith('/')).length,
      errors: [...document.querySelectorAll('.error')].map((e) => e.textContent),
    }));
    seen.pages.push({name, ...r});
    check(r.pwned === 'undefined', `${name}: window.__pwned is ${r.pwned}`);
    check(r.injected === 0, `${name}: ${r.injected} script/img/svg/iframe elements in the page`);
    check(r.javascriptLinks === 0, `${name}: links that are not local paths`);
    check(r.errors.length === 0, `${name}: error shown: ${r.errors.join(' | ')}`);
    if (c.screenshots) await page.screenshot({path: `${c.screenshots}/${name}.png`, fullPage: true});
  }

  // 1. Not logged in: the log page sends us to the login page.
  await page.goto(c.base + '/log', {waitUntil: 'load'});
  check(new URL(page.url()).pathname === '/login', 'unauthenticated /log did not redirect to /login: ' + page.url());
  await page.fill('#user', c.user);
  await page.fill('#password', c.password);
  await Promise.all([page.waitForURL((u) => u.pathname === '/log'), page.click('button[type=submit]')]);

  // 2. Tracking-log search for the hostile message.
  await page.goto(c.base + '/log?q=' + encodeURIComponent(c.event_id), {waitUntil: 'load'});
  await page.waitForSelector('table.log tbody tr');
  const row = await page.evaluate(() => {
    const tr = document.querySelector('table.log tbody tr');
    const cells = [...tr.querySelectorAll('td')].map((td) => td.textContent);
    const a = tr.querySelector('td:nth-child(5) a');
    return {cells, href: a.getAttribute('href'), linkText: a.textContent};
  });
  seen.log_row = row;
  check(row.linkText === c.expect.subject, `log: subject shown as ${JSON.stringify(row.linkText)}`);
  check(row.cells[3] === c.expect.from, `log: From shown as ${JSON.stringify(row.cells[3])}`);
  check(row.cells[1] === c.expect.sender, `log: sender shown as ${JSON.stringify(row.cells[1])}`);
  check(row.href === '/message?' + new URLSearchParams({id: c.event_id}).toString(), `log: detail link is ${row.href}`);
  await inspect('log');

  // The search form keeps hostile filter text as a value, not as markup.
  await page.goto(c.base + '/log?subject=' + encodeURIComponent(c.expect.subject), {waitUntil: 'load'});
  await page.waitForSelector('#total');
  const subjectFilter = await page.inputValue('input[name=subject]');
  check(subjectFilter === c.expect.subject, 'log: subject filter round trip');
  await inspect('log-filtered');

  // 3. Message detail.
  await page.click('table.log tbody tr td:nth-child(5) a');
  await page.waitForSelector('dl.fields');
  const fields = await page.evaluate(() => Object.fromEntries(
    [...document.querySelectorAll('dl.fields dd')].map((dd) => [dd.getAttribute('data-field'), dd.textContent])));
  const attachments = await page.evaluate(() =>
    [...document.querySelectorAll('table.attachments tbody tr td:first-child')].map((td) => td.textContent));
  const rules = await page.evaluate(() =>
    [...document.querySelectorAll('table.rules tbody tr')].map((tr) => tr.textContent));
  seen.message = {fields, attachments, rules};
  check(fields['Subject'] === c.expect.subject, `message: Subject shown as ${JSON.stringify(fields['Subject'])}`);
  check(fields['From'] === c.expect.from, `message: From shown as ${JSON.stringify(fields['From'])}`);
  check(fields['To'] === c.expect.to, `message: To shown as ${JSON.stringify(fields['To'])}`);
  check(fields['Envelope sender'] === c.expect.sender, 'message: envelope sender');
  check(fields['Reply-To'] === c.expect.reply_to, `message: Reply-To shown as ${JSON.stringify(fields['Reply-To'])}`);
  check(attachments.includes(c.expect.attachment), `message: attachment names ${JSON.stringify(attachments)}`);
  for (const name of c.expect.rules)
    check(rules.some((t) => t.includes(name)), `message: rule ${name} not listed`);
  await inspect('message');

  // 4. Quarantine list and view, when the message was held.
  if (c.quarantine_id) {
    await page.goto(c.base + '/quarantine?q=' + encodeURIComponent(c.expect.subject.slice(0, 40)), {waitUntil: 'load'});
    await page.waitForSelector('table.quarantine tbody tr');
    const q = await page.evaluate(() => {
      const tr = document.querySelector('table.quarantine tbody tr');
      const a = tr.querySelector('td:nth-child(5) a');
      return {cells: [...tr.querySelectorAll('td')].map((td) => td.textContent), link: a.textContent, href: a.getAttribute('href')};
    });
    seen.quarantine_row = q;
    check(q.link === c.expect.subject, `quarantine: subject shown as ${JSON.stringify(q.link)}`);
    check(q.cells[3] === c.expect.from, `quarantine: From shown as ${JSON.stringify(q.cells[3])}`);
    await inspect('quarantine');
    await page.click('table.quarantine tbody tr td:nth-child(5) a');
    await page.waitForSelector('#safe-text');
    const v = await page.evaluate(() => ({
      headers: [...document.querySelectorAll('table.headers tbody tr')].map((tr) => [...tr.children].map((td) => td.textContent)),
      text: document.getElementById('safe-text').textContent,
      subject: document.querySelector('dd[data-field="Subject"]').textContent,
      buttons: [...document.querySelectorAll('#actions button')].map((b) => b.id),
    }));
    seen.quarantine_view = {subject: v.subject, buttons: v.buttons, headers: v.headers.length};
    check(v.subject === c.expect.subject, 'quarantine view: Subject field');
    check(v.headers.some(([n, val]) => n.toLowerCase() === 'subject' && val === c.expect.subject),
      'quarantine view: Subject header not shown literally');
    check(v.text.includes(c.expect.body_marker), 'quarantine view: the body text is not shown literally');
    check(v.buttons.includes('release') && v.buttons.includes('delete'), 'quarantine view: no release/delete for an admin');
    await inspect('quarantine-view');
  }

  const csp = consoleErrors.filter((t) => /Content.Security.Policy/i.test(t));
  seen.dialogs = dialogs;
  seen.console = consoleErrors;
  seen.page_errors = pageErrors;
  check(dialogs.length === 0, 'dialogs fired: ' + dialogs.join(' | '));
  check(csp.length === 0, 'CSP violations reported: ' + csp.join(' | '));
  check(pageErrors.length === 0, 'script errors: ' + pageErrors.join(' | '));
} catch (e) {
  failures.push('exception: ' + (e && e.stack ? e.stack : e));
} finally {
  await browser.close();
}
seen.failures = failures;
console.log(JSON.stringify(seen));
process.exit(failures.length ? 1 : 0);
