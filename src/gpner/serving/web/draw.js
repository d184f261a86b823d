// gpner's entity drawing, shared by the service's page (/) and `gpner render`: a text with its
// entities drawn as stacked, labelled underlines (nested spans get one level each), a colour per
// label, score on hover, and a table of the spans. No dependency: the pages work offline.
"use strict";

const GPNER_PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4",
  "#f032e6", "#9a6324", "#469990", "#800000", "#808000", "#000075", "#bfef45", "#fabed4"];

function gpnerColors(labels) {
  const colors = {};
  labels.forEach((label, k) => { colors[label] = GPNER_PALETTE[k % GPNER_PALETTE.length]; });
  return colors;
}

// One level per entity so that overlapping entities never share one: a sweep over entities by
// start (longer first, so an outer span sits closest to the text), reusing the lowest free level.
function gpnerLevels(entities) {
  const order = entities.map((_, k) => k).sort((a, b) =>
    entities[a].start - entities[b].start ||
    (entities[b].end - entities[b].start) - (entities[a].end - entities[a].start));
  const level = new Array(entities.length);
  let active = [];  // placed entities that may still overlap later ones
  for (const k of order) {
    const e = entities[k];
    active = active.filter((j) => entities[j].end > e.start);
    const used = new Set(active.map((j) => level[j]));
    let l = 0;
    while (used.has(l)) l += 1;
    level[k] = l;
    active.push(k);
  }
  return level;
}

function gpnerTitle(e) {
  let t = `${e.label}: ${e.text !== undefined ? e.text : ""} [${e.start}, ${e.end})`;
  if (e.score !== undefined) t += ` score ${e.score.toFixed(3)} prob ${e.prob.toFixed(3)}`;
  if (e.status) t += ` (${e.status})`;
  return t;
}

// The text as plain text nodes and, where entities lie, segments carrying their underlines.
// Segments are cut at every entity edge and around whitespace, so long entities still wrap.
function gpnerDraw(text, entities, colors) {
  const BAND = 15;  // px per level: a 3px line and its label
  const root = document.createElement("div");
  root.className = "gp-text";
  const level = gpnerLevels(entities);
  const cuts = new Set([0, text.length]);
  for (const e of entities) { cuts.add(e.start); cuts.add(e.end); }
  for (const e of entities) {
    for (let i = e.start; i < e.end; i += 1) {
      if (/\s/.test(text[i])) { cuts.add(i); cuts.add(i + 1); }
    }
  }
  const points = [...cuts].filter((x) => x >= 0 && x <= text.length).sort((a, b) => a - b);
  for (let p = 0; p + 1 < points.length; p += 1) {
    const a = points[p], b = points[p + 1];
    const over = entities.map((e, k) => k).filter((k) => entities[k].start <= a && b <= entities[k].end);
    if (!over.length) { root.appendChild(document.createTextNode(text.slice(a, b))); continue; }
    const seg = document.createElement("span");
    seg.className = "gp-seg";
    seg.dataset.start = a;
    seg.dataset.end = b;
    seg.dataset.entities = over.join(" ");
    seg.textContent = text.slice(a, b);
    // below the text: a band per level. Lines and tags are placed from the segment's bottom
    // in px (an em would be the tag's own, smaller one), so bands line up across segments.
    const pad = (Math.max(...over.map((k) => level[k])) + 1) * BAND;
    seg.style.paddingBottom = `${pad}px`;
    seg.title = over.map((k) => gpnerTitle(entities[k])).join("\n");
    for (const k of over) {
      const e = entities[k];
      const line = document.createElement("span");
      line.className = "gp-line" + (e.status ? ` gp-${e.status}` : "");
      line.dataset.entity = k;
      line.dataset.label = e.label;
      line.dataset.level = level[k];
      line.style.bottom = `${pad - level[k] * BAND - 3}px`;
      line.style.setProperty("--c", colors[e.label] || "#888");
      if (a === e.start) line.classList.add("gp-first");
      if (b === e.end) line.classList.add("gp-last");
      seg.appendChild(line);
      if (a === e.start) {
        const tag = document.createElement("span");
        tag.className = "gp-tag";
        tag.dataset.entity = k;
        tag.textContent = e.label;
        tag.title = gpnerTitle(e);
        tag.style.bottom = `${pad - level[k] * BAND - 3 - 12}px`;
        tag.style.color = colors[e.label] || "#888";
        seg.appendChild(tag);
      }
    }
    root.appendChild(seg);
  }
  return root;
}

function gpnerTable(entities, colors) {
  const table = document.createElement("table");
  table.className = "gp-spans";
  const scored = entities.some((e) => e.score !== undefined);
  const status = entities.some((e) => e.status);
  const head = ["#", "label", "start", "end", "text"].concat(scored ? ["score", "prob"] : [])
    .concat(status ? ["status"] : []);
  const tr = table.insertRow();
  for (const h of head) { const th = document.createElement("th"); th.textContent = h; tr.appendChild(th); }
  const order = entities.map((_, k) => k).sort((a, b) =>
    entities[a].start - entities[b].start || entities[a].end - entities[b].end);
  for (const k of order) {
    const e = entities[k];
    const row = table.insertRow();
    row.dataset.entity = k;
    if (e.status) row.className = `gp-${e.status}`;
    const cells = [k, e.label, e.start, e.end, e.text !== undefined ? e.text : ""];
    if (scored) cells.push(e.score !== undefined ? e.score.toFixed(3) : "", e.prob !== undefined ? e.prob.toFixed(3) : "");
    if (status) cells.push(e.status || "");
    cells.forEach((v, c) => {
      const td = row.insertCell();
      td.textContent = v;
      if (c === 1) { td.style.color = colors[e.label] || "#888"; td.className = "gp-label"; }
    });
  }
  return table;
}

function gpnerLegend(labels, colors) {
  const box = document.createElement("div");
  box.className = "gp-legend";
  for (const label of labels) {
    const item = document.createElement("span");
    item.className = "gp-key";
    item.style.setProperty("--c", colors[label]);
    item.textContent = label;
    box.appendChild(item);
  }
  return box;
}
