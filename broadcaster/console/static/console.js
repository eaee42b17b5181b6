// The console's own few behaviours, without a framework or a build step:
// - the night view follows server-sent events (/events) and swaps its panels in place;
// - the template editor asks for a preview as the operator types (before saving);
// - the announcement form measures the text on each chosen account as it is typed.
// Every fragment comes from the server's autoescaping templates; POSTs carry the CSRF token.
"use strict";

(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";

  function post(url, form) {
    return fetch(url, {
      method: "POST",
      body: new FormData(form),
      headers: { "X-CSRF-Token": csrf },
      credentials: "same-origin",
    }).then(function (response) {
      if (response.status === 401) {
        window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
        throw new Error("logged out");
      }
      return response.text().then(function (text) {
        return { ok: response.ok, status: response.status, text: text };
      });
    });
  }

  // Run `task` once typing pauses for `wait` ms; a newer answer always wins.
  function debounced(task, wait) {
    let timer = null;
    let generation = 0;
    return function () {
      clearTimeout(timer);
      const mine = ++generation;
      timer = setTimeout(function () {
        task(function () { return mine === generation; });
      }, wait);
    };
  }

  // -- the night view, live --
  const night = document.querySelector("[data-sse]");
  if (night && window.EventSource) {
    const state = document.querySelector("[data-live-state]");
    const say = function (text, cls) {
      if (state) { state.textContent = text; state.className = "live-state " + cls; }
    };
    const source = new EventSource(night.getAttribute("data-sse"));
    source.addEventListener("open", function () { say("live", "on"); });
    source.addEventListener("night", function (event) {
      night.innerHTML = event.data;
      say("live", "on");
      document.dispatchEvent(new CustomEvent("night-updated"));
    });
    source.addEventListener("logout", function () {
      source.close();
      window.location.assign("/login?next=/");
    });
    source.addEventListener("error", function () {
      say("reconnecting…", "off");
      if (source.readyState === EventSource.CLOSED) {
        // Refused (the session ended, or the console restarted): the browser gives up, so
        // ask once whether we are still logged in, and go to the login page if not.
        fetch("/night", { credentials: "same-origin" }).then(function (response) {
          if (response.status === 401) {
            window.location.assign("/login?next=/");
          } else {
            setTimeout(function () { window.location.reload(); }, 3000);
          }
        }).catch(function () {
          setTimeout(function () { window.location.reload(); }, 3000);
        });
      }
    });
  }

  // -- template editor: preview as you type --
  const editor = document.querySelector("form[data-preview]");
  if (editor) {
    const target = document.getElementById("preview");
    const url = editor.getAttribute("data-preview");
    const refresh = debounced(function (current) {
      editor.classList.add("busy");
      post(url, editor).then(function (answer) {
        if (!current()) { return; }
        target.innerHTML = answer.text;
        editor.classList.remove("busy");
        target.setAttribute("data-fresh", String(Date.now()));
      }).catch(function () { editor.classList.remove("busy"); });
    }, 300);
    editor.addEventListener("input", refresh);
    editor.addEventListener("change", refresh);
  }

  // -- announcements: length on each account as you type --
  const announce = document.querySelector("form[data-check]");
  if (announce) {
    const target = document.getElementById("announce-fits");
    const url = announce.getAttribute("data-check");
    const check = debounced(function (current) {
      post(url, announce).then(function (answer) {
        if (current() && answer.ok) { target.innerHTML = answer.text; }
      }).catch(function () {});
    }, 250);
    announce.addEventListener("input", check);
    announce.addEventListener("change", check);
  }
})();
