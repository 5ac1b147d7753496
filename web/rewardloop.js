// ComfyUI-RewardLoop front-end extension. Bundled, no CDN (the CSP blocks other origins with
// --disable-api-nodes). Collects the pack's websocket events so nodes can show live numbers.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EVENTS = ["rewardloop.loop", "rewardloop.training", "rewardloop.rewards"];
const MAX_KEPT = 500;

const state = { events: [], byNode: new Map() };

function remember(type, detail) {
  state.events.push({ type, detail, at: Date.now() });
  if (state.events.length > MAX_KEPT) state.events.splice(0, state.events.length - MAX_KEPT);
  const nodeId = detail && (detail.node_id ?? detail.node);
  if (nodeId !== undefined && nodeId !== null) state.byNode.set(String(nodeId), { type, detail });
}

app.registerExtension({
  name: "rewardloop.core",
  async setup() {
    for (const type of EVENTS) {
      api.addEventListener(type, (e) => {
        remember(type, e.detail);
        app.graph?.setDirtyCanvas(true, false);
      });
    }
    window.__REWARDLOOP = { version: "0.1.0", state };
    console.log("[rewardloop] extension loaded");
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData?.name?.startsWith("RewardLoop")) return;
    (window.__REWARDLOOP_NODE_DEFS ??= []).push(nodeData.name);
  },
});
