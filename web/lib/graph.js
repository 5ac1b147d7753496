// Execution ids <-> nodes of the open graph, subgraphs included ("12:5" = node 5 inside subgraph node 12), as
// ComfyUI names nodes in its websocket events. Uses only the graph API both frontends share.

export function rootGraph(app) {
  // `rootGraph` logs an error when read before the first graph exists (settings apply at start-up)
  return ("rootGraphOrUndefined" in app ? app.rootGraphOrUndefined : app.graph) ?? null;
}

function nodeIn(graph, localId) {
  if (!graph?.getNodeById) return null;
  return graph.getNodeById(Number(localId)) ?? graph.getNodeById(localId) ?? null;
}

export function nodeByExecutionId(app, executionId) {
  const parts = String(executionId).split(":");
  let graph = rootGraph(app);
  let node = null;
  for (let i = 0; i < parts.length; i++) {
    node = nodeIn(graph, parts[i]);
    if (!node) return null;
    if (i < parts.length - 1) graph = node.subgraph;
  }
  return node;
}

function nodesOf(graph) {
  return graph?._nodes ?? graph?.nodes ?? [];
}

// Every node of the graph with its execution id, descending into subgraphs.
export function* walkNodes(graph, prefix = "", depth = 0) {
  for (const node of nodesOf(graph)) {
    const id = prefix ? `${prefix}:${node.id}` : String(node.id);
    yield [id, node];
    if (node.subgraph && depth < 16) yield* walkNodes(node.subgraph, id, depth + 1);
  }
}

// Execution ids under which `node` runs (several when its subgraph is used more than once).
export function executionIdsOf(app, node) {
  const ids = [];
  for (const [id, n] of walkNodes(rootGraph(app))) if (n === node) ids.push(id);
  return ids;
}

export function focusNode(app, node) {
  const canvas = app.canvas;
  if (!canvas || !node) return false;
  if (node.graph && canvas.graph !== node.graph && typeof canvas.setGraph === "function") {
    try { canvas.setGraph(node.graph); } catch { /* stays on the current graph */ }
  }
  canvas.selectNode?.(node, false);
  canvas.centerOnNode?.(node);
  canvas.setDirty?.(true, true);
  return true;
}
