/* penguiflow trace viewer: draws one recorded run from the JSON in #run-data.
 *
 * Span content is user and LLM data: every piece of it goes into the page through
 * textContent or a DOM attribute, never through innerHTML. The timeline is built once
 * into a DocumentFragment (bars are placed in percent, so nothing is measured), then
 * <html data-ready="1" data-ready-ms="..."> tells tests and benches it is drawn.
 */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("run-data").textContent);
  var spans = data.spans || [];
  var summary = data.summary;
  var STATUSES = ["ok", "error", "paused", "cancelled", "running"];

  // -- helpers ----------------------------------------------------------------------

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
    if (ms === 0) return "0";
    if (ms < 1) return ms.toFixed(2) + " ms";
    if (ms < 10) return ms.toFixed(1) + " ms";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
    var minutes = Math.floor(ms / 60000);
    var seconds = Math.round((ms % 60000) / 1000);
    return minutes + "m " + (seconds < 10 ? "0" : "") + seconds + "s";
  }

  function fmtInt(value) {
    if (!has(value)) return "—";
    var number = Number(value);
    return isFinite(number) ? number.toLocaleString("en-US") : String(value);
  }

  function fmtCost(value) {
    if (!has(value)) return "—";
    var number = Number(value);
    if (!isFinite(number)) return String(value);
    if (number === 0) return "$0";
    var digits = number >= 1 ? 2 : number >= 0.01 ? 4 : 6;
    return "$" + number.toFixed(digits);
  }

  function fmtValue(value) {
    if (typeof value === "string") return value;
    if (value === undefined) return "";
    return JSON.stringify(value, null, 2);
  }

  function fmtTime(seconds) {
    if (!has(seconds)) return "—";
    return new Date(seconds * 1000).toISOString().replace("T", " ").replace("Z", " UTC");
  }

  function statusPill(status) {
    var known = STATUSES.indexOf(status) >= 0 ? status : "other";
    var pill = el("span", "pill s-" + known, status);
    pill.setAttribute("data-status", status);
    return pill;
  }

  function kindBadge(kind) {
    return el("span", "kind k-" + String(kind).replace(/[^a-z0-9_-]/gi, ""), kind);
  }

  function durationMs(span) {
    return has(span.end) ? (span.end - span.start) * 1000 : null;
  }

  // -- the tree ---------------------------------------------------------------------

  var byId = new Map();
  var children = new Map();
  var roots = [];
  spans.forEach(function (span) {
    byId.set(span.span_id, span);
    children.set(span.span_id, []);
  });
  spans.forEach(function (span) {
    var parent = span.parent_id;
    if (has(parent) && byId.has(parent) && parent !== span.span_id) {
      children.get(parent).push(span);
    } else {
      roots.push(span);
    }
  });

  function branchOf(span) {
    var branch = span.attributes && span.attributes.branch;
    return typeof branch === "number" ? branch : null;
  }

  function bySiblingOrder(a, b) {
    // Branches of one parallel plan start together: keep them in branch order.
    var ba = branchOf(a);
    var bb = branchOf(b);
    if (ba !== null && bb !== null && Math.abs(a.start - b.start) < 0.05) return ba - bb;
    return a.start - b.start || (a.span_id < b.span_id ? -1 : 1);
  }

  roots.sort(bySiblingOrder);
  children.forEach(function (list) {
    list.sort(bySiblingOrder);
  });

  var root = null;
  for (var r = 0; r < roots.length; r++) {
    if (roots[r].kind === "run" || roots[r].kind === "trace") {
      root = roots[r];
      break;
    }
  }
  if (!root && roots.length) root = roots[0];

  var runStart = Infinity;
  var runEnd = -Infinity;
  spans.forEach(function (span) {
    runStart = Math.min(runStart, span.start);
    runEnd = Math.max(runEnd, has(span.end) ? span.end : span.start);
  });
  if (!isFinite(runStart)) {
    runStart = 0;
    runEnd = 0;
  }
  var window_s = Math.max(runEnd - runStart, 1e-6);

  // Depth-first order, without recursion (a deep run must not overflow the stack).
  var ordered = [];
  var seen = new Set();
  var stack = roots
    .slice()
    .reverse()
    .map(function (span) {
      return [span, 0];
    });
  while (stack.length) {
    var item = stack.pop();
    var span = item[0];
    if (seen.has(span.span_id)) continue;
    seen.add(span.span_id);
    ordered.push(item);
    var kids = children.get(span.span_id);
    for (var k = kids.length - 1; k >= 0; k--) stack.push([kids[k], item[1] + 1]);
  }

  // -- header -----------------------------------------------------------------------

  var attrs = (summary && summary.attributes) || (root && root.attributes) || {};
  var runName = (summary && summary.name) || (root && root.name) || "run";
  var runStatus = (summary && summary.status) || (root && root.status) || "";
  var title = data.title || runName;
  document.getElementById("title").textContent = title;
  if (runStatus) document.getElementById("run-status").appendChild(statusPill(runStatus));
  if (data.back_href) {
    var back = document.getElementById("back");
    back.setAttribute("href", data.back_href);
    back.hidden = false;
  }
  var subtitle = document.getElementById("subtitle");
  var runId = (summary && summary.run_id) || (root && root.run_id);
  if (runId) {
    var idNode = el("span", null, "run ");
    idNode.appendChild(el("code", null, runId));
    subtitle.appendChild(idNode);
  }
  if (root) subtitle.appendChild(el("span", null, "started " + fmtTime(root.start)));
  subtitle.appendChild(el("span", null, spans.length + " spans"));
  if (has(attrs.query)) {
    var query = document.getElementById("query");
    query.textContent = fmtValue(attrs.query);
    query.hidden = false;
  }

  function sumOf(kind, key) {
    var total = 0;
    var any = false;
    spans.forEach(function (span) {
      var value = span.attributes && span.attributes[key];
      if (span.kind === kind && typeof value === "number") {
        total += value;
        any = true;
      }
    });
    return any ? total : null;
  }

  function countOf(kinds) {
    return spans.filter(function (span) {
      return kinds.indexOf(span.kind) >= 0;
    }).length;
  }

  // A total the root recorded wins; otherwise it is added up from the spans.
  function total(key, fallback) {
    return has(attrs[key]) ? attrs[key] : fallback();
  }

  var duration = has(attrs.wall_ms)
    ? attrs.wall_ms
    : root && has(root.end)
      ? (root.end - root.start) * 1000
      : (runEnd - runStart) * 1000;
  var llmCalls = total("llm_calls", function () {
    return countOf(["llm"]) || null;
  });
  var totals = [
    ["status", "status", runStatus || "—", runStatus],
    ["reason", "reason", has(attrs.reason) ? attrs.reason : "—", attrs.reason],
    ["duration", "duration", fmtMs(duration), duration],
    ["llm_calls", "LLM calls", fmtInt(llmCalls), llmCalls],
  ];
  var prompt = total("prompt_tokens", function () {
    return sumOf("llm", "prompt_tokens");
  });
  var completion = total("completion_tokens", function () {
    return sumOf("llm", "completion_tokens");
  });
  var cost = total("cost_usd", function () {
    return sumOf("llm", "cost_usd");
  });
  var tools = total("tool_calls", function () {
    return countOf(["tool"]) || null;
  });
  totals.push(["prompt_tokens", "prompt tokens", fmtInt(prompt), prompt]);
  totals.push(["completion_tokens", "completion tokens", fmtInt(completion), completion]);
  totals.push(["cost_usd", "cost", fmtCost(cost), cost]);
  totals.push(["tool_calls", "tool calls", fmtInt(tools), tools]);
  if (has(attrs.hops_used) || has(attrs.hop_budget)) {
    var hops = fmtInt(attrs.hops_used) + " / " + (has(attrs.hop_budget) ? fmtInt(attrs.hop_budget) : "∞");
    totals.push(["hops", "hops / budget", hops, attrs.hops_used]);
  }
  if (has(attrs.cost_budget_usd)) {
    totals.push(["cost_budget_usd", "cost budget", fmtCost(attrs.cost_budget_usd), attrs.cost_budget_usd]);
  }
  if (has(attrs.max_iters)) totals.push(["max_iters", "max iters", fmtInt(attrs.max_iters), attrs.max_iters]);
  var resumes = total("resumes", function () {
    return countOf(["resume"]) || null;
  });
  if (has(resumes)) totals.push(["resumes", "resumes", fmtInt(resumes), resumes]);
  totals.push(["span_count", "spans", fmtInt(spans.length), spans.length]);

  var totalsNode = document.getElementById("totals");
  var isTrace = root !== null && root.kind === "trace";
  var PLANNER_TOTALS = ["reason", "llm_calls", "prompt_tokens", "completion_tokens", "cost_usd", "tool_calls"];
  totals.forEach(function (entry) {
    // Planner totals mean nothing for a flow trace: leave out the ones with no value.
    if (isTrace && !has(entry[3]) && PLANNER_TOTALS.indexOf(entry[0]) >= 0) return;
    var box = el("div", "total");
    box.setAttribute("data-total", entry[0]);
    if (has(entry[3])) box.setAttribute("data-value", String(entry[3]));
    box.appendChild(el("dt", null, entry[1]));
    box.appendChild(el("dd", null, entry[2]));
    totalsNode.appendChild(box);
  });

  // -- the waterfall ----------------------------------------------------------------

  var timeline = document.getElementById("timeline");
  var frag = document.createDocumentFragment();

  var axis = el("div", "axis");
  var legend = el("div", "legend");
  ["ok", "error", "paused", "cancelled", "running"].forEach(function (status) {
    var entry = el("span");
    var swatch = el("span", "sw bar-swatch s-" + status);
    swatch.style.background = "var(--" + status + ")";
    entry.appendChild(swatch);
    entry.appendChild(document.createTextNode(status));
    legend.appendChild(entry);
  });
  axis.appendChild(legend);
  var ticks = el("div", "ticks");
  for (var t = 0; t < 5; t++) {
    var tick = el("span", "tick", fmtMs((window_s * 1000 * t) / 4));
    tick.style.left = t * 25 + "%";
    if (t === 4) {
      tick.style.left = "auto";
      tick.style.right = "0";
      tick.style.borderLeft = "none";
      tick.style.borderRight = "1px solid var(--line)";
      tick.style.paddingRight = "3px";
    }
    ticks.appendChild(tick);
  }
  axis.appendChild(ticks);
  axis.appendChild(el("span"));
  frag.appendChild(axis);

  function rowMeta(span) {
    var a = span.attributes || {};
    var parts = [];
    var branch = branchOf(span);
    if (branch !== null) parts.push("branch " + branch);
    if (span.attempt && span.attempt > 1) parts.push("attempt " + span.attempt);
    if (span.kind === "llm" && has(a.total_tokens)) parts.push(fmtInt(a.total_tokens) + " tok");
    if (span.kind === "llm" && has(a.purpose) && a.purpose !== "action") parts.push(String(a.purpose));
    if (span.kind === "step" && has(a.action)) parts.push(String(a.action));
    if (span.kind === "pause" && has(a.reason) && a.reason !== span.name) parts.push(String(a.reason));
    if (span.error_type) parts.push(span.error_type);
    return parts.join(" · ");
  }

  var rows = new Map();
  ordered.forEach(function (entry, index) {
    var span = entry[0];
    var depth = entry[1];
    var row = el("div", "row");
    row.setAttribute("data-span-id", span.span_id);
    row.setAttribute("data-kind", span.kind);
    row.setAttribute("data-status", span.status);
    row.setAttribute("data-depth", String(depth));
    row.setAttribute("role", "treeitem");
    row.setAttribute("aria-level", String(depth + 1));
    row.tabIndex = -1;
    var branch = branchOf(span);
    if (branch !== null) {
      row.classList.add("branch");
      row.setAttribute("data-branch", String(branch));
      var previous = ordered[index - 1];
      if (!previous || branchOf(previous[0]) === null || previous[0].parent_id !== span.parent_id) {
        row.classList.add("branch-first");
      }
    }

    var label = el("div", "label");
    label.style.paddingLeft = 8 + depth * 16 + "px";
    label.appendChild(kindBadge(span.kind));
    label.appendChild(el("span", "name", span.name));
    var meta = rowMeta(span);
    if (meta) label.appendChild(el("span", "meta", meta));
    row.appendChild(label);

    var track = el("div", "track");
    var end = has(span.end) ? span.end : runEnd;
    var left = ((span.start - runStart) / window_s) * 100;
    var width = ((end - span.start) / window_s) * 100;
    var known = STATUSES.indexOf(span.status) >= 0 ? span.status : "other";
    var bar = el("div", "bar s-" + known + " k-" + span.kind);
    bar.style.left = Math.max(0, Math.min(left, 100)).toFixed(3) + "%";
    bar.style.width = Math.max(0, Math.min(width, 100 - left)).toFixed(3) + "%";
    var ms = durationMs(span);
    bar.title = span.kind + " " + span.name + ": " + (ms === null ? "running" : fmtMs(ms)) + " (" + span.status + ")";
    track.appendChild(bar);
    row.appendChild(track);
    row.appendChild(el("span", "dur", ms === null ? "running" : fmtMs(ms)));
    frag.appendChild(row);
    rows.set(span.span_id, row);
  });
  if (!ordered.length) frag.appendChild(el("p", "empty", "This run has no spans."));
  timeline.appendChild(frag);

  // -- the detail panel -------------------------------------------------------------

  var detail = document.getElementById("detail");

  var FACTS = {
    run: ["query", "reason", "answer"],
    trace: [],
    step: ["step", "action", "thought"],
    llm: ["model", "purpose", "prompt_tokens", "completion_tokens", "total_tokens", "latency_ms", "cost_usd", "cost_source"],
    tool: ["tool", "call_id", "branch", "latency_ms"],
    join: ["tool", "call_id", "latency_ms"],
    summary: [],
    pause: ["reason"],
    resume: [],
    node: ["node", "node_id", "latency_ms"],
  };
  var CONTENT_ORDER = {
    llm: ["messages", "reply"],
    tool: ["args", "result"],
    join: ["args", "result"],
    pause: ["payload"],
    resume: ["user_input"],
  };

  function factText(key, value) {
    if (key === "latency_ms") return fmtMs(Number(value));
    if (key === "cost_usd" || key === "cost_budget_usd") return fmtCost(value);
    if (/_tokens$/.test(key)) return fmtInt(value);
    return fmtValue(value);
  }

  function kvTable(pairs, section) {
    var table = el("table", "kv");
    if (section) table.setAttribute("data-section", section);
    var body = el("tbody");
    pairs.forEach(function (pair) {
      var tr = el("tr");
      tr.setAttribute("data-key", pair[0]);
      tr.appendChild(el("th", null, pair[0]));
      tr.appendChild(el("td", null, pair[1]));
      body.appendChild(tr);
    });
    table.appendChild(body);
    return table;
  }

  function section(name, heading) {
    var node = el("section", name === "error" ? "error" : null);
    node.setAttribute("data-section", name);
    node.appendChild(el("h3", null, heading));
    return node;
  }

  function messagesSection(messages) {
    var node = section("messages", "messages");
    var list = Array.isArray(messages) ? messages : [messages];
    list.forEach(function (message) {
      var item = el("div", "message");
      var role = message && typeof message === "object" && has(message.role) ? String(message.role) : "?";
      item.setAttribute("data-role", role);
      item.appendChild(el("div", "role", role));
      var content = message && typeof message === "object" && "content" in message ? message.content : message;
      item.appendChild(el("pre", null, fmtValue(content)));
      node.appendChild(item);
    });
    return node;
  }

  function showDetail(span) {
    var a = span.attributes || {};
    var content = span.content || {};
    var out = document.createDocumentFragment();

    var heading = el("h2");
    heading.appendChild(kindBadge(span.kind));
    heading.appendChild(el("span", "name", span.name));
    heading.appendChild(statusPill(span.status));
    out.appendChild(heading);

    var timing = [
      ["duration", durationMs(span) === null ? "running" : fmtMs(durationMs(span))],
      ["starts at", "+" + fmtMs((span.start - runStart) * 1000)],
    ];
    if (span.attempt && (span.attempt > 1 || span.kind === "node" || span.kind === "llm")) {
      timing.push(["attempt", String(span.attempt)]);
    }
    (FACTS[span.kind] || []).forEach(function (key) {
      if (has(a[key])) timing.push([key, factText(key, a[key])]);
    });
    out.appendChild(kvTable(timing, "facts"));

    if (span.error_type || span.error_message) {
      var error = section("error", "error");
      error.appendChild(el("pre", null, (span.error_type || "Error") + (span.error_message ? ": " + span.error_message : "")));
      out.appendChild(error);
    }

    var keys = (CONTENT_ORDER[span.kind] || []).filter(function (key) {
      return key in content;
    });
    Object.keys(content).forEach(function (key) {
      if (keys.indexOf(key) < 0) keys.push(key);
    });
    keys.forEach(function (key) {
      if (key === "messages") {
        out.appendChild(messagesSection(content.messages));
        return;
      }
      var node = section(key, key.replace(/_/g, " "));
      node.appendChild(el("pre", null, fmtValue(content[key])));
      out.appendChild(node);
    });

    // Every attribute the facts above did not show, whatever the span's kind.
    var shown = FACTS[span.kind] || [];
    var attrKeys = Object.keys(a)
      .filter(function (key) {
        return shown.indexOf(key) < 0;
      })
      .sort();
    if (attrKeys.length) {
      var attrsSection = section("attributes", "attributes");
      attrsSection.appendChild(
        kvTable(
          attrKeys.map(function (key) {
            return [key, fmtValue(a[key])];
          })
        )
      );
      out.appendChild(attrsSection);
    }

    var ids = section("ids", "ids");
    ids.appendChild(
      kvTable([
        ["span_id", span.span_id],
        ["parent_id", has(span.parent_id) ? span.parent_id : "—"],
        ["start", fmtTime(span.start)],
        ["end", has(span.end) ? fmtTime(span.end) : "running"],
      ])
    );
    out.appendChild(ids);

    detail.replaceChildren(out);
    detail.setAttribute("data-span-id", span.span_id);
    detail.setAttribute("data-kind", span.kind);
    detail.scrollTop = 0;
  }

  var selected = null;
  function select(row) {
    if (!row) return;
    if (selected) {
      selected.classList.remove("selected");
      selected.setAttribute("aria-selected", "false");
      selected.tabIndex = -1;
    }
    selected = row;
    row.classList.add("selected");
    row.setAttribute("aria-selected", "true");
    row.tabIndex = 0;
    showDetail(byId.get(row.getAttribute("data-span-id")));
  }

  timeline.addEventListener("click", function (event) {
    var row = event.target.closest(".row");
    if (row) {
      select(row);
      row.focus({ preventScroll: true });
    }
  });
  timeline.addEventListener("keydown", function (event) {
    var row = event.target.closest(".row");
    if (!row) return;
    var next = null;
    if (event.key === "ArrowDown") next = row.nextElementSibling;
    else if (event.key === "ArrowUp") next = row.previousElementSibling;
    else if (event.key === "Enter" || event.key === " ") {
      select(row);
      event.preventDefault();
      return;
    }
    if (next && next.classList.contains("row")) {
      select(next);
      next.focus();
      event.preventDefault();
    }
  });
  var first = timeline.querySelector(".row");
  if (first) first.tabIndex = 0;

  var html = document.documentElement;
  html.setAttribute("data-ready-ms", performance.now().toFixed(1));
  html.setAttribute("data-ready", "1");
})();
