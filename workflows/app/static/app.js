// sacmap web app: upload, poll progress, show results. No external libraries; all text set via textContent.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { config: null, jobId: null, job: null, selected: null, loaded: {}, timer: null };

const DESCRIPTOR_LABELS = [
  ["n_atoms", "Atoms", 0],
  ["support_area_nm2", "Support area (nm²)", 2],
  ["density_nm2", "Density (atoms nm⁻²)", 4],
  ["nnd_mean_nm", "Mean NND (nm)", 4],
  ["nnd_sd_nm", "NND s.d. (nm)", 4],
  ["nnd_mean_random_same_window_nm", "Mean NND, random in same window (nm)", 4],
  ["nnd_expected_poisson_nm", "Mean NND, Poisson edge-corrected (nm)", 4],
  ["nnd_mean_hanisch_nm", "Mean NND, Hanisch edge-corrected (nm)", 4],
  ["multimer_share", "Multimer share", 4],
  ["n_multimers", "Multimers", 0],
  ["multimer_share_random_same_window", "Multimer share, random in same window", 4],
  ["mean_bonds_per_multimer_atom", "M–M bonds per multimer atom", 3],
  ["clark_evans", "Clark–Evans R", 3],
  ["z", "Clark–Evans z", 2],
];

function fmt(v, digits) {
  if (v === null || v === undefined || v === "") return "–";
  if (typeof v === "number") {
    if (!isFinite(v)) return "–";
    if (digits === 0) return String(Math.round(v));
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
    return v.toFixed(digits === undefined ? 3 : digits);
  }
  return String(v);
}

function fmtSize(bytes) {
  if (bytes >= 2 ** 20) return (bytes / 2 ** 20).toFixed(1) + " MB";
  if (bytes >= 1024) return (bytes / 1024).toFixed(0) + " kB";
  return bytes + " B";
}

function nuclearityText(nuc) {
  if (!nuc) return "–";
  const names = { 1: "single", 2: "dimer", 3: "trimer" };
  return Object.keys(nuc).sort((a, b) => a - b).map((k) => `${nuc[k]} ${names[k] || k + "-mer"}`).join(", ");
}

function nuclearityCompact(nuc) {
  if (!nuc) return "–";
  return Object.keys(nuc).sort((a, b) => a - b).map((k) => `${k}:${nuc[k]}`).join("  ");
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  if (attrs) for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function showRequestError(msg) {
  const box = $("request-error");
  if (!msg) { box.classList.add("hidden"); box.textContent = ""; return; }
  box.textContent = msg;
  box.classList.remove("hidden");
}

async function loadConfig() {
  try {
    const r = await fetch("/api/config");
    state.config = await r.json();
    $("files").setAttribute("accept", state.config.accept.join(","));
    $("accept-hint").textContent = state.config.accept.join(" ");
    $("limits").textContent = `Up to ${state.config.max_files} files per batch, ${state.config.max_file_mb} MB each.`;
    if (state.config.version) $("version").textContent = "v" + state.config.version;
  } catch (e) { /* the page still works with the server's own checks */ }
}

function listFiles() {
  const ul = $("file-list");
  ul.replaceChildren();
  const limit = state.config ? state.config.max_file_mb * 2 ** 20 : Infinity;
  for (const f of $("files").files) {
    const li = el("li");
    if (f.size > limit) li.className = "too-large";
    li.append(el("span", null, f.name), el("span", { class: "size" }, fmtSize(f.size)));
    ul.append(li);
  }
}

async function submit(ev) {
  ev.preventDefault();
  showRequestError(null);
  const files = $("files").files;
  if (!files.length) { showRequestError("Choose one or more images first."); return; }
  const fd = new FormData();
  for (const f of files) fd.append("files", f, f.name);
  fd.append("pixel_size_nm", $("pixel-size").value.trim());
  fd.append("override_pixel_size", $("override").checked ? "1" : "");
  fd.append("threshold", $("threshold").value);
  fd.append("elements", $("elements").value);
  fd.append("multimer_nm", $("multimer").value);
  $("run").disabled = true;
  document.body.dataset.jobState = "uploading";
  $("problems-panel").classList.add("hidden");
  $("download-zip").classList.add("hidden");
  setStatus("Uploading " + files.length + (files.length > 1 ? " files…" : " file…"), 0);
  const total = Array.from(files).reduce((a, f) => a + f.size, 0);
  let r, body;
  try {
    r = await postWithProgress("/api/jobs", fd, (frac) =>
      setStatus(`Uploading ${files.length} file${files.length > 1 ? "s" : ""} (${fmtSize(total)}): ` +
        `${Math.round(100 * frac)} %`, frac));
    body = r.body;
  } catch (e) {
    $("run").disabled = false;
    setStatus("Upload failed.", 0);
    showRequestError("Upload failed: " + e);
    return;
  }
  if (!r.ok) {
    $("run").disabled = false;
    setStatus("Nothing was processed.", 0);
    document.body.dataset.jobState = "refused";
    showRequestError(body.detail || ("Error " + r.status));
    return;
  }
  state.jobId = body.id; state.selected = null; state.loaded = {};
  $("intro").classList.add("hidden");
  document.body.dataset.jobId = body.id;
  document.body.dataset.jobState = "running";
  $("detail").classList.add("hidden");
  poll();
}

// POST a form with upload progress (fetch has none); resolves to {ok, status, body}
function postWithProgress(url, formData, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let body;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = { detail: xhr.statusText || "bad response" }; }
      resolve({ ok: xhr.status >= 200 && xhr.status < 300, status: xhr.status, body });
    };
    xhr.onerror = () => reject(new Error("network error"));
    xhr.send(formData);
  });
}

function setStatus(text, fraction, done) {
  $("status-text").textContent = text;
  const bar = $("progress-bar");
  bar.style.width = Math.round(100 * (fraction || 0)) + "%";
  bar.classList.toggle("done", !!done);
}

async function poll() {
  clearTimeout(state.timer);
  if (!state.jobId) return;
  let job;
  try {
    const r = await fetch("/api/jobs/" + state.jobId);
    if (!r.ok) throw new Error((await r.json()).detail);
    job = await r.json();
  } catch (e) {
    showRequestError("Lost the job: " + e.message);
    $("run").disabled = false;
    return;
  }
  state.job = job;
  render(job);
  if (!job.finished) state.timer = setTimeout(poll, 350);
  else $("run").disabled = false;
}

function render(job) {
  setStatus((job.finished ? "" : "Working — ") + job.current, job.progress, job.finished);
  document.body.dataset.jobState = job.finished ? "finished" : "running";
  const zip = $("download-zip");
  zip.href = `/api/jobs/${job.id}/results.zip`;
  zip.classList.toggle("hidden", !job.finished);
  $("download-summary").href = `/api/jobs/${job.id}/summary.csv`;
  renderProblems(job);
  renderSummary(job);
  if (state.selected === null) {
    const first = job.items.find((it) => it.status === "done");
    if (first) selectImage(first.index);
  } else if (job.items[state.selected] && job.items[state.selected].status === "done" && !state.loaded[state.selected]) {
    selectImage(state.selected);
  }
}

function renderProblems(job) {
  const box = $("problems");
  const bad = job.items.filter((it) => it.status === "error" || it.status === "needs_pixel_size");
  $("problems-panel").classList.toggle("hidden", !bad.length);
  // keep a half-typed pixel size while polling
  const typed = {};
  for (const inp of box.querySelectorAll("input[data-index]")) typed[inp.dataset.index] = inp.value;
  box.replaceChildren();
  for (const it of bad) {
    const div = el("div", { class: "message " + (it.status === "error" ? "error" : "warn"), role: "alert",
      "data-image": it.name });
    div.append(el("div", null, it.message));
    if (it.status === "needs_pixel_size") {
      const fix = el("div", { class: "fix" });
      const inp = el("input", { type: "text", inputmode: "decimal", placeholder: "nm/px", "data-index": it.index });
      inp.value = typed[it.index] || "";
      const btn = el("button", { type: "button" }, "Run with this pixel size");
      btn.addEventListener("click", () => rerun(it.index, inp.value));
      fix.append(el("label", null, "Pixel size (nm/px):"), inp, btn);
      div.append(fix);
    }
    box.append(div);
  }
}

async function rerun(index, value) {
  const fd = new FormData();
  fd.append("pixel_size_nm", value);
  const r = await fetch(`/api/jobs/${state.jobId}/images/${index}/pixel-size`, { method: "POST", body: fd });
  if (!r.ok) { showRequestError((await r.json()).detail); return; }
  showRequestError(null);
  delete state.loaded[index];
  state.selected = index;
  $("run").disabled = true;
  poll();
}

function renderSummary(job) {
  $("summary-panel").classList.remove("hidden");
  const tbody = $("summary-table").querySelector("tbody");
  tbody.replaceChildren();
  const multi = job.items.some((it) => it.result && Object.keys(it.result.element_counts || {}).length > 1);
  $("summary-table").classList.toggle("no-elements", !multi);
  job.items.forEach((it, i) => {
    const row = job.summary[i];
    const tr = el("tr", { "data-index": it.index, "data-status": it.status });
    if (state.selected === it.index) tr.className = "selected";
    const status = el("span", { class: "badge " + it.status },
      it.status === "running" ? (it.stage || "running") : it.status.replace(/_/g, " "));
    const cells = [
      [it.name, "l name"], [status, "l"], [fmt(row.n_atoms, 0), "num"],
      [fmt(row.support_area_nm2, 2), "num"], [fmt(row.density_nm2, 4), "num"], [fmt(row.nnd_mean_nm, 4), "num"],
      [fmt(row.multimer_share, 3), "num"], [fmt(row.clark_evans, 3), "num"],
      [row.envelope_G_p_rank === "" && row.envelope_L_p_rank === "" ? "–" :
        `${fmt(row.envelope_G_p_rank, 3)} / ${fmt(row.envelope_L_p_rank, 3)}`, "num"],
      [nuclearityCompact((it.result && it.result.descriptors || {}).nuclearity), "l"], [row.elements || "–", "l col-el"],
    ];
    for (const [v, cls] of cells) {
      const td = el("td", { class: cls });
      if (cls.includes("name")) td.title = it.name;
      if (v instanceof Node) td.append(v); else td.textContent = v;
      tr.append(td);
    }
    if (it.status === "done") tr.addEventListener("click", () => selectImage(it.index));
    tbody.append(tr);
  });
}

async function selectImage(index) {
  const job = state.job;
  const it = job.items[index];
  if (!it || it.status !== "done") return;
  state.selected = index;
  state.loaded[index] = true;
  for (const tr of $("summary-table").querySelectorAll("tbody tr"))
    tr.classList.toggle("selected", Number(tr.dataset.index) === index);
  const base = `/api/jobs/${job.id}/images/${index}`;
  const res = it.result;
  $("detail").classList.remove("hidden");
  $("detail").dataset.index = index;
  $("detail-title").textContent = `${it.name} — ${res.n_atoms} atoms`;
  const stamp = "?t=" + (res.seconds || 0);
  $("overlay-img").src = base + "/overlay.png" + stamp;
  $("nnd-img").src = base + "/nnd.png" + stamp;
  $("download-csv").href = base + "/coords.csv";
  $("download-csv").setAttribute("download", it.stem + ".csv");
  $("download-desc").href = base + "/descriptors.json";
  $("download-desc").setAttribute("download", it.stem + "_descriptors.json");
  $("overlay-caption").textContent = overlayCaption(res);
  const warn = $("detail-warnings");
  warn.replaceChildren(...(res.warnings || []).map((w) => el("div", { class: "message warn" }, w)));
  renderDescriptors(res);
  renderEnvelopes(res, base + "/envelopes.png" + stamp);
  const table = $("coords-table");
  table.dataset.ready = "false";
  const r = await fetch(base + "/coords.json");
  if (!r.ok || state.selected !== index) return;
  const data = await r.json();
  const thead = table.querySelector("thead");
  const tbody = table.querySelector("tbody");
  const htr = el("tr");
  for (const c of data.columns) htr.append(el("th", { class: c === "element" ? "l" : "" }, c));
  thead.replaceChildren(htr);
  const frag = document.createDocumentFragment();
  for (const row of data.rows) {
    const tr = el("tr");
    row.forEach((v, j) => {
      const c = data.columns[j];
      const num = Number(v);
      const digits = c.endsWith("_nm") ? 4 : c.endsWith("_px") ? 2 : c === "score" ? 3 : 0;
      const text = v === "" ? "–" : isNaN(num) ? v : fmt(num, digits);
      tr.append(el("td", { class: c === "element" ? "l" : "num" }, text));
    });
    frag.append(tr);
  }
  tbody.replaceChildren(frag);
  $("coords-count").textContent = `(${data.rows.length} rows)`;
  table.dataset.ready = "true";
  table.dataset.index = index;
}

function overlayCaption(res) {
  const px = fmt(res.pixel_size_nm, 4);
  const src = res.pixel_size_source === "file" ? "from file" : "given";
  const shape = (res.shape || []).join(" × ");
  let s = `${shape} px at ${px} nm/px (${src}). Circles: detected atoms`;
  const els = Object.keys(res.element_counts || {});
  if (els.length > 1) s += ", coloured by element";
  s += `; orange rings and bonds: atoms in multimers (≤ ${fmt(state.job.settings.multimer_nm, 2)} nm)`;
  s += "; dashed line: support/vacuum boundary.";
  return s;
}

function renderDescriptors(res) {
  const d = res.descriptors || {};
  const tbody = $("descriptors-table").querySelector("tbody");
  tbody.replaceChildren();
  const add = (label, value) => {
    const tr = el("tr");
    tr.append(el("td", null, label), el("td", { class: "num" }, value));
    tbody.append(tr);
  };
  for (const [key, label, digits] of DESCRIPTOR_LABELS) if (key in d) add(label, fmt(d[key], digits));
  if (d.nuclearity) add("Nuclearity", nuclearityText(d.nuclearity));
  if (d.n_off_window) add("Detections over vacuum (not in statistics)", fmt(d.n_off_window, 0));
  for (const [pair, st] of Object.entries(d.nnd_by_pair || {})) {
    add(`NND ${pair.replace("->", " → ")} (nm)`, `${fmt(st.mean_nm, 3)} ± ${fmt(st.sd_nm, 3)} (n = ${st.n})`);
  }
  const ec = res.element_counts || {};
  if (Object.keys(ec).length > 1) {
    add("Elements", Object.entries(ec).map(([k, v]) => `${k}: ${v}`).join(", "));
    if (res.elements_method) add("Element labelling", res.elements_method);
  }
  add("Pixel size (nm/px)", fmt(res.pixel_size_nm, 5));
  add("Processing time (s)", fmt(res.seconds, 2));
}

const CORRECTIONS = { km: "Kaplan–Meier", translate: "translation", border: "border", isotropic: "isotropic",
  hanisch: "Hanisch" };
const FUNCTIONS = { G: "G (NND distribution)", L: "Besag's L" };

function renderEnvelopes(res, src) {
  const tests = res.envelopes || [];
  const block = $("envelope-block");
  block.classList.toggle("hidden", !tests.length);
  $("envelope-note").classList.toggle("hidden", !!tests.length);
  $("envelope-note").textContent = tests.length ? "" : (res.envelope_note || "");
  if (!tests.length) { $("envelope-img").removeAttribute("src"); return; }
  $("envelope-img").src = src;
  const t0 = tests[0];
  const w = t0.window || {};
  const win = w.kind === "mask" ? `the support mask (${fmt(w.area_nm2, 1)} nm²)` : `a ${w.kind || "?"} window`;
  const alpha = Math.round(100 * (1 - (t0.alpha || 0.05)));
  $("envelope-caption").textContent =
    `Observed curve (red) against ${t0.nsim} patterns of ${t0.n_points} uniform random points in ${win} ` +
    `(complete spatial randomness, seed ${t0.seed}). Grey: the ${alpha} % global rank envelope (extreme rank ` +
    `length) — the observed curve leaves it somewhere exactly when the rank p ≤ ${fmt(1 - alpha / 100, 2)}, so ` +
    "it reads as a test, unlike pointwise bands; dashed: mean of the simulations; dotted: Poisson theory; L is " +
    "drawn as L(r) − r.";
  const tbody = $("envelope-table").querySelector("tbody");
  tbody.replaceChildren();
  for (const t of tests) {
    const tr = el("tr", { "data-function": t.function });
    const where = t.leaves_envelope === "inside" ? "inside the envelope" : "leaves it " + t.leaves_envelope;
    for (const [v, cls] of [[FUNCTIONS[t.function] || t.function, "l"], [CORRECTIONS[t.correction] || t.correction, "l"],
      [fmt(t.nsim, 0), "num"], [fmt(t.p_rank_erl, 3), "num"], [fmt(t.p_mad, 3), "num"], [fmt(t.p_dclf, 3), "num"],
      [where, "l"]]) tr.append(el("td", { class: cls }, v));
    tbody.append(tr);
  }
}

function setupDrop() {
  const drop = $("drop");
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) { $("files").files = e.dataTransfer.files; listFiles(); }
  });
}

$("files").addEventListener("change", listFiles);
$("run-form").addEventListener("submit", submit);
setupDrop();
loadConfig();
