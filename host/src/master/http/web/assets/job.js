// The job page: follows the job's log through the REST API while it runs, then shows its
// results. Each poll asks for the bytes after the last ones seen, so every line appears once.
(function () {
  "use strict";
  var root = document.getElementById("job");
  if (!root) { return; }
  var id = root.getAttribute("data-id");
  var log = document.getElementById("log");
  var status = document.getElementById("log-status");
  var offset = 0;
  var partial = "";

  function text(node, value) { node.textContent = value; return node; }

  function badge(value) {
    var span = document.createElement("span");
    span.className = "badge " + value;
    return text(span, value);
  }

  function setBadge(id, value) {
    var holder = document.getElementById(id);
    if (holder && holder.textContent !== value) {
      holder.replaceChildren(badge(value));
    }
  }

  // A log line is one YAML list item holding a flow mapping: `- {"dt": ..., "lvl": ..., "msg": ...}`.
  // Basalt writes it JSON-compatible; anything else is shown as it is.
  function addLine(line) {
    var entry = null;
    try { entry = JSON.parse(line.replace(/^- /, "")); } catch (e) { entry = null; }
    var div = document.createElement("div");
    div.className = "line " + (entry && entry.lvl ? "lvl-" + entry.lvl : "raw");
    if (entry && entry.dt) {
      var dt = document.createElement("span");
      dt.className = "dt";
      div.appendChild(text(dt, String(entry.dt).split(".")[0].replace("T", " ")));
    }
    var msg = document.createElement("span");
    msg.className = "msg";
    var shown = line;
    if (entry) { shown = typeof entry.msg === "string" ? entry.msg : JSON.stringify(entry.msg); }
    div.appendChild(text(msg, shown));
    log.appendChild(div);
  }

  function showResults(results) {
    var holder = document.getElementById("results");
    if (!results.length) { return; }
    var table = document.createElement("table");
    table.id = "results-table";
    var head = table.createTHead().insertRow();
    ["Suite", "Test case", "Result", "Measurement", "Units"].forEach(function (h) {
      head.appendChild(text(document.createElement("th"), h));
    });
    var body = table.createTBody();
    results.forEach(function (r) {
      var row = body.insertRow();
      text(row.insertCell(), r.suite);
      text(row.insertCell(), r.name);
      row.insertCell().appendChild(badge(r.result));
      text(row.insertCell(), r.measurement || "");
      text(row.insertCell(), r.units || "");
    });
    holder.replaceChildren(table);
  }

  function poll() {
    fetch("/api/v1/jobs/" + id + "/logs?offset=" + offset)
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (chunk) {
        var atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
        offset = chunk.end;
        var lines = (partial + chunk.text).split("\n");
        partial = lines.pop();
        lines.forEach(function (line) { if (line.trim()) { addLine(line); } });
        if (atBottom && lines.length) { window.scrollTo(0, document.body.scrollHeight); }
        setBadge("job-state", chunk.state);
        setBadge("job-health", chunk.health);
        root.setAttribute("data-state", chunk.state);
        root.setAttribute("data-lines", String(log.childElementCount));
        if (chunk.end < chunk.size) { setTimeout(poll, 0); return; }
        if (chunk.state === "finished") {
          text(status, "finished: " + log.childElementCount + " lines");
          fetch("/api/v1/jobs/" + id + "/results")
            .then(function (r) { return r.json(); })
            .then(showResults);
          return;
        }
        text(status, chunk.state + ": " + log.childElementCount + " lines so far, following…");
        setTimeout(poll, 1000);
      })
      .catch(function (error) {
        text(status, "cannot reach the master (" + error.message + "), retrying…");
        setTimeout(poll, 3000);
      });
  }

  poll();
}());
