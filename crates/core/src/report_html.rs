//! A picture of a run: one self-contained HTML file (no network, no files
//! beside it) with a timeline of categories and attempts on a time axis,
//! dependencies drawn between them, how many ran at once, the counts, the
//! failing, flaky and quarantined tests, and the log tails. Pure: the
//! report in, the page out. The run's data sits in the page as JSON and a
//! small script draws it; every text is set as text, never as markup.

use crate::report::RunReport;

/// The page's style.
const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1f2328; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
h3 { font-size: 14px; margin: 12px 0 4px; }
.meta { color: #59636e; }
.badge { display: inline-block; padding: 2px 8px; border-radius: 10px; color: #fff; font-weight: 600; }
.Succeeded { background: #1a7f37; } .Failed { background: #cf222e; }
.TimedOut { background: #bc4c00; } .Cancelled { background: #6e7781; }
svg { display: block; }
.row-label { font-size: 12px; fill: #1f2328; }
.grid { stroke: #d0d7de; stroke-width: 1; }
.tick { font-size: 11px; fill: #59636e; }
.bar { stroke: #1f2328; stroke-width: 0.5; }
.bar.passed { fill: #2da44e; } .bar.failed { fill: #cf222e; } .bar.timedout { fill: #fb8500; }
.bar.stopped { fill: #8c959f; } .bar.infra { fill: #8250df; } .bar.running { fill: #54aeff; }
.dep { fill: none; stroke: #57606a; stroke-width: 1; stroke-dasharray: 3 2; marker-end: url(#arrow); }
.parallel { fill: #54aeff; opacity: 0.6; }
table { border-collapse: collapse; }
td, th { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; max-height: 300px; }
.legend span { display: inline-block; margin-right: 12px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }
"#;

/// The script that draws the page from the JSON in `#run-data`.
const SCRIPT: &str = r#"
(function () {
  const run = JSON.parse(document.getElementById('run-data').textContent);
  const NS = 'http://www.w3.org/2000/svg';
  const el = (tag, attrs, text) => {
    const e = tag.startsWith('svg:') ? document.createElementNS(NS, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const human = s => {
    if (s === 0) return '0s';
    if (s < 1) return Math.round(s * 1000) + 'ms';
    if (s < 60) return (Math.round(s * 10) / 10) + 's';
    const m = Math.floor(s / 60), r = Math.round(s % 60);
    return m < 60 ? m + 'm' + (r ? r + 's' : '') : Math.floor(m / 60) + 'h' + (m % 60) + 'm';
  };
  const kind = a => {
    const r = a.reason || '';
    if (a.infrastructure) return 'infra';
    if (r === 'Completed' || a.passed_by_quarantine) return 'passed';
    if (r === 'DeadlineExceeded') return 'timedout';
    if (r === 'Stopped') return 'stopped';
    if (r === 'Running') return 'running';
    return 'failed';
  };

  // Header.
  const head = document.getElementById('head');
  head.append(el('h1', {}, run.display_name + ' (' + run.layer + ')'));
  const line = el('div', { class: 'meta' });
  line.append(el('span', { class: 'badge ' + run.outcome, id: 'outcome' }, run.outcome), ' ');
  const c = run.counts || {};
  line.append(document.createTextNode(
    ' in ' + human(run.duration_secs) + ' — ' + (c.passed || 0) + ' passed, ' + (c.failed || 0) +
    ' failed, ' + (c.skipped || 0) + ' skipped · strategy ' + run.strategy +
    (run.environment ? ' · environment ' + run.environment : '')));
  head.append(line);
  if (run.rerun_of) {
    // A local report names the earlier report's file; a cluster run, the
    // earlier TestLayerRun.
    const p = el('p', { class: 'meta', id: 'rerun-of' }, 'Rerun of what did not pass in ');
    if (run.plan) {
      p.append(el('a', { href: run.rerun_of }, run.rerun_of));
    } else {
      p.append(el('code', {}, 'testlayerrun/' + run.rerun_of));
    }
    p.append(document.createTextNode('; the categories that passed there are carried over (no bar on this timeline).'));
    head.append(p);
  }

  // Timeline: one row per category, one bar per attempt.
  const cats = run.categories;
  const attempts = [];
  cats.forEach((cat, row) => (cat.attempts || []).forEach(a => {
    if (a.start_secs === undefined || a.start_secs === null) return;
    attempts.push({ row, cat, a, start: a.start_secs, end: a.start_secs + a.duration_secs });
  }));
  const total = Math.max(run.duration_secs, ...attempts.map(x => x.end), 0.001);
  const LABEL = 220, WIDTH = 900, ROW = 22, TOP = 24, STRIP = 60;
  const x = s => LABEL + (s / total) * WIDTH;
  const height = TOP + cats.length * ROW + STRIP + 30;
  const svg = el('svg:svg', { id: 'timeline', width: LABEL + WIDTH + 20, height, viewBox: `0 0 ${LABEL + WIDTH + 20} ${height}` });
  const defs = el('svg:defs');
  const marker = el('svg:marker', { id: 'arrow', viewBox: '0 0 6 6', refX: '6', refY: '3', markerWidth: '6', markerHeight: '6', orient: 'auto' });
  marker.append(el('svg:path', { d: 'M0,0 L6,3 L0,6 z', fill: '#57606a' }));
  defs.append(marker);
  svg.append(defs);
  // Axis and grid.
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
  const step = steps.find(s => total / s <= 10) || Math.ceil(total / 10);
  for (let t = 0; t <= total + 1e-9; t += step) {
    svg.append(el('svg:line', { class: 'grid', x1: x(t), x2: x(t), y1: TOP - 6, y2: TOP + cats.length * ROW }));
    svg.append(el('svg:text', { class: 'tick', x: x(t), y: TOP - 10, 'text-anchor': 'middle' }, human(t)));
  }
  cats.forEach((cat, row) => {
    const y = TOP + row * ROW;
    const label = el('svg:text', { class: 'row-label', x: 4, y: y + 15 }, cat.name);
    label.append(el('svg:title', {}, cat.name + ': ' + cat.phase + (cat.message ? ' — ' + cat.message : '')));
    svg.append(label);
  });
  // Dependencies: from the end of a dependency's last attempt to the start
  // of the dependent's first.
  const rowOf = new Map(cats.map((c, i) => [c.name, i]));
  const byRow = new Map();
  for (const at of attempts) {
    const list = byRow.get(at.row) || [];
    list.push(at);
    byRow.set(at.row, list);
  }
  cats.forEach((cat, row) => (cat.dependencies || []).forEach(dep => {
    const from = byRow.get(rowOf.get(dep)), to = byRow.get(row);
    if (!from || !to) return;
    const a = from[from.length - 1], b = to[0];
    const x1 = x(a.end), y1 = TOP + a.row * ROW + 11, x2 = x(b.start), y2 = TOP + row * ROW + 11;
    const mid = (x1 + x2) / 2;
    svg.append(el('svg:path', { class: 'dep', 'data-from': dep, 'data-to': cat.name, d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` }));
  }));
  for (const at of attempts) {
    const y = TOP + at.row * ROW + 3;
    const bar = el('svg:rect', {
      class: 'bar ' + kind(at.a), x: x(at.start), y, height: ROW - 6,
      width: Math.max(2, x(at.end) - x(at.start)), 'data-category': at.cat.name, 'data-attempt': at.a.number,
    });
    bar.append(el('svg:title', {}, `${at.cat.name}, attempt ${at.a.number}: ${at.a.reason}, ${human(at.a.duration_secs)} from ${human(at.start)}`));
    svg.append(bar);
  }
  // How many ran at once.
  const edges = [];
  for (const at of attempts) { edges.push([at.start, 1]); edges.push([at.end, -1]); }
  edges.sort((p, q) => p[0] - q[0] || p[1] - q[1]);
  let now = 0, peak = 0;
  const points = [[0, 0]];
  for (const [t, d] of edges) { points.push([t, now]); now += d; points.push([t, now]); peak = Math.max(peak, now); }
  points.push([total, 0]);
  const base = TOP + cats.length * ROW + STRIP + 10;
  const yOf = n => base - (peak ? (n / peak) * (STRIP - 10) : 0);
  svg.append(el('svg:path', { class: 'parallel', d: 'M' + points.map(([t, n]) => `${x(t)},${yOf(n)}`).join(' L') + ` L${x(total)},${base} L${x(0)},${base} z` }));
  svg.append(el('svg:text', { class: 'tick', x: 4, y: base - 4 }, 'running at once (peak ' + peak + ')'));
  document.getElementById('timeline-box').append(svg);

  // Categories.
  const table = document.getElementById('categories');
  for (const cat of cats) {
    const n = cat.counts || {};
    const tr = el('tr');
    const reason = cat.reason && cat.reason !== 'Passed' ? ' (' + cat.reason + ')' : '';
    [cat.name, cat.phase + reason + (cat.allowed_failure ? ', allowed' : ''), String((cat.attempts || []).length),
     cat.counts ? `${n.passed} / ${n.failed} / ${n.skipped}` : '-', human(cat.duration_secs), cat.message || '']
      .forEach(v => tr.append(el('td', {}, v)));
    table.append(tr);
  }

  // Tests: failing, flaky, quarantined.
  const tests = (id, field, title) => {
    const box = document.getElementById(id);
    let any = false;
    for (const cat of cats) {
      const t = cat[field];
      if (!t || !(t.listed || []).length) continue;
      any = true;
      box.append(el('h3', {}, title + ' ' + cat.name));
      const ul = el('ul');
      for (const f of t.listed) ul.append(el('li', { class: 'test' }, f.id + (f.message ? ': ' + f.message : '') + ' (attempt ' + f.attempt + ')'));
      if (t.more) ul.append(el('li', {}, '... and ' + t.more + ' more'));
      box.append(ul);
    }
    if (!any) box.append(el('p', { class: 'meta' }, 'none'));
  };
  tests('failing-tests', 'failed_tests', 'Failing tests of');
  tests('flaky-tests', 'flaky_tests', 'Flaky tests of');
  tests('quarantined-tests', 'quarantined_tests', 'Quarantined tests of');

  // Log tails.
  const logs = document.getElementById('logs');
  for (const cat of cats) {
    if (!cat.log_tail) continue;
    const d = el('details');
    d.append(el('summary', {}, cat.name + ' (' + cat.phase + ')'));
    d.append(el('pre', {}, cat.log_tail));
    logs.append(d);
  }
  document.body.setAttribute('data-drawn', 'true');
})();
"#;

/// The page's body, before the script draws into it.
const BODY: &str = r#"<div id="head"></div>
<h2>Timeline</h2>
<div class="legend"><span><i class="bar passed" style="background:#2da44e"></i>passed</span><span><i style="background:#cf222e"></i>failed</span><span><i style="background:#fb8500"></i>timed out</span><span><i style="background:#8c959f"></i>stopped</span><span><i style="background:#8250df"></i>infrastructure</span><span><i style="background:#54aeff"></i>running</span> dashed arrows: dependencies</div>
<div id="timeline-box"></div>
<h2>Categories</h2>
<table id="categories"><tr><th>category</th><th>phase</th><th>attempts</th><th>passed / failed / skipped</th><th>duration</th><th>message</th></tr></table>
<h2>Failing tests</h2><div id="failing-tests"></div>
<h2>Flaky tests</h2><div id="flaky-tests"></div>
<h2>Quarantined tests</h2><div id="quarantined-tests"></div>
<h2>Log tails</h2><div id="logs"></div>
<noscript>This report draws itself with JavaScript; the data is in the run-data script element as JSON.</noscript>"#;

/// JSON safe inside a `<script>` element: every `<` (which JSON has only
/// inside strings) written as the escape `\u003c`, so that no `</script>`
/// or `<!--` in a test name can end the element early.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
}

/// Text safe inside an element (the page title).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl RunReport {
    /// The run as one self-contained HTML page.
    pub fn to_html(&self) -> String {
        let data = script_safe(&self.to_json());
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{BODY}\n<script type=\"application/json\" id=\"run-data\">{data}</script>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
            title = escape(&format!(
                "{} ({}): {}",
                self.display_name,
                self.layer,
                self.outcome.as_str()
            )),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_end_the_script_or_the_title_early() {
        let json = r#"{"id":"</script><script>alert(1)</script> <!--"}"#;
        let safe = script_safe(json);
        assert!(!safe.contains('<'), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["id"], "</script><script>alert(1)</script> <!--");
        assert_eq!(escape("a<b>&\"c\""), "a&lt;b&gt;&amp;&quot;c&quot;");
    }
}
