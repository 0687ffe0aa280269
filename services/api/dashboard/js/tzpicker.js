// A searchable time-zone picker (ARIA combobox with a listbox) over every IANA zone
// the server knows (/dashboard/timezones.json; the browser's list if that fails).

import { h, uid, replace } from "./dom.js";
import { knownZone, offsetName, viewerZone } from "./time.js";

let zonesPromise = null;

/** Every zone name, sorted, the viewer's and UTC first. */
export function loadZones() {
  if (!zonesPromise) {
    zonesPromise = fetch("/dashboard/timezones.json")
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
      .catch(() => [...(Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : []), "UTC"])
      .then((names) => {
        const usable = [...new Set(names)].filter(knownZone).sort();
        const first = [viewerZone, "UTC"].filter((z) => usable.includes(z));
        return [...first, ...usable.filter((z) => !first.includes(z))];
      });
  }
  return zonesPromise;
}

const normal = (text) => text.toLowerCase().replace(/[_\s]+/g, " ");

/**
 * {wrap, input, get value(), set value(zone)}: `onchange(zone)` when a zone is chosen.
 * `label` labels the input; `setError` shows "unknown zone" messages.
 */
export function timezonePicker({ value = "UTC", onchange, setError = () => {} }) {
  const listId = uid("tz-list");
  const input = h("input", {
    type: "text",
    role: "combobox",
    autocomplete: "off",
    spellcheck: "false",
    "aria-autocomplete": "list",
    "aria-expanded": "false",
    "aria-controls": listId,
    value,
  });
  const list = h("ul.combo-list", { id: listId, role: "listbox", hidden: true, "aria-label": "Time zones" });
  const wrap = h("div.combo", {}, input, list);
  let zones = [];
  let shown = [];
  let active = -1;
  let current = value;

  loadZones().then((names) => {
    zones = names;
  });

  function render() {
    const query = normal(input.value.trim());
    const everything = query === "" || query === normal(current);
    shown = everything ? zones : zones.filter((z) => normal(z).includes(query));
    shown = shown.slice(0, 200);
    active = Math.max(0, shown.indexOf(current));
    if (!everything) active = 0;
    const now = new Date().toISOString();
    replace(
      list,
      shown.length
        ? shown.map((zone, i) =>
            h(
              "li.combo-option",
              {
                id: `${listId}-${i}`,
                role: "option",
                "aria-selected": String(i === active),
                onmousedown: (event) => {
                  event.preventDefault(); // keep focus in the input
                  choose(zone);
                },
              },
              h("span", {}, zone),
              h("span.muted", {}, offsetName(zone, now)),
            ),
          )
        : h("li.combo-empty", {}, "No zone matches"),
    );
    highlight();
  }

  function highlight() {
    [...list.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === active)));
    const item = list.children[active];
    if (item && item.id) {
      input.setAttribute("aria-activedescendant", item.id);
      item.scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function open() {
    if (!list.hidden) return;
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    render();
  }

  function closeList() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }

  function choose(zone) {
    current = zone;
    input.value = zone;
    setError(null);
    closeList();
    if (onchange) onchange(zone);
  }

  function commitTyped() {
    const typed = input.value.trim();
    const match = zones.find((z) => z.toLowerCase() === typed.toLowerCase());
    if (match) {
      if (match !== current) choose(match);
      else input.value = match;
    } else if (typed) {
      setError(`"${typed}" is not an IANA time zone; pick one from the list (e.g. Europe/Paris)`);
    }
  }

  input.addEventListener("input", () => {
    open();
    render();
  });
  input.addEventListener("focus", () => input.select());
  input.addEventListener("click", open);
  input.addEventListener("blur", () => {
    closeList();
    commitTyped();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      if (list.hidden) open();
      else {
        const step = event.key === "ArrowDown" ? 1 : -1;
        active = Math.min(Math.max(active + step, 0), shown.length - 1);
        highlight();
      }
    } else if (event.key === "Enter") {
      if (!list.hidden && shown[active]) {
        event.preventDefault();
        choose(shown[active]);
      } else {
        commitTyped();
      }
    } else if (event.key === "Escape" && !list.hidden) {
      event.preventDefault(); // close the list, not the dialog around it
      event.stopPropagation();
      closeList();
      input.value = current;
    }
  });

  return {
    wrap,
    input,
    get value() {
      return current;
    },
    set value(zone) {
      current = zone;
      input.value = zone;
    },
  };
}
