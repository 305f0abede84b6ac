/* penguiflow trace viewer: the run list. Filters call the JSON API and redraw.
 *
 * Run data is user and LLM data: it goes into the page through textContent only.
 * After each redraw <tbody id="runs"> carries data-generation (a counter) and
 * data-query (the query it shows), so a test can wait for a given redraw.
 */
(function () {
  "use strict";

  var PAGE = 50;
  var statusSelect = document.getElementById("status");
  var search = document.getElementById("search");
  var body = document.getElementById("runs");
  var errorNode = document.getElementById("error");
  var countNode = document.getElementById("count");
  var newer = document.getElementById("newer");
  var older = document.getElementById("older");
  var offset = 0;
  var generation = 0;
  var inflight = null;
  var timer = null;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function has(value) {
    return value !== undefined && value !== null && value !== "";
  }

  function fmtMs(ms) {
    if (!has(ms) || !isFinite(ms)) return "—";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(2) + " s";
    return Math.floor(ms / 60000) + "m " + Math.round((ms % 60000) / 1000) + "s";
  }

  function fmtInt(value) {
    return has(value) && isFinite(Number(value)) ? Number(value).toLocaleString("en-US") : "—";
  }

  function fmtCost(value) {
    if (!has(value) || !isFinite(Number(value))) return "—";
    var number = Number(value);
    return number === 0 ? "$0" : "$" + number.toFixed(number >= 1 ? 2 : number >= 0.01 ? 4 : 6);
  }

  function fmtTime(seconds) {
    var date = new Date(seconds * 1000);
    return date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
  }

  function query() {
    var params = new URLSearchParams();
    if (statusSelect.value) params.set("status", statusSelect.value);
    if (search.value.trim()) params.set("text", search.value.trim());
    return params;
  }

  function row(run) {
    var a = run.attributes || {};
    var tr = el("tr");
    tr.setAttribute("data-run-id", run.run_id);
    tr.setAttribute("data-status", run.status);
    var status = el("td");
    var pill = el("span", "pill s-" + run.status, run.status);
    status.appendChild(pill);
    tr.appendChild(status);
    var name = el("td");
    var link = el("a", "run-link", run.name);
    link.setAttribute("href", "runs/" + encodeURIComponent(run.run_id));
    name.appendChild(link);
    tr.appendChild(name);
    var text = has(run.error_message) ? run.error_message : has(a.query) ? a.query : "";
    var queryCell = el("td", "query", typeof text === "string" ? text : JSON.stringify(text));
    tr.appendChild(queryCell);
    tr.appendChild(el("td", null, fmtTime(run.start)));
    var duration = has(a.wall_ms) ? a.wall_ms : has(run.end) ? (run.end - run.start) * 1000 : null;
    tr.appendChild(el("td", "num", has(run.end) || has(a.wall_ms) ? fmtMs(duration) : "running"));
    tr.appendChild(el("td", "num", fmtInt(run.span_count)));
    tr.appendChild(el("td", "num", fmtInt(a.llm_calls)));
    var tokens = has(a.total_tokens)
      ? a.total_tokens
      : has(a.prompt_tokens) || has(a.completion_tokens)
        ? (a.prompt_tokens || 0) + (a.completion_tokens || 0)
        : null;
    tr.appendChild(el("td", "num", fmtInt(tokens)));
    tr.appendChild(el("td", "num", fmtCost(a.cost_usd)));
    var id = el("td");
    id.appendChild(el("code", null, run.run_id.length > 20 ? run.run_id.slice(0, 12) + "…" : run.run_id));
    id.title = run.run_id;
    tr.appendChild(id);
    return tr;
  }

  function render(runs, more, params) {
    var frag = document.createDocumentFragment();
    runs.slice(0, PAGE).forEach(function (run) {
      frag.appendChild(row(run));
    });
    if (!runs.length) {
      var empty = el("tr", "empty");
      empty.id = "empty";
      var cell = el("td", null, offset ? "No more runs." : "No runs match.");
      cell.colSpan = 10;
      empty.appendChild(cell);
      frag.appendChild(empty);
    }
    body.replaceChildren(frag);
    var shown = Math.min(runs.length, PAGE);
    countNode.textContent = shown ? "runs " + (offset + 1) + "–" + (offset + shown) : "";
    newer.disabled = offset === 0;
    older.disabled = !more;
    generation += 1;
    body.setAttribute("data-query", params.toString());
    body.setAttribute("data-generation", String(generation));
    document.documentElement.setAttribute("data-ready", "1");
  }

  function load() {
    var params = query();
    var shown = params.toString();
    try {
      history.replaceState(null, "", shown ? "?" + shown : location.pathname);
    } catch (error) {
      // An opaque origin (a saved copy of the page) cannot rewrite its URL; the list still works.
      console.debug("history.replaceState refused", error);
    }
    var api = new URLSearchParams(params);
    api.set("offset", String(offset));
    api.set("limit", String(PAGE + 1));
    if (inflight) inflight.abort();
    var controller = new AbortController();
    inflight = controller;
    fetch("api/runs?" + api.toString(), { signal: controller.signal, headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (payload) {
          if (!response.ok) throw new Error(payload.error || "HTTP " + response.status);
          return payload;
        });
      })
      .then(function (payload) {
        if (inflight !== controller) return;
        inflight = null;
        errorNode.textContent = "";
        render(payload.runs, payload.runs.length > PAGE, params);
      })
      .catch(function (error) {
        if (error.name === "AbortError") return;
        errorNode.textContent = "Could not load runs: " + error.message;
      });
  }

  function restart() {
    offset = 0;
    load();
  }

  var initial = new URLSearchParams(location.search);
  if (initial.has("status")) statusSelect.value = initial.get("status");
  if (initial.has("text")) search.value = initial.get("text");

  statusSelect.addEventListener("change", restart);
  search.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(restart, 150);
  });
  document.getElementById("filters").addEventListener("submit", function (event) {
    event.preventDefault();
    clearTimeout(timer);
    restart();
  });
  newer.addEventListener("click", function () {
    offset = Math.max(0, offset - PAGE);
    load();
  });
  older.addEventListener("click", function () {
    offset += PAGE;
    load();
  });
  load();
})();
