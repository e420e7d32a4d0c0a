(function () {
  var el = document.getElementById('cand-data');
  if (!el) return;
  var data = JSON.parse(el.textContent), rows = data.rows, types = data.types, size = data.page_size;
  var text = rows.map(function (r) { return r.join(' ').toLowerCase(); });
  var order = rows.map(function (_, i) { return i; });
  var tbody = document.querySelector('#cand-table tbody'), info = document.getElementById('cand-info');
  var filt = document.getElementById('cand-filter'), stat = document.getElementById('cand-status');
  var sortCol = data.sort_col, asc = true, page = 0, view = order, statusCol = data.columns.indexOf('status');
  function fmt(v, t) {
    if (v === null || v === undefined) return '';
    if (t === 'bool') return v ? '\u2713' : '';
    if (t === 'float') return String(Number(Number(v).toPrecision(4)));
    v = String(v);
    return v.length > 200 ? v.slice(0, 200) + '\u2026' : v;
  }
  function cmp(a, b) {
    var x = rows[a][sortCol], y = rows[b][sortCol];
    if (x === y) return a - b;
    if (x === null) return 1;
    if (y === null) return -1;  /* missing values last in both directions */
    return (x < y ? -1 : 1) * (asc ? 1 : -1);
  }
  function update() {
    var q = filt.value.toLowerCase().trim(), s = stat.value;
    view = order.filter(function (i) {
      return (!s || rows[i][statusCol] === s) && (!q || text[i].indexOf(q) >= 0);
    });
    view.sort(cmp);
    page = Math.max(0, Math.min(page, Math.ceil(view.length / size) - 1));
    render();
  }
  function render() {
    var frag = document.createDocumentFragment(), start = page * size;
    view.slice(start, start + size).forEach(function (i) {
      var tr = document.createElement('tr');
      rows[i].forEach(function (v, c) {
        var td = document.createElement('td');
        td.textContent = fmt(v, types[c]);
        tr.appendChild(td);
      });
      frag.appendChild(tr);
    });
    tbody.replaceChildren(frag);
    info.textContent = view.length ? (start + 1) + '\u2013' + Math.min(start + size, view.length) + ' of ' +
      view.length + (view.length < rows.length ? ' (filtered from ' + rows.length + ')' : '') : 'no match';
    document.querySelectorAll('#cand-table th').forEach(function (th) {
      th.className = Number(th.dataset.col) === sortCol ? (asc ? 'asc' : 'desc') : '';
    });
  }
  document.querySelectorAll('#cand-table th').forEach(function (th) {
    th.addEventListener('click', function () {
      var c = Number(th.dataset.col);
      asc = c === sortCol ? !asc : true;
      sortCol = c;
      update();
    });
  });
  filt.addEventListener('input', function () { page = 0; update(); });
  stat.addEventListener('change', function () { page = 0; update(); });
  document.getElementById('cand-prev').addEventListener('click', function () { page -= 1; update(); });
  document.getElementById('cand-next').addEventListener('click', function () { page += 1; update(); });
  /* A link can preset the table: index.html#q=D k7&status=done&sort=normalized&desc=1&page=2 */
  var hash = new URLSearchParams(location.hash.slice(1));
  if (hash.has('q')) filt.value = hash.get('q');
  if (hash.has('status')) stat.value = hash.get('status');
  if (data.columns.indexOf(hash.get('sort')) >= 0) sortCol = data.columns.indexOf(hash.get('sort'));
  if (hash.get('desc') === '1') asc = false;
  if (hash.has('page')) page = Math.max(0, (parseInt(hash.get('page'), 10) || 1) - 1);
  update();
})();
