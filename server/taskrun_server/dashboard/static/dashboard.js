// Live pages: the element #live holds what updates. data-fragment is the URL of its new
// content; data-events an event stream of run changes (server-sent events), or data-refresh a
// period in milliseconds. A change patches the run's row at once, then the fragment is
// fetched again (at most every half second) for everything else it affects.
"use strict";

(() => {
  const live = document.getElementById("live");
  if (!live) return;
  let waiting = null;

  const refresh = () => {
    if (waiting !== null) return;
    waiting = setTimeout(async () => {
      waiting = null;
      try {
        const answer = await fetch(live.dataset.fragment, { credentials: "same-origin" });
        if (answer.ok) {
          live.innerHTML = await answer.text();
          live.dataset.updated = String(Date.now());
        }
      } catch (_) {
        // the server is restarting: the next change or tick tries again
      }
    }, 500);
  };

  const patch = (change) => {
    const kind = (change.state_type || "none").toLowerCase();
    for (const cell of live.querySelectorAll(`[data-run="${change.id}"] .state`)) {
      cell.textContent = change.state_name;
      cell.className = `state badge st-${kind}`;
    }
    const heading = document.getElementById("run-state");
    if (heading && live.dataset.events.endsWith(change.id)) {
      heading.textContent = change.state_name;
      heading.className = `state badge st-${kind}`;
    }
  };

  if (live.dataset.events) {
    const source = new EventSource(live.dataset.events);
    source.addEventListener("change", (event) => {
      patch(JSON.parse(event.data));
      refresh();
    });
  }
  if (live.dataset.refresh) {
    setInterval(refresh, Number(live.dataset.refresh));
  }
})();
