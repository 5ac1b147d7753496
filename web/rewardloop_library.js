// ComfyUI-RewardLoop in the node library and the template browser (both the frontend shipped with ComfyUI 0.3.75
// and today's; nothing here is required by a newer one).
//  - Template order: the frontend lists a pack's example workflows in the server's directory order, which is
//    arbitrary; ours are listed by their titles (file names), which puts the main demo first.
//  - Internal nodes, which the server marks deprecated (0.3.75) or dev-only (newer ComfyUI), stay out of the
//    canvas's Add Node menu as they stay out of the node library; workflows and the retry loop still run them.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

// This file is served as /extensions/<the pack's folder name>/rewardloop_library.js.
const PACK = decodeURIComponent(new URL(import.meta.url).pathname.split("/")[2] || "");

// Wrapped at import time: extensions load before the template browser first asks for the list.
if (typeof api.getWorkflowTemplates === "function" && !api.getWorkflowTemplates.rewardloopSorted) {
  const listTemplates = api.getWorkflowTemplates.bind(api);
  const sortedTemplates = async (...args) => {
    const all = await listTemplates(...args);
    if (all && Array.isArray(all[PACK])) {
      all[PACK] = [...all[PACK]].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    }
    return all;
  };
  sortedTemplates.rewardloopSorted = true;
  api.getWorkflowTemplates = sortedTemplates;
}

app.registerExtension({
  name: "rewardloop.library",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name?.startsWith("RewardLoop") && (nodeData.deprecated || nodeData.dev_only)) {
      nodeType.skip_list = true;
    }
  },
});
