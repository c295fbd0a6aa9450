"""The CSS and JavaScript inlined into ``kart report`` pages (no CDN: the page works offline)."""

CSS = """
:root { --complete: #2e7d32; --pending: #b26a00; --failed: #c62828; --ink: #1f2328; --muted: #59636e; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); }
header { padding: 12px 20px; border-bottom: 1px solid #d1d9e0; }
header h1 { font-size: 18px; margin: 0 0 4px; }
.summary span { margin-right: 14px; }
.legend i { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin: 0 4px -1px 0; }
main { display: flex; height: calc(100vh - 70px); }
#canvas { flex: 1; overflow: auto; background: #f6f8fa; }
#details { width: 420px; overflow: auto; padding: 14px 18px; border-left: 1px solid #d1d9e0; }
#details h2 { font-size: 16px; margin: 0 0 8px; word-break: break-all; }
#details table { border-collapse: collapse; width: 100%; font-size: 13px; }
#details td { border-top: 1px solid #eaeef2; padding: 3px 6px; vertical-align: top; word-break: break-all; }
#details td:first-child { color: var(--muted); white-space: nowrap; word-break: normal; }
#details h3 { font-size: 13px; margin: 14px 0 4px; color: var(--muted); text-transform: uppercase; }
.hint { color: var(--muted); }
g.node { cursor: pointer; }
g.node rect { fill: #fff; stroke-width: 2; rx: 6; }
g.node.complete rect { stroke: var(--complete); fill: #e8f5e9; }
g.node.pending rect { stroke: var(--pending); fill: #fff8e1; }
g.node.failed rect { stroke: var(--failed); fill: #ffebee; }
g.node.selected rect { stroke-width: 4; }
g.node text { font-size: 12px; fill: var(--ink); }
g.node text.uid { fill: var(--muted); font-family: ui-monospace, monospace; font-size: 11px; }
path.edge { fill: none; stroke: #8c959f; stroke-width: 1.4; }
"""

JS = """
(function () {
  var data = JSON.parse(document.getElementById('kart-data').textContent);
  var byKey = {};
  data.tasks.forEach(function (t) { byKey[t.key] = t; });
  var panel = document.getElementById('details');

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) { e.textContent = text; }
    if (cls) { e.className = cls; }
    return e;
  }
  function table(rows) {
    var t = el('table');
    rows.forEach(function (r) {
      var tr = el('tr');
      tr.appendChild(el('td', r[0]));
      tr.appendChild(el('td', r[1]));
      t.appendChild(tr);
    });
    return t;
  }
  function show(key) {
    var t = byKey[key];
    if (!t) { return; }
    document.querySelectorAll('g.node.selected').forEach(function (n) { n.classList.remove('selected'); });
    var node = document.querySelector('g.node[data-key="' + CSS.escape(key) + '"]');
    if (node) { node.classList.add('selected'); }
    panel.textContent = '';
    panel.appendChild(el('h2', t.label));
    panel.appendChild(table([['class', t.module + '.' + t.name], ['unique id', t.unique_id],
      ['status', t.status], ['processing time', t.processing_time]]));
    panel.appendChild(el('h3', 'Parameters'));
    var params = Object.keys(t.params).map(function (k) { return [k, t.params[k]]; });
    panel.appendChild(params.length ? table(params) : el('p', 'none', 'hint'));
    panel.appendChild(el('h3', 'Outputs'));
    panel.appendChild(table(t.outputs.map(function (o) { return [o.size, o.path]; })));
    panel.appendChild(el('h3', 'Requires'));
    var reqs = t.requires.map(function (k) {
      return [byKey[k] ? byKey[k].status : '', byKey[k] ? byKey[k].label : k];
    });
    panel.appendChild(reqs.length ? table(reqs) : el('p', 'none', 'hint'));
  }
  document.querySelectorAll('g.node').forEach(function (node) {
    node.addEventListener('click', function () { show(node.getAttribute('data-key')); });
    node.addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter' || ev.key === ' ') { show(node.getAttribute('data-key')); }
    });
  });
})();
"""
