// The workflow graph as SVG: layers by longest path from the trigger (top to bottom),
// nodes ordered inside a layer by their parents' positions (one barycentre pass, which
// is enough for the small graphs workflows are), edges as curves with their branch.

import { s } from "./dom.js";

const NODE_W = 168;
const NODE_H = 50;
const GAP_X = 28;
const GAP_Y = 46;
const PAD = 16;

/** Layers of node ids: a node sits one below its deepest parent. */
export function layers(graph) {
  const ids = graph.nodes.map((n) => n.id);
  const parents = new Map(ids.map((id) => [id, []]));
  const children = new Map(ids.map((id) => [id, []]));
  for (const edge of graph.edges || []) {
    if (!parents.has(edge.to) || !children.has(edge.from)) continue;
    parents.get(edge.to).push(edge.from);
    children.get(edge.from).push(edge.to);
  }
  const depth = new Map();
  const indegree = new Map(ids.map((id) => [id, parents.get(id).length]));
  const queue = ids.filter((id) => indegree.get(id) === 0);
  queue.forEach((id) => depth.set(id, 0));
  while (queue.length) {
    const id = queue.shift();
    for (const child of children.get(id)) {
      depth.set(child, Math.max(depth.get(child) ?? 0, depth.get(id) + 1));
      indegree.set(child, indegree.get(child) - 1);
      if (indegree.get(child) === 0) queue.push(child);
    }
  }
  // A cycle cannot be stored (the API refuses it), but draw whatever is left anyway.
  ids.forEach((id) => depth.has(id) || depth.set(id, 0));
  const result = [];
  for (const id of ids) {
    const d = depth.get(id);
    (result[d] ||= []).push(id);
  }
  const position = new Map();
  result.forEach((layer, d) => {
    if (d > 0) {
      const centre = (id) => {
        const ps = parents.get(id).filter((p) => position.has(p));
        return ps.length ? ps.reduce((sum, p) => sum + position.get(p), 0) / ps.length : 0;
      };
      layer.sort((a, b) => centre(a) - centre(b));
    }
    layer.forEach((id, i) => position.set(id, i - (layer.length - 1) / 2));
  });
  return result.filter(Boolean);
}

function nodeLabel(node) {
  if (node.type === "action") return node.action;
  return node.type;
}

/**
 * An <svg> of `graph`. `statuses`: node id → step status (colours the node);
 * `onSelect(nodeId)`: nodes become buttons; `selected`: the node shown as selected.
 */
export function graphSvg(graph, { statuses = {}, onSelect, selected, title = "Workflow graph" } = {}) {
  const rows = layers(graph);
  const widest = Math.max(...rows.map((r) => r.length), 1);
  const width = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X;
  const height = PAD * 2 + rows.length * NODE_H + (rows.length - 1) * GAP_Y;
  const place = new Map();
  rows.forEach((row, r) => {
    const rowWidth = row.length * NODE_W + (row.length - 1) * GAP_X;
    const x0 = (width - rowWidth) / 2;
    row.forEach((id, i) => place.set(id, { x: x0 + i * (NODE_W + GAP_X), y: PAD + r * (NODE_H + GAP_Y) }));
  });
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const svg = s("svg", {
    class: "graph",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "group",
    "aria-label": title,
  });
  svg.append(
    s(
      "defs",
      {},
      s(
        "marker",
        { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow-head" }),
      ),
    ),
  );
  for (const edge of graph.edges || []) {
    const a = place.get(edge.from);
    const b = place.get(edge.to);
    if (!a || !b) continue;
    const x1 = a.x + NODE_W / 2;
    const y1 = a.y + NODE_H;
    const x2 = b.x + NODE_W / 2;
    const y2 = b.y - 2;
    const mid = (y1 + y2) / 2;
    const cls = `edge${edge.branch ? ` branch-${edge.branch}` : ""}`;
    svg.append(s("path", { d: `M ${x1} ${y1} C ${x1} ${mid}, ${x2} ${mid}, ${x2} ${y2}`, class: cls, "marker-end": "url(#arrow)" }));
    if (edge.branch) {
      // Near the target, beside the curve's last stretch (which is vertical there).
      svg.append(s("text", { x: x2 + 6, y: y2 - 8, class: `edge-label branch-${edge.branch}` }, edge.branch));
    }
  }
  for (const [id, p] of place) {
    const node = byId.get(id);
    const status = statuses[id] || (Object.keys(statuses).length ? "pending" : "none");
    const group = s("g", {
      class: `node status-${status}${selected === id ? " selected" : ""}`,
      transform: `translate(${p.x} ${p.y})`,
      "data-node": id,
      "data-status": status,
    });
    if (onSelect) {
      group.setAttribute("role", "button");
      group.setAttribute("tabindex", "0");
      group.setAttribute("aria-label", `${id} (${nodeLabel(node)})${status !== "none" ? `: ${status}` : ""}`);
      if (selected === id) group.setAttribute("aria-pressed", "true");
      group.addEventListener("click", () => onSelect(id));
      group.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          onSelect(id);
        }
      });
    }
    group.append(
      s("rect", { width: NODE_W, height: NODE_H, rx: 8, ry: 8 }),
      s("text", { x: 12, y: 21, class: "node-id" }, truncate(id, 20)),
      s("text", { x: 12, y: 38, class: "node-kind" }, truncate(nodeLabel(node), 16) + (status !== "none" ? ` · ${status}` : "")),
    );
    const title = s("title", {}, `${id} — ${nodeLabel(node)}${status !== "none" ? ` — ${status}` : ""}`);
    group.prepend(title);
    svg.append(group);
  }
  return svg;
}

function truncate(text, max) {
  const str = String(text);
  return str.length > max ? `${str.slice(0, max - 1)}…` : str;
}
