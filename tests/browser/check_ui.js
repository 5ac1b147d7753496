// Real headless Chromium (Debian package) driven by playwright-core against a running ComfyUI.
// Usage: node check_ui.js URL SHOT_DIR WORKFLOW.json...   Prints one JSON report on stdout.
const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const [url, shotDir, ...workflows] = process.argv.slice(2);

(async () => {
  fs.mkdirSync(shotDir, { recursive: true });
  const userDataDir = fs.mkdtempSync(path.join(require("os").tmpdir(), "rl-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1600, height: 1000 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const page = context.pages()[0] || (await context.newPage());
  const consoleLines = [], pageErrors = [], external = [];
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith("http://127.0.0.1") && !u.startsWith("data:") && !u.startsWith("blob:")) external.push(u);
  });

  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => window.__REWARDLOOP !== undefined, null, { timeout: 90000 });
  await page.waitForFunction(() => window.LiteGraph && window.app && window.app.graph, null, { timeout: 90000 });
  await page.waitForTimeout(1500);
  await page.keyboard.press("Escape"); // first-run templates dialog
  await page.waitForTimeout(300);

  const registered = await page.evaluate(() =>
    Object.keys(LiteGraph.registered_node_types).filter((k) => k.startsWith("RewardLoop")).sort());
  const nodeDefsSeen = await page.evaluate(() => (window.__REWARDLOOP_NODE_DEFS || []).slice().sort());

  // Node library sidebar: search for the pack and read what the panel lists.
  let libraryText = "";
  try {
    await page.mouse.click(900, 600);
    await page.keyboard.press("n");
    await page.waitForTimeout(800);
    const search = page.locator('.side-bar-panel input, .sidebar-content-container input, input[placeholder*="Search"]').first();
    if (await search.count()) {
      await search.fill("RewardLoop");
      await page.waitForTimeout(1200);
      libraryText = await page.locator(".side-bar-panel, .sidebar-content-container").first().innerText();
    }
    await page.screenshot({ path: path.join(shotDir, "node_library.png") });
    await page.keyboard.press("n");
  } catch (e) {
    libraryText = `ERROR ${e}`;
  }

  const loaded = [];
  for (const wf of workflows) {
    const data = JSON.parse(fs.readFileSync(wf, "utf8"));
    // Close whatever the previous graph opened (the default graph's "missing models" notice, say).
    for (let i = 0; i < 3 && (await page.locator(".p-dialog").count()); i++) {
      await page.keyboard.press("Escape");
      await page.waitForTimeout(200);
    }
    const result = await page.evaluate(async (graphData) => {
      const known = LiteGraph.registered_node_types;
      await app.loadGraphData(graphData, true, true, null);
      await new Promise((r) => setTimeout(r, 500));
      const nodes = app.graph._nodes || app.graph.nodes || [];
      const types = nodes.map((n) => n.type);
      const missing = types.filter((t) => !(t in known));
      const subgraphIds = new Set((graphData.definitions?.subgraphs || []).map((s) => s.id));
      const api = await app.graphToPrompt();
      return { nodeCount: nodes.length, missing: missing.filter((t) => !subgraphIds.has(t)),
               types: Array.from(new Set(types)).sort(), apiPrompt: api.output };
    }, data);
    // The frontend opens a "missing nodes" dialog when types are unknown; record whether one is up.
    const dialogText = await page.locator(".p-dialog").allInnerTexts().catch(() => []);
    await page.keyboard.press("Escape");
    await page.evaluate(() => { app.canvas.setDirty(true, true); });
    await page.mouse.click(700, 900);
    await page.keyboard.press(".");  // fit the whole graph into view
    const shot = path.join(shotDir, path.basename(wf).replace(/\.json$/, ".png"));
    await page.waitForTimeout(300);
    await page.screenshot({ path: shot });
    loaded.push({ file: path.basename(wf), ...result, dialogs: dialogText.map((t) => t.slice(0, 300)), screenshot: shot });
  }

  console.log(JSON.stringify({ registered, nodeDefsSeen, libraryText: libraryText.slice(0, 4000), workflows: loaded,
    rewardloopConsole: consoleLines.filter((l) => l.includes("[rewardloop]")),
    consoleErrors: consoleLines.filter((l) => l.startsWith("error")).slice(0, 20),
    pageErrors: pageErrors.slice(0, 10), externalRequests: external.slice(0, 20) }));
  await context.close();
})().catch((e) => { console.error("BROWSER CHECK FAILED", e); process.exit(1); });
