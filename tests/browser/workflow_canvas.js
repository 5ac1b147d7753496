// Opens workflow files in the real frontend in headless Chromium (playwright-core + Debian's chromium), in the
// classic canvas or Nodes 2.0, optionally runs them (Queue, as the Run button does), and reports every node's and
// group's rectangle in canvas coordinates as the frontend laid them out, the overlaps between nodes, a screenshot
// of the fitted graph, and optionally a close-up of one node (the template thumbnail).
// Usage: node workflow_canvas.js URL OUT_DIR PLAN.json        Prints one JSON line.
// PLAN: {"renderer": "classic"|"vue", "settings": {frontend setting id: value}?,
//        "workflows": [{"file": path, "run": bool, "closeup": node id or null}]}
const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const [url, outDir, planFile] = process.argv.slice(2);
const plan = JSON.parse(fs.readFileSync(planFile, "utf8"));
const VIEW = { width: 1600, height: 1000 };
const CLOSEUP = { width: 960, height: 720 };

const settle = (page, ms) => page.waitForTimeout(ms);

(async () => {
  fs.mkdirSync(outDir, { recursive: true });
  const userDataDir = fs.mkdtempSync(path.join(require("os").tmpdir(), "rl-canvas-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, viewport: VIEW,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  // Each workflow is opened in a freshly loaded page, as a user opens one template (loading graph after graph into
  // one page makes the 1.32.9 frontend rescale Nodes 2.0 layouts again on every tab switch).
  async function openApp() {
    await page.goto(url, { waitUntil: "domcontentloaded" });
    await page.waitForFunction(() => window.app && window.app.graph && window.LiteGraph, null, { timeout: 120000 });
    await settle(page, 1500);
    await page.keyboard.press("Escape");
    const changed = await page.evaluate(async ({ vue, extra }) => {
      const setting = window.app.extensionManager?.setting;
      if (!setting?.set) return false;
      const before = setting.get("Comfy.VueNodes.Enabled");
      await setting.set("Comfy.VueNodes.Enabled", vue);
      await setting.set("Comfy.Workflow.ShowMissingModelsWarning", false);
      for (const [id, value] of Object.entries(extra)) await setting.set(id, value);
      return before !== vue;
    }, { vue: plan.renderer === "vue", extra: plan.settings || {} });
    if (changed) return await openApp();  // start in the chosen renderer, as a user's next session does
    return await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ || null);
  }

  let version = null;
  const results = [];
  for (const item of plan.workflows) {
    const data = JSON.parse(fs.readFileSync(item.file, "utf8"));
    const name = path.basename(item.file, ".json");
    version = await openApp();
    for (let i = 0; i < 3 && (await page.locator(".p-dialog").count()); i++) {
      await page.keyboard.press("Escape");
      await settle(page, 200);
    }
    await page.evaluate(async (graph) => { await window.app.loadGraphData(graph, true, true, null); }, data);
    await settle(page, 1500);
    let status = "loaded";
    if (item.run) {
      status = await page.evaluate(async () => {
        const target = window.comfyAPI?.api?.api ?? window.app.api;
        const done = new Promise((resolve) => {
          const finish = (s) => () => resolve(s);
          target.addEventListener("execution_success", finish("success"), { once: true });
          target.addEventListener("execution_error", finish("error"), { once: true });
          setTimeout(finish("timeout"), 540000);
        });
        await window.app.queuePrompt(0, 1);
        return await done;
      });
      await settle(page, 3000);  // outputs, previews and charts arrive after the success event
    }
    const report = await page.evaluate(() => {
      const app = window.app;
      const titleH = window.LiteGraph.NODE_TITLE_HEIGHT;
      const cr = app.canvas.canvas.getBoundingClientRect();
      const ds = app.canvas.ds;
      const toCanvas = (r) => [(r.left - cr.left) / ds.scale - ds.offset[0], (r.top - cr.top) / ds.scale - ds.offset[1],
                               r.width / ds.scale, r.height / ds.scale];
      const nodes = (app.graph._nodes || app.graph.nodes || []).map((n) => {
        const el = document.querySelector(`[data-node-id="${n.id}"]`);
        const dom = el ? toCanvas(el.getBoundingClientRect()) : null;
        const lg = [n.pos[0], n.pos[1] - titleH, n.size[0], n.size[1] + titleH];
        return { id: n.id, type: n.type, title: n.title, litegraph: lg, dom, rect: dom || lg };
      });
      const groups = (app.graph._groups || app.graph.groups || []).map((g) => ({ title: g.title, rect: Array.from(g._bounding || g.bounding) }));
      return { nodes, groups };
    });
    const overlaps = [];
    const hit = (a, b) => a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3];
    for (let i = 0; i < report.nodes.length; i++)
      for (let j = i + 1; j < report.nodes.length; j++)
        if (hit(report.nodes[i].rect, report.nodes[j].rect)) overlaps.push([report.nodes[i].id, report.nodes[j].id]);

    await page.evaluate(() => window.app.canvas.deselectAll?.());
    await page.mouse.click(800, 990);
    await page.keyboard.press(".");  // fit the whole graph into view
    await settle(page, 800);
    const shot = path.join(outDir, `${name}.${plan.renderer}.png`);
    await page.screenshot({ path: shot });

    let closeup = null;
    const target = report.nodes.find((n) => String(n.id) === String(item.closeup));
    if (target) {
      // Centre the node at a readable zoom (the classic canvas drops text below 0.6), its top part if it is taller.
      const [x, y, w, h] = target.rect;
      const scale = Math.max(0.7, Math.min(1, (0.94 * CLOSEUP.height) / h, (0.94 * CLOSEUP.width) / w));
      const shownH = Math.min(h, (0.94 * CLOSEUP.height) / scale);
      const centre = { x: 830, y: 560 };
      const centreOn = () => page.evaluate(({ x, y, w, shownH, scale, centre }) => {
        const c = window.app.canvas;
        const cr = c.canvas.getBoundingClientRect();
        const state = c.ds.state ?? c.ds;  // newer litegraph keeps scale and offset in ds.state
        state.scale = scale;
        state.offset[0] = (centre.x - cr.left) / scale - (x + w / 2);
        state.offset[1] = (centre.y - cr.top) / scale - (y + shownH / 2);
        c.setDirty(true, true);
      }, { x, y, w, shownH, scale, centre });
      await settle(page, 1500);  // the fit-view above may still be animating
      await centreOn();
      await settle(page, 1000);
      await centreOn();  // again, in case an animation frame moved it
      await settle(page, 800);
      closeup = path.join(outDir, `${name}.closeup.png`);
      await page.screenshot({ path: closeup, clip: { x: centre.x - CLOSEUP.width / 2, y: centre.y - CLOSEUP.height / 2,
                                                     width: CLOSEUP.width, height: CLOSEUP.height } });
    }
    results.push({ file: path.basename(item.file), status, ...report, overlaps, screenshot: shot, closeup });
  }
  console.log(JSON.stringify({ version, renderer: plan.renderer, workflows: results, pageErrors: errors.slice(0, 10) }));
  await context.close();
})().catch((e) => { console.error("CANVAS CHECK FAILED", e); process.exit(1); });
