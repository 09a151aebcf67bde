// play.mjs drives Debian's Chromium, headless, with puppeteer-core (which
// downloads no browser): it opens an h3m player page, waits until the page
// has played --seconds of the stream (or reports an error, or --timeout
// passes) and prints what the page saw (window.h3m) as one JSON object on
// stdout. The Go test (browser_test.go) decides what passes.
//
// node play.mjs --chromium /usr/bin/chromium --url http://127.0.0.1:PORT/ \
//   --seconds 20 --timeout 150 --profile DIR
import puppeteer from "puppeteer-core";

function option(name, def) {
  const i = process.argv.indexOf("--" + name);
  if (i < 0 || i + 1 >= process.argv.length) {
    if (def === undefined) {
      console.error(`play.mjs: --${name} is required`);
      process.exit(2);
    }
    return def;
  }
  return process.argv[i + 1];
}

const chromium = option("chromium");
const url = option("url");
const seconds = Number(option("seconds", "20"));
const timeout = Number(option("timeout", "150"));
const profile = option("profile");

const report = { timedOut: false, pageErrors: [], failedRequests: [], console: [] };
const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  userDataDir: profile,
  // Never reach out: no QUIC to anything, no background or component
  // traffic, no sync; no sandbox (CI runs as root); audio and video play
  // without a gesture.
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required", "--mute-audio",
  ],
});
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => report.pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warn") report.console.push(`${m.type()}: ${m.text()}`);
  });
  page.on("requestfailed", (r) => {
    const f = r.failure();
    report.failedRequests.push(`${r.url()}: ${f ? f.errorText : "failed"}`);
  });
  await page.goto(url, { waitUntil: "load", timeout: timeout * 1000 });
  try {
    await page.waitForFunction(
      (n) => window.h3m && (window.h3m.played >= n || window.h3m.errors.length > 0),
      { timeout: timeout * 1000, polling: 500 },
      seconds,
    );
  } catch (e) {
    report.timedOut = true;
  }
  report.page = await page.evaluate(() => {
    const h = window.h3m || {};
    return {
      manifest: h.manifest, playing: h.playing, played: h.played, errors: h.errors,
      counts: h.counts, bytes: h.bytes, segments: h.segments,
      statusRead: h.status !== null && h.status !== undefined, statusErrors: h.statusErrors,
      origin: location.origin,
    };
  });
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report) + "\n");
