// Real headless Chromium (playwright-core) against a ComfyUI whose API nodes are on: logs in with an API key the
// way a user does (the frontend keeps it in localStorage "comfy_api_key" and sends it with every queued prompt),
// loads each workflow, screenshots the whole graph at a readable zoom, queues it from the frontend, waits for the
// result and screenshots it again (the retry loop's chart and log on the close node). Newer frontends check a
// stored key against the Comfy platform (https://api.comfy.org, /customers) and drop it when that fails: those
// requests are answered by the local API stand-in (STANDIN_URL), so nothing leaves the machine.
// Usage: node api_workflow.js URL SHOT_DIR API_KEY STANDIN_URL WORKFLOW.json...   Prints one JSON report.
const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const [url, shotDir, apiKey, standinUrl, ...workflows] = process.argv.slice(2);

async function fitGraph(page) {
  // Whole graph in view at the largest zoom that fits (the frontend's own "fit" may pick an unreadable one);
  // twice, since drawing can resize nodes (widgets, previews, the loop's chart).
  await page.evaluate(() => app.canvas.draw(true, true));
  await page.waitForTimeout(300);
  return page.evaluate(() => {
    const nodes = app.graph._nodes || app.graph.nodes || [];
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const n of nodes) {
      x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - 30);
      x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
    }
    const el = app.canvas.canvas, rect = el.getBoundingClientRect();
    // leave room for the frontend's side bar (left), menu (top) and minimap / queue panels (right)
    const left = 70, top = 90, right = 40, bottom = 20;
    const w = rect.width - left - right, h = rect.height - top - bottom;
    const scale = Math.min(1.0, w / (x1 - x0), h / (y1 - y0));
    app.canvas.ds.scale = scale;
    app.canvas.ds.offset = [left / scale - x0, top / scale - y0];
    app.canvas.setDirty(true, true);
    const width = Math.min(rect.width - left, (x1 - x0) * scale + 20), height = Math.min(rect.height - top, (y1 - y0) * scale + 20);
    return { scale, clip: { x: rect.left + left - 10, y: rect.top + top - 10, width, height } };
  });
}

(async () => {
  fs.mkdirSync(shotDir, { recursive: true });
  const userDataDir = fs.mkdtempSync(path.join(require("os").tmpdir(), "rl-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 2000, height: 1000 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  await context.addInitScript((key) => { window.localStorage.setItem("comfy_api_key", key); }, apiKey);
  const platform = [];
  await context.route(/^https:\/\/api\.comfy\.org\//, async (route) => {
    const req = route.request(), pathname = new URL(req.url()).pathname, target = standinUrl + pathname;
    platform.push(`${req.method()} ${pathname}`);
    if (!pathname.startsWith("/customers")) return route.abort();  // registry lookups etc.: offline, as before
    const headers = Object.fromEntries(Object.entries(req.headers()).filter(([k]) => !["host", "origin"].includes(k)));
    const response = await route.fetch({ url: target, headers });
    await route.fulfill({ response });
  });
  const page = context.pages()[0] || (await context.newPage());
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));

  // A first start opens the template browser over the canvas; this user has seen it.
  await page.request.post(`${url.replace(/\/?$/, "/")}api/settings/Comfy.TutorialCompleted`, { data: true });
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => window.app && window.app.graph && window.LiteGraph, null, { timeout: 90000 });
  await page.waitForTimeout(1500);
  for (let i = 0; i < 3; i++) { await page.keyboard.press("Escape"); await page.waitForTimeout(200); }

  const results = [];
  for (const wf of workflows) {
    const name = path.basename(wf).replace(/\.json$/, "");
    const data = JSON.parse(fs.readFileSync(wf, "utf8"));
    await page.evaluate(async (g) => { await app.loadGraphData(g, true, true, null); }, data);
    await page.waitForTimeout(800);
    for (let i = 0; i < 2 && (await page.locator(".p-dialog").count()); i++) await page.keyboard.press("Escape");
    await fitGraph(page);
    let view = await fitGraph(page);
    await page.waitForTimeout(500);
    const loaded = path.join(shotDir, `${name}.png`);
    await page.screenshot({ path: loaded, clip: view.clip });

    // Queue it the way the Run button does; the frontend adds the stored API key to the prompt's extra_data.
    const outcome = await page.evaluate(async () => {
      const api = window.comfyAPI?.api?.api || app.api;
      const done = new Promise((resolve) => {
        const finish = (kind) => (e) => resolve({ kind, detail: e.detail || null });
        api.addEventListener("execution_success", finish("success"));
        api.addEventListener("execution_error", finish("error"));
        api.addEventListener("execution_interrupted", finish("interrupted"));
      });
      await app.queuePrompt(0, 1);
      const timeout = new Promise((resolve) => setTimeout(() => resolve({ kind: "timeout" }), 240000));
      return Promise.race([done, timeout]);
    });
    await page.waitForTimeout(1000);
    await fitGraph(page);
    view = await fitGraph(page);
    await page.waitForTimeout(500);
    const ran = path.join(shotDir, `${name}_run.png`);
    await page.screenshot({ path: ran, clip: view.clip });
    // The template card's picture: the last RewardLoop node with a chart (the loop's close node) at a readable zoom.
    const closeup = path.join(shotDir, `${name}_closeup.png`);
    const box = await page.evaluate(async () => {
      const c = app.canvas, nodes = (app.graph._nodes ?? app.graph.nodes);
      const ours = [...nodes].reverse().filter((n) => String(n.type).startsWith("RewardLoop"));
      const node = ours.find((n) => n.__rewardloop?.kind === "chart") ?? ours[0];
      if (!node) return null;
      const cr = c.canvas.getBoundingClientRect(), state = c.ds.state ?? c.ds;
      const w = node.size[0], h = node.size[1] + 30;
      state.scale = Math.max(0.7, Math.min(1, (0.94 * 720) / h, (0.94 * 960) / w));
      const shownH = Math.min(h, (0.94 * 720) / state.scale);
      state.offset[0] = cr.width / 2 / state.scale - (node.pos[0] + w / 2);
      state.offset[1] = cr.height / 2 / state.scale - (node.pos[1] - 30 + shownH / 2);
      c.setDirty(true, true);
      await new Promise((r) => setTimeout(r, 800));
      return { x: cr.left + cr.width / 2 - 480, y: cr.top + cr.height / 2 - 360, width: 960, height: 720 };
    });
    if (box) await page.screenshot({ path: closeup, clip: box });
    results.push({ file: path.basename(wf), scale: view.scale, loaded, ran, closeup: box ? closeup : null,
                   outcome: outcome.kind,
                   error: outcome.kind === "error" ? JSON.stringify(outcome.detail).slice(0, 2000) : null,
                   promptId: outcome.detail?.prompt_id || null });
  }
  const stored = await page.evaluate(() => window.localStorage.getItem("comfy_api_key"));
  console.log(JSON.stringify({ results, keyStored: stored === apiKey, platformRequests: platform.slice(0, 20),
                               pageErrors: pageErrors.slice(0, 10) }));
  await context.close();
})().catch((e) => { console.error("API WORKFLOW CHECK FAILED", e); process.exit(1); });
