// The console's live updates, without a reload: every second, fetch the page's JSON twin
// (main[data-source]) and copy it into the page. Elements name the field they show:
//   data-text="f"   its text          data-value="f"  a <progress>'s value
//   data-href="f"   a link's target   data-state="f"  data-is, for the colour of a badge
//   data-show="f"   hidden unless f   data-list="f"   one row per item of the list f, by key:
// rows are updated in place (a focused link stays focused), new ones are cloned from the
// list's <template>, gone ones removed. Dotted names reach into objects ("startup.at").
"use strict";
(() => {
  const main = document.querySelector("main[data-source]");
  if (!main) return;
  const source = main.dataset.source + location.search;
  const every = Number(main.dataset.pollMs) || 1000;
  const failure = document.getElementById("live-error");
  const BOUND = "[data-text],[data-value],[data-href],[data-state],[data-show]";
  let timer = 0;
  let busy = false;

  const lookup = (scope, path) =>
    path.split(".").reduce((value, key) => (value == null ? undefined : value[key]), scope);
  const text = (value) => (value == null ? "" : String(value));

  function bind(el, scope) {
    const d = el.dataset;
    if (d.text !== undefined) {
      const shown = text(lookup(scope, d.text));
      if (el.textContent !== shown) el.textContent = shown;
    }
    if (d.value !== undefined) el.value = Number(lookup(scope, d.value)) || 0;
    if (d.href !== undefined) el.setAttribute("href", text(lookup(scope, d.href)));
    if (d.state !== undefined) el.dataset.is = text(lookup(scope, d.state)).toLowerCase();
    if (d.show !== undefined) el.hidden = !lookup(scope, d.show);
  }

  function fill(list, items) {
    const template = list.querySelector(":scope > template");
    const rows = new Map();
    for (const row of list.querySelectorAll(":scope > [data-key]")) rows.set(row.dataset.key, row);
    let cursor = template ? template.nextElementSibling : list.firstElementChild;
    for (const item of items || []) {
      const key = text(item.key);
      let row = rows.get(key);
      rows.delete(key);
      if (!row) {
        row = template.content.firstElementChild.cloneNode(true);
        row.dataset.key = key;
      }
      for (const el of [row, ...row.querySelectorAll(BOUND)]) if (el.matches(BOUND)) bind(el, item);
      if (row === cursor) cursor = cursor.nextElementSibling;
      else list.insertBefore(row, cursor);
    }
    for (const gone of rows.values()) gone.remove();
  }

  function update(data) {
    for (const list of main.querySelectorAll("[data-list]")) fill(list, lookup(data, list.dataset.list));
    for (const el of main.querySelectorAll(BOUND)) if (!el.closest("[data-key]")) bind(el, data);
  }

  async function poll() {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch(source, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (response.status === 401) {
        location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
        return;
      }
      const data = await response.json();
      if (!response.ok) throw new Error(data.error || response.statusText);
      update(data);
      failure.hidden = true;
    } catch (error) {
      failure.textContent = `Not updating: ${error.message}. Retrying every second.`;
      failure.hidden = false;
    } finally {
      busy = false;
      schedule();
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (!document.hidden) timer = setTimeout(poll, every);
  }

  // A hidden tab does not poll; it catches up as soon as it is shown.
  document.addEventListener("visibilitychange", () => (document.hidden ? clearTimeout(timer) : poll()));
  schedule();
})();
