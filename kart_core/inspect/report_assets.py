"""The CSS and JavaScript inlined into ``kart report`` pages (no CDN: the page works offline).

The script reads the page's JSON block (``report_data.ReportData``) and fills the side panel, the
Tasks table and the Runs view. Text goes in through ``textContent`` only, never as HTML.
"""

CSS = """
:root { --complete: #2e7d32; --damaged: #6a1b9a; --pending: #b26a00; --failed: #c62828; --ink: #1f2328; --muted: #59636e;
  --changed: #fff1a8; --line: #d1d9e0; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); }
header { padding: 10px 20px 0; border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0 0 4px; }
.summary span { margin-right: 14px; }
.legend i { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin: 0 4px -1px 0; }
.tabs { margin-top: 6px; }
.tabs button { font: inherit; border: 1px solid var(--line); border-bottom: none; background: #f6f8fa;
  padding: 4px 14px; margin-right: 4px; border-radius: 6px 6px 0 0; cursor: pointer; }
.tabs button.active { background: #fff; font-weight: 600; position: relative; top: 1px; }
main { height: calc(100vh - 100px); }
.view { display: none; height: 100%; overflow: auto; }
.view.active { display: flex; }
#view-tasks, #view-runs { display: none; padding: 14px 20px; }
#view-tasks.active, #view-runs.active { display: block; }
#canvas { flex: 1; overflow: auto; background: #f6f8fa; }
#details { width: 420px; overflow: auto; padding: 14px 18px; border-left: 1px solid var(--line); }
#details h2 { font-size: 16px; margin: 0 0 8px; word-break: break-all; }
#details table { border-collapse: collapse; width: 100%; font-size: 13px; }
#details td { border-top: 1px solid #eaeef2; padding: 3px 6px; vertical-align: top; word-break: break-all; }
#details td:first-child { color: var(--muted); white-space: nowrap; word-break: normal; }
h3 { font-size: 13px; margin: 14px 0 4px; color: var(--muted); text-transform: uppercase; }
.hint { color: var(--muted); }
.reason { background: #fff8e1; border-left: 3px solid var(--pending); padding: 6px 8px; font-size: 13px;
  white-space: pre-wrap; margin: 0; }
.failed .reason, .reason.failed { background: #ffebee; border-color: var(--failed); }
.damaged .reason { background: #f3e5f5; border-color: var(--damaged); }
g.node { cursor: pointer; }
g.node rect { fill: #fff; stroke-width: 2; rx: 6; }
g.node.complete rect { stroke: var(--complete); fill: #e8f5e9; }
g.node.pending rect { stroke: var(--pending); fill: #fff8e1; }
g.node.failed rect { stroke: var(--failed); fill: #ffebee; }
g.node.damaged rect { stroke: var(--damaged); fill: #f3e5f5; stroke-dasharray: 5 3; }
g.node.root rect { stroke-dasharray: none; stroke-width: 3; }
g.node.selected rect { stroke-width: 4; }
g.node text { font-size: 12px; fill: var(--ink); font-weight: 600; }
g.node text.uid { fill: var(--muted); font-family: ui-monospace, monospace; font-size: 11px; font-weight: 400; }
g.node text.note { fill: var(--ink); font-size: 11px; font-weight: 400; }
path.edge { fill: none; stroke: #8c959f; stroke-width: 1.4; }
table.grid { border-collapse: collapse; font-size: 13px; }
table.grid th, table.grid td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
table.grid thead th { background: #f6f8fa; position: sticky; top: 0; }
table.grid td.params, table.grid td.why { white-space: pre-wrap; max-width: 520px; word-break: break-word; }
td.status-complete { color: var(--complete); } td.status-pending { color: var(--pending); }
td.status-failed, td.status-unfinished { color: var(--failed); }
td.status-damaged { color: var(--damaged); }
.class-runs { margin-bottom: 26px; }
.class-runs h2 { font-size: 16px; margin: 0 0 6px; }
table.runs th[scope=row] { background: #f6f8fa; white-space: nowrap; }
table.runs tr.differs th[scope=row] { background: var(--changed); }
table.runs tr.differs th[scope=row]::after { content: " ≠"; color: var(--pending); }
table.runs td.changed { background: var(--changed); font-weight: 600; }
table.runs tr.same td { color: var(--muted); }
table.runs th.in-graph { border-top: 3px solid var(--complete); }
"""

JS = """
(function () {
  var data = JSON.parse(document.getElementById('kart-data').textContent);
  var byKey = {};
  data.tasks.forEach(function (t) { byKey[t.key] = t; });
  var panel = document.getElementById('details');

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = text; }
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
  function size(bytes) {
    if (bytes === null || bytes === undefined) { return '-'; }
    var units = ['B', 'KB', 'MB', 'GB'], value = bytes, i = 0;
    while (value >= 1024 && i < units.length - 1) { value /= 1024; i++; }
    return i === 0 ? value + ' B' : value.toFixed(1) + ' ' + units[i];
  }
  function seconds(value) { return value === null || value === undefined ? '-' : value.toFixed(2) + 's'; }
  function paramLines(params) {
    return Object.keys(params).map(function (k) { return k + '=' + params[k]; }).join('\\n');
  }

  function show(key) {
    var t = byKey[key];
    if (!t) { return; }
    document.querySelectorAll('g.node.selected').forEach(function (n) { n.classList.remove('selected'); });
    var node = document.querySelector('g.node[data-key="' + CSS.escape(key) + '"]');
    if (node) { node.classList.add('selected'); }
    panel.textContent = '';
    panel.className = t.status;
    panel.appendChild(el('h2', t.label));
    if (t.reason.length) {
      panel.appendChild(el('h3', t.status === 'damaged' ? 'What is wrong'
        : t.status === 'failed' ? 'Why it will run again' : 'Why it will run'));
      panel.appendChild(el('pre', t.reason.join('\\n'), 'reason'));
    }
    panel.appendChild(table([['class', t.module + '.' + t.name], ['unique id', t.unique_id],
      ['status', t.status], ['run time', seconds(t.processing_time)], ['output size', size(t.output_size)],
      ['finished at', t.finished_at || '-']]));
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

  function tasksTable() {
    var t = document.getElementById('tasks-table');
    var head = el('thead'), hr = el('tr');
    ['task', 'status', 'parameters', 'run time', 'output size', 'finished at', 'why it will run (or what is wrong)']
      .forEach(function (h) { hr.appendChild(el('th', h)); });
    head.appendChild(hr);
    t.appendChild(head);
    var body = el('tbody');
    data.tasks.slice().reverse().forEach(function (task) {
      var tr = el('tr');
      tr.setAttribute('data-key', task.key);
      tr.appendChild(el('td', task.label));
      tr.appendChild(el('td', task.status, 'status-' + task.status));
      tr.appendChild(el('td', paramLines(task.params), 'params'));
      tr.appendChild(el('td', seconds(task.processing_time)));
      tr.appendChild(el('td', size(task.output_size)));
      tr.appendChild(el('td', task.finished_at || '-'));
      tr.appendChild(el('td', task.reason.join('\\n'), 'why'));
      body.appendChild(tr);
    });
    t.appendChild(body);
  }

  function runsView() {
    var box = document.getElementById('runs');
    if (!data.classes.length) { box.appendChild(el('p', 'No cached runs of these classes.', 'hint')); return; }
    data.classes.forEach(function (c) {
      var section = el('section', undefined, 'class-runs');
      section.setAttribute('data-class', c.name);
      var differs = c.differs.length ? 'parameters that differ: ' + c.differs.join(', ') : 'same parameters';
      var older = c.hidden ? ' (' + c.hidden + ' older runs not shown)' : '';
      section.appendChild(el('h2', c.name));
      var count = c.runs.length === 1 ? '1 run' : c.runs.length + ' runs';
      section.appendChild(el('p', count + ' in ' + c.workspace + older + '; ' + differs, 'hint'));
      var t = el('table', undefined, 'grid runs');
      var head = el('tr');
      head.appendChild(el('th', 'run'));
      c.runs.forEach(function (r) {
        var th = el('th', r.unique_id.slice(0, 8) + (r.in_graph ? ' (in graph)' : ''), r.in_graph ? 'in-graph' : '');
        th.title = r.unique_id;
        head.appendChild(th);
      });
      var thead = el('thead'); thead.appendChild(head); t.appendChild(thead);
      var body = el('tbody');
      function row(label, cls, values, param) {
        var tr = el('tr', undefined, cls);
        if (param !== undefined) { tr.setAttribute('data-param', param); }
        var th = el('th', label); th.setAttribute('scope', 'row'); tr.appendChild(th);
        values.forEach(function (v, i) {
          var td = el('td', v.text, v.cls || '');
          if (param !== undefined && i > 0 && v.text !== values[i - 1].text) { td.classList.add('changed'); }
          tr.appendChild(td);
        });
        body.appendChild(tr);
      }
      row('status', 'meta', c.runs.map(function (r) { return {text: r.status, cls: 'status-' + r.status.split(' ')[0]}; }));
      row('finished at', 'meta', c.runs.map(function (r) { return {text: r.finished_at || '-'}; }));
      row('run time', 'meta', c.runs.map(function (r) { return {text: seconds(r.processing_time)}; }));
      row('output size', 'meta', c.runs.map(function (r) { return {text: size(r.output_size)}; }));
      var names = [];
      c.runs.forEach(function (r) { Object.keys(r.params).forEach(function (k) { if (names.indexOf(k) < 0) { names.push(k); } }); });
      names.forEach(function (name) {
        var cls = c.differs.indexOf(name) >= 0 ? 'differs' : 'same';
        row(name, cls, c.runs.map(function (r) {
          return {text: name in r.params ? r.params[name] : '(none)'};
        }), name);
      });
      t.appendChild(body);
      section.appendChild(t);
      box.appendChild(section);
    });
  }

  document.querySelectorAll('.tabs button').forEach(function (button) {
    button.addEventListener('click', function () {
      document.querySelectorAll('.tabs button').forEach(function (b) { b.classList.remove('active'); });
      document.querySelectorAll('.view').forEach(function (v) { v.classList.remove('active'); });
      button.classList.add('active');
      document.getElementById('view-' + button.getAttribute('data-view')).classList.add('active');
    });
  });
  // A graph a little wider than its pane is scaled down to fit; a much wider one keeps its size and scrolls.
  var svg = document.getElementById('graph'), canvas = document.getElementById('canvas');
  var natural = parseFloat(svg.getAttribute('width')), scale = (canvas.clientWidth - 4) / natural;
  if (scale < 1 && scale >= 0.55) {
    svg.setAttribute('width', String(Math.floor(natural * scale)));
    svg.setAttribute('height', String(Math.floor(parseFloat(svg.getAttribute('height')) * scale)));
  }
  tasksTable();
  runsView();
  var first = data.tasks.filter(function (t) { return t.status !== 'complete'; })[0] || data.tasks[data.tasks.length - 1];
  if (first) { show(first.key); }
})();
"""
