// Real headless Chromium (Debian package) driven by playwright-core against running ComfyUI servers: every
// frontend x renderer combination of the plan in one browser process. For each workflow: load, press Run in the
// UI, wait for the end, then measure from the page (node, widget and chart rectangles, chart data) and save
// screenshots (whole canvas, and each chart widget for the pixel checks done in Python); the sidebar part
// opens the RewardLoop tab, follows a running training job and presses its Cancel button.
// Usage: node check_ui.js PLAN.json   (prints one JSON report on stdout)
const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const plan = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const SHOTS = plan.shotDir;
const VIEWPORT = { width: 1600, height: 1000 };

function log(...args) {
  console.error(`[check_ui ${new Date().toISOString().slice(11, 19)}]`, ...args);
}

async function closeDialogs(page) {
  for (let i = 0; i < 4; i++) {
    if (!(await page.locator(".p-dialog, [role=dialog]").count())) return;
    await page.keyboard.press("Escape");
    await page.waitForTimeout(250);
  }
}

async function openPage(browser, server, renderer) {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  const rec = { console: [], pageErrors: [], external: [] };
  page.on("console", (m) => rec.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => rec.pageErrors.push(String(e)));
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith("http://127.0.0.1") && !u.startsWith("data:") && !u.startsWith("blob:")) rec.external.push(u);
  });
  // No first-run templates dialog or tour over the canvas (the setting a user's first visit ends with).
  await page.request.post(`${server.url}api/settings/Comfy.TutorialCompleted`, { data: true });
  await page.goto(server.url, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => window.__REWARDLOOP && window.app?.graph && window.LiteGraph, null, { timeout: 120000 });
  await page.waitForTimeout(1500);
  await closeDialogs(page);
  await page.evaluate(async (vue) => {
    const s = app.extensionManager.setting;
    await s.set("Comfy.VueNodes.Enabled", vue);
    try { await s.set("Comfy.Minimap.Visible", false); } catch { /* older frontends */ }
  }, renderer === "vue");
  await page.waitForTimeout(500);
  await page.evaluate(() => {
    // The run's websocket messages, in order (the test waits on them; the extension never sees this list).
    const events = (window.__RL_TEST_EVENTS = []);
    for (const type of ["execution_start", "execution_success", "execution_error", "execution_interrupted", "executed",
                        "rewardloop.loop", "rewardloop.training"]) {
      window.__REWARDLOOP.api.addEventListener(type, ({ detail }) => events.push({ type, detail, at: Date.now() }));
    }
  });
  return { context, page, rec };
}

// ---- graph edits the plan asks for (tiny model files, stand-ins for the UMT5 text encoder) --------------------
async function applyPatch(page, patch) {
  return page.evaluate((patch) => {
    const graph = app.graph;
    const nodes = () => [...(graph._nodes ?? graph.nodes)];
    const done = [];
    for (const { type, name, value } of patch.widgets ?? []) {
      for (const node of nodes().filter((n) => n.type === type)) {
        const w = node.widgets?.find((x) => x.name === name);
        if (!w) throw new Error(`${type} has no widget ${name}`);
        w.value = value;
        w.callback?.(value);
        done.push(`${type}.${name}`);
      }
    }
    if (patch.textEncoderStandIn) {
      const text = patch.textEncoderStandIn;
      const standIn = (at, label) => {
        const n = LiteGraph.createNode("RLTestTextConditioning");
        n.pos = [...at.pos];
        graph.add(n);
        n.widgets.find((w) => w.name === "text").value = label;
        n.setSize([Math.min(at.size[0], n.size[0]), Math.min(at.size[1], n.size[1])]);
        return n;
      };
      for (const enc of nodes().filter((n) => n.type === "CLIPTextEncode")) {
        const label = enc.widgets.find((w) => w.name === "text").value;
        const targets = (enc.outputs[0].links ?? []).map((id) => graph.links[id] ?? graph.links.get?.(id)).filter(Boolean)
          .map((l) => [graph.getNodeById(l.target_id), l.target_slot]);
        const n = standIn(enc, label);
        graph.remove(enc);
        for (const [target, slot] of targets) n.connect(0, target, slot);
        done.push("CLIPTextEncode->RLTestTextConditioning");
      }
      for (const loader of nodes().filter((n) => n.type === "CLIPLoader")) {
        const caches = nodes().filter((n) => n.type === "RewardLoopTextEmbeddingCache");
        const n = standIn(loader, text);
        graph.remove(loader);
        for (const cache of caches) n.connect(0, cache, cache.findInputSlot("conditioning"));
        done.push("CLIPLoader->RLTestTextConditioning");
      }
    }
    app.canvas.setDirty(true, true);
    return done;
  }, patch);
}

// ---- geometry ----------------------------------------------------------------------------------------------
// Screen rectangles [x, y, w, h] of every node and, per chart / job widget, of it and of the other widgets of
// its node, in whichever renderer is active.
async function measure(page) {
  // the view may still be settling (fit-view animation, Vue layout): measure once the scale holds for 3 frames
  await page.evaluate(async () => {
    let last = null, same = 0;
    for (let i = 0; i < 60 && same < 3; i++) {
      await new Promise((r) => requestAnimationFrame(r));
      const now = `${app.canvas.ds.scale} ${app.canvas.ds.offset}`;
      same = now === last ? same + 1 : 0;
      last = now;
    }
  });
  return page.evaluate(() => {
    const vue = !!document.querySelector("[data-node-id]");
    const canvas = app.canvas;
    const cr = canvas.canvas.getBoundingClientRect();
    const scale = canvas.ds.scale, off = canvas.ds.offset;
    const toScreen = ([x, y, w, h]) => [(x + off[0]) * scale + cr.left, (y + off[1]) * scale + cr.top, w * scale, h * scale];
    const rect = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; };
    const graphNodes = [...(app.graph._nodes ?? app.graph.nodes)];
    const out = { vue, scale, nodes: [], widgets: [] };
    for (const node of graphNodes) {
      let box;
      if (vue) {
        const el = document.querySelector(`[data-node-id="${node.id}"]`);
        box = el ? rect(el) : null;
      } else {
        const b = node.boundingRect ?? node.getBounding();
        box = toScreen([b[0], b[1], b[2], b[3]]);
      }
      out.nodes.push({ id: String(node.id), type: node.type, title: node.title, box, collapsed: !!node.flags?.collapsed });
      for (const w of node.widgets ?? []) {
        const el = w.element;
        if (!el || !["chart", "job"].includes(el.dataset?.rewardloop)) continue;
        const others = [];
        if (vue) {
          const nodeEl = document.querySelector(`[data-node-id="${node.id}"]`);
          const own = el.closest(".lg-node-widget");
          for (const row of nodeEl?.querySelectorAll(".lg-node-widget") ?? []) {
            if (row !== own && !row.contains(el)) others.push({ name: row.textContent.trim().slice(0, 30), box: rect(row) });
          }
        } else {
          for (const o of node.widgets) {
            if (o === w || o.hidden || o.type === "hidden" || o.options?.hidden || !Number.isFinite(o.y)) continue;
            const h = o.computedHeight ?? (o.computeSize ? o.computeSize(node.size[0])[1] : LiteGraph.NODE_WIDGET_HEIGHT);
            if (!(h > 0)) continue;
            const box = o.element?.isConnected ? rect(o.element) : toScreen([node.pos[0], node.pos[1] + o.y, node.size[0], h]);
            others.push({ name: o.name, box });
          }
        }
        const style = getComputedStyle(el);
        const box = rect(el);
        const probes = [[0.5, 0.5], [0.15, 0.3], [0.85, 0.7]].map(([fx, fy]) => {
          const hit = document.elementFromPoint(box[0] + box[2] * fx, box[1] + box[3] * fy);
          return !!hit && el.contains(hit);
        });
        out.widgets.push({ node: String(node.id), type: node.type, kind: el.dataset.rewardloop, box, others,
                           displayed: style.display !== "none" && style.visibility !== "hidden" && el.isConnected,
                           onTop: probes, data: { ...el.dataset } });
      }
    }
    return out;
  });
}

async function showWidget(page, nodeId, kind) {
  // Zoom 1, the widget in the middle of the viewport (tall nodes do not fit on screen whole).
  return page.evaluate(async ([nodeId, kind]) => {
    const node = app.graph.getNodeById(Number(nodeId)) ?? app.graph.getNodeById(nodeId);
    const canvas = app.canvas;
    canvas.ds.scale = 1;
    canvas.centerOnNode(node);
    canvas.setDirty(true, true);
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    const el = node.widgets.find((w) => w.element?.dataset?.rewardloop === kind)?.element;
    if (!el) return false;
    const r = el.getBoundingClientRect(), cr = canvas.canvas.getBoundingClientRect();
    canvas.ds.offset[0] += (cr.left + cr.width / 2 - (r.left + r.width / 2)) / canvas.ds.scale;
    canvas.ds.offset[1] += (cr.top + cr.height / 2 - (r.top + r.height / 2)) / canvas.ds.scale;
    canvas.setDirty(true, true);
    await new Promise((r) => setTimeout(r, 250));
    return true;
  }, [nodeId, kind]);
}

async function fitView(page) {
  await page.evaluate(async () => {
    app.canvas.deselectAll?.();
    await app.extensionManager.command.execute("Comfy.Canvas.FitView");
    app.canvas.setDirty(true, true);
  }).catch(() => {});
  await page.waitForTimeout(400);
}

// ---- running ------------------------------------------------------------------------------------------------
async function pressRun(page, timeoutMs) {
  const before = await page.evaluate(() => window.__RL_TEST_EVENTS.length);
  await closeDialogs(page);
  await page.locator('[data-testid="queue-button"]').first().click();
  const started = await page.waitForFunction((n) => window.__RL_TEST_EVENTS.slice(n).find((e) => e.type === "execution_start"),
    before, { timeout: 30000 }).then((h) => h.jsonValue()).catch(() => null);
  if (!started) {
    const dialogs = await page.locator(".p-dialog, [role=dialog], .p-toast-message").allInnerTexts().catch(() => []);
    return { status: "not started", error: dialogs.join("\n").slice(0, 2000) };
  }
  const promptId = started.detail.prompt_id;
  const end = await page.waitForFunction((id) => window.__RL_TEST_EVENTS.find((e) => e.detail?.prompt_id === id &&
      ["execution_success", "execution_error", "execution_interrupted"].includes(e.type)), promptId,
    { timeout: timeoutMs, polling: 250 }).then((h) => h.jsonValue()).catch(() => null);
  await page.waitForTimeout(600); // charts are drawn on the next frames
  const executed = await page.evaluate((id) => window.__RL_TEST_EVENTS.filter((e) => e.type === "executed" && e.detail.prompt_id === id)
    .map((e) => ({ node: String(e.detail.display_node ?? e.detail.node), keys: Object.keys(e.detail.output ?? {}),
                   log: e.detail.output?.rewardloop_log?.[0] ? { passed: e.detail.output.rewardloop_log[0].passed } : null,
                   job: e.detail.output?.rewardloop_job?.[0] ?? null })), promptId);
  return { status: end ? end.type.replace("execution_", "") : "timeout", promptId,
           error: end?.type === "execution_error" ? end.detail.exception_message : null, executed,
           seconds: end ? (end.at - started.at) / 1000 : null };
}

async function shot(page, name, clip) {
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file, clip });
  return file;
}

// ---- one frontend x renderer --------------------------------------------------------------------------------
async function openCombo(browser, server, renderer) {
  const combo = `${server.label}-${renderer}`;
  log(`${combo}: opening`);
  const t0 = Date.now();
  const { context, page, rec } = await openPage(browser, server, renderer);
  const result = { combo, frontend: server.label, renderer, workflows: [], vueActive: false };
  result.version = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ ?? null);
  result.sidebarRegistered = await page.evaluate(() => window.__REWARDLOOP.sidebar);
  if (server.first && renderer === server.renderers[0]) {
    result.registered = await page.evaluate(() => Object.keys(LiteGraph.registered_node_types).filter((k) => k.startsWith("RewardLoop")).sort());
    result.nodeDefsSeen = await page.evaluate(() => [...new Set(window.__REWARDLOOP_NODE_DEFS || [])].sort());
    result.libraryText = await libraryText(page);
  }
  return { server, renderer, combo, context, page, rec, result, previousRan: null, ms: Date.now() - t0 };
}

// The node library panel, searched for the pack, as a user opens it (key "n").
async function libraryText(page) {
  let text = "";
  try {
    await page.mouse.click(900, 600);
    await page.keyboard.press("n");
    await page.waitForTimeout(800);
    const search = page.locator('.side-bar-panel input, .sidebar-content-container input, input[placeholder*="Search"]').first();
    if (await search.count()) {
      await search.fill("RewardLoop");
      await page.waitForTimeout(1200);
      text = await page.locator(".side-bar-panel, .sidebar-content-container").first().innerText();
    }
    await shot(page, "node_library.png");
    await page.keyboard.press("n");
  } catch (e) {
    text = `ERROR ${e}`;
  }
  return text.slice(0, 4000);
}

// Hovering a chart shows the readout: the widget's pixels change under the pointer, and go back after.
async function hoverCheck(page, w, file) {
  const [x, y, bw, bh] = w.box;
  const clip = { x, y, width: bw, height: bh };
  await page.mouse.move(x + bw * 0.35, y + bh * 0.6);
  await page.waitForTimeout(150);
  const hovered = await shot(page, file, clip);
  await page.mouse.move(5, VIEWPORT.height - 5);
  await page.waitForTimeout(150);
  return hovered;
}

// The chart settings apply at once to every chart on the canvas: height, then off, then back.
async function settingsCheck(page) {
  const heights = () => page.evaluate(() => [...document.querySelectorAll(".rewardloop-chart")]
    .map((e) => ({ h: e.getBoundingClientRect().height / app.canvas.ds.scale, shown: e.offsetParent !== null })));
  const set = (id, v) => page.evaluate(async ([id, v]) => { await app.extensionManager.setting.set(id, v); }, [id, v]);
  // The chart nodes in view at a readable zoom: zoomed out past the low-quality threshold the frontend hides
  // every DOM widget, which is not what this check is about.
  await page.evaluate(async () => {
    const nodes = (app.graph._nodes ?? app.graph.nodes).filter((n) => n.__rewardloop?.kind === "chart");
    if (!nodes.length) return;
    const x0 = Math.min(...nodes.map((n) => n.pos[0])), y0 = Math.min(...nodes.map((n) => n.pos[1] - 30));
    const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0])), y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
    const cr = app.canvas.canvas.getBoundingClientRect();
    const ds = app.canvas.ds;
    ds.scale = Math.max(0.8, Math.min(1, (0.9 * cr.width) / (x1 - x0), (0.9 * cr.height) / (y1 - y0)));
    ds.offset[0] = cr.width / 2 / ds.scale - (x0 + x1) / 2;
    ds.offset[1] = cr.height / 2 / ds.scale - (y0 + y1) / 2;
    app.canvas.setDirty(true, true);
    await new Promise((r) => setTimeout(r, 300));
  });
  const out = { before: await heights() };
  await set("RewardLoop.Charts.Height", 280);
  await page.waitForTimeout(400);
  out.taller = await heights();
  out.tallerMeasure = await measure(page);
  await set("RewardLoop.Charts.Enabled", false);
  await page.waitForTimeout(400);
  out.off = await heights();
  await set("RewardLoop.Charts.Enabled", true);
  await set("RewardLoop.Charts.Height", 180);
  await page.waitForTimeout(400);
  out.after = await heights();
  return out;
}

// Removing a node removes its chart state (a node added later under the same id starts empty).
async function removalCheck(page) {
  return page.evaluate(() => {
    const store = window.__REWARDLOOP.store;
    const node = (app.graph._nodes ?? app.graph.nodes).find((n) => n.__rewardloop?.kind === "chart" && store.get(String(n.id)));
    if (!node) return { error: "no chart with data" };
    const id = String(node.id);
    app.graph.remove(node);
    return { id, before: true, after: !!store.get(id) };
  });
}

// The sidebar's loop table: clicking a loop of the open workflow selects its node on the canvas.
async function jumpCheck(page) {
  const button = page.locator('.rewardloop-tab-button, [data-testid="rewardloop-tab-button"]').first();
  await button.click();
  const out = {};
  try {
    const card = page.locator(".rewardloop-sidebar .rl-loop").first();
    await card.waitFor({ timeout: 10000 });
    out.executionId = await card.getAttribute("data-execution-id");
    out.rows = await card.locator("tr").count();
    await card.locator(".rl-loop-head").click();
    await page.waitForTimeout(300);
    out.selected = await page.evaluate(() => Object.keys(app.canvas.selected_nodes ?? {}).map(String));
  } catch (e) {
    out.error = String(e).slice(0, 1000);
  }
  await button.click().catch(() => {});
  return out;
}

// Run a loop again with another seed: its chart then holds that run's attempts only (no point of the first run).
async function rerunCheck(page) {
  const seed = await page.evaluate(() => {
    const open = (app.graph._nodes ?? app.graph.nodes).find((n) => n.type === "RewardLoopRetryOpen");
    const w = open.widgets.find((x) => x.name === "seed");
    w.value = (w.value + 1) % 1000;
    return w.value;
  });
  const run = await pressRun(page, 300000);
  const close = await page.evaluate(() => {
    const node = (app.graph._nodes ?? app.graph.nodes).find((n) => n.type === "RewardLoopRetryClose");
    const el = node.__rewardloop.view.element;
    return { id: String(node.id), points: Number(el.dataset.points || 0), prompt: el.dataset.prompt };
  });
  const sent = await page.evaluate(([id, prompt]) => window.__RL_TEST_EVENTS.filter((e) => e.type === "executed"
    && e.detail.prompt_id === prompt && String(e.detail.display_node ?? e.detail.node) === id)
    .map((e) => e.detail.output.rewardloop_log[0].attempts.length), [close.id, run.promptId]);
  return { seed, status: run.status, promptId: run.promptId, ...close, attemptsSent: sent[0] ?? null };
}

async function runWorkflow(c, wf) {
  const { page, combo, server } = c;
  const t0 = Date.now();
  const name = wf.file.replace(/\.json$/, "");
  const entry = { file: wf.file, combo };
  log(`${combo}: ${wf.file}`);
  await closeDialogs(page);
  entry.load = await page.evaluate(async ([data, name]) => {
    const known = LiteGraph.registered_node_types;
    await app.loadGraphData(data, true, true, name);
    await new Promise((r) => setTimeout(r, 600));
    const nodes = app.graph._nodes || app.graph.nodes || [];
    const subgraphIds = new Set((data.definitions?.subgraphs || []).map((s) => s.id));
    const api = await app.graphToPrompt();
    return { nodeCount: nodes.length, missing: nodes.map((n) => n.type).filter((t) => !(t in known) && !subgraphIds.has(t)),
             apiPrompt: api.output };
  }, [wf.data, name]);
  entry.dialogs = (await page.locator(".p-dialog").allInnerTexts().catch(() => [])).map((t) => t.slice(0, 300));
  await closeDialogs(page);
  await page.waitForTimeout(300);
  // What shows right after opening this workflow (the previous one ran in this tab): none of its charts.
  entry.afterOpen = await page.evaluate(() => ({
    storeEntries: window.__REWARDLOOP.store.entries.size,
    charts: [...document.querySelectorAll(".rewardloop-chart")].filter((e) => e.isConnected && e.offsetParent !== null)
      .map((e) => ({ points: Number(e.dataset.points || 0), prompt: e.dataset.prompt || "" })),
  }));
  entry.previousPrompt = c.previousRan;
  await fitView(page);
  entry.loaded = await measure(page);
  c.result.vueActive = c.result.vueActive || entry.loaded.vue;
  entry.loadedShot = await shot(page, `${combo}-${name}-loaded.png`);
  const patch = server.patches?.[name];
  if (patch) entry.patched = await applyPatch(page, patch);
  if (wf.run) {
    entry.run = await pressRun(page, wf.timeoutMs ?? 300000);
    log(`${combo}: ${wf.file} ${entry.run.status} ${entry.run.seconds ?? ""} s`);
    if (entry.run.status === "success") c.previousRan = entry.run.promptId;
  } else {
    entry.run = { status: "not run", why: wf.why };
  }
  entry.ran = await measure(page);
  entry.chartShots = {};
  for (const w of entry.ran.widgets) {
    if (!(await showWidget(page, w.node, w.kind))) continue;
    const m = await measure(page);
    const mw = m.widgets.find((x) => x.node === w.node && x.kind === w.kind);
    if (!mw) continue;
    Object.assign(w, { box: mw.box, others: mw.others, onTop: mw.onTop, displayed: mw.displayed, data: mw.data,
                       nodeBox: m.nodes.find((n) => n.id === w.node)?.box });
    const [x, y, bw, bh] = mw.box;
    if (bw > 2 && bh > 2 && x >= 0 && y >= 0 && x + bw <= VIEWPORT.width && y + bh <= VIEWPORT.height) {
      entry.chartShots[`${w.node}:${w.kind}`] = await shot(page, `${combo}-${name}-node${w.node}-${w.kind}.png`,
                                                          { x, y, width: bw, height: bh });
    }
  }
  const withData = entry.ran.widgets.find((w) => w.kind === "chart" && Number(w.data?.points || 0) > 0 && entry.chartShots[`${w.node}:chart`]);
  if (withData && (await showWidget(page, withData.node, "chart"))) {
    const m = (await measure(page)).widgets.find((x) => x.node === withData.node && x.kind === "chart");
    entry.hover = { node: withData.node, plain: await shot(page, `${combo}-${name}-node${withData.node}-plain.png`,
                                                         { x: m.box[0], y: m.box[1], width: m.box[2], height: m.box[3] }),
                    hovered: await hoverCheck(page, m, `${combo}-${name}-node${withData.node}-hover.png`) };
  }
  await fitView(page);
  entry.ranShot = await shot(page, `${combo}-${name}-ran.png`);
  if (wf.run && entry.run.status === "success") entry.ranOverall = await measure(page);
  if (wf.settings && c.renderer === c.server.renderers[0]) {
    entry.settings = await settingsCheck(page);
    entry.removal = await removalCheck(page);
  }
  if (wf.jump && entry.run.status === "success" && c.renderer === c.server.renderers[0]) {
    entry.jump = await jumpCheck(page);
    entry.rerun = await rerunCheck(page);
    if (entry.rerun.status === "success") c.previousRan = entry.rerun.promptId;
  }
  if (wf.sidebar && server.sidebarIn === c.renderer) entry.sidebar = await sidebarCheck(page, combo, entry);
  entry.seconds = (Date.now() - t0) / 1000;
  c.result.workflows.push(entry);
}

async function closeCombo(c, report) {
  const { page, rec, result } = c;
  result.toasts = await page.evaluate(() => window.__REWARDLOOP.toasts);
  result.trainingStatuses = await page.evaluate(() => [...new Set(window.__RL_TEST_EVENTS
    .filter((e) => e.type === "rewardloop.training").map((e) => `${e.detail.job_id} ${e.detail.status}`))]);
  result.consoleRewardloop = rec.console.filter((l) => l.includes("[rewardloop]"));
  result.pageErrors = rec.pageErrors.slice(0, 20);
  result.external = rec.external.slice(0, 40);
  result.seconds = (c.ms + result.workflows.reduce((t, w) => t + w.seconds * 1000, 0)) / 1000;
  await c.context.close();
  report.combos.push(result);
  log(`${c.combo}: ${result.seconds} s`);
}

// ---- sidebar: a running training job, its growing step count, its Cancel button ------------------------------
async function sidebarCheck(page, combo, entry) {
  const out = { steps: [] };
  const launched = (entry.run.executed ?? []).map((e) => e.job).find((j) => j && j.id);
  out.jobId = launched?.id ?? null;
  if (!out.jobId) return { error: "the workflow launched no job", ...out };
  const button = page.locator('.rewardloop-tab-button, [data-testid="rewardloop-tab-button"]').first();
  await button.click();
  const card = page.locator(`.rewardloop-sidebar .rl-job[data-job-id="${out.jobId}"]`);
  try {
    await card.waitFor({ timeout: 30000 });
    const t0 = Date.now();
    while (Date.now() - t0 < 120000) {
      const d = await card.evaluate((e) => ({ status: e.dataset.status, step: Number(e.dataset.step) }));
      if (!out.steps.length || out.steps[out.steps.length - 1].step !== d.step) out.steps.push({ ...d, t: (Date.now() - t0) / 1000 });
      if (new Set(out.steps.filter((s) => s.status === "running" && s.step >= 1).map((s) => s.step)).size >= 2) break;
      if (!["running", "starting"].includes(d.status)) break;
      await page.waitForTimeout(500);
    }
    out.chartPanels = await page.evaluate(() => Number(document.querySelector(".rewardloop-sidebar [data-rewardloop=job-chart]")?.dataset.panels || 0));
    out.runningShot = await shot(page, `${combo}-sidebar-running.png`);
    const t1 = Date.now();
    await card.locator('button[data-action="cancel"]').click();
    await page.waitForFunction((id) => document.querySelector(`.rewardloop-sidebar .rl-job[data-job-id="${id}"]`)?.dataset.status === "cancelled",
      out.jobId, { timeout: 60000 });
    out.cancelSeconds = (Date.now() - t1) / 1000;
    out.final = await card.evaluate((e) => ({ status: e.dataset.status, step: Number(e.dataset.step), text: e.innerText }));
    await page.waitForTimeout(2500); // the watcher's next event reaches the node widget
    out.jobWidget = await page.evaluate((id) => [...document.querySelectorAll("[data-rewardloop=job]")].map((e) => ({ ...e.dataset }))
      .find((d) => d.job === id) ?? null, out.jobId);
    out.cancelledShot = await shot(page, `${combo}-sidebar-cancelled.png`);
  } catch (e) {
    out.error = String(e).slice(0, 2000);
    out.errorShot = await shot(page, `${combo}-sidebar-error.png`).catch(() => null);
  }
  await button.click().catch(() => {});
  return out;
}

(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const t0 = Date.now();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const report = { combos: [] };
  // Per server, one tab per renderer, workflow by workflow: the second tab's run of a graph follows the first's.
  for (const server of plan.servers) {
    const combos = [];
    for (const renderer of server.renderers) combos.push(await openCombo(browser, server, renderer));
    for (const wf of plan.workflows) for (const c of combos) await runWorkflow(c, wf);
    for (const c of combos) await closeCombo(c, report);
  }
  await browser.close();
  report.seconds = (Date.now() - t0) / 1000;
  console.log(JSON.stringify(report));
})().catch((e) => { console.error("BROWSER CHECK FAILED", e); process.exit(1); });
