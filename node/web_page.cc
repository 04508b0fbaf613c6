#include "node/web_page.h"

namespace medic::node {

namespace {

// The page in its three parts: the head with its style, the sections the
// script fills, and the script (polls the JSON API every 2 s). No external
// asset: everything the browser needs is here.
constexpr const char* kHead = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>medic on call</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 16px;display:flex;gap:16px;align-items:baseline}
header h1{font-size:18px;margin:0} #summary{opacity:.85} #updated{margin-left:auto;opacity:.7}
main{padding:8px 16px;display:grid;gap:12px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:8px 12px}
h2{font-size:15px;margin:4px 0 8px} table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eef0f3;vertical-align:top}
th{font-weight:600;color:#4a5263} .empty{color:#7a8294}
code{background:#eef1f6;padding:1px 4px;border-radius:3px;user-select:all}
.bad{color:#b3261e;font-weight:600} .good{color:#1e7b34;font-weight:600}
pre{background:#f1f3f6;padding:8px;white-space:pre-wrap;margin:4px 0}
button{font:inherit;cursor:pointer}
</style></head><body>
)HTML";

constexpr const char* kSections = R"HTML(<header><h1>medic</h1><span id="summary">loading…</span><span id="updated"></span></header>
<main>
<section id="incidents"><h2>Open incidents</h2><div class="body"></div></section>
<section id="approvals"><h2>Pending approvals</h2><div class="body"></div></section>
<section id="frozen"><h2>Frozen by the storm guard</h2><div class="body"></div></section>
<section id="silences"><h2>Silences</h2><div class="body"></div></section>
<section id="actions"><h2>Last actions</h2><div class="body"></div><pre id="why" hidden></pre></section>
</main>
)HTML";

constexpr const char* kScript = R"HTML(<script>
"use strict";
const token = (location.hash.match(/token=([^&]+)/) || [])[1];
const headers = token ? {Authorization: "Bearer " + decodeURIComponent(token)} : {};
let names = {};
function esc(s) {
  return String(s == null ? "" : s).replace(/[&<>"']/g,
      c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function vm(id) { return names[id] ? esc(names[id]) + " <small>(" + esc(id) + ")</small>" : esc(id); }
function table(el, cols, rows, empty) {
  const body = document.querySelector("#" + el + " .body");
  if (!rows.length) { body.innerHTML = '<span class="empty">' + empty + "</span>"; return; }
  body.innerHTML = "<table><tr>" + cols.map(c => "<th>" + c[0] + "</th>").join("") + "</tr>" +
      rows.map(r => "<tr>" + cols.map(c => "<td>" + c[1](r) + "</td>").join("") + "</tr>").join("") +
      "</table>";
}
async function get(path) {
  const r = await fetch(path, {headers, cache: "no-store"});
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}
function showOverview(o) {
  names = o.vm_names || {};
  const s = o.status;
  document.getElementById("summary").textContent = s.engine + ": " + s.hosts + " hosts, " + s.vms +
      " VMs, " + s.open_incidents + " open incidents, " + s.in_flight + " in flight" +
      (s.ready ? "" : " — NOT READY");
  table("incidents", [["#", i => esc(i.incident)], ["VM", i => vm(i.vm)], ["rule", i => esc(i.rule)],
      ["trigger", i => esc(i.trigger)], ["step", i => esc(i.ladder_step)], ["state", i => esc(i.state)],
      ["waits for", i => esc(i.waits_for)]], o.incidents, "none");
  table("approvals", [["action", a => esc(a.action_id)], ["verb", a => esc(a.verb)],
      ["VM", a => vm(a.vm)], ["rule", a => esc(a.rule)], ["expires", a => esc(a.expires)],
      ["to approve, paste", a => "<code>" + esc(a.approve_command) + "</code>"]], o.approvals, "none");
  const frozen = (o.freezes.fleet ? ["the whole fleet"] : []).concat(o.freezes.hosts);
  table("frozen", [["frozen", f => '<span class="bad">' + esc(f) + "</span>"],
      ["to lift", f => "<code>medic unfreeze " + (f === "the whole fleet" ? "fleet" : esc(f)) +
      ' --reason "..."</code>']], frozen, "none");
  table("silences", [["id", x => esc(x.silence)], ["VM", x => vm(x.vm)], ["host", x => esc(x.host)],
      ["rule", x => esc(x.rule)], ["until", x => esc(x.until)], ["by", x => esc(x.by)],
      ["reason", x => esc(x.reason)]], o.silences, "none");
}
function showActions(rows) {
  for (const r of rows) if (r.vm_name) names[r.decision.vm] = r.vm_name;
  table("actions", [["at", r => esc(r.decision.at)], ["VM", r => vm(r.decision.vm)],
      ["verb", r => esc(r.decision.verb)], ["rule", r => esc(r.decision.rule)],
      ["status", r => '<span class="' + (r.status === "succeeded" ? "good" : "") + '">' +
          esc(r.status) + "</span>"],
      ["why", r => r.decision.action_id ? '<button data-why="' + esc(r.decision.action_id) +
          '">why?</button>' : ""]], rows, "no action yet");
}
document.addEventListener("click", async e => {
  const id = e.target.getAttribute && e.target.getAttribute("data-why");
  if (!id) return;
  const pre = document.getElementById("why");
  try { pre.textContent = (await get("/api/v1/why/" + encodeURIComponent(id))).text; }
  catch (err) { pre.textContent = String(err); }
  pre.hidden = false;
});
async function refresh() {
  try {
    showOverview(await get("/api/v1/overview"));
    showActions(await get("/api/v1/actions?limit=20"));
    document.getElementById("updated").textContent = "updated " + new Date().toISOString();
    // When the first data was on screen, in ms since the navigation began.
    if (!document.body.dataset.loaded) document.body.dataset.shownMs = Math.round(performance.now());
    document.body.dataset.loaded = "1";
  } catch (err) {
    document.getElementById("updated").textContent = "cannot reach the engine: " + err.message;
  }
}
refresh();
setInterval(refresh, 2000);
</script></body></html>
)HTML";

}  // namespace

const std::string& on_call_page() {
  static const std::string page = std::string(kHead) + kSections + kScript;
  return page;
}

}  // namespace medic::node
