// A student in a real browser (Debian's chromium, headless, driven by playwright-core): logs in to
// the hub, opens a notebook in JupyterLab, clears its saved outputs, runs all its cells, and waits
// for every figure. Prints one line per step with the seconds since the login page; the last line
// is JSON for tests/jupyterhub_class.py. Exits 1 with the reason when a step fails.
//
// node student.mjs HUB_URL USER PASSWORD NOTEBOOK FIGURES SCREENSHOT
//   NOTEBOOK: its path under the user's home; FIGURES: how many images a full run shows
import { chromium } from 'playwright-core';

const [hubUrl, user, password, notebook, figuresArg, screenshot] = process.argv.slice(2);
const figures = Number(figuresArg);
const started = Date.now();
const seconds = () => (Date.now() - started) / 1000;
const say = (what) => console.log(`${seconds().toFixed(1)} s: ${what}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  // Chromium as root needs --no-sandbox; the others keep it off this closed network.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
const result = { user };
try {
  await page.goto(`${hubUrl}/hub/login`);
  await page.fill('#username_input', user);
  await page.fill('#password_input', password);
  await page.click('#login_submit');
  // The hub starts the student's server (its progress page), then opens JupyterLab.
  await page.waitForURL(/\/user\/[^/]+\/lab/, { timeout: 600_000 });
  result.lab_s = seconds();
  say('JupyterLab open');

  await page.goto(`${hubUrl}/user/${user}/lab/tree/${notebook}`);
  await page.waitForSelector('.jp-Notebook .jp-Cell', { timeout: 120_000 });
  await page.waitForSelector('.jp-Notebook .jp-OutputArea-output img', { timeout: 120_000 });
  say('notebook open, with the outputs it was shipped with');
  // Run All before the kernel is up runs nothing (the cells stay [ ] with no error): wait for the
  // toolbar's kernel indicator to say idle, as a student waits for the status bar's "Idle".
  await page.waitForFunction(() => document.querySelector('.jp-Notebook-ExecutionIndicator')
    ?.getAttribute('data-status') === 'idle', null, { timeout: 600_000, polling: 500 });
  result.kernel_s = seconds();
  say('kernel idle');
  // Edit > Clear Outputs of All Cells, then Run > Run All Cells, from the menu bar.
  await page.click('.lm-MenuBar-item:has-text("Edit")');
  await page.click('.lm-Menu-item[data-command="editmenu:clear-all"]');
  await page.waitForFunction(() => document.querySelectorAll('.jp-Notebook .jp-OutputArea-output img').length === 0);
  await page.click('.lm-MenuBar-item:has-text("Run")');
  await page.click('.lm-Menu-item[data-command="runmenu:run-all"]');
  result.run_s = seconds();
  say('Run All Cells');

  const images = '.jp-Notebook .jp-OutputArea-output img';
  await page.waitForSelector(images, { timeout: 900_000 });
  result.first_figure_s = seconds();
  say('first figure');
  await page.waitForFunction((n) => document.querySelectorAll('.jp-Notebook .jp-OutputArea-output img').length >= n,
    figures, { timeout: 1_200_000, polling: 1000 });
  // Done when no cell is queued or running (their prompt shows [*]).
  await page.waitForFunction(() => ![...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')]
    .some((prompt) => prompt.textContent.includes('*')), null, { timeout: 600_000, polling: 1000 });
  result.all_cells_s = seconds();
  say(`all cells run, ${figures} figures`);

  // The 5x5 batch figure: the image of the cell that calls batch_figure, decoded by the browser.
  const batch = page.locator('.jp-CodeCell', { hasText: 'batch_figure' }).locator('.jp-OutputArea-output img').first();
  await batch.scrollIntoViewIfNeeded();
  const size = await batch.evaluate((img) => [img.naturalWidth, img.naturalHeight]);
  result.batch_figure = size;
  result.errors = await page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').allInnerTexts();
  await page.screenshot({ path: screenshot });
  say(`5x5 figure ${size[0]}x${size[1]} px; screenshot ${screenshot}`);
  console.log(JSON.stringify(result));
} catch (error) {
  await page.screenshot({ path: screenshot }).catch(() => {});
  console.error(`student ${user} failed after ${seconds().toFixed(1)} s: ${error.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
