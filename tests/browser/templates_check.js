// The pack as the frontend presents it, in real headless Chromium: the Browse Templates dialog (card titles, order
// and pictures of the pack's workflows), the node search (internal nodes absent) and a node's help panel.
// and the missing-model dialog of a workflow whose model files the server lacks.
// Usage: node templates_check.js URL SHOT_DIR NODE_ID_FOR_HELP WORKFLOW_NEEDING_MODELS.json   Prints one JSON line.
const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const [url, shotDir, helpNode, modelsWorkflow] = process.argv.slice(2);
const settle = (page, ms) => page.waitForTimeout(ms);
let page;

async function closeDialogs() {
  for (let i = 0; i < 4; i++) {
    const open = page.locator(".p-dialog, [role='dialog']");
    if (!(await open.count())) return;
    if (i < 2) await page.keyboard.press("Escape");
    else await page.locator(".p-dialog-close-button, [role='dialog'] button[aria-label='Close'], [role='dialog'] button:has(.pi-times)").first().click({ timeout: 3000 }).catch(() => {});
    await settle(page, 500);
  }
}

(async () => {
  fs.mkdirSync(shotDir, { recursive: true });
  const context = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(require("os").tmpdir(), "rl-tpl-")), {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, viewport: { width: 1600, height: 1000 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  page = context.pages()[0] || (await context.newPage());
  const pictures = [];
  page.on("response", (r) => { if (r.url().includes("/workflow_templates/") && r.url().endsWith(".jpg")) pictures.push([r.status(), decodeURIComponent(r.url())]); });
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => window.app && window.app.graph && window.LiteGraph, null, { timeout: 120000 });
  await settle(page, 2500);
  const version = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ || null);
  const pack = await page.evaluate(() => {
    const def = Object.values(window.LiteGraph.registered_node_types).find((t) => t.comfyClass === "RewardLoopInbetween");
    return (def?.nodeData?.python_module || "").split(".")[1] || "";
  });

  // ---- Browse Templates -> the pack's category
  if (!(await page.locator('[data-testid^="template-workflow-"]').count())) {
    await page.evaluate(() => window.app.extensionManager.command.execute("Comfy.BrowseTemplates"));
    await settle(page, 2000);
  }
  await page.getByText(pack, { exact: true }).first().click();
  await settle(page, 2500);
  // cards load their pictures lazily (as blob URLs): look at each while it is in view
  const cardLocator = page.locator('[data-testid^="template-workflow-"]');
  const cards = [];
  for (let i = 0; i < (await cardLocator.count()); i++) {
    const card = cardLocator.nth(i);
    await card.scrollIntoViewIfNeeded();
    await card.locator("img").first().waitFor({ timeout: 10000 }).catch(() => {});
    await settle(page, 600);
    cards.push(await card.evaluate((el) => {
      const img = el.querySelector("img");
      return { name: el.getAttribute("data-testid").replace("template-workflow-", ""), text: el.innerText.trim(),
               picture: img ? decodeURIComponent(img.getAttribute("src") || "") : null,
               width: img && img.complete ? img.naturalWidth : 0 };
    }));
  }
  await cardLocator.first().scrollIntoViewIfNeeded();
  await page.screenshot({ path: path.join(shotDir, `templates_${version}.png`) });
  await closeDialogs();

  // ---- node search: what a user finds typing the retry loop's name (the internal collector shares it)
  await page.evaluate(() => { window.app.graph.clear(); window.app.canvas.setDirty(true, true); });
  await settle(page, 300);
  // What a user does: double-click the empty canvas. A double-click that opens nothing (the canvas not yet focused,
  // or busy) would send the typed name to the keybindings ("w" opens the Workflows panel): click to focus, retry,
  // and last the frontend's own search command, so the check is about what the search offers.
  const searchBox = ".comfy-vue-node-search-container, .litesearchbox, .node-search-box, [role='dialog'] input";
  const boxShown = () => page.waitForSelector(searchBox, { state: "visible", timeout: 3000 }).then(() => true, () => false);
  let searchOpenedBy = null;
  for (let i = 0; i < 3 && !searchOpenedBy; i++) {
    await page.mouse.click(800, 550);
    await settle(page, 300);
    await page.mouse.dblclick(800, 550);
    if (await boxShown()) searchOpenedBy = "double-click";
    else { await page.keyboard.press("Escape"); await closeDialogs(); }
  }
  if (!searchOpenedBy) {
    await page.evaluate(() => window.app.extensionManager.command.execute("Workspace.SearchBox.Toggle")).catch(() => {});
    if (await boxShown()) searchOpenedBy = "search command";
  }
  await settle(page, 800);
  await page.keyboard.type("Reward Retry Loop", { delay: 20 });
  await settle(page, 1200);
  const searchText = await page.evaluate(() => {
    const box = document.querySelector(".comfy-vue-node-search-container, .p-autocomplete-overlay, [role='listbox'], .litesearchbox, .node-search-box");
    return box ? box.innerText : document.body.innerText;
  });
  await page.screenshot({ path: path.join(shotDir, `search_${version}.png`) });
  await page.keyboard.press("Escape");
  await closeDialogs();
  const addMenu = await page.evaluate(() => window.LiteGraph.getNodeTypesInCategory("RewardLoop/Loop")
    .filter((t) => !t.skip_list).map((t) => t.comfyClass || t.type));

  // ---- help panel of one node, through the selection toolbox's info button
  const title = await page.evaluate((type) => {
    const c = window.app.canvas;
    const node = window.LiteGraph.createNode(type);
    node.pos = [400, 300];
    window.app.graph.add(node);
    c.setDirty(true, true);
    // the screen point of the node's title bar, to select it with the mouse as a user does
    const cr = c.canvas.getBoundingClientRect();
    const state = c.ds.state ?? c.ds;
    return { x: cr.left + (node.pos[0] + 60 + state.offset[0]) * state.scale,
             y: cr.top + (node.pos[1] - 15 + state.offset[1]) * state.scale };
  }, helpNode);
  await settle(page, 800);
  await page.mouse.click(title.x, title.y);
  await settle(page, 1500);
  let helpText = "";
  const info = page.locator('[data-testid="info-button"]');
  const infoButton = await info.count();
  if (infoButton) {
    await info.first().click();
    await settle(page, 2500);
    helpText = await page.evaluate(() => document.body.innerText);
  }
  await page.screenshot({ path: path.join(shotDir, `help_${version}.png`) });

  // ---- a workflow naming model files the server lacks: the frontend's missing-model dialog
  await closeDialogs();
  const graph = JSON.parse(fs.readFileSync(modelsWorkflow, "utf8"));
  await page.evaluate(async (g) => { await window.app.loadGraphData(g, true, true, null); }, graph);
  await settle(page, 2500);
  // 1.32.9 opens a Missing Models dialog; 1.58.1 reports "issues" with a button to its details panel
  const details = page.getByText("View details", { exact: true });
  if (await details.count()) {
    await details.first().click();
    await settle(page, 2000);
  }
  const modelsDialog = await page.evaluate(() => document.body.innerText);
  // 1.32.9 puts each download URL in its button's title; 1.58.1 starts each download from its button
  const downloadLinks = await page.evaluate(() => Array.from(document.querySelectorAll("[title], a[href]"))
    .map((e) => e.getAttribute("title") || e.getAttribute("href")).filter((t) => t && t.startsWith("https://")));
  // record each download the frontend starts and stop it there: nothing is fetched, online or not
  await context.route("https://huggingface.co/**", (route) => { downloadLinks.push(route.request().url()); route.abort(); });
  const download = page.locator("button", { hasText: /^\s*Download\s*$/ });
  for (let i = 0; i < (await download.count()); i++) {
    await download.nth(i).click().catch(() => {});
    await settle(page, 1200);
  }
  await page.screenshot({ path: path.join(shotDir, `missing_models_${version}.png`) });
  console.log(JSON.stringify({ version, pack, cards, pictures, searchText: searchText.slice(0, 3000), searchOpenedBy, addMenu,
                               infoButton, helpText: helpText.slice(0, 20000), modelsDialog,
                               downloadLinks }));
  await context.close();
})().catch((e) => { console.error("TEMPLATES CHECK FAILED", e); process.exit(1); });
